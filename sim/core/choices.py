"""One tagged source for every nondeterministic decision the simulator makes (DESIGN §5).

Every choice — which runner moves next, whether a fault fires, how far time jumps, which input comes next —
goes through a ``ChoiceSource`` with a free-form *kind* tag ("sched", "fault", "time", "input", ...). Because
there is exactly one source, a run is fixed by it: a seed reproduces it, a recorded tape replays it exactly,
and a Hypothesis ``data`` object can shrink it.

Degenerate decisions (``choose(kind, 1)``, ``flip(kind, p)`` with ``p <= 0`` or ``p >= 1``) consume nothing
and record nothing, so tapes stay short and a tape recorded with one set of forced decisions still lines up
when replayed.
"""

from __future__ import annotations

import json
import math
import random
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import attrs

if TYPE_CHECKING:  # pragma: no cover - typing only; hypothesis is a dev dependency, imported lazily below
    from hypothesis.strategies import DataObject

__all__ = [
    "FLIP",
    "Choice",
    "ChoiceSource",
    "HypothesisChoices",
    "RecordingChoices",
    "SeededChoices",
    "TapeChoices",
    "TapeMismatch",
    "dump_tape",
    "load_tape",
]

#: ``Choice.n`` for a recorded ``flip``: distinct from every ``choose`` arity (n >= 2 when recorded), so a
#: replay that meets a flip where the tape has a two-way choose (or the reverse) is reported as a mismatch.
FLIP = 0


@runtime_checkable
class ChoiceSource(Protocol):
    """Where every nondeterministic decision of a simulated run comes from."""

    def choose(self, kind: str, n: int) -> int:
        """Return an int in ``[0, n)``; ``n == 1`` returns 0 without consuming anything."""
        ...

    def flip(self, kind: str, p: float) -> bool:
        """Return True with probability ``p``; ``p <= 0`` / ``p >= 1`` decide without consuming anything."""
        ...


@attrs.frozen
class Choice:
    """One recorded decision: its kind tag, its arity (``FLIP`` for a coin flip) and the value taken."""

    kind: str
    n: int
    value: int


class TapeMismatch(Exception):
    """A replay asked for a different decision than the tape recorded at that position."""


def _check_n(n: int) -> None:
    if n < 1:
        raise ValueError(f"choose() needs n >= 1, got {n}")


def _trivial_flip(p: float) -> bool | None:
    """The forced outcome of a flip with probability ``p``, or None when it is a real coin."""
    if math.isnan(p):
        raise ValueError("flip() probability is NaN")
    if p <= 0.0:
        return False
    if p >= 1.0:
        return True
    return None


@attrs.define
class SeededChoices:
    """Decisions drawn from a private ``random.Random(seed)``, so one seed fixes a whole run."""

    seed: int
    _random: random.Random = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._random = random.Random(self.seed)

    def choose(self, kind: str, n: int) -> int:
        """Uniform choice in ``[0, n)``."""
        _check_n(n)
        if n == 1:
            return 0
        return self._random.randrange(n)

    def flip(self, kind: str, p: float) -> bool:
        """Biased coin."""
        forced = _trivial_flip(p)
        if forced is not None:
            return forced
        return self._random.random() < p


@attrs.define
class RecordingChoices:
    """Wraps any source and appends each non-degenerate decision to ``tape`` so the run can be replayed."""

    inner: ChoiceSource
    tape: list[Choice] = attrs.field(factory=list)

    def choose(self, kind: str, n: int) -> int:
        """Delegate, then record ``Choice(kind, n, value)``."""
        _check_n(n)
        if n == 1:
            return 0
        value = self.inner.choose(kind, n)
        self.tape.append(Choice(kind, n, value))
        return value

    def flip(self, kind: str, p: float) -> bool:
        """Delegate, then record ``Choice(kind, FLIP, 0|1)``."""
        forced = _trivial_flip(p)
        if forced is not None:
            return forced
        value = self.inner.flip(kind, p)
        self.tape.append(Choice(kind, FLIP, int(value)))
        return value


