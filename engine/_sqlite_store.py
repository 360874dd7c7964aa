"""SQLite store: owns the connection, every BEGIN IMMEDIATE/COMMIT, and the bounded busy retry."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar

from . import _sqlite_txn as txn
from ._runtime import Runtime
from ._schema import migrate
from ._store import Claim, DueTask, LeaseLost, LoadedRun, StepWrite, Suspension, WaitOutcome

T = TypeVar("T")

BUSY_RETRIES = 8
BUSY_BACKOFF = 0.005


def is_busy(exc: BaseException) -> bool:
    """SQLite's lock-contention errors, which are safe to retry because the transaction rolled back."""
    return isinstance(exc, sqlite3.OperationalError) and (
        "locked" in str(exc) or "busy" in str(exc)
    )


def connect(path: str, *, busy_timeout_ms: int = 5000) -> sqlite3.Connection:
    """Open a connection with the engine's pragmas: WAL for files, NORMAL sync, foreign keys, busy timeout."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    if path != ":memory:" and not path.startswith("file::memory:"):
        conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
    return conn


class SqliteStore:
    """The `Store` over one SQLite connection.

    `connection=` lets several engines (simulated runners) share one database; `clock=` is the one
    scheduling clock (DESIGN §3) and defaults to the runtime's. Every write is one synchronous transaction.
    """

    def __init__(
        self, path: str = ":memory:", *, runtime: Runtime, connection: sqlite3.Connection | None = None,
        clock: Callable[[], float] | None = None, migrate_schema: bool = True,
    ) -> None:
        self.path = path
        self.runtime = runtime
        self.conn = connection if connection is not None else connect(path)
        self._owns_connection = connection is None
        self._clock = clock if clock is not None else runtime.now
        self.write_transactions = 0  # transactions that wrote: benchmarks and tests prove one per step
        if migrate_schema:
            migrate(self.conn)

    def now(self) -> float:
        """The scheduling clock."""
        return self._clock()

    def close(self) -> None:
        """Close the connection if this store opened it."""
        if self._owns_connection:
            self.conn.close()

    # -- transaction ownership ------------------------------------------------------------------

    def run_txn(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(conn, *args)` inside BEGIN IMMEDIATE ... COMMIT; roll back on any error.

        The simulator overrides this seam to inject busy errors and commit-outcome-unknown faults.
        """
        conn = self.conn
        before = conn.total_changes
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = fn(conn, *args)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        # Counted only when rows changed: a claim that lost its race commits nothing to the log.
        if conn.total_changes != before:
            self.write_transactions += 1
        return result

    async def _retrying(self, attempt_once: Callable[[], T]) -> T:
        """Bounded retry on busy (the transaction rolled back, so a retry is safe); waits go through the
        runtime. The one retry loop of the store: `write` and `fenced` differ only in their arguments."""
        for attempt in range(BUSY_RETRIES):
            try:
                return attempt_once()
            except sqlite3.OperationalError as exc:
                if not is_busy(exc) or attempt == BUSY_RETRIES - 1:
                    raise
            await self.runtime.sleep(BUSY_BACKOFF * 2**attempt)
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    async def write(self, fn: Callable[..., T], *args: Any) -> T:
        """One write transaction; its arguments (ids, timestamps) are fixed before any retry."""
        return await self._retrying(lambda: self.run_txn(fn, *args))

    async def fenced(self, fn: Callable[..., T], *args: Any, lease: float) -> T:
        """A write fenced on a claim: `now` and `now + lease` are read afresh for every try.

        A fence checked against a `now` computed before a busy-retry sleep would let a runner commit after
        its lease ran out while it slept (found by the simulator: busy fault + clock jump, property 3).
        """

        def attempt_once() -> T:
            now = self.now()
            return self.run_txn(fn, *args, now, now + lease)

        return await self._retrying(attempt_once)

    def read(self, fn: Callable[..., T], *args: Any) -> T:
        """A read; multi-statement reads run in one deferred transaction for a consistent snapshot."""
        conn = self.conn
        conn.execute("BEGIN")
        try:
            return fn(conn, *args)
        finally:
            conn.execute("COMMIT")

    # -- instance management --------------------------------------------------------------------

    async def create_instances(self, workflow: str, items: list[tuple[str, str]], now: float) -> list[str]:
        return await self.write(txn.create_instances_txn, workflow, items, now)

    def get_instance(self, workflow: str, instance_id: str) -> dict[str, Any] | None:
        return txn.get_instance_txn(self.conn, workflow, instance_id)

    def list_instances(
        self, workflow: str, status: str | None, limit: int, after: int | None
    ) -> list[dict[str, Any]]:
        return txn.list_instances_txn(self.conn, workflow, status, limit, after)

    def history(
        self, workflow: str, instance_id: str, run_number: int
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        return self.read(txn.history_txn, workflow, instance_id, run_number)

    async def send_event(
        self, workflow: str, instance_id: str, event_id: str | None, type: str, payload: str, now: float
    ) -> str:
        return await self.write(txn.send_event_txn, workflow, instance_id, event_id, type, payload, now)

    async def pause(self, workflow: str, instance_id: str, now: float) -> str:
        return await self.write(txn.pause_txn, workflow, instance_id, now)

    async def resume(self, workflow: str, instance_id: str, now: float) -> str:
        return await self.write(txn.resume_txn, workflow, instance_id, now)

    async def terminate(self, workflow: str, instance_id: str, now: float) -> str:
        return await self.write(txn.terminate_txn, workflow, instance_id, now)

    async def restart(self, workflow: str, instance_id: str, now: float) -> int:
        return await self.write(txn.restart_txn, workflow, instance_id, now)

    # -- runner -----------------------------------------------------------------------------------

    def find_due(self, workflows: tuple[str, ...], now: float, limit: int) -> list[DueTask]:
        return txn.find_due_txn(self.conn, workflows, now, limit)

    async def claim(self, task: DueTask, owner: str, lease: float) -> Claim | None:
        return await self.fenced(txn.claim_txn, task, owner, lease=lease)

    def load_run(self, claim: Claim) -> LoadedRun | None:
        return self.read(txn.load_run_txn, claim)

    def holds_lease(self, claim: Claim) -> bool:
        return self.held_until(claim) is not None

    def held_until(self, claim: Claim) -> float | None:
        return txn.held_until_txn(self.conn, claim, self.now())

    async def renew_lease(self, claim: Claim, lease: float) -> bool:
        try:
            await self.fenced(txn.renew_txn, claim, lease=lease)
        except LeaseLost:
            return False
        return True

    async def commit_step(self, claim: Claim, step: StepWrite, suspend: Suspension | None, lease: float) -> bool:
        return await self.fenced(txn.commit_step_txn, claim, step, suspend, lease=lease)

    async def wait_event(
        self, claim: Claim, step: StepWrite, match: dict[str, Any] | None, deadline: float, lease: float
    ) -> WaitOutcome:
        return await self.fenced(txn.wait_event_txn, claim, step, match, deadline, lease=lease)

    async def suspend(self, claim: Claim, suspension: Suspension) -> bool:
        return await self.fenced(txn.suspend_txn, claim, suspension, lease=0.0)

    async def release(self, claim: Claim) -> None:
        await self.fenced(txn.release_txn, claim, lease=0.0)

    async def finish(
        self, claim: Claim, status: str, output: str | None, error: tuple[str, str] | None
    ) -> None:
        await self.fenced(txn.finish_txn, claim, status, output, error, lease=0.0)
