"""Step callbacks (issue 10): sync callbacks off the loop, the heartbeat from the claim, timeouts, nesting."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from fakes import ManualRuntime
from support import Recorder, T0, run_async, settle, shared_database

from engine import Engine, Retries, StepFailed, SystemRuntime, WorkflowEvent, WorkflowStep, define_workflow

LEASE = 60.0


class ScaledRuntime(SystemRuntime):
    """The real clock, real threads and real asyncio sleeps, with every duration `scale` times shorter.

    The engine sees seconds as usual (a 60 s lease, a 70 s step) while the test takes well under a second.
    """

    def __init__(self, scale: float) -> None:
        super().__init__()
        self.scale = scale
        self._origin = time.monotonic()

    def now(self) -> float:
        return T0 + (time.monotonic() - self._origin) * self.scale

    async def sleep(self, seconds: float) -> None:
        await super().sleep(seconds / self.scale)


def test_a_70_s_sync_step_under_a_60_s_lease_runs_once_and_completes(tmp_path: Path) -> None:
    """With real threads, a sync callback longer than the lease keeps it by heartbeat: one call, no takeover."""
    scale = 100.0  # 70 s of step is 0.7 s of real time
    runtime = ScaledRuntime(scale)
    calls: list[int] = []
    loop_threads: list[int] = []

    def slow(ctx: Any) -> str:
        calls.append(threading.get_ident())
        time.sleep(70 / scale)  # the blocking work a user writes, 70 engine seconds long
        return f"done after attempt {ctx.attempt}"

    @define_workflow("slow-sync")
    async def slow_sync(event: WorkflowEvent, step: WorkflowStep) -> Any:
        loop_threads.append(threading.get_ident())
        return await step.do("slow", slow, timeout="10 min")

    trace = Recorder()
    path = shared_database(tmp_path)

    async def main() -> None:
        async with Engine(path, [slow_sync], runtime=runtime, runner_id="a", lease=LEASE, tracer=trace) as a, \
                Engine(path, [slow_sync], runtime=runtime, runner_id="b", lease=LEASE) as b:
            iid = await a.create("slow-sync")
            running = asyncio.ensure_future(a.tick())
            await runtime.sleep(1)  # a claims first
            taken = 0
            while not running.done():  # b polls every 5 engine seconds, ready to take a lapsed lease over
                taken += await b.tick()
                await runtime.sleep(5)
            assert await running == 1
            assert taken == 0
            info = await a.status("slow-sync", iid)
            assert (info.status, info.output) == ("complete", "done after attempt 1")

    run_async(main(), guard=30.0)
    assert len(calls) == 1
    assert calls[0] not in loop_threads  # the callback ran in a worker thread, not on the event loop
    assert len(trace.of("renew")) >= 1


def test_sync_callbacks_without_run_sync_run_in_a_worker_thread(rt: ManualRuntime) -> None:
    """A runtime without run_sync (the four-member shape) still gets sync callbacks off the event loop."""
    seen: list[int] = []

    @define_workflow("where")
    async def where(event: WorkflowEvent, step: WorkflowStep) -> Any:
        return await step.do("where", lambda: threading.get_ident())

    async def main() -> None:
        async with Engine(workflows=[where], runtime=rt) as eng:
            iid = await eng.create("where")
            seen.append(threading.get_ident())
            await eng.run_until_idle()
            seen.append((await eng.status("where", iid)).output)

    run_async(main())
    assert seen[0] != seen[1]


def test_sync_attempt_timeout_fails_the_attempt_and_discards_the_late_result(rt: ManualRuntime) -> None:
    """A sync attempt past its timeout fails (retryable); what it returns afterwards is never committed."""
    first_may_return = threading.Event()
    first_returned = threading.Event()
    attempts: list[int] = []

    def work(ctx: Any) -> str:
        attempts.append(ctx.attempt)
        if ctx.attempt == 1:
            first_may_return.wait(10)
            first_returned.set()
        return f"attempt {ctx.attempt}"

    @define_workflow("sync-timeout")
    async def sync_timeout(event: WorkflowEvent, step: WorkflowStep) -> Any:
        return await step.do("work", work, timeout="30 s", retries=Retries(limit=1, delay="5 s", backoff="constant"))

    async def main() -> None:
        async with Engine(workflows=[sync_timeout], runtime=rt, lease=LEASE) as eng:
            iid = await eng.create("sync-timeout")
            running = asyncio.ensure_future(eng.tick())
            await settle()
            await rt.advance(30)
            await asyncio.wait_for(running, 5)
            (rec,) = (await eng.history("sync-timeout", iid)).steps
            assert (rec.status, rec.attempts, rec.result) == ("waiting", 1, None)
            assert rec.error is not None and rec.error.name == "StepTimeoutError"
            first_may_return.set()  # the abandoned thread now returns: nothing may come of it
            assert await asyncio.to_thread(first_returned.wait, 5)
            await settle()
            (rec,) = (await eng.history("sync-timeout", iid)).steps
            assert (rec.status, rec.result) == ("waiting", None)
            await rt.advance(5)
            await eng.run_until_idle()
            info = await eng.status("sync-timeout", iid)
            assert (info.status, info.output) == ("complete", "attempt 2")

    run_async(main())
    assert attempts == [1, 2]


def test_heartbeat_renews_from_the_claim_when_a_third_of_the_lease_is_left(rt: ManualRuntime) -> None:
    """Renewals come at claim + 40 s, + 80 s, ... for a 60 s lease, even while a sync callback blocks."""
    release = threading.Event()
    trace = Recorder()

    @define_workflow("blocked")
    async def blocked(event: WorkflowEvent, step: WorkflowStep) -> Any:
        return await step.do("block", lambda: release.wait(10))

    async def main() -> None:
        async with Engine(workflows=[blocked], runtime=rt, lease=LEASE, tracer=trace) as eng:
            iid = await eng.create("blocked")
            running = asyncio.ensure_future(eng.tick())
            await settle()
            for _ in range(9):
                await rt.advance(10)
                await settle()
            assert [r["lease_until"] - T0 for r in trace.of("renew")] == [100.0, 140.0]
            release.set()
            await asyncio.wait_for(running, 5)
            assert (await eng.status("blocked", iid)).status == "complete"

    run_async(main())


def test_a_step_called_inside_a_step_callback_raises_nested_step_error(rt: ManualRuntime) -> None:
    """A nested step is refused at the call: the outer step fails non-retryably, nothing of it is written."""
    calls: list[int] = []

    @define_workflow("nested")
    async def nested(event: WorkflowEvent, step: WorkflowStep) -> Any:
        async def outer(ctx: Any) -> Any:
            calls.append(ctx.attempt)
            return await step.do("inner", lambda: 1)

        try:
            await step.do("outer", outer)
        except StepFailed as failed:
            return [failed.error_name, failed.attempts, await step.do("after", lambda: "ok")]
        return "not refused"

    async def main() -> None:
        async with Engine(workflows=[nested], runtime=rt) as eng:
            iid = await eng.create("nested")
            await eng.run_until_idle()
            info = await eng.status("nested", iid)
            assert (info.status, info.output) == ("complete", ["NestedStepError", 1, "ok"])
            keys = [s.key for s in (await eng.history("nested", iid)).steps]
            assert keys == ["do:outer", "do:after"]

    run_async(main())
    assert calls == [1]


def test_steps_awaited_side_by_side_are_not_nested(rt: ManualRuntime) -> None:
    """asyncio.gather of two steps is not nesting: each callback runs in its own task and both complete."""

    @define_workflow("side-by-side")
    async def side_by_side(event: WorkflowEvent, step: WorkflowStep) -> Any:
        async def slow(value: str) -> str:
            await asyncio.sleep(0)
            return value

        return list(await asyncio.gather(step.do("a", lambda: slow("a")), step.do("b", lambda: slow("b"))))

    async def main() -> None:
        async with Engine(workflows=[side_by_side], runtime=rt) as eng:
            iid = await eng.create("side-by-side")
            await eng.run_until_idle()
            info = await eng.status("side-by-side", iid)
            assert (info.status, info.output) == ("complete", ["a", "b"])

    run_async(main())


@pytest.mark.parametrize("catch", [True, False])
def test_hash_in_a_step_name_is_invalid_step_name_and_writes_nothing(rt: ManualRuntime, catch: bool) -> None:
    """`#` is reserved for repeat keys: do("x#2") raises INVALID_STEP_NAME at the call, so do("x") twice stays
    do:x and do:x#2 instead of colliding and looping (issue 10)."""

    @define_workflow("hashes")
    async def hashes(event: WorkflowEvent, step: WorkflowStep) -> Any:
        first = await step.do("x", lambda: 1)
        try:
            await step.do("x#2", lambda: 2)
        except Exception as exc:
            if not catch:
                raise
            code = getattr(exc, "code", None)
        else:
            code = None
        return [first, code, await step.do("x", lambda: 3)]

    async def main() -> None:
        async with Engine(workflows=[hashes], runtime=rt) as eng:
            iid = await eng.create("hashes")
            await eng.run_until_idle()
            info = await eng.status("hashes", iid)
            keys = [s.key for s in (await eng.history("hashes", iid)).steps]
            if catch:
                assert (info.status, info.output) == ("complete", [1, "INVALID_STEP_NAME", 3])
                assert keys == ["do:x", "do:x#2"]
            else:
                assert info.status == "errored" and info.error is not None
                assert info.error.name == "InvalidStepName" and "#" in info.error.message
                assert keys == ["do:x"]

    run_async(main())


