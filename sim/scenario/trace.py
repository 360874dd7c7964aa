"""Reading a scenario's trace: a small query view for `expect_trace` predicates, and the failure listing.

Scenario time is shown as seconds since the scenario started (offsets), never as epoch seconds, so a trace
reads like the scenario file: `advance("2 s")` moves every later record by 2.0.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import attrs

from sim.core.trace import TraceRecord

__all__ = ["Entry", "TraceView", "render_trace"]

# Detail fields that carry epoch seconds; the view shows them as offsets like the record times.
_TIME_FIELDS = frozenset({"now", "lease_until", "run_at", "until"})


def _offset(value: Any, t0: float) -> Any:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return round(float(value) - t0, 6)
    return value


def runner_matches(owner: str, runner: str) -> bool:
    """`runner` names a runner; its incarnations after restarts are `a.2`, `a.3`, ... and match too."""
    return owner == runner or (owner.startswith(runner + ".") and owner[len(runner) + 1:].isdigit())


@attrs.frozen
class Entry:
    """One trace record as a scenario sees it: `t` in seconds since the start, times in `detail` likewise."""

    index: int
    t: float
    runner: str
    action: str
    detail: dict[str, Any]

    def __getitem__(self, key: str) -> Any:
        return self.detail[key]

    def get(self, key: str, default: Any = None) -> Any:
        """A detail field, or `default`."""
        return self.detail.get(key, default)

    def render(self) -> str:
        """One aligned line: time, runner, action, details."""
        fields = " ".join(f"{k}={v}" for k, v in sorted(self.detail.items()))
        return f"{self.t:>10.3f}  {self.runner:<8} {self.action:<16} {fields}".rstrip()


class TraceView(Sequence[Entry]):
    """The trace so far, with queries: `where`, `first`, `last`, `count`, `times`, `before`.

    Filters: `action` exactly; `runner` by name (incarnations `a.2` count as `a`); any other keyword must equal
    the detail field of that name, e.g. `trace.first("claim", runner="b", took_over=True)`.
    """

    def __init__(self, records: Sequence[TraceRecord], t0: float) -> None:
        self.t0 = t0
        self._entries = [
            Entry(i, round(r.t - t0, 6), r.runner, r.action,
                  {k: (_offset(v, t0) if k in _TIME_FIELDS else v) for k, v in r.detail.items()})
            for i, r in enumerate(records)
        ]

    def __len__(self) -> int:
        return len(self._entries)

    def __getitem__(self, index: Any) -> Any:
        return self._entries[index]

    def __iter__(self) -> Iterator[Entry]:
        return iter(self._entries)

    def where(self, action: str | None = None, *, runner: str | None = None, **detail: Any) -> list[Entry]:
        """Entries matching every filter, in trace order."""
        return [
            e for e in self._entries
            if (action is None or e.action == action)
            and (runner is None or runner_matches(e.runner, runner))
            and all(k in e.detail and e.detail[k] == v for k, v in detail.items())
        ]

    def first(self, action: str | None = None, *, runner: str | None = None, **detail: Any) -> Entry | None:
        """The earliest matching entry, or None."""
        found = self.where(action, runner=runner, **detail)
        return found[0] if found else None

    def last(self, action: str | None = None, *, runner: str | None = None, **detail: Any) -> Entry | None:
        """The latest matching entry, or None."""
        found = self.where(action, runner=runner, **detail)
        return found[-1] if found else None

    def count(self, action: str | None = None, *, runner: str | None = None, **detail: Any) -> int:
        """How many entries match."""
        return len(self.where(action, runner=runner, **detail))

    def times(self, action: str | None = None, *, runner: str | None = None, **detail: Any) -> list[float]:
        """The scenario times of the matching entries."""
        return [e.t for e in self.where(action, runner=runner, **detail)]

    @staticmethod
    def before(first: Entry | None, second: Entry | None) -> bool:
        """True when both entries exist and `first` happened before `second`."""
        return first is not None and second is not None and first.index < second.index


def render_trace(view: TraceView, *, limit: int = 120) -> str:
    """The trace as aligned lines; only the last `limit` entries when it is longer (the rest are counted).

    Polls that found nothing due (`find` with `due=[]`) are left out: they are most of a trace and say nothing.
    """
    entries = [e for e in view if not (e.action == "find" and not e.get("due"))]
    lines = []
    if len(entries) > limit:
        lines.append(f"    ... {len(entries) - limit} earlier records omitted ...")
        entries = entries[-limit:]
    lines.extend("    " + e.render() for e in entries)
    return "\n".join(lines) if lines else "    (empty)"
