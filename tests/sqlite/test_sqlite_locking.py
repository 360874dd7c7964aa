"""SQLite under a write lock another process holds (a busy writer, or one stopped by SIGSTOP mid-write):
opening an engine on a current schema does not need the lock, and a write that never gets it fails with a
coded error instead of a raw sqlite3 one. Both found by `stepsim chaos`."""

from __future__ import annotations

import asyncio
import random
import sqlite3
from pathlib import Path

import pytest

from engine import Engine, SqliteStore, StoreUnavailable, define_workflow
from engine._sqlite_store import connect


@define_workflow("locked")
async def locked(event: object, step: object) -> int:
    return 1


class Impatient:
    """A fixed clock whose sleeps pass at once (the lock never comes free in these tests)."""

    def __init__(self) -> None:
        self.random = random.Random(0)

    def now(self) -> float:
        return 1_700_000_000.0

    def new_id(self) -> str:
        return "id"

    async def sleep(self, seconds: float) -> None:
        return None


def test_opening_an_engine_on_a_current_schema_needs_no_write_lock(tmp_path: Path) -> None:
    """With another connection holding the write lock, a second store opens (it only reads the migration
    table), where taking the lock would wait out the busy timeout and fail."""
    path = str(tmp_path / "app.db")
    Engine(path, [locked]).store.close()  # migrated
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        store = SqliteStore(path, runtime=Impatient(), connection=connect(path, busy_timeout_ms=200))
        store.conn.close()
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_a_write_that_never_gets_the_lock_is_store_unavailable(tmp_path: Path) -> None:
    """A create blocked by another process's write lock through every retry raises STORE_UNAVAILABLE and
    writes nothing."""
    path = str(tmp_path / "app.db")
    Engine(path, [locked]).store.close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")

    async def main() -> None:
        store = SqliteStore(path, runtime=Impatient(), connection=connect(path, busy_timeout_ms=1))
        engine = Engine(store=store, workflows=[locked], runtime=Impatient())
        with pytest.raises(StoreUnavailable) as caught:
            await engine.create("locked", None, id="x")
        assert caught.value.code == "STORE_UNAVAILABLE" and "locked" in str(caught.value)
        store.conn.close()

    try:
        asyncio.run(asyncio.wait_for(main(), 30))  # a guard against a hang, not a timing
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    with sqlite3.connect(path) as check:
        assert check.execute("SELECT COUNT(*) FROM workflow_instance").fetchone()[0] == 0
