"""PostgreSQL store: a psycopg 3 connection pool, the database's clock, and LISTEN/NOTIFY for idle workers.

The transactions are `_txn`'s, the same as SQLite's (through `_pg_conn`'s adapter); what differs is only
how they run: each is one synchronous block on a pooled connection, run off the event loop through the
runtime (`run_blocking`), retried whole when PostgreSQL rolled it back (serialization failure, deadlock, a
lost race on a unique key, a dropped connection before COMMIT) and reported as `StoreUnavailable` when the
outcome of a COMMIT is unknown. Nothing is ever half-written: PostgreSQL aborts a transaction whose
connection dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import psycopg
import psycopg_pool
from psycopg import errors as pg_errors

from . import _txn as txn
from ._errors import StoreUnavailable
from ._pg_conn import PgConnection
from ._pg_schema import migrate
from ._runtime import Runtime, SystemRuntime
from ._txn_store import TxnStore

T = TypeVar("T")

# Errors after which PostgreSQL has rolled the transaction back, so running it again is safe. A unique
# violation is here because two runners may race to insert the same key (an event id); the retry then reads
# the winner's row and answers as if it had come second.
_ROLLED_BACK = (
    pg_errors.SerializationFailure, pg_errors.DeadlockDetected, pg_errors.LockNotAvailable,
    pg_errors.UniqueViolation, pg_errors.QueryCanceled,
)
CALIBRATE_EVERY = 30.0  # seconds between two readings of the database clock's offset
# Transactions after which a task may be due at once: they wake idle workers through NOTIFY.
_WAKING = frozenset({"create_instances_txn", "send_event_txn", "resume_txn", "restart_txn", "release_txn"})


def is_postgres_url(database: str) -> bool:
    """Whether `database` names a PostgreSQL server rather than a SQLite file."""
    return database.startswith(("postgres://", "postgresql://"))


class _CommitUnknown(Exception):
    """The connection failed while COMMIT was in flight: the transaction may or may not have landed."""


class PostgresStore(TxnStore):
    """The `Store` over PostgreSQL.

    `url` is a libpq URL; its options apply (`?options=-csearch_path%3Dname` puts the engine's tables in
    schema `name`, so one database can host several isolated engines). `connection=` shares one connection
    among several stores on one thread (the simulator's runners), as SqliteStore's `connection=` does.
    `clock=` is the scheduling clock; by default it is the database's when the runtime reads the machine's
    clock (`SystemRuntime.now`), and the runtime's when it keeps time of its own, because a test or
    simulation that injects a clock moves time itself (DESIGN §4). `listen` (default: with the database clock) wakes idle workers by LISTEN/NOTIFY.
    """

    def __init__(
        self, url: str, *, runtime: Runtime, connection: PgConnection | None = None,
        clock: Callable[[], float] | None = None, listen: bool | None = None, pool_size: int = 10,
        migrate_schema: bool = True, connect_timeout: float = 10.0,
    ) -> None:
        self.url = url
        self.runtime = runtime
        self.write_transactions = 0
        self._shared = connection
        self._pool: psycopg_pool.ConnectionPool[Any] | None = None
        self._inspector: PgConnection | None = None
        database_clock = clock is None and _reads_the_os_clock(runtime)
        self._clock = clock if clock is not None else (self._database_now if database_clock else runtime.now)
        self._offset: float | None = None
        self._calibrated_at = 0.0
        self._listen = database_clock if listen is None else listen
        self._listener: asyncio.Task[None] | None = None
        self._work: asyncio.Event | None = None
        if connection is None:
            _probe(url, connect_timeout)
            self._pool = psycopg_pool.ConnectionPool(
                url, min_size=1, max_size=pool_size, kwargs={"autocommit": True}, open=False,
                name="stepsim")
            try:
                self._pool.open(wait=True, timeout=connect_timeout)
            except psycopg_pool.PoolTimeout as exc:
                self._pool.close()
                raise StoreUnavailable(f"cannot connect to PostgreSQL at {_redacted(url)}: {exc}") from exc
        try:
            with self._connection() as conn:
                schema = conn.execute("SELECT current_schema()").fetchone()
                self.channel = channel_for(str(schema[0]) if schema else "public")
                if migrate_schema:
                    migrate(conn.raw)
        except BaseException:
            if self._pool is not None:
                self._pool.close()
            raise

    # -- connections and transactions -------------------------------------------------------------

    @contextlib.contextmanager
    def _connection(self, timeout: float | None = None) -> Iterator[PgConnection]:
        if self._shared is not None:
            yield self._shared
            return
        assert self._pool is not None
        try:
            with self._pool.connection(timeout=timeout) as raw:
                yield PgConnection(raw)
        except psycopg.OperationalError:
            # One dead connection (a killed backend) suggests more: drop every broken idle one now, so the
            # retry does not spend its tries on them one by one.
            self._pool.check()
            raise

    @property
    def conn(self) -> PgConnection:
        """A connection of its own for inspection (tests, dumps, the harness's checks), opened on first use."""
        if self._shared is not None:
            return self._shared
        if self._inspector is None or self._inspector.closed:
            self._inspector = PgConnection(psycopg.connect(self.url, autocommit=True))
        return self._inspector

    def now(self) -> float:
        """The scheduling clock."""
        return self._clock()

    def _database_now(self) -> float:
        # The database's clock, as an offset from this machine's monotonic clock read every CALIBRATE_EVERY
        # seconds: every runner then schedules and fences on one clock (DESIGN §3) without a round trip per
        # reading, and a step of the machine's wall clock (NTP) changes nothing. A failed reading keeps the
        # last offset; without one yet, the database is unavailable.
        monotonic: Callable[[], float] = getattr(self.runtime, "monotonic", self.runtime.now)
        local = monotonic()
        if self._offset is None or local - self._calibrated_at > CALIBRATE_EVERY:
            try:
                with self._connection(timeout=2.0) as conn:
                    before = monotonic()
                    row = conn.execute("SELECT extract(epoch FROM clock_timestamp())").fetchone()
                    after = monotonic()
                assert row is not None
                self._offset = float(row[0]) - (before + after) / 2.0
                self._calibrated_at = local = after
            except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
                if self._offset is None:
                    raise StoreUnavailable(f"cannot read PostgreSQL's clock: {exc}") from exc
                self._calibrated_at = local  # try again in CALIBRATE_EVERY, not on every reading
        return local + self._offset

    def run_txn(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(conn, *args)` between BEGIN and COMMIT on one connection; roll back on any error."""
        with self._connection() as conn:
            conn.execute("BEGIN")
            try:
                result = fn(conn, *args)
                if self._shared is None and getattr(fn, "__name__", "") in _WAKING:
                    # Delivered at COMMIT, and only if it commits: an idle worker never wakes for nothing.
                    # Sent whether or not this store listens (a client with a test runtime still wakes real
                    # workers); only a simulator's shared connection, which nobody listens to, stays silent.
                    conn.execute("SELECT pg_notify(?, '')", (self.channel,))
            except BaseException:
                _rollback(conn)
                raise
            try:
                conn.execute("COMMIT")
            except psycopg.OperationalError as exc:
                raise _CommitUnknown(str(exc)) from exc
        self.write_transactions += 1
        return result

    def query(self, fn: Callable[..., T], *args: Any) -> T:
        """A one-statement read, in autocommit."""
        with self._connection() as conn:
            return fn(conn, *args)

    def read(self, fn: Callable[..., T], *args: Any) -> T:
        """A multi-statement read in one REPEATABLE READ snapshot (a history's steps and events agree)."""
        with self._connection() as conn:
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            try:
                return fn(conn, *args)
            finally:
                _rollback(conn)

    def is_transient(self, exc: BaseException) -> bool:
        """Rolled back by PostgreSQL, or a connection lost before COMMIT: run the transaction again."""
        if isinstance(exc, _CommitUnknown):
            return False
        return isinstance(exc, _ROLLED_BACK + (psycopg.OperationalError,))

    async def blocking(self, fn: Callable[[], T]) -> T:
        """Off the event loop through the runtime (`run_blocking`), inline under a shared connection or a
        runtime without one."""
        run = getattr(self.runtime, "run_blocking", None)
        if run is None or self._shared is not None:
            return fn()
        result: T = await run(fn)
        return result

    def unavailable(self, exc: BaseException) -> StoreUnavailable | None:
        """A lost COMMIT (never retried: it may have landed) or a connection that stayed lost."""
        if isinstance(exc, _CommitUnknown):
            return StoreUnavailable(f"PostgreSQL connection lost during COMMIT; it may have landed: {exc}",
                                    outcome_unknown=True)
        if isinstance(exc, psycopg.OperationalError):
            return StoreUnavailable(f"PostgreSQL unavailable: {exc}")
        return None

    # -- idle workers -------------------------------------------------------------------------------

    async def wait_for_work(self, workflows: tuple[str, ...], timeout: float) -> None:
        """Idle until a NOTIFY says work arrived, the next task falls due, or `timeout` passes."""
        if not self._listen:
            await self.runtime.sleep(timeout)
            return
        if self._work is None:
            self._work = asyncio.Event()
        if self._listener is None or self._listener.done():
            self._listener = asyncio.ensure_future(self._listen_loop(self._work))
        if self._work.is_set():  # something arrived while this worker was busy
            self._work.clear()
            return
        wait = timeout
        due = await self._query(txn.next_due_txn, workflows) if workflows else None
        if due is not None:
            wait = max(0.0, min(timeout, due - self.now()))
        notified = asyncio.ensure_future(self._work.wait())
        sleeper = asyncio.ensure_future(self.runtime.sleep(wait))
        try:
            await asyncio.wait((notified, sleeper), return_when=asyncio.FIRST_COMPLETED)
        finally:
            notified.cancel()
            sleeper.cancel()
        self._work.clear()

    async def _listen_loop(self, work: asyncio.Event) -> None:
        # One listening connection per store; when it drops, workers fall back to polling until it is back.
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(self.url, autocommit=True) as conn:
                    await conn.execute(f'LISTEN "{self.channel}"')
                    work.set()  # whatever was sent while we were not listening
                    async for _ in conn.notifies():
                        work.set()
            except psycopg.Error:
                work.set()
                await self.runtime.sleep(1.0)

    # -- lifecycle ------------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop listening and close the pool and the inspection connection (a shared one stays open)."""
        if self._listener is not None:
            self._listener.cancel()
            self._listener = None
        if self._inspector is not None:
            self._inspector.close()
        if self._pool is not None:
            self._pool.close()

    async def aclose(self) -> None:
        """Close, letting the listener's connection shut down on the loop first."""
        listener = self._listener
        if listener is not None:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, psycopg.Error):
                await listener
            self._listener = None
        self.close()


def channel_for(schema: str) -> str:
    """The NOTIFY channel of the engine whose tables are in `schema`: short (a channel name is at most 63
    bytes) and a plain identifier whatever the schema is called."""
    return "stepsim_" + hashlib.blake2b(schema.encode(), digest_size=6).hexdigest()


def _reads_the_os_clock(runtime: Runtime) -> bool:
    """Whether the runtime's now() is the machine's clock (which may be skewed): then the database's wins."""
    return getattr(type(runtime), "now", None) is SystemRuntime.now


def _probe(url: str, timeout: float) -> None:
    """One direct connection first: a wrong URL or a server that is down fails at once with libpq's reason,
    instead of after the pool's patient reconnect loop."""
    try:
        psycopg.connect(url, connect_timeout=max(1, round(timeout))).close()
    except psycopg.Error as exc:
        raise StoreUnavailable(f"cannot connect to PostgreSQL at {_redacted(url)}: {exc}") from exc


def _rollback(conn: PgConnection) -> None:
    if conn.closed:
        return  # the server already aborted the transaction with the connection
    with contextlib.suppress(psycopg.Error):
        conn.execute("ROLLBACK")


def _redacted(url: str) -> str:
    """The URL without its password, for error messages."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "<unparsable URL>"
    info.pop("password", None)
    return psycopg.conninfo.make_conninfo("", **info)
