"""The runner: claims, leases, heartbeats, takeover, priority, fencing, several engines on one file, workers."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from fakes import ManualRuntime
from support import T0, Recorder, finished, run_async, settle, shared_database, tasks

from engine import Engine, Retries, StoreUnavailable, WorkflowEvent, WorkflowStep, define_workflow

LEASE = 60.0


class Gated:
    """A one-step workflow whose async callback blocks on a per-call gate; records who ran which call."""

    def __init__(self) -> None:
        self.started: list[str] = []  # instance ids, one per callback call
        self.cancelled: list[str] = []
        self.gates: list[asyncio.Event] = []
        self.block = True

        @define_workflow("gated")
        async def gated(event: WorkflowEvent, step: WorkflowStep) -> Any:
            async def work() -> str:
                call = len(self.started)
                self.started.append(event.instance_id)
                gate = asyncio.Event()
                self.gates.append(gate)
                if self.block:
                    try:
                        await gate.wait()
                    except asyncio.CancelledError:
                        self.cancelled.append(event.instance_id)
                        raise
                return f"call{call}"

            return await step.do("work", work)

        self.definition = gated


@asynccontextmanager
async def engines(
    rt: ManualRuntime, path: Path, *definitions: Any, names: tuple[str, ...] = ("A", "B"), **kwargs: Any
) -> AsyncIterator[list[Engine]]:
    """Several engines with distinct runner ids over one database (per backend) and one clock."""
    opened = [Engine(shared_database(path), workflows=list(definitions), runtime=rt, runner_id=n,
                     lease=LEASE, **kwargs) for n in names]
    try:
        yield opened
    finally:
        for eng in opened:
            await eng.close()


async def output(eng: Engine, workflow: str, iid: str) -> tuple[str, Any]:
    info = await eng.status(workflow, iid)
    return str(info.status), info.output


# -- ticks ----------------------------------------------------------------------------------------------


def test_tick_runs_at_most_max_tasks_due_tasks(rt: ManualRuntime) -> None:
    """tick(max_tasks=n) claims and runs at most n due tasks and reports how many it ran."""
    @define_workflow("quick")
    async def quick(event: WorkflowEvent, step: WorkflowStep) -> int:
        return int(await step.do("one", lambda: 1))

    async def main() -> None:
        async with Engine(workflows=[quick], runtime=rt) as eng:
            for _ in range(3):
                await eng.create("quick")
            assert await eng.tick(max_tasks=0) == 0
            assert await eng.tick(max_tasks=2) == 2
            assert len(tasks(eng)) == 1
            assert await eng.tick(max_tasks=2) == 1
            assert await eng.tick() == 0

    run_async(main())


def test_run_until_idle_processes_exactly_what_is_due_now(rt: ManualRuntime) -> None:
    """run_until_idle runs what is due at now() and returns without waiting for a 5 s sleep to end."""
    @define_workflow("later")
    async def later(event: WorkflowEvent, step: WorkflowStep) -> str:
        await step.sleep("pause", event.payload)
        return "done"

    async def main() -> None:
        async with Engine(workflows=[later], runtime=rt) as eng:
            now_id = await eng.create("later", 0)
            later_id = await eng.create("later", 5)
            assert await eng.run_until_idle() == 2
            assert await output(eng, "later", now_id) == ("complete", "done")
            assert await output(eng, "later", later_id) == ("waiting", None)
            await rt.advance(4.5)
            assert await eng.run_until_idle() == 0
            await rt.advance(0.5)
            assert await eng.run_until_idle() == 1
            assert await output(eng, "later", later_id) == ("complete", "done")

    run_async(main())


def test_an_engine_claims_only_its_own_workflows(rt: ManualRuntime, tmp_path: Path) -> None:
    """An engine that does not know a workflow never claims that workflow's tasks from a shared file."""
    gated = Gated()
    gated.block = False

    @define_workflow("other")
    async def other(event: WorkflowEvent, step: WorkflowStep) -> None:
        return None

    async def main() -> None:
        async with engines(rt, tmp_path, gated.definition, names=("A",)) as (a,), \
                engines(rt, tmp_path, other, names=("B",)) as (b,):
            iid = await a.create("gated")
            assert await b.tick() == 0
            assert await a.tick() == 1
            assert await output(a, "gated", iid) == ("complete", "call0")

    run_async(main())


# -- several engines over one file ------------------------------------------------------------------------


