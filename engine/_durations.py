"""Duration parsing: the one place that turns "15 min", 90 or a timedelta into seconds."""

from __future__ import annotations

import math
import re
from datetime import timedelta

from ._errors import InvalidArgument

_UNITS: dict[str, float] = {
    "ms": 0.001, "millisecond": 0.001, "milliseconds": 0.001,
    "s": 1.0, "sec": 1.0, "secs": 1.0, "second": 1.0, "seconds": 1.0,
    "m": 60.0, "min": 60.0, "mins": 60.0, "minute": 60.0, "minutes": 60.0,
    "h": 3600.0, "hr": 3600.0, "hrs": 3600.0, "hour": 3600.0, "hours": 3600.0,
    "d": 86400.0, "day": 86400.0, "days": 86400.0,
    "w": 604800.0, "week": 604800.0, "weeks": 604800.0,
}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?|\.\d+)\s*([A-Za-z]+)\s*$")

Duration = str | int | float | timedelta


def parse_duration(value: object, *, what: str = "duration") -> float:
    """Return `value` as non-negative seconds.

    Accepts "2 s", "15 min", "24h", "7 days", "1.5 hours", ints/floats (seconds) and timedeltas, so every
    API that takes a duration agrees on one grammar; anything else raises InvalidArgument (INVALID_ARGUMENT,
    a ValueError) naming the bad value, so a bad duration at a step call has a stable code like every refusal.
    """
    if isinstance(value, bool):
        raise InvalidArgument(f"invalid {what}: {value!r} (a bool is not a duration)")
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        match = _PATTERN.match(value)
        if match is None or match.group(2).lower() not in _UNITS:
            raise InvalidArgument(
                f"invalid {what}: {value!r} (expected e.g. '2 s', '15 min', '24h', '7 days', '1.5 hours')"
            )
        seconds = float(match.group(1)) * _UNITS[match.group(2).lower()]
    else:
        raise InvalidArgument(f"invalid {what}: {value!r} (expected a string, number of seconds or timedelta)")
    if math.isnan(seconds) or math.isinf(seconds) or seconds < 0:
        raise InvalidArgument(f"invalid {what}: {value!r} (must be a finite, non-negative length of time)")
    return seconds