def test_async_callbacks_run_in_their_own_task_and_context(rt: ManualRuntime) -> None:
    """A callback's asyncio.timeout/TaskGroup and context variables belong to the callback, never to the
    runner: a timeout it catches cannot cancel the worker, and a variable it sets stays inside it."""
    import contextvars

    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    seen: list[str] = []

    async def scoped() -> str:
        token = var.set("inside")  # before the first await: must not leak into the workflow
        try:
            async with asyncio.timeout(0):  # expires at once, cancelling the current task: the callback's
                await asyncio.Event().wait()
        except TimeoutError:
            pass
        var.reset(token)
        return "handled"

    @define_workflow("scoped")
    async def scoped_wf(event: WorkflowEvent, step: WorkflowStep) -> Any:
        got = await step.do("scoped", scoped)
        seen.append(var.get())
        return got

    async def main() -> None:
        async with Engine(workflows=[scoped_wf], runtime=rt) as eng:
            iid = await eng.create("scoped")
            await eng.run_until_idle()
            info = await eng.status("scoped", iid)
            assert (info.status, info.output) == ("complete", "handled")

    run_async(main())
    assert seen == ["unset"]


def test_graceful_stop_ends_a_zero_delay_retry_loop_after_the_attempt_in_flight(rt: ManualRuntime) -> None:
    """stop() during a failing step with no retry delay: the attempt in flight commits, no further attempt
    starts, and the task is handed back due now."""
    attempts: list[int] = []
    gate = asyncio.Event()

    async def flaky(ctx: Any) -> str:
        attempts.append(ctx.attempt)
        await gate.wait()
        raise RuntimeError(f"attempt {ctx.attempt} failed")

    @define_workflow("flaky")
    async def flaky_wf(event: WorkflowEvent, step: WorkflowStep) -> Any:
        return await step.do("flaky", flaky, retries=Retries(limit=5, delay=0, backoff="constant"))

    async def main() -> None:
        async with Engine(workflows=[flaky_wf], runtime=rt) as eng:
            iid = await eng.create("flaky")
            worker = asyncio.ensure_future(eng.run_worker(poll_interval="1 s"))
            await settle()
            await eng.stop()
            gate.set()
            await asyncio.wait_for(worker, 5)
            (rec,) = (await eng.history("flaky", iid)).steps
            assert (rec.status, rec.attempts) == ("waiting", 1)
            assert (await eng.status("flaky", iid)).status == "queued"

    run_async(main())
    assert attempts == [1]
