"""Lifecycle: pause, resume, terminate and restart, including their races with an in-flight step."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from fakes import ManualRuntime
from support import T0, at, finished, run_async, settle, tasks

from engine import Engine, EngineError, NonRetryableError, WorkflowEvent, WorkflowStep, define_workflow

Hook = Callable[[WorkflowEvent], Awaitable[None]]


class Pipeline:
    """A two-step workflow ("a" then "b") whose async step callbacks run per-test hooks and log calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, str]] = []
        self.hooks: dict[str, Hook] = {}

        @define_workflow("pipeline")
        async def pipeline(event: WorkflowEvent, step: WorkflowStep) -> Any:
            def make(name: str) -> Callable[[], Awaitable[str]]:
                async def callback() -> str:
                    self.calls.append((event.run_number, name))
                    hook = self.hooks.get(name)
                    if hook is not None:
                        await hook(event)
                    return f"{name}{event.run_number}"

                return callback

            if event.payload.get("sleep"):
                await step.sleep("nap", event.payload["sleep"])
            return [await step.do("a", make("a")), await step.do("b", make("b"))]

        self.definition = pipeline


async def _fail_for_good(event: WorkflowEvent) -> None:
    """A hook that makes its step fail at once (non-retryable), so the instance errors."""
    raise NonRetryableError("declined for good")


def run(rt: ManualRuntime, pipe: Pipeline, body: Callable[[Engine], Awaitable[None]]) -> None:
    """Run `body` against a fresh in-memory engine with the pipeline workflow."""
    async def main() -> None:
        async with Engine(workflows=[pipe.definition], runtime=rt, runner_id="r1") as eng:
            await body(eng)

    run_async(main())


async def status(eng: Engine, iid: str) -> str:
    return str((await eng.status("pipeline", iid)).status)


# -- pause / resume -----------------------------------------------------------------------------------


def test_pausing_an_idle_instance_is_immediate_and_it_is_not_claimed(rt: ManualRuntime) -> None:
    """A paused instance that no runner holds is paused at once, has no task and runs only after resume."""
    pipe = Pipeline()

    async def body(eng: Engine) -> None:
        iid = await eng.create("pipeline", {})
        await eng.pause("pipeline", iid)
        assert await status(eng, iid) == "paused" and tasks(eng) == []
        await rt.advance(3600)
        assert await eng.run_until_idle() == 0
        assert pipe.calls == []
        await eng.resume("pipeline", iid)
        assert await status(eng, iid) == "queued"
        await eng.run_until_idle()
        assert (await eng.status("pipeline", iid)).output == ["a1", "b1"]

    run(rt, pipe, body)


def test_pause_requested_mid_run_takes_effect_at_the_next_step_boundary(rt: ManualRuntime) -> None:
    """Pausing from inside a running step lets that step commit, then stops before the next step."""
    pipe = Pipeline()
    seen: list[tuple[str, bool]] = []

    async def body(eng: Engine) -> None:
        async def pause_now(event: WorkflowEvent) -> None:
            await eng.pause("pipeline", event.instance_id)
            info = await eng.status("pipeline", event.instance_id)
            seen.append((str(info.status), info.pause_requested))

        pipe.hooks["a"] = pause_now
        iid = await eng.create("pipeline", {})
        assert await eng.run_until_idle() == 1
        assert seen == [("running", True)]
        assert await status(eng, iid) == "paused" and tasks(eng) == []
        assert [(s.key, s.status) for s in (await eng.history("pipeline", iid)).steps] == [("do:a", "completed")]
        assert pipe.calls == [(1, "a")]
        del pipe.hooks["a"]
        await eng.resume("pipeline", iid)
        await eng.run_until_idle()
        assert (await eng.status("pipeline", iid)).output == ["a1", "b1"]
        assert pipe.calls == [(1, "a"), (1, "b")]

    run(rt, pipe, body)


def test_resume_cancels_a_pending_pause_request(rt: ManualRuntime) -> None:
    """resume while a pause is only requested withdraws the request and the run continues to the end."""
    pipe = Pipeline()

    async def body(eng: Engine) -> None:
        async def pause_then_resume(event: WorkflowEvent) -> None:
            await eng.pause("pipeline", event.instance_id)
            await eng.resume("pipeline", event.instance_id)

        pipe.hooks["a"] = pause_then_resume
        iid = await eng.create("pipeline", {})
        assert await eng.run_until_idle() == 1
        info = await eng.status("pipeline", iid)
        assert (info.status, info.output, info.pause_requested) == ("complete", ["a1", "b1"], False)

    run(rt, pipe, body)


