"""Shared helpers for the engine suite: the start time, settling the event loop, and raw table counts."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from engine import Engine

R = TypeVar("R")

T0 = 1_700_000_000.0  # ManualRuntime's default start
TABLES = ("workflow_instance", "workflow_step", "workflow_event", "workflow_task")


def at(seconds: float) -> datetime:
    """Epoch seconds as the aware UTC datetime records carry."""
    return datetime.fromtimestamp(seconds, tz=UTC)


def run_async(main: Awaitable[R], *, guard: float = 10.0) -> R:
    """asyncio.run with a real-time guard: a broken engine that blocks fails the test instead of hanging it.

    Nothing here sleeps; every wait in the suite is on the ManualRuntime clock, so a passing test finishes in
    milliseconds and only a regression ever reaches the guard.
    """
    async def guarded() -> R:
        return await asyncio.wait_for(main, guard)

    return asyncio.run(guarded())


async def finished(task: asyncio.Future[R]) -> R:
    """The task's result once the loop has settled; fails at once (rather than hanging) if it is still blocked."""
    await settle()
    assert task.done(), "expected the task to have finished, but it is still blocked"
    return task.result()


async def settle(rounds: int = 40) -> None:
    """Let every ready task run until it blocks (on a clock timer or an asyncio.Event)."""
    for _ in range(rounds):
        await asyncio.sleep(0)


def shared_database(directory: Path) -> str:
    """A database several engines can share under the backend being tested: the test's PostgreSQL schema
    (what `Engine()` defaults to there), else a SQLite file in `directory` (":memory:" is one per engine)."""
    default = Engine.__init__.__defaults__[0]  # type: ignore[index]
    return default if default.startswith("postgresql://") else str(directory / "shared.db")


def counts(engine: Engine) -> dict[str, int]:
    """Row counts of every engine table, read straight from the database."""
    conn = engine.store.conn  # type: ignore[attr-defined]
    return {t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in TABLES}


def tasks(engine: Engine) -> list[dict[str, Any]]:
    """Every task row, for checking what the runner will (or will not) pick up."""
    conn = engine.store.conn  # type: ignore[attr-defined]
    return [dict(r) for r in conn.execute("SELECT * FROM workflow_task ORDER BY id")]


class Recorder:
    """A tracer that keeps every (action, detail) the engine reports."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, action: str, detail: dict[str, Any]) -> None:
        self.events.append((action, dict(detail)))

    def of(self, action: str) -> list[dict[str, Any]]:
        return [d for a, d in self.events if a == action]
