"""Trace: canonical JSON lines and a digest that says "same run"."""

import enum
import math

import pytest

from sim.core.trace import Trace, TraceRecord


class Colour(str, enum.Enum):
    RED = "red"


def _sample() -> Trace:
    trace = Trace()
    trace.add(1_700_000_000.0, "a", "claim", {"task": 1, "lease": 60.0})
    trace.add(1_700_000_000.25, "b", "commit", {"steps": ["do:x", "sleep:y"], "ok": True, "err": None})
    return trace


def test_jsonl_is_canonical() -> None:
    """Each record is one line of sorted-key JSON without spaces."""
    assert _sample().to_jsonl() == (
        '{"action":"claim","detail":{"lease":60.0,"task":1},"runner":"a","t":1700000000.0}\n'
        '{"action":"commit","detail":{"err":null,"ok":true,"steps":["do:x","sleep:y"]},'
        '"runner":"b","t":1700000000.25}\n'
    )


def test_roundtrip() -> None:
    """from_jsonl(to_jsonl()) gives equal records and the same digest."""
    trace = _sample()
    again = Trace.from_jsonl(trace.to_jsonl())
    assert again.records == trace.records
    assert again.digest() == trace.digest()
    assert len(again) == 2 and [r.action for r in again] == ["claim", "commit"]


def test_digest_is_blake2b_128_and_sensitive() -> None:
    """The digest is 32 hex digits and changes when any record changes."""
    trace = _sample()
    assert len(trace.digest()) == 32
    other = _sample()
    other.add(1_700_000_001.0, "a", "crash")
    assert other.digest() != trace.digest()


def test_floats_rounded_to_microseconds() -> None:
    """Times and detail floats are rounded to 6 decimals so float noise cannot change a trace."""
    a = TraceRecord(1.0000004, "r", "x", {"v": 0.1 + 0.2, "nested": [(0.30000000000000004,)]})
    b = TraceRecord(1.0, "r", "x", {"v": 0.3, "nested": [[0.3]]})
    assert a == b
    assert a.to_json() == b.to_json()


def test_enums_become_plain_values() -> None:
    """A str enum in a detail is written as its value, not as its repr."""
    record = TraceRecord(0.0, "r", "status", {"status": Colour.RED})
    assert type(record.detail["status"]) is str
    assert '"status":"red"' in record.to_json()


def test_rejects_non_json_details() -> None:
    """Non-JSON values and non-finite floats are rejected when the record is made."""
    with pytest.raises(TypeError, match="not JSON"):
        TraceRecord(0.0, "r", "x", {"obj": object()})
    with pytest.raises(TypeError, match="keys must be str"):
        TraceRecord(0.0, "r", "x", {"d": {1: 2}})
    with pytest.raises(ValueError, match="not finite"):
        TraceRecord(0.0, "r", "x", {"v": math.nan})


def test_detail_is_copied() -> None:
    """Mutating the dict passed in does not change the record."""
    detail = {"n": 1}
    record = TraceRecord(0.0, "r", "x", detail)
    detail["n"] = 2
    assert record.detail == {"n": 1}


def test_from_json_rejects_other_objects() -> None:
    """A line that is not a trace record is a ValueError."""
    with pytest.raises(ValueError, match="not a trace record"):
        Trace.from_jsonl('{"t":1}\n')
