"""PostgresStore where it differs from SQLite: URLs and schemas, the database clock, LISTEN/NOTIFY, real
concurrency on pooled connections, dropped connections and unreachable servers.

The engine's behaviour itself is the engine suite's (tests/engine runs every test on both backends); these
tests use `SystemRuntime`, so transactions really run on worker threads and connections really race. None
of them sleeps: each waits on an asyncio.Event that the workflow sets, under a guard that fails the test if
the engine never gets there.
"""

from __future__ import annotations

import asyncio
import time
import types
from collections.abc import Awaitable
from typing import Any, TypeVar

import psycopg
import pytest

import engine._runtime
from engine import Engine, Retries, StoreUnavailable, SystemRuntime, define_workflow
from engine._pg_conn import PgConnection
from engine._pg_store import PostgresStore, channel_for
from sim.world.databases import with_schema

R = TypeVar("R")
GUARD = 20.0  # seconds; a passing test takes milliseconds, a broken wake-up would wait an hour


def run(main: Awaitable[R]) -> R:
    async def guarded() -> R:
        return await asyncio.wait_for(main, GUARD)

    return asyncio.run(guarded())


def _signal_workflow(name: str, done: dict[str, asyncio.Event], calls: list[str]) -> Any:
    @define_workflow(name)
    async def signalled(event: Any, step: Any) -> Any:
        def effect(ctx: Any) -> str:
            calls.append(ctx.idempotency_key)
            return "ok"

        value = await step.do("effect", effect)
        done[event.instance_id].set()
        return value

    return signalled


def test_libpq_options_put_each_engine_in_its_own_schema(postgres_url: str, pg_schema: str) -> None:
    """`?options=-csearch_path%3Dname` isolates engines sharing one database: tables land in that schema and
    an instance of one engine does not exist for the other."""
    other = with_schema(postgres_url, "t_other_" + pg_schema.rsplit("_", 1)[-1])
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f'DROP SCHEMA IF EXISTS "{other.rsplit("%3D", 1)[-1]}" CASCADE')
        admin.execute(f'CREATE SCHEMA "{other.rsplit("%3D", 1)[-1]}"')
    assert "options=-csearch_path%3D" in pg_schema

    @define_workflow("iso")
    async def iso(event: Any, step: Any) -> Any:
        return 1

    async def main() -> None:
        async with Engine(pg_schema, [iso]) as a, Engine(other, [iso]) as b:
            await a.create("iso", None, id="only-in-a")
            assert (await a.status("iso", "only-in-a")).status == "queued"
            with pytest.raises(Exception) as caught:
                await b.status("iso", "only-in-a")
            assert getattr(caught.value, "code", None) == "INSTANCE_NOT_FOUND"

    try:
        run(main())
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            schemas = {r[0] for r in admin.execute(
                "SELECT table_schema FROM information_schema.tables WHERE table_name = 'workflow_instance'")}
        assert pg_schema.rsplit("%3D", 1)[-1] in schemas
        assert other.rsplit("%3D", 1)[-1] in schemas
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute(f'DROP SCHEMA IF EXISTS "{other.rsplit("%3D", 1)[-1]}" CASCADE')


def test_notify_wakes_an_idle_worker_at_once(pg_schema: str) -> None:
    """A worker polling once an hour still runs a new instance at once: create NOTIFYs the idle worker."""
    done: dict[str, asyncio.Event] = {}
    calls: list[str] = []
    workflow = _signal_workflow("notified", done, calls)

    async def main() -> None:
        async with Engine(pg_schema, [workflow]) as client, Engine(pg_schema, [workflow]) as worker:
            loop = asyncio.ensure_future(worker.run_worker(poll_interval="1 h"))
            for _ in range(3):  # let the worker find nothing and go idle
                await asyncio.sleep(0)
            done["n1"] = asyncio.Event()
            await client.create("notified", None, id="n1")
            await done["n1"].wait()
            await worker.stop()
            await loop

    run(main())
    assert calls == ["notified:n1:1:do:effect"]


def test_a_client_that_does_not_listen_still_notifies(pg_schema: str) -> None:
    """NOTIFY is sent by every store that writes for real, not only by listening ones: a client whose runtime
    keeps its own clock (so it does not listen itself) still announces a create to the workers' channel."""

    class OwnClock(SystemRuntime):
        def now(self) -> float:
            return time.time()

    @define_workflow("quiet-client")
    async def quiet(event: Any, step: Any) -> Any:
        return 1

    async def create() -> str:
        async with Engine(pg_schema, [quiet], runtime=OwnClock()) as client:
            assert isinstance(client.store, PostgresStore) and not client.store._listen
            await client.create("quiet-client", None, id="q1")
            return client.store.channel

    with psycopg.connect(pg_schema, autocommit=True) as listener:
        channel = channel_for(pg_schema.rsplit("%3D", 1)[-1])
        listener.execute(f'LISTEN "{channel}"')
        assert run(create()) == channel
        heard = list(listener.notifies(timeout=5.0, stop_after=1))
    assert [n.channel for n in heard] == [channel]


