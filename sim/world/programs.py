"""The model's programs (`properties.programs`) as engine workflows, so the model can judge what they do.

The adapter runs a program on the real step API and turns the engine's exceptions into the program's
(StepFailed -> Failed, WaitForEventTimeout -> TimedOut, InvalidStepName -> Refused). Each Do callback
reports to the current world (`CURRENT_WORLD`) what it saw and did: `attempt_started(ctx, timeout)` with its
StepContext, then `attempt_ended(ctx, ok, value)`; in between it may park (`in_callback`: a yield point
where the world injects failures and hangs) or block its runner in sync code (`busy`). A world without an
oracle still runs them.
"""

from __future__ import annotations

import functools
from datetime import datetime, timedelta, timezone
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
from properties.oracle import Oracle
from sim.core.clock import VirtualClock
from sim.core.scheduler import Scheduler
from sim.world.current import CURRENT_WORLD


class CallbackReports:
    """What the program adapter reports to a world (the fuzzing World, the machine's Harness): each Do
    callback's StepContext as it starts and what it did as it ends, passed to the world's oracle under the
    identity of the runner incarnation that ran it. Needs `scheduler`, `stores`, `clock` and `oracle`."""

    scheduler: Scheduler
    stores: dict[str, Any]  # runner name -> its store (which knows the incarnation's owner id)
    clock: VirtualClock
    oracle: Oracle

    def _owner(self, ctx: Any) -> str:
        # The runner the engine says runs the attempt (one of a process's loops, with concurrency > 1); the
        # process's own identity for a context without one.
        if getattr(ctx, "runner", ""):
            return str(ctx.runner)
        process = self.scheduler.current_process() or "?"
        store = self.stores.get(process)
        return str(store.owner) if store is not None else process

    def attempt_started(self, ctx: Any, timeout: float) -> None:
        """Called by the programs' callbacks as they begin (what their StepContext says)."""
        self.oracle.attempt_started(self._owner(ctx), ctx, timeout, self.clock.now())

    def attempt_ended(self, ctx: Any, ok: bool, value: Any, error: str = "RuntimeError", final: bool = False
                      ) -> None:
        """Called by the callbacks as they return or raise (`final`: an error that opts out of retries)."""
        self.oracle.attempt_ended(self._owner(ctx), ctx, ok, value, self.clock.now(), error, final)


def program_workflows(default_timeout: float) -> list[WorkflowDefinition]:
    """Every program as an engine workflow; Do steps without a timeout get `default_timeout` seconds."""
    return [
        define_workflow(
            name, _adapter(program, default_timeout, raw_events=name == "m-script"), params=PARAMS.get(name)
        )
        for name, program in sorted(PROGRAMS.items())
    ]


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


def _duration(seconds: float, form: str) -> Any:
    """A duration written the way `form` says (DESIGN §2's grammar, or refused)."""
    if form == "text":
        return f"{seconds:g} s"
    if form == "timedelta":
        return timedelta(seconds=seconds)
    if form == "bad":
        return f"{seconds:g} parsecs"
    if form == "negative":
        return -1.0 - seconds
    if form == "bool":
        return True
    if form == "list":
        return [seconds]
    return seconds


def _when(request: SleepUntil) -> Any:
    if request.form == "aware":
        return datetime.fromtimestamp(request.at, tz=timezone.utc)
    if request.form == "naive":
        return datetime.fromtimestamp(request.at, tz=timezone.utc).replace(tzinfo=None)
    if request.form == "text":
        return str(request.at)  # neither a datetime nor epoch seconds
    return request.at


async def _perform(step: WorkflowStep, request: Request, default_timeout: float, raw_events: bool) -> Any:
    if isinstance(request, Do):
        timeout = request.timeout if request.timeout is not None else default_timeout
        return await step.do(
            request.name,
            _callback(request, timeout, step),
            timeout=timeout,
            retries=Retries(limit=request.limit, delay=request.delay, backoff=request.backoff),
        )
    if isinstance(request, Sleep):
        await step.sleep(request.name, _duration(request.seconds, request.form))
        return None
    if isinstance(request, SleepUntil):
        await step.sleep_until(request.name, _when(request))
        return None
    received = await step.wait_for_event(
        request.name,
        type=request.event_type,
        timeout=_duration(request.timeout, request.form),
        match=request.match,
    )
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


def _started(ctx: Any, timeout: float) -> Any:
    world = CURRENT_WORLD.get()
    if world is not None:
        world.attempt_started(ctx, timeout)
    return world


def _plain(request: Do, timeout: float, ctx: Any) -> Any:
    return _finish(_started(ctx, timeout), ctx, request)


class _Slotted:
    """A callable without a __weakref__ slot: the engine cannot cache what it inspected about it."""

    __slots__ = ("request", "timeout")

    def __init__(self, request: Do, timeout: float) -> None:
        self.request, self.timeout = request, timeout

    def __call__(self, ctx: Any) -> Any:
        return _plain(self.request, self.timeout, ctx)


class _Callable:
    """A callable object as a step callback (the engine inspects its __call__ for the context argument)."""

    def __init__(self, request: Do, timeout: float) -> None:
        self.request, self.timeout = request, timeout

    def __call__(self, ctx: Any) -> Any:
        return _plain(self.request, self.timeout, ctx)


def _callback(request: Do, timeout: float, step: WorkflowStep) -> Any:
    """The engine-side callback of a Do, written in the request's shape."""
    if request.busy > 0:

        def blocking(ctx: Any) -> Any:
            world = _started(ctx, timeout)
            if world is not None:
                world.busy(ctx.step_key, request.busy)  # sync code holding its runner: only heartbeats help
            return _finish(world, ctx, request)

        return blocking
    if request.park:

        async def parked(ctx: Any) -> Any:
            world = _started(ctx, timeout)
            if world is not None:
                try:
                    await world.in_callback(ctx.step_key, timeout)  # a yield point: faults, other runners
                except Exception as exc:
                    world.attempt_ended(ctx, False, str(exc))
                    raise
            return _finish(world, ctx, request)

        return parked
    if request.shape == "partial":
        return functools.partial(_plain, request, timeout)
    if request.shape == "object":
        return _Callable(request, timeout)
    if request.shape == "async":

        async def at_once(ctx: Any) -> Any:
            return _plain(request, timeout, ctx)

        return at_once
    if request.shape == "slots":
        return _Slotted(request, timeout)
    if request.shape == "async-awaitable":

        async def then(ctx: Any) -> Any:
            async def value() -> Any:
                return _plain(request, timeout, ctx)

            return value()  # an async callback whose result is itself awaitable: the engine awaits both

        return then
    if request.shape == "awaitable":

        def later(ctx: Any) -> Any:
            async def value() -> Any:
                return _plain(request, timeout, ctx)

            return value()  # a sync callback returning a coroutine: the engine awaits it

        return later
    if request.shape == "nested":

        async def nesting(ctx: Any) -> Any:
            world = _started(ctx, timeout)
            try:
                return await step.do("inner", lambda: 1)  # refused: steps are the workflow's, not a step's
            except Exception as exc:
                if world is not None:
                    world.attempt_ended(ctx, False, str(exc), type(exc).__name__)
                raise

        return nesting

    def plain(ctx: Any) -> Any:
        return _plain(request, timeout, ctx)

    return plain


__all__ = ["CallbackReports", "program_workflows"]