def test_pause_does_not_freeze_timers(rt: ManualRuntime) -> None:
    """A sleep that elapsed while paused completes right after resume, with no further clock movement."""
    pipe = Pipeline()

    async def body(eng: Engine) -> None:
        iid = await eng.create("pipeline", {"sleep": "10 s"})
        await eng.run_until_idle()
        await eng.pause("pipeline", iid)
        await rt.advance(20)
        assert await eng.run_until_idle() == 0
        await eng.resume("pipeline", iid)
        await eng.run_until_idle()
        assert await status(eng, iid) == "complete"

    run(rt, pipe, body)


def test_sleep_still_running_at_resume_keeps_its_original_wake_time(rt: ManualRuntime) -> None:
    """Resuming before a sleep ends waits only for the rest of the original sleep."""
    pipe = Pipeline()

    async def body(eng: Engine) -> None:
        iid = await eng.create("pipeline", {"sleep": "100 s"})
        await eng.run_until_idle()
        await rt.advance(10)
        await eng.pause("pipeline", iid)
        await rt.advance(10)
        await eng.resume("pipeline", iid)
        await eng.run_until_idle()
        assert await status(eng, iid) == "waiting"
        assert [(t["kind"], t["run_at"]) for t in tasks(eng)] == [("wake", T0 + 100)]
        await rt.advance(79)
        assert await eng.run_until_idle() == 0
        await rt.advance(1)
        await eng.run_until_idle()
        assert await status(eng, iid) == "complete"

    run(rt, pipe, body)


def test_resume_of_an_instance_that_is_not_paused_is_a_no_op(rt: ManualRuntime) -> None:
    """resume on a queued or waiting instance changes neither its status nor its task."""
    pipe = Pipeline()

    async def body(eng: Engine) -> None:
        queued = await eng.create("pipeline", {})
        waiting = await eng.create("pipeline", {"sleep": "1 hour"})
        await eng.run_until_idle()
        await eng.restart("pipeline", queued)
        before = (tasks(eng), await status(eng, queued), await status(eng, waiting))
        await rt.advance(5)
        await eng.resume("pipeline", queued)
        await eng.resume("pipeline", waiting)
        assert (tasks(eng), await status(eng, queued), await status(eng, waiting)) == before
        assert before[1:] == ("queued", "waiting")

    run(rt, pipe, body)


@pytest.mark.parametrize("op", ["pause", "resume", "terminate"])
@pytest.mark.parametrize("terminal", ["complete", "errored", "terminated"])
def test_lifecycle_ops_on_terminal_instances_raise(rt: ManualRuntime, op: str, terminal: str) -> None:
    """pause, resume and terminate on a complete, errored or terminated instance raise INSTANCE_TERMINAL."""
    pipe = Pipeline()
    if terminal == "errored":
        pipe.hooks["a"] = _fail_for_good

    async def body(eng: Engine) -> None:
        iid = await eng.create("pipeline", {})
        if terminal == "terminated":
            await eng.terminate("pipeline", iid)
        else:
            await eng.run_until_idle()
        assert await status(eng, iid) == terminal
        with pytest.raises(EngineError) as info:
            await getattr(eng, op)("pipeline", iid)
        assert info.value.code == "INSTANCE_TERMINAL"
        assert await status(eng, iid) == terminal

    run(rt, pipe, body)


def test_lifecycle_ops_on_unknown_instances_raise_not_found(rt: ManualRuntime) -> None:
    """pause, resume, terminate and restart of a missing instance raise INSTANCE_NOT_FOUND."""
    pipe = Pipeline()

    async def body(eng: Engine) -> None:
        for op in ("pause", "resume", "terminate", "restart"):
            with pytest.raises(EngineError) as info:
                await getattr(eng, op)("pipeline", "nobody")
            assert info.value.code == "INSTANCE_NOT_FOUND"

    run(rt, pipe, body)


# -- terminate ----------------------------------------------------------------------------------------


def test_terminate_is_immediate_and_final(rt: ManualRuntime) -> None:
    """Terminating a waiting instance makes it terminated now, drops its task and keeps its history."""
    pipe = Pipeline()

    async def body(eng: Engine) -> None:
        iid = await eng.create("pipeline", {"sleep": "10 s"})
        await eng.run_until_idle()
        await rt.advance(3)
        await eng.terminate("pipeline", iid)
        info = await eng.status("pipeline", iid)
        assert (info.status, info.completed_at) == ("terminated", at(T0 + 3))
        assert tasks(eng) == []
        await rt.advance(60)
        assert await eng.run_until_idle() == 0
        assert [s.key for s in (await eng.history("pipeline", iid)).steps] == ["sleep:nap"]
        assert pipe.calls == []

    run(rt, pipe, body)


