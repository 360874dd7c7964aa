"""The PostgreSQL rows: the engine's (a), (a'), (b), (c) and (g) on the server, DBOS's (a)-(c) on the same
server, and (i) scaling with 1, 2 and 4 worker processes on both backends.

Each repetition gets a fresh schema (engine) or a fresh database (DBOS, which keeps its tables in a schema of
its own), made before the timer starts and dropped after the run. The server's settings are whatever it
runs with (reported: `synchronous_commit`, `fsync`), the same for both systems.
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from types import ModuleType

from sim.world.databases import create_schema, drop_schema, is_postgres

from . import _engine_cases as engine_cases
from ._records import Latency, Measurement, Sizes

PG_SYSTEM = "engine-pg"
DBOS_PG_SYSTEM = "dbos-pg"
PROCESS_COUNTS = (1, 2, 4)


class Schemas:
    """A namer for the engine's cases: each name becomes a fresh schema on the server (`drop_all` cleans up)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.made: list[str] = []

    def __call__(self, name: str) -> str:
        schema = "bench_" + name.replace("-", "_").replace("'", "")
        self.made.append(schema)
        return create_schema(self.base_url, schema)

    def drop_all(self) -> None:
        for schema in self.made:
            with contextlib.suppress(Exception):  # cleanup never hides a measurement
                drop_schema(self.base_url, schema)
        self.made.clear()


def server_settings(url: str) -> str:
    """The settings that decide a commit's cost, as the server reports them."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        values = [f"{name}={conn.execute(f'SHOW {name}').fetchone()[0]}"  # type: ignore[index]
                  for name in ("server_version", "synchronous_commit", "fsync", "wal_sync_method")]
    return ", ".join(values)


def engine_rows(url: str, workdir: str, sizes: Sizes, repeats: int) -> list[Measurement]:
    """The engine's (a), (a'), (b) and (c) on PostgreSQL."""
    schemas = Schemas(url)
    n = sizes.one_workflow_steps
    try:
        return [
            engine_cases.one_workflow(workdir, n, repeats, case="a", label=f"1 workflow x {n} steps",
                                      database=schemas, system=PG_SYSTEM),
            engine_cases.one_workflow(workdir, n, repeats, case="a-async",
                                      label=f"1 workflow x {n} async-callback steps", async_steps=True,
                                      database=schemas, system=PG_SYSTEM),
            engine_cases.sequential(workdir, sizes, repeats, database=schemas, system=PG_SYSTEM),
            engine_cases.concurrent(workdir, sizes, repeats, database=schemas, system=PG_SYSTEM),
        ]
    finally:
        schemas.drop_all()


def engine_latency(url: str, workdir: str, sizes: Sizes, repeats: int) -> Latency:
    """(g) on PostgreSQL with a 1 s poll interval: the create's NOTIFY wakes the worker, not the poll."""
    schemas = Schemas(url)
    try:
        return engine_cases.latency(workdir, sizes, repeats, database=schemas, poll_interval=1.0)
    finally:
        schemas.drop_all()


@contextlib.contextmanager
def _database(url: str, name: str) -> Iterator[str]:
    """A fresh database on the server (DBOS's system database), dropped afterwards."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    info = conninfo_to_dict(url)
    info["dbname"] = name
    try:
        yield _as_url(make_conninfo("", **info))
    finally:
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _as_url(conninfo: str) -> str:
    """A libpq key=value string as the postgresql:// URL SQLAlchemy (DBOS) takes."""
    from psycopg.conninfo import conninfo_to_dict

    info = conninfo_to_dict(conninfo)
    user = info.get("user", "postgres")
    host = info.get("host", "127.0.0.1")
    port = info.get("port", "5432")
    return f"postgresql://{user}@{host}:{port}/{info['dbname']}"