def test_a_task_claimed_by_one_engine_is_not_claimed_by_another(rt: ManualRuntime, tmp_path: Path) -> None:
    """While engine A holds a task (its step is running), engine B over the same file finds nothing to claim."""
    gated = Gated()

    async def main() -> None:
        async with engines(rt, tmp_path, gated.definition) as (a, b):
            iid = await a.create("gated")
            running = asyncio.ensure_future(a.tick())
            await settle()
            assert gated.started == [iid]
            assert await b.tick() == 0
            assert await output(b, "gated", iid) == ("running", None)
            assert [(t["status"], t["lock_owner"]) for t in tasks(b)] == [("processing", "A")]
            gated.gates[0].set()
            assert await finished(running) == 1
            assert await output(b, "gated", iid) == ("complete", "call0")
            assert gated.started == [iid]

    run_async(main())


def test_concurrent_ticks_claim_each_task_exactly_once(rt: ManualRuntime, tmp_path: Path) -> None:
    """Two engines ticking concurrently over one file split the due tasks and run each exactly once."""
    gated = Gated()
    trace = Recorder()

    async def main() -> None:
        async with engines(rt, tmp_path, gated.definition, tracer=trace) as (a, b):
            ids = [await a.create("gated") for _ in range(6)]
            both = asyncio.ensure_future(asyncio.gather(a.tick(), b.tick()))
            await settle()
            for _ in range(10):
                for gate in gated.gates:
                    gate.set()
                await settle()
            ran_a, ran_b = await finished(both)
            assert ran_a + ran_b == 6 and ran_a > 0 and ran_b > 0
            assert sorted(gated.started) == sorted(ids)
            claimed = [c["instance"] for c in trace.of("claim")]
            assert sorted(claimed) == sorted(ids)
            assert trace.of("claim_lost")  # both saw the same due tasks; the loser of each race backed off
            for iid in ids:
                assert (await output(a, "gated", iid))[0] == "complete"

    run_async(main())


# -- leases, heartbeats and takeover ------------------------------------------------------------------------


def test_heartbeat_keeps_the_lease_of_a_long_step(rt: ManualRuntime, tmp_path: Path) -> None:
    """A long async step renews its lease as the clock moves, so another engine never takes the task over."""
    gated = Gated()
    trace = Recorder()

    async def main() -> None:
        async with engines(rt, tmp_path, gated.definition, tracer=trace) as (a, b):
            iid = await a.create("gated")
            running = asyncio.ensure_future(a.tick())
            await settle()
            for _ in range(9):  # 180 s in all, three leases' worth, in steps of lease/3
                await rt.advance(LEASE / 3)
                await settle()
                assert await b.tick() == 0
            assert len(trace.of("renew")) >= 3  # at least one renewal per lease that went by
            gated.gates[0].set()
            await finished(running)
            assert await output(a, "gated", iid) == ("complete", "call0")
            assert gated.started == [iid]

    run_async(main())


def _dead(*args: object) -> None:
    raise sqlite3.OperationalError("disk I/O error: the process died")


def test_dead_runner_is_taken_over_once_its_lease_expires(rt: ManualRuntime, tmp_path: Path) -> None:
    """A runner that dies mid-step keeps the task until its lease ends; then another engine takes it over."""
    gated = Gated()
    trace = Recorder()

    async def main() -> None:
        async with engines(rt, tmp_path, gated.definition, tracer=trace) as (a, b):
            iid = await a.create("gated")
            dying = asyncio.ensure_future(a.tick())
            await settle()
            a.store.run_txn = _dead  # type: ignore[method-assign]  # the process is gone: it writes nothing more
            dying.cancel()  # no renewals, no commit, no release
            with pytest.raises(asyncio.CancelledError):
                await finished(dying)
            assert gated.cancelled == [iid]
            assert (await b.history("gated", iid)).steps == ()
            gated.block = False
            await rt.advance(LEASE)
            assert await b.tick() == 0  # the lease is still valid up to and including its last instant
            await rt.advance(0.5)
            assert await b.tick() == 1
            (claim_a, claim_b) = trace.of("claim")
            assert (claim_a["took_over"], claim_b["took_over"]) == (False, True)
            assert await output(b, "gated", iid) == ("complete", "call1")

    run_async(main())


