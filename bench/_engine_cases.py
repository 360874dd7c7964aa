"""The engine's cases: (a) one long workflow, (b) many short ones, (c) the same with several runners,
(f) scaling of one workflow, (g) start-to-complete latency with a polling worker.

Every case opens a fresh database file under `workdir` (never `:memory:`) so the comparison with the raw
SQLite limit and with DBOS is like for like: WAL, synchronous=NORMAL, the engine's own connection settings.
The engine is reached through its public API only; `store.write_transactions` is the counter SqliteStore
keeps so that benchmarks can show one write transaction per completed step (DESIGN §3).
"""

from __future__ import annotations

import asyncio
import functools
import gc
import os
import random
import time
from collections.abc import Callable, Coroutine
from typing import Any

import attrs

from engine import Engine, Status, WorkflowDefinition, define_workflow

from ._records import Latency, Measurement, Sizes

WORKFLOW = "bench-steps"

# Per workflow outside its steps: create, claim, finish. The rest of `write_transactions` is step commits.
FIXED_WRITES_PER_WORKFLOW = 3


class BenchFailure(Exception):
    """A benchmark's work did not complete as expected: a correctness problem, reported, never a timing."""


def make_workflows(
    on_return: Callable[[str], None] | None = None, *, async_steps: bool = False
) -> list[WorkflowDefinition]:
    """The one benchmark workflow: `n` trivial `step.do` steps, each returning its index.

    Sync callbacks (a lambda) run in a worker thread (DESIGN §2); `async_steps` uses `async def` callbacks,
    which run on the event loop, to show the engine's own cost without the thread hop.
    """

    async def steps(event: Any, step: Any) -> int:
        total = 0
        for i in range(event.payload["n"]):
            if async_steps:
                async def call(i: int = i) -> int:
                    return i

                total += await step.do(f"s{i}", call)
            else:
                # A fresh lambda per step, as user code writes it; default-bound so it needs no StepContext.
                total += await step.do(f"s{i}", lambda i=i: i)
        if on_return is not None:
            on_return(event.instance_id)
        return total

    return [define_workflow(WORKFLOW, steps)]


def _writes(engine: Engine) -> int:
    return int(getattr(engine.store, "write_transactions", 0))