def test_a_retry_falls_due_without_waiting_for_the_poll(pg_schema: str) -> None:
    """An idle worker sleeps only until the next task is due: a retry 20 ms out runs long before the hour's
    poll, because retry times are read from the database, not only announced by NOTIFY."""
    done = asyncio.Event()
    attempts: list[int] = []

    @define_workflow("retrying")
    async def retrying(event: Any, step: Any) -> Any:
        def flaky(ctx: Any) -> int:
            attempts.append(ctx.attempt)
            if ctx.attempt == 1:
                raise RuntimeError("first attempt fails")
            return ctx.attempt

        value = await step.do("flaky", flaky, retries=Retries(limit=2, delay=0.02, backoff="constant"))
        done.set()
        return value

    async def main() -> None:
        async with Engine(pg_schema, [retrying]) as eng:
            await eng.create("retrying", None, id="r1")
            loop = asyncio.ensure_future(eng.run_worker(poll_interval="1 h"))
            await done.wait()
            await eng.stop()
            await loop
            assert (await eng.status("retrying", "r1")).output == 2

    run(main())
    assert attempts == [1, 2]


def test_scheduling_uses_the_database_clock_not_a_skewed_local_one(
    pg_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under SystemRuntime the store schedules on the database's clock: a machine whose clock is an hour
    fast still stamps instances with the server's time."""
    real_time = time.time
    monkeypatch.setattr(engine._runtime, "time", types.SimpleNamespace(time=lambda: real_time() + 3600.0,
                                                                   monotonic=time.monotonic))

    @define_workflow("stamped")
    async def stamped(event: Any, step: Any) -> Any:
        return 1

    async def main() -> float:
        async with Engine(pg_schema, [stamped]) as eng:
            assert SystemRuntime().now() > real_time() + 3000  # the machine's clock really is skewed
            await eng.create("stamped", None, id="s1")
            return (await eng.status("stamped", "s1")).created_at.timestamp()

    created = run(main())
    with psycopg.connect(pg_schema) as conn:
        server = conn.execute("SELECT extract(epoch FROM clock_timestamp())").fetchone()
    assert server is not None
    assert abs(created - float(server[0])) < 60.0  # an hour off if the machine's clock had been used


def test_many_runner_loops_run_each_step_once(pg_schema: str) -> None:
    """Two engines with four runner loops each, on pooled connections in worker threads, claim 40 instances
    with SKIP LOCKED: every instance completes and every callback ran exactly once."""
    done: dict[str, asyncio.Event] = {f"m{i}": asyncio.Event() for i in range(40)}
    calls: list[str] = []
    workflow = _signal_workflow("many", done, calls)

    async def main() -> None:
        async with Engine(pg_schema, [workflow], runner_id="a") as a, \
                Engine(pg_schema, [workflow], runner_id="b") as b:
            loops = [asyncio.ensure_future(e.run_worker(poll_interval="1 h", concurrency=4)) for e in (a, b)]
            await a.create_batch("many", [{"id": iid} for iid in done])
            await asyncio.gather(*(event.wait() for event in done.values()))
            await a.stop()
            await b.stop()
            await asyncio.gather(*loops)
            page = await a.list_instances("many", status="complete", limit=100)
            assert len(page.items) == 40

    run(main())
    assert sorted(calls) == sorted(f"many:{iid}:1:do:effect" for iid in done)


def test_concurrent_sends_of_one_event_id_store_one_event(pg_schema: str) -> None:
    """Ten concurrent sends of one event id (on ten pooled connections) store it once and all succeed: the
    losers of the race on the unique index retry and answer as duplicates."""

    @define_workflow("inbox")
    async def inbox(event: Any, step: Any) -> Any:
        return (await step.wait_for_event("in", type="ping")).payload

    async def main() -> None:
        async with Engine(pg_schema, [inbox]) as eng:
            await eng.create("inbox", None, id="i1")
            await asyncio.gather(*(eng.send_event("inbox", "i1", type="ping", payload={"n": n}, event_id="once")
                                   for n in range(10)))
            events = (await eng.history("inbox", "i1")).events
            assert [e.id for e in events] == ["once"]

    run(main())


def test_a_dropped_connection_is_retried_whole(pg_schema: str, postgres_url: str) -> None:
    """Killing every pooled backend (pg_terminate_backend) between two calls loses nothing: the next
    transaction finds its connection dead before COMMIT and runs again on a fresh one."""

    @define_workflow("survivor")
    async def survivor(event: Any, step: Any) -> Any:
        return 1

    url = pg_schema + "&application_name=survivor_test"

    async def main() -> None:
        async with Engine(url, [survivor]) as eng:
            await eng.create("survivor", None, id="before")
            with psycopg.connect(postgres_url, autocommit=True) as admin:
                killed = admin.execute(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE application_name = 'survivor_test'").fetchone()
            assert killed is not None and killed[0] >= 1
            await eng.create("survivor", None, id="after")
            await eng.run_until_idle()
            for iid in ("before", "after"):
                assert (await eng.status("survivor", iid)).status == "complete"

    run(main())


def test_an_unreachable_server_is_a_coded_error() -> None:
    """A server that is not there fails the Engine at once with STORE_UNAVAILABLE and libpq's reason."""
    with pytest.raises(StoreUnavailable) as caught:
        Engine("postgresql://postgres@127.0.0.1:1/test", [])
    assert caught.value.code == "STORE_UNAVAILABLE"
    assert "127.0.0.1" in str(caught.value) and "port=1" in str(caught.value)


def test_a_commit_with_unknown_outcome_is_not_retried(pg_schema: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A connection lost during COMMIT may have committed: the store raises STORE_UNAVAILABLE with
    outcome_unknown instead of running the transaction again (which could apply it twice)."""

    @define_workflow("unknown")
    async def unknown(event: Any, step: Any) -> Any:
        return 1

    real_execute = PgConnection.execute
    commits: list[str] = []

    def failing_commit(self: PgConnection, sql: str, params: Any = ()) -> Any:
        if sql == "COMMIT":
            commits.append(sql)
            real_execute(self, "ROLLBACK")
            raise psycopg.OperationalError("server closed the connection unexpectedly")
        return real_execute(self, sql, params)

    async def main() -> None:
        async with Engine(pg_schema, [unknown]) as eng:
            monkeypatch.setattr(PgConnection, "execute", failing_commit)
            with pytest.raises(StoreUnavailable) as caught:
                await eng.create("unknown", None, id="u1")
            monkeypatch.undo()
            assert caught.value.outcome_unknown
            assert commits == ["COMMIT"]

    run(main())


def test_the_store_closes_its_pool_and_listener(pg_schema: str) -> None:
    """Engine.close() ends the LISTEN task (after it ran) and closes the pool and the inspection connection.

    Checked on the client: a backend's exit after its client hangs up is asynchronous on the server."""

    @define_workflow("closing")
    async def closing(event: Any, step: Any) -> Any:
        return 1

    async def main() -> None:
        eng = Engine(pg_schema, [closing])
        store = eng.store
        assert isinstance(store, PostgresStore)
        inspector = store.conn
        loop = asyncio.ensure_future(eng.run_worker(poll_interval="1 h"))
        while store._listener is None:  # the worker's first empty tick runs on a store thread
            await asyncio.sleep(0)
        listener = store._listener
        assert listener is not None and not listener.done()
        await eng.stop()
        await loop
        await eng.close()
        assert listener.done()
        assert store._pool is not None and store._pool.closed
        assert inspector.closed

    run(main())


def test_the_notify_channel_fits_any_schema_name() -> None:
    """PostgreSQL limits a channel to 63 bytes and LISTEN takes an identifier: a 63-character schema name
    or one with quotes still gets a short, plain, distinct channel."""
    long_a, long_b = "s" * 62 + "a", "s" * 62 + "b"
    channels = {channel_for(long_a), channel_for(long_b), channel_for('we"ird')}
    assert len(channels) == 3
    assert all(len(c) <= 63 and c.replace("_", "").isalnum() for c in channels)


def test_a_wall_clock_step_after_calibration_changes_nothing(
    pg_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database clock is kept as an offset from the machine's monotonic clock: an NTP step of the wall
    clock between two readings does not move it (it would otherwise take over live leases)."""
    store = PostgresStore(pg_schema, runtime=SystemRuntime())
    try:
        before = store.now()
        real_time = time.time
        monkeypatch.setattr(engine._runtime, "time", types.SimpleNamespace(time=lambda: real_time() + 3600.0,
                                                                           monotonic=time.monotonic))
        assert SystemRuntime().now() > real_time() + 3000
        assert abs(store.now() - before) < 5.0
    finally:
        store.close()
