"""Any workflow the model can judge: the workflow's own function, driven against a step API of the model's.

The model's programs (`properties.programs`) are generators written for it. A user's workflow is an `async def`
over the engine's step API. `WorkflowSpec.of(definition)` turns the second into the first: the workflow
function runs against `ModelStep`, whose methods do nothing but hand their call, as a request, to whoever
drives the coroutine (`coroutine.send`, no event loop). The model answers each request from its own journal,
exactly as it answers a program's, so scenario files, the fuzzing world's hand-written workflows and users'
workflows are judged by the same rules as the scripts.

What the model cannot follow it says so instead of guessing (`Unmodelable`): a workflow that awaits anything but
a step (`asyncio.gather`, `asyncio.sleep`) or reads a scenario's `run_state()`. Such an instance is left to the
generic properties. What a step callback did is never computed here: the simulator reports each attempt
(`Attempt`) from a wrapper around the callback; without a report the model accepts the engine's record of it.
"""

from __future__ import annotations

import asyncio
import contextvars
import copy
import json
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from typing import Any

import attrs

from engine import (
    InvalidArgument,
    InvalidStepName,
    NameTooLong,
    ReceivedEvent,
    Retries,
    StepFailed,
    WaitForEventTimeout,
    WorkflowDefinition,
    WorkflowEvent,
    parse_duration,
)
from engine._workflow import SchemaError
from properties.programs import (
    MAX_PAYLOAD_BYTES,
    PROGRAMS,
    Do,
    Failed,
    Refused,
    Request,
    Sleep,
    SleepUntil,
    TimedOut,
    Wait,
    params_valid,
)

# DESIGN §2's defaults for a step call that leaves them out, written here and not imported from the engine:
# an oracle reading the engine's own defaults could not catch a wrong one.
DEFAULT_RETRIES = (5, 10.0, "exponential")
DEFAULT_STEP_TIMEOUT = 600.0
DEFAULT_EVENT_TIMEOUT = 86400.0


class Unmodelable(BaseException):
    """The workflow did something the model cannot replay (awaited a non-step, used the event loop, read
    ambient state). A BaseException, so a workflow's `except Exception` cannot swallow it."""


class _NoLoop:
    """The running loop while the model runs a workflow body: `asyncio.gather`, `asyncio.sleep` or a task
    would otherwise be scheduled on the simulator's own loop (or fail differently with no loop at all)."""

    def __getattr__(self, name: str) -> Any:
        raise Unmodelable(f"the workflow used the event loop ({name}) outside a step")


_NO_LOOP = _NoLoop()


# True while the model runs a workflow function: state the harness offers to workflow code (a scenario's
# `run_state()`) raises Unmodelable then, since a workflow body that reads it may decide differently on
# every replay, and the model would blame the engine for the workflow's nondeterminism.
REPLAYING: contextvars.ContextVar[bool] = contextvars.ContextVar("stepsim_model_replaying", default=False)


class Ended(Exception):
    """The run ended with an uncaught error `name`; `message` None when only the engine knows its text (a
    refusal's wording)."""

    def __init__(self, name: str, message: str | None) -> None:
        super().__init__(name)
        self.name = name
        self.message = message


def _json_default(value: Any) -> Any:
    # DESIGN §2: records the engine hands to workflow code are stored as JSON objects.
    if isinstance(value, ReceivedEvent):
        return {"type": value.type, "payload": value.payload, "timestamp": value.timestamp.isoformat()}
    raise TypeError(f"{type(value).__name__} is not JSON")


def stored_form(value: Any) -> tuple[str | None, Any]:
    """(None, the value as the engine stores and returns it) or (the code it is refused with, None)."""
    try:
        text = json.dumps(value, separators=(",", ":"), allow_nan=False, default=_json_default)
    except (TypeError, ValueError):
        return "NOT_JSON_SERIALIZABLE", None
    if len(text) > MAX_PAYLOAD_BYTES:
        return "PAYLOAD_TOO_LARGE", None
    return None, json.loads(text)