def test_runner_whose_heartbeat_finds_the_lease_gone_abandons_the_step(
    rt: ManualRuntime, tmp_path: Path
) -> None:
    """If the clock passes the lease before a renewal, the callback is cancelled and nothing is committed."""
    gated = Gated()

    async def main() -> None:
        async with engines(rt, tmp_path, gated.definition) as (a, b):
            iid = await a.create("gated")
            running = asyncio.ensure_future(a.tick())
            await settle()
            await rt.advance(LEASE + 1)  # the first heartbeat wakes already too late
            await finished(running)
            assert gated.cancelled == [iid]
            assert (await a.history("gated", iid)).steps == ()
            gated.block = False
            assert await b.tick() == 1
            assert await output(b, "gated", iid) == ("complete", "call1")

    run_async(main())


def test_stale_runner_cannot_commit_after_takeover(rt: ManualRuntime, tmp_path: Path) -> None:
    """A frozen runner that wakes after another engine took over and finished cannot commit its late result."""
    gated = Gated()

    async def main() -> None:
        async with engines(rt, tmp_path, gated.definition) as (a, b):
            iid = await a.create("gated")
            frozen = asyncio.ensure_future(a.tick())
            await settle()
            rt.t += LEASE + 1  # A is frozen: the clock jumps without its heartbeat timer firing
            gated.block = False
            assert await b.tick() == 1
            assert await output(b, "gated", iid) == ("complete", "call1")
            gated.gates[0].set()  # A wakes up and tries to commit "call0"
            await finished(frozen)
            assert await output(b, "gated", iid) == ("complete", "call1")
            (rec,) = (await b.history("gated", iid)).steps
            assert (rec.result, rec.attempts) == ("call1", 1)

    run_async(main())


@pytest.mark.parametrize("action", ["restart", "terminate"])
def test_stale_runner_cannot_commit_after_restart_or_terminate(
    rt: ManualRuntime, tmp_path: Path, action: str
) -> None:
    """A runner mid-step when another engine restarts or terminates the instance commits nothing."""
    gated = Gated()

    async def main() -> None:
        async with engines(rt, tmp_path, gated.definition) as (a, b):
            iid = await a.create("gated")
            stale = asyncio.ensure_future(a.tick())
            await settle()
            await getattr(b, action)("gated", iid)
            gated.block = False
            await b.run_until_idle()
            gated.gates[0].set()
            await finished(stale)
            assert (await a.history("gated", iid, run_number=1)).steps == ()
            if action == "restart":
                assert await output(a, "gated", iid) == ("complete", "call1")
                assert [s.result for s in (await a.history("gated", iid)).steps] == ["call1"]
            else:
                assert await output(a, "gated", iid) == ("terminated", None)

    run_async(main())


def test_stale_claim_never_matches_a_newer_task_of_the_same_runner(rt: ManualRuntime) -> None:
    """A terminated instance's runner cannot commit through a new task that reuses its old task slot."""
    gated = Gated()

    async def main() -> None:
        async with Engine(workflows=[gated.definition], runtime=rt, runner_id="solo") as eng:
            old = await eng.create("gated", id="old")
            first = asyncio.ensure_future(eng.tick())
            await settle()
            await eng.terminate("gated", old)
            new = await eng.create("gated", id="new")
            second = asyncio.ensure_future(eng.tick())  # the same runner claims the new instance's task
            await settle()
            assert gated.started == ["old", "new"]
            gated.gates[0].set()
            await finished(first)
            assert await output(eng, "gated", old) == ("terminated", None)
            assert (await eng.history("gated", old)).steps == ()
            assert await output(eng, "gated", new) == ("running", None)
            gated.gates[1].set()
            await finished(second)
            assert await output(eng, "gated", new) == ("complete", "call1")

    run_async(main())


# -- priority -----------------------------------------------------------------------------------------------


