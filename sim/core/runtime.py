"""The engine's ``Runtime`` (DESIGN §4) for one simulated runner process.

Time comes from the shared ``VirtualClock`` seen through this process's own, possibly skewed, local clock;
randomness from a generator derived from the seed and the process name; ids from a per-name counter; and
every wait goes through the scheduler, so the scheduler decides when this process moves again.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable
from typing import Any

import attrs

from sim.core.scheduler import Scheduler

__all__ = ["SimRuntime"]

_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_:-]")


def _check_drift(drift: float) -> None:
    # A local clock must still move forward: drift <= -1 would stop or reverse it.
    if not math.isfinite(drift) or drift <= -1.0:
        raise ValueError(f"drift must be finite and > -1, got {drift!r}")


@attrs.define(eq=False)
class SimRuntime:
    """Runtime for simulated process ``process``: virtual time, seeded randomness, scheduler-driven waits.

    ``offset`` (seconds) and ``drift`` (extra local seconds per global second, e.g. 0.01 runs 1% fast)
    skew this process's ``now()`` for clock-skew faults; both may be changed mid-run. The global clock,
    which the scheduler fires timers by, is never affected.
    """

    scheduler: Scheduler
    process: str
    seed: int = attrs.field(kw_only=True)
    offset: float = attrs.field(default=0.0, kw_only=True)
    _drift: float = attrs.field(default=0.0, kw_only=True, alias="drift")
    random: random.Random = attrs.field(init=False)
    # Drift accumulates from the moment it is set, so changing it mid-run bends the local clock instead
    # of making it leap: base is the skew accumulated before the anchor time.
    _drift_anchor: float = attrs.field(init=False)
    _drift_base: float = attrs.field(init=False, default=0.0)
    _busy: float | None = attrs.field(init=False, default=None)  # seconds a sync callback running now spent

    def __attrs_post_init__(self) -> None:
        _check_drift(self._drift)
        # random.Random(str) hashes the string with SHA-512 (seed version 2): stable across runs and
        # independent of PYTHONHASHSEED, and distinct per process so runners do not mirror each other.
        self.random = random.Random(f"{self.seed}:{self.process}")
        self._drift_anchor = self.scheduler.clock.now()

    @property
    def drift(self) -> float:
        """Extra local seconds per global second (0.0 = no drift)."""
        return self._drift

    @drift.setter
    def drift(self, value: float) -> None:
        _check_drift(value)
        now = self.scheduler.clock.now()
        self._drift_base += self._drift * (now - self._drift_anchor)
        self._drift_anchor = now
        self._drift = value

    def now(self) -> float:
        """This process's local time: global time plus ``offset`` plus accumulated drift."""
        now = self.scheduler.clock.now()
        return now + self.offset + self._drift_base + self._drift * (now - self._drift_anchor)

    def new_id(self) -> str:
        """``<process>-000001``, ``-000002``, ...: deterministic, readable in traces, never reused.

        The counter lives in the scheduler per process name, so a restarted process continues the
        sequence instead of re-creating an id its previous incarnation already used (creation is
        idempotent by id, so a reused id would silently return someone else's instance).
        """
        prefix = _ID_UNSAFE.sub("_", self.process)[:100] or "p"
        if prefix[0] in ":-":
            prefix = "_" + prefix
        return f"{prefix}-{self.scheduler.next_serial(self.process):06d}"

    async def sleep(self, seconds: float) -> None:
        """Park as a timer until ``seconds`` of *local* time have passed; <= 0 is just a checkpoint.

        Local seconds are converted to global ones through the current drift (``seconds / (1 + drift)``),
        so a runner whose clock runs fast also wakes early, as a real one would. A drift change while
        asleep does not move the deadline already set.
        """
        if math.isnan(seconds) or math.isinf(seconds):
            raise ValueError(f"cannot sleep for {seconds!r} seconds in a simulation")
        if seconds <= 0:
            await self.scheduler.park("sleep")
            return
        due = self.scheduler.clock.now() + seconds / (1.0 + self._drift)
        await self.scheduler.park("sleep", due=due)

    def run_sync(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run a sync step callback inline (one thread runs the whole simulation), then let the simulated
        time it spent (`busy`) pass as a timer, so heartbeats and attempt timeouts race it as they race a
        worker thread in production (issue 10).

        A callback that spent no simulated time returns its result at once, without a yield point: instant
        sync steps keep the interleavings (and seeds) they always had.
        """
        self._busy = 0.0
        value: Any = None
        try:
            value = fn(*args)
        except Exception as exc:
            error: Exception | None = exc
        else:
            error = None
        finally:
            spent, self._busy = self._busy, None
        if spent <= 0:
            if error is not None:
                raise error
            return value
        return self._after(spent, value, error)

    async def _after(self, seconds: float, value: Any, error: Exception | None) -> Any:
        await self.sleep(seconds)
        if error is not None:
            raise error
        return value

    def busy(self, seconds: float) -> None:
        """Simulated work inside a sync step callback (its `time.sleep`): the call takes `seconds` longer."""
        if self._busy is None:
            raise RuntimeError("busy() is only meaningful inside a sync step callback run by run_sync")
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"busy() needs finite seconds >= 0, got {seconds!r}")
        self._busy += seconds

    async def checkpoint(self, label: str) -> None:
        """A yield point: park as runnable; resume only when the scheduler picks this process."""
        await self.scheduler.park(label)