def seconds_of(value: Any) -> float | None:
    """A step call's duration in seconds, or None when the engine refuses it. The grammar ("2 s", "15 min",
    numbers, timedeltas) is the engine's own `parse_duration`: the model judges what a duration does, and the
    scripts (`properties.programs`) check the grammar's refusals through their own forms."""
    try:
        return parse_duration(value)
    except InvalidArgument:
        return None


# --- the step API, as requests ----------------------------------------------------------------------------


class _Call:
    """What a ModelStep method returns: awaiting it yields the request to the driver and returns its answer."""

    def __init__(self, request: Request) -> None:
        self.request = request

    def __await__(self) -> Generator[Request, Any, Any]:
        return (yield self.request)


class ModelStep:
    """The `step` a workflow function gets when the model replays it: each call is a request (`properties.
    programs`), keyed, refused or answered by the model; a refused one is thrown back into the workflow as the
    engine's exception."""

    def do(self, name: Any, fn: Callable[..., Any], *, retries: Retries | None = None,
           timeout: Any = None) -> _Call:
        limit, delay, backoff = DEFAULT_RETRIES if retries is None else (
            retries.limit, retries.delay, retries.backoff)
        seconds = DEFAULT_STEP_TIMEOUT if timeout is None else seconds_of(timeout)
        if seconds is None:
            raise Unmodelable(f"step {name!r}: a timeout {timeout!r} is refused after the key is taken")
        return _Call(Do(name, limit=limit, delay=delay, backoff=backoff, timeout=seconds, opaque=True))

    def sleep(self, name: Any, duration: Any) -> _Call:
        seconds = seconds_of(duration)
        return _Call(Sleep(name, seconds if seconds is not None else 0.0, form="seconds" if seconds is not None
                           else "bad"))

    def sleep_until(self, name: Any, when: Any) -> _Call:
        if isinstance(when, datetime):
            if when.tzinfo is None:
                return _Call(SleepUntil(name, 0.0, form="naive"))
            return _Call(SleepUntil(name, when.timestamp(), form="aware"))
        if isinstance(when, (int, float)) and not isinstance(when, bool):
            return _Call(SleepUntil(name, float(when)))
        return _Call(SleepUntil(name, 0.0, form="text"))

    def wait_for_event(self, name: Any, *, type: Any, timeout: Any = None, match: Any = None) -> _Call:
        seconds = DEFAULT_EVENT_TIMEOUT if timeout is None else seconds_of(timeout)
        return _Call(Wait(name, type, seconds if seconds is not None else 0.0, match=match,
                          form="seconds" if seconds is not None else "bad"))


_REFUSALS: dict[str, type[Exception]] = {
    "INVALID_ARGUMENT": InvalidArgument, "NAME_TOO_LONG": NameTooLong, "INVALID_STEP_NAME": InvalidStepName}


@contextmanager
def _replaying() -> Iterator[None]:
    """While workflow code runs for the model: `REPLAYING` set, and no event loop it could reach."""
    token = REPLAYING.set(True)
    loop = asyncio.events._get_running_loop()
    asyncio.events._set_running_loop(_NO_LOOP)  # type: ignore[arg-type]
    try:
        yield
    finally:
        asyncio.events._set_running_loop(loop)
        REPLAYING.reset(token)