def test_terminate_during_a_running_step_beats_its_completion(rt: ManualRuntime) -> None:
    """A step whose instance is terminated while it runs cannot commit, and no later step runs."""
    pipe = Pipeline()

    async def body(eng: Engine) -> None:
        async def terminate_now(event: WorkflowEvent) -> None:
            await eng.terminate("pipeline", event.instance_id)

        pipe.hooks["a"] = terminate_now
        iid = await eng.create("pipeline", {})
        await eng.run_until_idle()
        info = await eng.status("pipeline", iid)
        assert (info.status, info.output) == ("terminated", None)
        assert (await eng.history("pipeline", iid)).steps == ()
        assert pipe.calls == [(1, "a")]

    run(rt, pipe, body)


# -- restart ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("start", ["queued", "waiting", "paused", "complete", "errored", "terminated"])
def test_restart_works_from_any_status(rt: ManualRuntime, start: str) -> None:
    """restart from any status starts run_number + 1 from the top, clearing output and error."""
    pipe = Pipeline()

    async def body(eng: Engine) -> None:
        iid = await eng.create("pipeline", {"sleep": "10 s"} if start in ("waiting", "paused", "terminated") else {})
        if start != "queued":
            if start == "errored":
                pipe.hooks["a"] = _fail_for_good
            await eng.run_until_idle()
        if start == "paused":
            await eng.pause("pipeline", iid)
        if start == "terminated":
            await eng.terminate("pipeline", iid)
        assert await status(eng, iid) == start
        pipe.hooks.clear()
        assert await eng.restart("pipeline", iid) == 2
        info = await eng.status("pipeline", iid)
        assert (info.status, info.run_number, info.output, info.error) == ("queued", 2, None, None)
        await eng.run_until_idle()
        await rt.advance(10)  # run 2 sleeps from its own start
        await eng.run_until_idle()
        info = await eng.status("pipeline", iid)
        assert (info.status, info.output) == ("complete", ["a2", "b2"])

    run(rt, pipe, body)


def test_restart_keeps_older_runs_history(rt: ManualRuntime) -> None:
    """After restart, history() shows the new run and history(run_number=1) still shows the old one."""
    pipe = Pipeline()

    async def body(eng: Engine) -> None:
        iid = await eng.create("pipeline", {})
        await eng.run_until_idle()
        await eng.restart("pipeline", iid)
        assert (await eng.history("pipeline", iid)).steps == ()
        await eng.run_until_idle()
        current = await eng.history("pipeline", iid)
        old = await eng.history("pipeline", iid, run_number=1)
        assert (current.run_number, [s.result for s in current.steps]) == (2, ["a2", "b2"])
        assert (old.run_number, [s.result for s in old.steps]) == (1, ["a1", "b1"])
        assert pipe.calls == [(1, "a"), (1, "b"), (2, "a"), (2, "b")]
        for bad in (0, 3, True, "1"):
            with pytest.raises(EngineError) as info:
                await eng.history("pipeline", iid, run_number=bad)  # type: ignore[arg-type]
            assert info.value.code == "INVALID_ARGUMENT"

    run(rt, pipe, body)


def test_restart_fences_a_stale_runner_of_the_old_run(rt: ManualRuntime) -> None:
    """A runner still executing run 1 when the instance restarts can commit nothing, even into run 2's task."""
    pipe = Pipeline()
    gates: dict[int, asyncio.Event] = {}

    async def body(eng: Engine) -> None:
        async def block(event: WorkflowEvent) -> None:
            await gates.setdefault(event.run_number, asyncio.Event()).wait()

        pipe.hooks["a"] = block
        iid = await eng.create("pipeline", {})
        old_run = asyncio.ensure_future(eng.tick())
        await settle()
        assert await eng.restart("pipeline", iid) == 2
        new_run = asyncio.ensure_future(eng.tick())  # the same runner picks up run 2 while run 1 still runs
        await settle()
        assert pipe.calls == [(1, "a"), (2, "a")]
        gates[1].set()
        await finished(old_run)
        assert await status(eng, iid) == "running"
        assert (await eng.history("pipeline", iid, run_number=1)).steps == ()
        gates[2].set()
        await finished(new_run)
        info = await eng.status("pipeline", iid)
        assert (info.status, info.run_number, info.output) == ("complete", 2, ["a2", "b2"])

    run(rt, pipe, body)
