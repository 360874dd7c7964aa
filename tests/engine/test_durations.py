"""parse_duration: the one duration grammar shared by sleeps, timeouts, retry delays, leases and polls."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest

from engine import Engine, EngineError, Retries, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("2 s", 2.0),
        ("15 min", 900.0),
        ("24h", 86400.0),
        ("7 days", 604800.0),
        ("1.5 hours", 5400.0),
        ("250ms", 0.25),
        ("1 week", 604800.0),
        ("  3 SECONDS ", 3.0),
        (".5 min", 30.0),
    ],
)
def test_strings(text: str, seconds: float) -> None:
    """Human strings with a unit parse to the right number of seconds."""
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(("value", "seconds"), [(90, 90.0), (1.5, 1.5), (0, 0.0)])
def test_numbers_are_seconds(value: float, seconds: float) -> None:
    """Ints and floats are taken as seconds and returned as float."""
    result = parse_duration(value)
    assert result == seconds and isinstance(result, float)


def test_timedelta() -> None:
    """A timedelta converts to its total seconds, fractions included."""
    assert parse_duration(timedelta(minutes=2, milliseconds=500)) == 120.5


@pytest.mark.parametrize(
    "bad", ["", "abc", "5 parsecs", "-1 s", "1e3 s", "s", -1, -0.5, True, None, math.nan, math.inf, [1],
            timedelta(seconds=-1)],
)
def test_bad_values_raise_value_error_naming_the_value(bad: object) -> None:
    """Anything outside the grammar (or negative, NaN, infinite, bool) raises INVALID_ARGUMENT quoting the value:
    an EngineError with a stable code (a bad duration at a step call is a refusal like any other) that is still
    a ValueError."""
    with pytest.raises(ValueError) as info:
        parse_duration(bad, what="sleep duration")
    assert repr(bad) in str(info.value)
    assert "sleep duration" in str(info.value)
    assert isinstance(info.value, EngineError) and info.value.code == "INVALID_ARGUMENT"


def test_api_arguments_use_the_grammar(rt: object) -> None:
    """Retries.delay and Engine(lease=) accept the same strings and reject bad ones with ValueError."""
    assert Retries(limit=1, delay="1.5 min").delay == 90.0
    engine = Engine(workflows=[], runtime=rt, lease=timedelta(minutes=2))  # type: ignore[arg-type]
    assert engine.lease == 120.0
    engine.store.close()
    with pytest.raises(ValueError, match="'ten seconds'"):
        Retries(limit=1, delay="ten seconds")
