"""The virtual clock every simulated process shares (DESIGN §5).

Like trio's ``MockClock`` it only moves when told to and refuses to go backwards; the scheduler jumps it to
the next timer once every process is blocked, which is how seven simulated days take milliseconds.
"""

from __future__ import annotations

import math

import attrs

__all__ = ["DEFAULT_START", "VirtualClock"]

#: A fixed epoch second (2023-11-14T22:13:20Z) so traces do not depend on when the simulation ran.
DEFAULT_START = 1_700_000_000.0


@attrs.define
class VirtualClock:
    """Global simulated time in epoch seconds; monotonic by construction."""

    start: float = DEFAULT_START
    _now: float = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        if not math.isfinite(self.start):
            raise ValueError(f"clock start must be finite, got {self.start!r}")
        self._now = self.start

    def now(self) -> float:
        """Current simulated time."""
        return self._now

    def elapsed(self) -> float:
        """Seconds since ``start``; handy for budgets such as "bounded virtual time" (property 9)."""
        return self._now - self.start

    def jump(self, to: float) -> None:
        """Set the time to ``to``; going backwards raises ValueError (timers already fired would be undone)."""
        if not math.isfinite(to) or to < self._now:
            raise ValueError(
                f"virtual clock only moves forward to a finite time: now={self._now!r}, asked for {to!r}"
            )
        self._now = to

    def advance(self, seconds: float) -> None:
        """Move the time forward by ``seconds`` (>= 0)."""
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"cannot advance the virtual clock by {seconds!r} seconds")
        self._now += seconds