def _drive(definition: WorkflowDefinition, event: WorkflowEvent) -> Generator[Request, Any, Any]:
    """The workflow function as a program: requests out, step values (or the engine's exceptions) in."""
    coro = definition.fn(event, ModelStep())  # type: ignore[arg-type]
    send: Any = None
    throw: BaseException | None = None
    refusal: BaseException | None = None  # the exception a refused call raised, to recognise it uncaught
    try:
        while True:
            try:
                with _replaying():
                    request = coro.throw(throw) if throw is not None else coro.send(send)
            except StopIteration as stop:
                return stop.value
            except StepFailed as exc:
                raise Ended(exc.error_name, exc.message) from None
            except Exception as exc:  # noqa: BLE001 - the workflow's own uncaught error ends its run
                raise Ended(type(exc).__name__, None if exc is refusal else str(exc)) from None
            if not isinstance(request, (Do, Sleep, SleepUntil, Wait)):
                raise Unmodelable(f"the workflow awaited {request!r}, which is not a step")
            send, throw = None, None
            try:
                answer = yield request
            except Failed as failed:
                throw = StepFailed(failed.key, failed.error_name, failed.message, failed.attempts)
            except TimedOut as timed_out:
                throw = WaitForEventTimeout(str(timed_out))
            except Refused as refused:
                throw = refusal = _REFUSALS[refused.code](refused.code)
            else:
                answer = copy.deepcopy(answer)  # the engine decodes a fresh value: the model's journal stays its own
                if isinstance(request, Wait):
                    answer = ReceivedEvent(type=answer["type"], payload=answer["payload"],
                                           timestamp=datetime.fromisoformat(answer["timestamp"]))
                send = answer
    finally:
        # The workflow's `finally` blocks run here: under the same guards, and nothing they raise matters.
        with _replaying(), suppress(BaseException):
            coro.close()


# --- what the model knows of a workflow ---------------------------------------------------------------------


@attrs.frozen
class WorkflowSpec:
    """One workflow as the model sees it: its program and its params and output rules."""

    name: str
    program: Callable[[Any, str, float, int], Generator[Request, Any, Any]]  # (params, id, created, run)
    valid: Callable[[Any], bool]  # whether create accepts these params
    stored: Callable[[Any], Any]  # the params as the engine stores them (before the size check)
    # The output schema: (its error, None) or (None, the value to store).
    output: Callable[[Any], tuple[tuple[str, str] | None, Any]] = lambda value: (None, value)

    @classmethod
    def of(cls, definition: WorkflowDefinition) -> WorkflowSpec:
        """A user's workflow definition, run on `ModelStep`."""

        def valid(params: Any) -> bool:
            try:
                definition.validate_params(params)
            except SchemaError:
                return False
            return True

        def stored(params: Any) -> Any:
            return params if definition.params is None else definition.params.to_json_value(params)

        def program(params: Any, instance_id: str, created: float, run: int) -> Generator[Request, Any, Any]:
            # A generator itself, so a refusal here ends the run where the model expects endings (`Ended`).
            _, as_stored = stored_form(stored(params))
            try:
                payload = definition.validate_params(as_stored)
            except SchemaError as exc:  # params stored before a schema change
                raise Ended("InvalidParams", str(exc)) from None
            event = WorkflowEvent(payload=payload, instance_id=instance_id, workflow=definition.name,
                                  timestamp=datetime.fromtimestamp(created, tz=UTC), run_number=run)
            return (yield from _drive(definition, event))

        def output(value: Any) -> tuple[tuple[str, str] | None, Any]:
            try:
                return None, definition.validate_output(value)
            except SchemaError as exc:
                return ("OutputValidationError", str(exc)), None

        return cls(definition.name, program, valid, stored, output)

    @classmethod
    def program_spec(cls, name: str) -> WorkflowSpec:
        """One of the model's own programs."""
        gen = PROGRAMS[name]
        return cls(name, lambda params, *_: gen(params), lambda params: params_valid(name, params),
                   lambda params: params)


def model_workflows(definitions: list[WorkflowDefinition] | tuple[WorkflowDefinition, ...] = ()
                    ) -> dict[str, WorkflowSpec]:
    """The model's programs plus `definitions` (a definition shadows a program of the same name)."""
    specs = {name: WorkflowSpec.program_spec(name) for name in PROGRAMS}
    specs.update({d.name: WorkflowSpec.of(d) for d in definitions})
    return specs


__all__ = ["REPLAYING", "Ended", "ModelStep", "Unmodelable", "WorkflowSpec", "model_workflows", "seconds_of", "stored_form"]
