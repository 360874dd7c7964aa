"""SQLite store: owns the connection and every BEGIN IMMEDIATE/COMMIT; busy errors are its transient ones."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar

from ._errors import StoreUnavailable
from ._runtime import Runtime
from ._schema import migrate
from ._txn_store import TxnStore

T = TypeVar("T")


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


class SqliteStore(TxnStore):
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

    def is_transient(self, exc: BaseException) -> bool:
        """Busy and locked errors: SQLite rolled the transaction back."""
        return is_busy(exc)

    def unavailable(self, exc: BaseException) -> StoreUnavailable | None:
        """Still locked after every retry (another process holds the one write lock, perhaps stopped): a
        coded error the caller and run_worker know to wait out; nothing was written."""
        if is_busy(exc):
            return StoreUnavailable(f"SQLite database {self.path!r} stayed locked: {exc}")
        return None

    def query(self, fn: Callable[..., T], *args: Any) -> T:
        """A one-statement read on the connection, outside any transaction."""
        return fn(self.conn, *args)

    def read(self, fn: Callable[..., T], *args: Any) -> T:
        """A read; multi-statement reads run in one deferred transaction for a consistent snapshot."""
        conn = self.conn
        conn.execute("BEGIN")
        try:
            return fn(conn, *args)
        finally:
            conn.execute("COMMIT")

