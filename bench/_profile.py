"""Profile the hot path, case (a), with pyinstrument (sampling) and cProfile (exact call counts).

Only the timed region is profiled (create + run_until_idle on an open engine), not opening the database.
pyinstrument attributes time spent inside C calls to the frame that made them unless it can see the C
function; cProfile lists those C calls separately with exact counts, which is what tells "one transaction
per step" apart from "five statements per step".
"""

from __future__ import annotations

import asyncio
import os
import re
import sqlite3
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from engine import Engine, SqliteStore, SystemRuntime

from ._engine_cases import check_one, make_workflows, run_one
from ._raw_sqlite import connect as raw_connect
from ._records import ProfileLine, StatementLine

PROFILE_RUNS = 5


def _workload(path: str, steps: int, start: Callable[[], None], stop: Callable[[], None]) -> None:
    async def body() -> None:
        async with Engine(path, workflows=make_workflows(), runner_id="bench-profile") as engine:
            start()
            try:
                ids = [await run_one(engine, steps) for _ in range(PROFILE_RUNS)]
            finally:
                stop()
            for iid in ids:
                await check_one(engine, iid, steps)

    asyncio.run(body())


_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _where(frame: Any) -> str:
    path = str(frame.file_path_short or frame.file_path or "?")
    if os.path.isabs(path) and path.startswith(_ROOT + os.sep):
        path = os.path.relpath(path, _ROOT)
    return f"{path}:{frame.line_no}"


def _flatten(frame: Any, own: dict[tuple[str, str], float]) -> None:
    if not frame.is_synthetic:
        own[(frame.function, _where(frame))] += frame.total_self_time
    for child in frame.children:
        _flatten(child, own)


def pyinstrument_profile(workdir: str, steps: int, *, top: int = 15) -> tuple[tuple[ProfileLine, ...], str]:
    """Top functions by own time over PROFILE_RUNS workflows of (a); empty with a note without pyinstrument."""
    try:
        from pyinstrument import Profiler
    except ImportError:
        return (), "profile skipped: pyinstrument is not installed (pip install pyinstrument)"
    profiler = Profiler(interval=0.0001, async_mode="disabled")
    sessions: list[Any] = []
    _workload(os.path.join(workdir, "profile-pyinstrument.db"), steps, profiler.start,
              lambda: sessions.append(profiler.stop()))
    return _summarise(sessions[0] if sessions else None, steps, top)


def _summarise(session: Any, steps: int, top: int) -> tuple[tuple[ProfileLine, ...], str]:
    root = session.root_frame() if session is not None else None
    if root is None:
        return (), "profile empty: pyinstrument recorded no samples"
    own: dict[tuple[str, str], float] = defaultdict(float)
    _flatten(root, own)
    total = sum(own.values()) or 1.0
    lines = sorted(own.items(), key=lambda item: item[1], reverse=True)[:top]
    profile = tuple(
        ProfileLine(function=fn, location=loc, self_seconds=sec, share=sec / total) for (fn, loc), sec in lines
    )
    note = (f"pyinstrument, {PROFILE_RUNS} workflows of (a) at {steps} steps on one open engine, "
            f"{total * 1000:.0f} ms sampled; own time per function")
    return profile, note


_KIND = re.compile(r"^\s*(?:(INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+(\w+)|(SELECT)\b.*?\bFROM\s+(\w+)|(\w+(?:\s+IMMEDIATE)?))",
                   re.IGNORECASE | re.DOTALL)


def statement_kind(sql: str) -> str:
    """`UPDATE workflow_task`, `SELECT workflow_instance`, `COMMIT`, ...: the verb and its table."""
    match = _KIND.match(sql)
    if match is None:
        return sql.strip()[:40]
    verb, table, select, select_table, other = match.groups()
    if verb:
        return f"{' '.join(verb.upper().split())} {table}"
    if select:
        return f"SELECT {select_table}"
    return " ".join(other.upper().split())


class TimingConnection:
    """A sqlite3 connection stand-in that times every `execute` by statement kind (bench-only)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.calls: dict[str, int] = defaultdict(int)
        self.seconds: dict[str, float] = defaultdict(float)
        self.counting = False
        self._read_txn = False

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        start = time.perf_counter()
        cursor = self.conn.execute(sql, *args)
        if self.counting:
            kind = statement_kind(sql)
            # A deferred BEGIN opens a read snapshot (load_run, history); its COMMIT writes nothing.
            if kind == "BEGIN":
                self._read_txn = True
            elif kind == "COMMIT" and self._read_txn:
                kind, self._read_txn = "COMMIT (read txn)", False
            self.seconds[kind] += time.perf_counter() - start
            self.calls[kind] += 1
        return cursor

    @property
    def total_changes(self) -> int:
        return self.conn.total_changes

    def close(self) -> None:
        self.conn.close()


def statement_breakdown(workdir: str, steps: int) -> tuple[StatementLine, ...]:
    """Per completed step of (a): each kind of SQL statement the engine runs, its count and its time."""
    conn = raw_connect(os.path.join(workdir, "profile-statements.db"))
    conn.row_factory = sqlite3.Row
    timing = TimingConnection(conn)
    runtime = SystemRuntime()

    async def body() -> None:
        store = SqliteStore(os.path.join(workdir, "profile-statements.db"), runtime=runtime,
                            connection=timing)  # type: ignore[arg-type]
        async with Engine(store=store, workflows=make_workflows(), runtime=runtime,
                          runner_id="bench-sql") as engine:
            timing.counting = True
            ids = [await run_one(engine, steps) for _ in range(PROFILE_RUNS)]
            timing.counting = False
            for iid in ids:
                await check_one(engine, iid, steps)

    try:
        asyncio.run(body())
    finally:
        timing.close()
    total_steps = steps * PROFILE_RUNS
    total = sum(timing.seconds.values()) or 1.0
    return tuple(
        StatementLine(kind=kind, calls_per_step=timing.calls[kind] / total_steps,
                      us_per_step=sec / total_steps * 1e6, share=sec / total)
        for kind, sec in sorted(timing.seconds.items(), key=lambda item: item[1], reverse=True)
    )
