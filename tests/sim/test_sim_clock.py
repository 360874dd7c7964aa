"""VirtualClock: a monotonic simulated clock that only moves when told to."""

import math

import pytest

from sim.core.clock import DEFAULT_START, VirtualClock


def test_starts_at_fixed_epoch() -> None:
    """A new clock starts at the fixed default epoch second so traces do not depend on the real date."""
    clock = VirtualClock()
    assert clock.now() == DEFAULT_START == 1_700_000_000.0
    assert clock.elapsed() == 0.0


def test_advance_and_jump_move_forward() -> None:
    """advance() adds seconds and jump() sets an absolute later time, including the current time."""
    clock = VirtualClock(start=100.0)
    clock.advance(2.5)
    assert clock.now() == 102.5
    clock.jump(110.0)
    clock.jump(110.0)
    assert clock.now() == 110.0
    assert clock.elapsed() == 10.0


@pytest.mark.parametrize("to", [99.999, math.nan, math.inf])
def test_jump_refuses_to_go_backwards(to: float) -> None:
    """jump() to an earlier, NaN or infinite time raises ValueError and leaves the clock alone."""
    clock = VirtualClock(start=100.0)
    with pytest.raises(ValueError, match="only moves forward"):
        clock.jump(to)
    assert clock.now() == 100.0


@pytest.mark.parametrize("seconds", [-0.001, math.nan, math.inf])
def test_advance_rejects_negative(seconds: float) -> None:
    """advance() by a negative, NaN or infinite amount raises ValueError."""
    clock = VirtualClock()
    with pytest.raises(ValueError):
        clock.advance(seconds)
    assert clock.elapsed() == 0.0


def test_start_must_be_finite() -> None:
    """A clock cannot start at NaN."""
    with pytest.raises(ValueError):
        VirtualClock(start=math.nan)
