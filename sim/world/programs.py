"""The model's programs (`properties.programs`) as engine workflows, so the model can judge what they do.

The adapter runs a program on the real step API and turns the engine's exceptions into the program's
(StepFailed -> Failed, WaitForEventTimeout -> TimedOut, InvalidStepName -> Refused). Each Do callback
reports to the current world (`CURRENT_WORLD`) what it saw and did: `attempt_started(ctx, timeout)` with its
StepContext, then `attempt_ended(ctx, ok, value)`; in between it may park (`in_callback`: a yield point
where the world injects failures and hangs) or block its runner in sync code (`busy`). A world without an
oracle still runs them.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from engine import (
    InvalidArgument,
    InvalidStepName,
    NameTooLong,
    Retries,
    StepFailed,
    WaitForEventTimeout,
    WorkflowDefinition,
    WorkflowEvent,
    WorkflowStep,
    define_workflow,
)
from properties.programs import (
    PARAMS,
    PROGRAMS,
    Do,
    Failed,
    Program,
    Refused,
    Request,
    Sleep,
    SleepUntil,
    TimedOut,
)
from sim.world.current import CURRENT_WORLD


def program_workflows(default_timeout: float) -> list[WorkflowDefinition]:
    """Every program as an engine workflow; Do steps without a timeout get `default_timeout` seconds."""
    return [define_workflow(name, _adapter(program, default_timeout, raw_events=name == "m-script"),
                            params=PARAMS.get(name))
            for name, program in sorted(PROGRAMS.items())]


def _adapter(program: Program, default_timeout: float, *, raw_events: bool) -> Any:
    """The program on the step API. With `raw_events` a wait hands the program the ReceivedEvent itself
    (scripts only put values into their output, where the engine must store it as a JSON object)."""
    async def run(event: WorkflowEvent, step: WorkflowStep) -> Any:
        gen = program(event.payload)
        send: Any = None
        thrown: BaseException | None = None
        original: BaseException | None = None
        while True:
            try:
                request = gen.throw(thrown) if thrown is not None else gen.send(send)
            except StopIteration as stop:
                return stop.value
            except (Failed, TimedOut, Refused) as escaped:
                if escaped is thrown and original is not None:
                    raise original from None  # uncaught: the engine records the original error
                raise
            send, thrown, original = None, None, None
            try:
                send = await _perform(step, request, default_timeout, raw_events)
            except StepFailed as exc:
                thrown, original = Failed(exc.error_name, exc.message, exc.attempts), exc
            except WaitForEventTimeout as exc:
                thrown, original = TimedOut(str(exc)), exc
            except (InvalidStepName, NameTooLong, InvalidArgument) as exc:  # refused at the call
                thrown, original = Refused(exc.code), exc

    return run


def _when(request: SleepUntil) -> Any:
    if request.form == "aware":
        return datetime.fromtimestamp(request.at, tz=timezone.utc)
    if request.form == "naive":
        return datetime.fromtimestamp(request.at, tz=timezone.utc).replace(tzinfo=None)
    return request.at


async def _perform(step: WorkflowStep, request: Request, default_timeout: float, raw_events: bool) -> Any:
    if isinstance(request, Do):
        timeout = request.timeout if request.timeout is not None else default_timeout
        return await step.do(request.name, _callback(request, timeout), timeout=timeout,
                             retries=Retries(limit=request.limit, delay=request.delay, backoff=request.backoff))
    if isinstance(request, Sleep):
        await step.sleep(request.name, request.seconds)
        return None
    if isinstance(request, SleepUntil):
        await step.sleep_until(request.name, _when(request))
        return None
    received = await step.wait_for_event(request.name, type=request.event_type, timeout=request.timeout,
                                         match=request.match)
    if raw_events:
        return received
    return {"type": received.type, "payload": received.payload, "timestamp": received.timestamp.isoformat()}


def _finish(world: Any, ctx: Any, request: Do) -> Any:
    ok, value = request.outcome(ctx.attempt)
    if world is not None:
        world.attempt_ended(ctx, ok, value)
    if not ok:
        raise RuntimeError(value)
    return value


def _callback(request: Do, timeout: float) -> Any:
    if request.busy > 0:
        def blocking(ctx: Any) -> Any:
            world = CURRENT_WORLD.get()
            if world is not None:
                world.attempt_started(ctx, timeout)
                world.busy(ctx.step_key, request.busy)  # sync code holding its runner: only heartbeats help
            return _finish(world, ctx, request)

        return blocking

    if not request.park:
        def plain(ctx: Any) -> Any:
            world = CURRENT_WORLD.get()
            if world is not None:
                world.attempt_started(ctx, timeout)
            return _finish(world, ctx, request)

        return plain

    async def parked(ctx: Any) -> Any:
        world = CURRENT_WORLD.get()
        if world is not None:
            world.attempt_started(ctx, timeout)
            try:
                await world.in_callback(ctx.step_key, timeout)  # a yield point: faults, other runners, clocks
            except Exception as exc:
                world.attempt_ended(ctx, False, str(exc))
                raise
        return _finish(world, ctx, request)

    return parked


__all__ = ["program_workflows"]