@attrs.define
class TapeChoices:
    """Replays a recorded tape exactly; past its end every decision is 0 / False.

    Answering 0 / False after the end (and setting ``exhausted``) is what lets a shrinker try a prefix of a
    failing tape: the run continues along the "first option, no fault" path instead of stopping.
    """

    tape: list[Choice]
    position: int = 0
    exhausted: bool = False

    def _next(self, kind: str, n: int) -> Choice | None:
        if self.position >= len(self.tape):
            self.exhausted = True
            return None
        found = self.tape[self.position]
        wanted = "flip" if n == FLIP else f"choose(n={n})"
        got = "flip" if found.n == FLIP else f"choose(n={found.n})"
        if found.kind != kind or found.n != n:
            raise TapeMismatch(
                f"tape position {self.position}: replay asked for {wanted} of kind {kind!r}, "
                f"but the tape recorded {got} of kind {found.kind!r} (value {found.value})"
            )
        limit = 2 if n == FLIP else n
        if not 0 <= found.value < limit:
            raise TapeMismatch(
                f"tape position {self.position}: recorded value {found.value} is out of range for {got}"
            )
        self.position += 1
        return found

    def choose(self, kind: str, n: int) -> int:
        """The recorded value, or 0 past the end of the tape."""
        _check_n(n)
        if n == 1:
            return 0
        found = self._next(kind, n)
        return 0 if found is None else found.value

    def flip(self, kind: str, p: float) -> bool:
        """The recorded outcome, or False past the end of the tape."""
        forced = _trivial_flip(p)
        if forced is not None:
            return forced
        found = self._next(kind, FLIP)
        return False if found is None else bool(found.value)


@attrs.define
class HypothesisChoices:
    """Draws every decision from a Hypothesis ``data`` object so Hypothesis can shrink interleavings.

    Both draws shrink towards the "boring" outcome: ``choose`` towards 0 (the earliest-parked waiter) and
    ``flip`` towards False (no fault), so a minimal failing example has as few surprises as possible.
    """

    data: DataObject

    def choose(self, kind: str, n: int) -> int:
        """``data.draw(integers(0, n - 1))``."""
        from hypothesis import strategies as st

        _check_n(n)
        if n == 1:
            return 0
        return self.data.draw(st.integers(0, n - 1), label=f"{kind}/{n}")

    def flip(self, kind: str, p: float) -> bool:
        """A two-way draw: with 0 < p < 1 the fault is possible and Hypothesis explores both outcomes.

        Hypothesis is a search, not a probability source: it draws integers small, so mapping a wide integer
        onto p made p=0.5 come up True about 3% of the time. A boolean draw is explored evenly and still
        shrinks towards False (no fault).
        """
        from hypothesis import strategies as st

        forced = _trivial_flip(p)
        if forced is not None:
            return forced
        return bool(self.data.draw(st.booleans(), label=f"{kind}/flip"))


def dump_tape(tape: list[Choice]) -> str:
    """Serialise a tape as JSON lines (one ``{"kind", "n", "value"}`` object per line) for reports/."""
    return "".join(
        json.dumps({"kind": c.kind, "n": c.n, "value": c.value}, sort_keys=True, separators=(",", ":")) + "\n"
        for c in tape
    )


def load_tape(text: str) -> list[Choice]:
    """Parse what ``dump_tape`` wrote; blank lines are ignored, malformed lines raise ValueError."""
    tape: list[Choice] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        obj = json.loads(line)
        if not isinstance(obj, dict) or set(obj) != {"kind", "n", "value"}:
            raise ValueError(f"tape line {lineno}: expected an object with kind, n, value: {line!r}")
        kind, n, value = obj["kind"], obj["n"], obj["value"]
        if not isinstance(kind, str) or type(n) is not int or type(value) is not int:
            raise ValueError(f"tape line {lineno}: wrong field types: {line!r}")
        tape.append(Choice(kind, n, value))
    return tape