def dbos_rows(app: ModuleType, url: str, sizes: Sizes, repeats: int) -> list[Measurement]:
    """DBOS's (a), (b), (c) with its system database on the same server (launch not timed)."""
    wf = app.steps_workflow
    big, count, small = sizes.one_workflow_steps, sizes.workflows, sizes.steps_per_workflow

    def one() -> None:
        if wf(big) != big * (big - 1) // 2:
            raise RuntimeError("DBOS (a) returned a wrong total")

    def sequential() -> None:
        for _ in range(count):
            wf(small)

    def threaded() -> None:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=sizes.concurrency) as pool:
            list(pool.map(lambda _: wf(small), range(count)))

    cases: list[tuple[str, str, Callable[[], None], int, int]] = [
        ("a", f"1 workflow x {big} steps", one, big, 1),
        ("b", f"{count} x {small} steps, sequential", sequential, count * small, count),
        ("c", f"{count} x {small} steps, {sizes.concurrency} threads", threaded, count * small, count),
    ]
    out = []
    for case, label, body, steps, workflows in cases:
        seconds = []
        for rep in range(repeats):
            with _database(url, f"bench_dbos_{case}_{rep}") as system_url:
                app.launch_url(system_url)
                try:
                    gc.collect()
                    start = time.perf_counter()
                    body()
                    seconds.append(time.perf_counter() - start)
                finally:
                    app.destroy()
        out.append(Measurement(case=case, system=DBOS_PG_SYSTEM, label=label, seconds=tuple(seconds),
                               steps=steps, workflows=workflows))
    return out


# -- (i): worker processes ---------------------------------------------------------------------------


def process_scaling(
    database: Callable[[str], str], backend: str, sizes: Sizes, repeats: int
) -> list[Measurement]:
    """(i) `workflows` x `steps` created up front, then drained by 1, 2 and 4 worker processes (run_worker,
    one runner loop each); timed from the workers' start to the last completion."""
    out = []
    for procs in PROCESS_COUNTS:
        seconds = []
        for rep in range(repeats):
            db = database(f"engine-i-{backend}-{procs}-{rep}")
            seconds.append(_drain(db, procs, sizes))
        out.append(Measurement(
            case=f"i{procs}", system=PG_SYSTEM if backend == "postgres" else "engine",
            label=f"{sizes.process_workflows} x {sizes.steps_per_workflow} steps, {procs} worker process"
                  f"{'es' if procs > 1 else ''}",
            seconds=tuple(seconds), steps=sizes.process_workflows * sizes.steps_per_workflow,
            workflows=sizes.process_workflows))
    return out


def _drain(db: str, procs: int, sizes: Sizes) -> float:
    import asyncio

    from engine import Engine

    async def create() -> None:
        async with Engine(db, engine_cases.make_workflows()) as engine:
            for start in range(0, sizes.process_workflows, 100):
                await engine.create_batch(engine_cases.WORKFLOW, [
                    {"id": f"w{i}", "params": {"n": sizes.steps_per_workflow}}
                    for i in range(start, min(sizes.process_workflows, start + 100))])

    asyncio.run(create())
    poll = "1" if is_postgres(db) else "0.005"
    workers = [subprocess.Popen([sys.executable, "-m", "bench._worker", db, poll],
                                stdout=subprocess.PIPE, text=True) for _ in range(procs)]
    try:
        for worker in workers:
            assert worker.stdout is not None
            worker.stdout.readline()  # "ready": engines open before the clock starts
        start = time.perf_counter()
        for worker in workers:
            assert worker.stdin is None
            os.kill(worker.pid, signal.SIGUSR1)  # start draining: process start-up stays untimed
        deadline = start + 600
        while _complete(db) < sizes.process_workflows:
            if time.perf_counter() > deadline:
                raise RuntimeError(f"(i) {procs} processes did not finish {sizes.process_workflows} "
                                   "workflows in 600 s")
            time.sleep(0.01)  # the bench's own wait for real processes; never in tests
        return time.perf_counter() - start
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(timeout=30)
            if worker.stdout is not None:
                worker.stdout.close()


def _complete(db: str) -> int:
    if is_postgres(db):
        import psycopg

        with psycopg.connect(db, autocommit=True) as conn:
            row = conn.execute("SELECT count(*) FROM workflow_instance WHERE status = 'complete'").fetchone()
    else:
        import sqlite3

        with contextlib.closing(sqlite3.connect(db, timeout=30)) as conn:
            row = conn.execute("SELECT count(*) FROM workflow_instance WHERE status = 'complete'").fetchone()
    return int(row[0]) if row else 0
