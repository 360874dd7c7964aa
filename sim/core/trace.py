"""Traces: plain (time, runner, action, detail) records written as canonical JSON lines (DESIGN §5).

The same seed must give a byte-identical trace, so records are normalised when they are made: times and
other floats are rounded to the microsecond, tuples become lists, enum-like str/int subclasses become plain
values, and anything that is not JSON is rejected at once rather than when the trace is written.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator
from typing import Any

import attrs

__all__ = ["Trace", "TraceRecord"]

_DIGITS = 6  # microseconds: finer than any timer the engine sets, coarse enough to hide float noise


def _plain(value: Any, where: str) -> Any:
    """A JSON-ready copy of ``value`` with floats rounded; TypeError/ValueError for what JSON cannot hold."""
    if value is None or type(value) in (bool, str, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"trace value at {where} is not finite: {value!r}")
        return round(float(value), _DIGITS)
    if isinstance(value, str):
        return str.__str__(value)  # str-based enums: their value, not "Status.complete"
    if isinstance(value, int):
        return int(value)
    if isinstance(value, (list, tuple)):
        return [_plain(item, f"{where}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"trace keys must be str, got {key!r} at {where}")
            out[str.__str__(key)] = _plain(item, f"{where}.{key}")
        return out
    raise TypeError(f"trace value at {where} is not JSON data: {value!r} ({type(value).__name__})")


def _time(t: float) -> float:
    result: float = _plain(float(t), "t")
    return result


def _detail(detail: dict[str, Any] | None) -> dict[str, Any]:
    result: dict[str, Any] = _plain({} if detail is None else detail, "detail")
    return result


@attrs.frozen
class TraceRecord:
    """One thing that happened: at global time ``t``, ``runner`` did ``action`` (details in ``detail``)."""

    t: float = attrs.field(converter=_time)
    runner: str
    action: str
    detail: dict[str, Any] = attrs.field(factory=dict, converter=_detail)

    def to_json(self) -> str:
        """Canonical one-line JSON: sorted keys, no spaces, so equal records give equal bytes."""
        return json.dumps(
            {"t": self.t, "runner": self.runner, "action": self.action, "detail": self.detail},
            sort_keys=True,
            separators=(",", ":"),
            allow_nan=False,
        )

    @classmethod
    def from_json(cls, line: str) -> TraceRecord:
        """Parse one line written by ``to_json``."""
        obj = json.loads(line)
        if not isinstance(obj, dict) or set(obj) != {"t", "runner", "action", "detail"}:
            raise ValueError(f"not a trace record: {line!r}")
        return cls(t=obj["t"], runner=obj["runner"], action=obj["action"], detail=obj["detail"])


@attrs.define
class Trace:
    """An append-only list of records with a canonical JSON-lines form and a digest of it."""

    records: list[TraceRecord] = attrs.field(factory=list)

    def append(self, record: TraceRecord) -> None:
        """Add a record at the end."""
        self.records.append(record)

    def add(self, t: float, runner: str, action: str, detail: dict[str, Any] | None = None) -> TraceRecord:
        """Build a record, append it and return it."""
        record = TraceRecord(t, runner, action, detail)
        self.records.append(record)
        return record

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[TraceRecord]:
        return iter(self.records)

    def to_jsonl(self) -> str:
        """One canonical JSON object per line, each line ending in a newline."""
        return "".join(record.to_json() + "\n" for record in self.records)

    def digest(self) -> str:
        """BLAKE2b-128 hex of ``to_jsonl()``: one short string that says "same trace" across runs."""
        return hashlib.blake2b(self.to_jsonl().encode("utf-8"), digest_size=16).hexdigest()

    @classmethod
    def from_jsonl(cls, text: str) -> Trace:
        """Parse what ``to_jsonl`` wrote; blank lines are ignored."""
        return cls([TraceRecord.from_json(line) for line in text.splitlines() if line.strip()])