def _run(coro_fn: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    gc.collect()  # collect the previous repetition's garbage outside the timed region
    return asyncio.run(coro_fn())


async def _count_complete(engine: Engine, expected: int) -> None:
    page_cursor = None
    complete = 0
    while True:
        page = await engine.list_instances(WORKFLOW, status="complete", limit=1000, cursor=page_cursor)
        complete += len(page.items)
        if page.next_cursor is None:
            break
        page_cursor = page.next_cursor
    if complete != expected:
        raise BenchFailure(f"{complete} of {expected} workflows completed")


# -- (a) and (f): one workflow of n steps ----------------------------------------------------------


async def run_one(engine: Engine, n: int) -> str:
    """Create one workflow of `n` steps and run it to completion on `engine`: the timed body of (a) and (f)."""
    iid = await engine.create(WORKFLOW, {"n": n})
    await engine.run_until_idle()
    return iid


async def check_one(engine: Engine, iid: str, n: int) -> None:
    """Fail unless the workflow completed with the sum of its step results."""
    info = await engine.status(WORKFLOW, iid)
    if info.status != Status.COMPLETE or info.output != n * (n - 1) // 2:
        raise BenchFailure(f"one workflow of {n} steps ended {info.status} with {info.output!r}")


async def _one_workflow(path: str, n: int, async_steps: bool = False) -> tuple[float, int]:
    async with Engine(path, workflows=make_workflows(async_steps=async_steps), runner_id="bench-0") as engine:
        before = _writes(engine)
        start = time.perf_counter()
        iid = await run_one(engine, n)
        elapsed = time.perf_counter() - start
        writes = _writes(engine) - before
        await check_one(engine, iid, n)
    return elapsed, writes


def files_in(workdir: str) -> Callable[[str], str]:
    """The SQLite namer: each case's database is a new file in `workdir`."""
    return lambda name: os.path.join(workdir, name + ".db")


def one_workflow(
    workdir: str, n: int, repeats: int, *, case: str, label: str, async_steps: bool = False,
    database: Callable[[str], str] | None = None, system: str = "engine",
) -> Measurement:
    """One workflow of `n` steps: create, then run_until_idle; timed from create to completion.

    `database` names a fresh database per repetition (default: a SQLite file in `workdir`; the PostgreSQL
    rows pass a namer that makes a schema), `system` labels the row."""
    fresh = database or files_in(workdir)
    seconds, writes = [], 0
    for rep in range(repeats):
        path = fresh(f"engine-{case}-{n}-{rep}")
        elapsed, writes = _run(functools.partial(_one_workflow, path, n, async_steps))
        seconds.append(elapsed)
    return Measurement(case=case, system=system, label=label, seconds=tuple(seconds), steps=n, workflows=1,
                       write_transactions=writes)


# -- (b): many workflows, one runner, one after another --------------------------------------------


async def _sequential(path: str, sizes: Sizes) -> tuple[float, int]:
    async with Engine(path, workflows=make_workflows(), runner_id="bench-0") as engine:
        before = _writes(engine)
        start = time.perf_counter()
        for i in range(sizes.workflows):
            await engine.create(WORKFLOW, {"n": sizes.steps_per_workflow}, id=f"w{i}")
        await engine.run_until_idle()
        elapsed = time.perf_counter() - start
        writes = _writes(engine) - before
        await _count_complete(engine, sizes.workflows)
    return elapsed, writes


def sequential(
    workdir: str, sizes: Sizes, repeats: int, *, database: Callable[[str], str] | None = None,
    system: str = "engine",
) -> Measurement:
    """(b) `workflows` creates, then run_until_idle runs them one after another on one runner."""
    fresh = database or files_in(workdir)
    seconds, writes = [], 0
    for rep in range(repeats):
        path = fresh(f"engine-b-{rep}")
        elapsed, writes = _run(functools.partial(_sequential, path, sizes))
        seconds.append(elapsed)
    return Measurement(case="b", system=system, label=f"{sizes.workflows} x {sizes.steps_per_workflow} steps, "
                       "1 runner", seconds=tuple(seconds), steps=sizes.workflows * sizes.steps_per_workflow,
                       workflows=sizes.workflows, write_transactions=writes)


# -- (c): many workflows, several runners over one file --------------------------------------------


async def _concurrent(path: str, sizes: Sizes) -> tuple[float, int, list[int]]:
    done: set[str] = set()
    all_done = asyncio.Event()

    def on_return(instance_id: str) -> None:
        done.add(instance_id)
        if len(done) >= sizes.workflows:
            all_done.set()

    workflows = make_workflows(on_return)
    # One Engine (own connection, own runner id) per runner, like separate processes sharing one file.
    engines = [Engine(path, workflows=workflows, runner_id=f"bench-{i}") for i in range(sizes.concurrency)]
    processed = [0] * len(engines)
    for index, engine in enumerate(engines):
        _count_ticks(engine, processed, index)
    try:
        before = sum(_writes(e) for e in engines)
        start = time.perf_counter()
        for i in range(sizes.workflows):
            await engines[i % len(engines)].create(WORKFLOW, {"n": sizes.steps_per_workflow}, id=f"w{i}")
        workers = [asyncio.ensure_future(e.run_worker(poll_interval=0.001)) for e in engines]
        await all_done.wait()
        for engine in engines:
            await engine.stop()
        await asyncio.gather(*workers)
        elapsed = time.perf_counter() - start
        writes = sum(_writes(e) for e in engines) - before
        await _count_complete(engines[0], sizes.workflows)
    finally:
        for engine in engines:
            await engine.close()
    return elapsed, writes, processed


def _count_ticks(engine: Engine, processed: list[int], index: int) -> None:
    """Count the tasks each runner processed, by wrapping its public `runner.tick` (bench-only view)."""
    tick = engine.runner.tick

    async def counted(max_tasks: int = 10) -> int:
        count = await tick(max_tasks)
        processed[index] += count
        return count

    engine.runner.tick = counted  # type: ignore[method-assign]


def concurrent(
    workdir: str, sizes: Sizes, repeats: int, *, database: Callable[[str], str] | None = None,
    system: str = "engine",
) -> Measurement:
    """(c) as (b) but drained by `concurrency` Engine objects, each running run_worker, over one file."""
    fresh = database or files_in(workdir)
    seconds, writes, spread = [], 0, []
    for rep in range(repeats):
        path = fresh(f"engine-c-{rep}")
        elapsed, writes, spread = _run(functools.partial(_concurrent, path, sizes))
        seconds.append(elapsed)
    note = "tasks per runner (last rep): " + "/".join(str(p) for p in spread)
    return Measurement(case="c", system=system, label=f"{sizes.workflows} x {sizes.steps_per_workflow} steps, "
                       f"{sizes.concurrency} runners", seconds=tuple(seconds),
                       steps=sizes.workflows * sizes.steps_per_workflow, workflows=sizes.workflows,
                       write_transactions=writes, note=note)


# -- (g): start-to-complete latency with a polling worker ------------------------------------------


async def _latency(path: str, sizes: Sizes, rng: random.Random) -> list[float]:
    samples: list[float] = []
    async with Engine(path, workflows=make_workflows(), runner_id="bench-0") as engine:
        worker = asyncio.ensure_future(engine.run_worker(poll_interval=sizes.poll_interval))
        try:
            for i in range(sizes.latency_samples):
                # Spread the create over the worker's poll phase so the median is not phase-locked.
                await asyncio.sleep(rng.uniform(0.0, min(sizes.poll_interval, 0.05)))
                start = time.perf_counter()
                iid = await engine.create(WORKFLOW, {"n": 1}, id=f"l{i}")
                while (await engine.status(WORKFLOW, iid)).status != Status.COMPLETE:
                    if time.perf_counter() - start > 30.0:
                        raise BenchFailure(f"latency sample {iid} did not complete within 30 s")
                    await asyncio.sleep(0.0002)
                samples.append(time.perf_counter() - start)
        finally:
            await engine.stop()
            await worker
    return samples


def latency(
    workdir: str, sizes: Sizes, repeats: int, *, database: Callable[[str], str] | None = None,
    poll_interval: float | None = None,
) -> Latency:
    """(g) create -> status complete of a 1-step workflow, with run_worker polling on the SystemRuntime.

    `poll_interval` overrides the sizes' (PostgreSQL's row polls once a second: NOTIFY must do the work)."""
    fresh = database or files_in(workdir)
    rng = random.Random(6)  # seeded: the phase offsets repeat from run to run
    everything: list[float] = []
    medians: list[float] = []
    poll = sizes.poll_interval if poll_interval is None else poll_interval
    for rep in range(repeats):
        path = fresh(f"engine-g-{rep}")
        samples = _run(functools.partial(_latency, path, attrs.evolve(sizes, poll_interval=poll), rng))
        everything.extend(s * 1000 for s in samples)
        medians.append(sorted(samples)[len(samples) // 2] * 1000)
    return Latency(samples_ms=tuple(everything), rep_medians_ms=tuple(medians), poll_interval=poll)