def test_due_tasks_are_claimed_wake_retry_resume_run(rt: ManualRuntime, tmp_path: Path) -> None:
    """With everything due at once, single-task ticks claim wake, then retry, then resume, then run tasks."""
    trace = Recorder()
    failed: set[str] = set()

    def fail_first() -> str:
        if not failed:
            failed.add("once")
            raise RuntimeError("first attempt fails")
        return "ok"

    @define_workflow("mixed")
    async def mixed(event: WorkflowEvent, step: WorkflowStep) -> None:
        if event.payload == "wake":
            await step.sleep("nap", "10 s")
        elif event.payload == "retry":
            await step.do("flaky", fail_first, retries=Retries(limit=1, delay="10 s"))
        else:
            await step.sleep("long", "1 hour")

    @define_workflow("plain")
    async def plain(event: WorkflowEvent, step: WorkflowStep) -> None:
        return None

    async def main() -> None:
        # "setup" knows only "mixed", so the plain instance's run task (the oldest, with the earliest run_at)
        # stays due untouched while the others get their wake, retry and resume tasks.
        async with engines(rt, tmp_path, mixed, names=("setup",)) as (setup,), \
                engines(rt, tmp_path, mixed, plain, names=("runner",), tracer=trace) as (runner,):
            await runner.create("plain", id="run")
            for kind in ("wake", "retry", "resume"):
                await setup.create("mixed", kind, id=kind)
            await setup.run_until_idle()
            await setup.pause("mixed", "resume")
            await rt.advance(3600)
            await setup.resume("mixed", "resume")
            assert sorted((t["kind"], t["instance_id"]) for t in tasks(runner)) == [
                ("resume", "resume"), ("retry", "retry"), ("run", "run"), ("wake", "wake")]
            for _ in range(4):
                assert await runner.tick(max_tasks=1) == 1
            assert [(c["kind"], c["instance"]) for c in trace.of("claim")] == [
                ("wake", "wake"), ("retry", "retry"), ("resume", "resume"), ("run", "run")]

    run_async(main())


# -- hot path -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 5])
def test_hot_path_costs_one_write_per_completed_step(rt: ManualRuntime, n: int) -> None:
    """A run of n sync steps in one claim costs exactly 1 claim + n step commits + 1 finish write transactions."""
    @define_workflow("steps")
    async def steps(event: WorkflowEvent, step: WorkflowStep) -> int:
        total = 0
        for i in range(n):
            total += await step.do(f"s{i}", lambda i=i: i)
        return total

    async def main() -> None:
        async with Engine(workflows=[steps], runtime=rt) as eng:
            iid = await eng.create("steps")
            before = eng.store.write_transactions  # type: ignore[attr-defined]
            await eng.run_until_idle()
            assert eng.store.write_transactions - before == n + 2  # type: ignore[attr-defined]
            assert await output(eng, "steps", iid) == ("complete", sum(range(n)))

    run_async(main())


def test_a_suspending_step_commits_with_its_hand_back(rt: ManualRuntime) -> None:
    """A sleep that suspends writes its step row and hands the task back in one transaction after the claim."""
    @define_workflow("sleeper")
    async def sleeper(event: WorkflowEvent, step: WorkflowStep) -> None:
        await step.sleep("nap", "1 min")

    async def main() -> None:
        async with Engine(workflows=[sleeper], runtime=rt) as eng:
            await eng.create("sleeper")
            before = eng.store.write_transactions  # type: ignore[attr-defined]
            await eng.run_until_idle()
            assert eng.store.write_transactions - before == 2  # type: ignore[attr-defined]
            assert [(t["kind"], t["status"], t["run_at"]) for t in tasks(eng)] == [("wake", "pending", T0 + 60)]

    run_async(main())


# -- run_worker -----------------------------------------------------------------------------------------------


def test_worker_polls_processes_work_and_returns_on_stop(rt: ManualRuntime) -> None:
    """run_worker idles through the runtime, picks up work at the next poll, and returns when stopped."""
    gated = Gated()
    gated.block = False

    async def main() -> None:
        async with Engine(workflows=[gated.definition], runtime=rt) as eng:
            worker = asyncio.ensure_future(eng.run_worker(poll_interval="2 s"))
            await settle()
            iid = await eng.create("gated")
            await rt.advance(1)
            await settle()
            assert await output(eng, "gated", iid) == ("queued", None)
            await rt.advance(1)
            await settle()
            assert await output(eng, "gated", iid) == ("complete", "call0")
            assert not worker.done()
            await eng.stop()
            await settle()
            assert worker.done() and worker.result() is None

    run_async(main())


def test_stop_while_a_tick_awaits_the_store_ends_the_worker(
    rt: ManualRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """stop() while the worker's tick awaits the store (PostgreSQL runs transactions on threads) ends the
    worker; it must not go on to idle a whole poll interval in a wait that stop() could not cancel."""
    gated = Gated()

    async def yielding(self: Any, fn: Any) -> Any:
        await asyncio.sleep(0)  # as a transaction on a store thread would
        return fn()

    async def main() -> None:
        async with Engine(workflows=[gated.definition], runtime=rt) as eng:
            monkeypatch.setattr(type(eng.store), "blocking", yielding)
            worker = asyncio.ensure_future(eng.run_worker(poll_interval="1 hour"))
            await asyncio.sleep(0)  # the worker is now inside its first find_due
            await eng.stop()
            await finished(worker)

    run_async(main())


def test_a_worker_outlives_a_store_that_cannot_say_when_work_is_due(
    rt: ManualRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An idle wait whose store is unavailable (PostgreSQL down while asking for the next due time) falls
    back to sleeping the poll interval: the worker keeps polling and picks up work once the store is back."""
    gated = Gated()
    gated.block = False
    failures: list[str] = []

    async def unavailable(self: Any, workflows: Any, timeout: float) -> None:
        failures.append("down")
        raise StoreUnavailable("database down")

    async def main() -> None:
        async with Engine(workflows=[gated.definition], runtime=rt) as eng:
            monkeypatch.setattr(type(eng.store), "wait_for_work", unavailable)
            worker = asyncio.ensure_future(eng.run_worker(poll_interval="2 s"))
            await settle()
            assert failures and not worker.done()
            iid = await eng.create("gated")
            await rt.advance(2)
            await settle()
            assert await output(eng, "gated", iid) == ("complete", "call0")
            await eng.stop()
            await finished(worker)

    run_async(main())


def test_a_heartbeat_outlives_failed_lease_reads(rt: ManualRuntime, monkeypatch: pytest.MonkeyPatch) -> None:
    """Lease reads that fail (a dropped connection) neither stop the heartbeat nor lose the lease: it keeps
    renewing, so a step longer than the lease completes on its first call."""
    gated = Gated()
    trace = Recorder()

    async def broken(self: Any, claim: Any) -> float | None:
        raise StoreUnavailable("connection lost")

    async def main() -> None:
        async with Engine(workflows=[gated.definition], runtime=rt, lease=LEASE, tracer=trace) as eng:
            iid = await eng.create("gated")
            running = asyncio.ensure_future(eng.tick())
            await settle()
            monkeypatch.setattr(type(eng.store), "held_until", broken)
            for _ in range(6):  # three leases long
                await rt.advance(LEASE / 2)
                await settle()
            monkeypatch.undo()
            gated.gates[0].set()
            assert await finished(running) == 1
            assert await output(eng, "gated", iid) == ("complete", "call0")

    run_async(main())
    assert len(trace.of("renew")) >= 3 and trace.of("renew_error")
    assert trace.of("lease_lost") == []


def test_busy_worker_ticks_again_without_waiting(rt: ManualRuntime) -> None:
    """A worker whose tick found work ticks again at once, draining a backlog without the clock moving."""
    gated = Gated()
    gated.block = False

    async def main() -> None:
        async with Engine(workflows=[gated.definition], runtime=rt) as eng:
            ids = [await eng.create("gated") for _ in range(3)]
            worker = asyncio.ensure_future(eng.run_worker(poll_interval="1 hour", max_tasks=1))
            await settle()
            assert [(await output(eng, "gated", i))[0] for i in ids] == ["complete"] * 3
            await eng.stop()
            await finished(worker)

    run_async(main())


def test_stop_lets_the_in_flight_step_commit_then_returns(rt: ManualRuntime) -> None:
    """stop() during a running step lets that tick finish its commit, then the worker returns."""
    gated = Gated()

    async def main() -> None:
        async with Engine(workflows=[gated.definition], runtime=rt) as eng:
            iid = await eng.create("gated")
            worker = asyncio.ensure_future(eng.run_worker(poll_interval="1 s"))
            await settle()
            await eng.stop()
            await settle()
            assert not worker.done()
            gated.gates[0].set()
            await settle()
            assert worker.done()
            assert await output(eng, "gated", iid) == ("complete", "call0")

    run_async(main())


def test_cancelled_worker_abandons_the_step_in_flight(rt: ManualRuntime, tmp_path: Path) -> None:
    """Cancelling run_worker mid-step cancels the callback, commits nothing, and hands the task back at once."""
    gated = Gated()

    async def main() -> None:
        async with engines(rt, tmp_path, gated.definition) as (a, b):
            iid = await a.create("gated")
            worker = asyncio.ensure_future(a.run_worker(poll_interval="1 s"))
            await settle()
            worker.cancel()
            with pytest.raises(asyncio.CancelledError):
                await finished(worker)
            assert gated.cancelled == [iid]
            assert (await a.history("gated", iid)).steps == ()
            gated.block = False
            # The cancelled runner handed its task back: another takes it at once, not a lease later.
            assert (await a.status("gated", iid)).status == "queued"
            assert await b.run_until_idle() == 1
            assert await output(b, "gated", iid) == ("complete", "call1")

    run_async(main())


def test_graceful_stop_commits_the_step_in_flight_then_hands_the_task_back(
    rt: ManualRuntime, tmp_path: Path
) -> None:
    """stop() mid-run: the running step commits, the next step is not started, and another runner resumes the
    instance at once from the committed step (issue 10: the lease used to be kept until it expired)."""
    gate = asyncio.Event()
    calls: list[str] = []

    @define_workflow("two-steps")
    async def two_steps(event: WorkflowEvent, step: WorkflowStep) -> Any:
        async def first() -> str:
            calls.append("first")
            await gate.wait()
            return "one"

        def second() -> str:
            calls.append("second")
            return "two"

        return [await step.do("first", first), await step.do("second", second)]

    async def main() -> None:
        async with engines(rt, tmp_path, two_steps) as (a, b):
            iid = await a.create("two-steps")
            worker = asyncio.ensure_future(a.run_worker(poll_interval="1 s"))
            await settle()
            assert calls == ["first"]
            await a.stop()
            gate.set()
            await finished(worker)
            assert calls == ["first"]
            assert [(s.key, s.status) for s in (await a.history("two-steps", iid)).steps] == [("do:first", "completed")]
            (task,) = tasks(a)
            assert (task["status"], task["run_at"], task["lock_owner"]) == ("pending", T0, None)
            assert await b.run_until_idle() == 1  # no clock move: the task is due now
            assert await output(b, "two-steps", iid) == ("complete", ["one", "two"])
            assert calls == ["first", "second"]
            assert await a.run_until_idle() == 0  # after its worker returned, a ticks normally again

    run_async(main())


def test_a_hard_stop_applies_a_pause_requested_during_the_step(rt: ManualRuntime, tmp_path: Path) -> None:
    """pause() while a callback runs is only a request; a hard stop hands the task back at a step boundary,
    so the instance is paused there and nobody runs the callback again until it is resumed."""
    gated = Gated()

    async def main() -> None:
        async with engines(rt, tmp_path, gated.definition) as (a, b):
            iid = await a.create("gated")
            worker = asyncio.ensure_future(a.run_worker(poll_interval="1 s"))
            await settle()
            await a.pause("gated", iid)
            assert (await a.status("gated", iid)).pause_requested
            worker.cancel()
            with pytest.raises(asyncio.CancelledError):
                await finished(worker)
            assert (await a.status("gated", iid)).status == "paused"
            assert await b.run_until_idle() == 0
            gated.block = False
            await b.resume("gated", iid)
            assert await b.run_until_idle() == 1
            assert await output(b, "gated", iid) == ("complete", "call1")
            assert gated.started == [iid, iid]

    run_async(main())


def test_a_worker_with_concurrency_runs_loops_that_hold_tasks_side_by_side(rt: ManualRuntime) -> None:
    """run_worker(concurrency=2): two runner loops (`id:0`, `id:1`) each hold a task at once; their trace
    records and the StepContext of each attempt name the loop; stop() returns once both loops are done."""
    records: list[tuple[str, dict[str, Any]]] = []
    seen: dict[str, str] = {}  # instance -> the runner its callback's StepContext named
    gates: dict[str, asyncio.Event] = {}

    @define_workflow("held")
    async def held(event: WorkflowEvent, step: WorkflowStep) -> Any:
        async def work(ctx: Any) -> str:
            seen[event.instance_id] = ctx.runner
            gates[event.instance_id] = gate = asyncio.Event()
            await gate.wait()
            return ctx.runner

        return await step.do("work", work)

    async def main() -> None:
        async with Engine(workflows=[held], runtime=rt, runner_id="w",
                          tracer=lambda action, detail: records.append((action, detail))) as eng:
            ids = [await eng.create("held") for _ in range(2)]
            worker = asyncio.ensure_future(eng.run_worker(poll_interval="1 s", max_tasks=1, concurrency=2))
            await settle()
            assert sorted(seen.values()) == ["w:0", "w:1"]  # both loops are inside a callback now
            claims = {d["instance"]: d["runner"] for action, d in records if action == "claim"}
            assert claims == seen
            for gate in gates.values():
                gate.set()
            await settle()
            assert [(await output(eng, "held", i)) for i in ids] == [("complete", seen[i]) for i in ids]
            await eng.stop()
            await finished(worker)
            assert worker.result() is None

    run_async(main())
