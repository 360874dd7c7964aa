"""`WorkflowStep`: the step methods workflow code awaits, with step keys, replay and nondeterminism checks.

Data for one step flows one way: workflow code -> step method -> one store transaction -> back. A step
method either returns (the step is complete, live or replayed), raises a workflow-visible error
(StepFailed, WaitForEventTimeout), or unwinds the workflow with `Suspended`/`Abandoned` so the runner can
hand the task back or walk away.
"""

from __future__ import annotations

import contextvars
import inspect
import types
import weakref
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import attrs

from ._codec import decode, encode
from ._durations import parse_duration
from ._errors import (
    EngineError,
    InvalidArgument,
    InvalidStepName,
    NameTooLong,
    NestedStepError,
    NondeterminismError,
    StepFailed,
    TooManySteps,
    WaitForEventTimeout,
    is_non_retryable,
)
from ._records import (
    DEFAULT_EVENT_TIMEOUT,
    DEFAULT_RETRIES,
    DEFAULT_STEP_TIMEOUT,
    MAX_EVENT_TYPE,
    MAX_STEP_NAME,
    MAX_STEPS_PER_RUN,
    ReceivedEvent,
    Retries,
    StepContext,
    to_datetime,
)
from ._store import StepWrite, Suspension

if TYPE_CHECKING:
    from ._execution import Execution

MIN_EVENT_TIMEOUT = 1.0
MAX_EVENT_TIMEOUT = 365 * 86400.0


class Suspended(BaseException):
    """Unwinds the workflow at a suspend point; BaseException so `except Exception` in user code can't eat it.

    `suspension` is None when the hand-back was already committed together with the step row.
    """

    def __init__(self, suspension: Suspension | None, *, paused: bool = False, released: bool = False) -> None:
        super().__init__("workflow suspended")
        self.suspension = suspension
        self.paused = paused
        self.released = released  # the runner is stopping: hand the task back as due now


class Abandoned(BaseException):
    """This runner lost the task (lease lost, terminated, restarted): stop and write nothing more."""


class StepTimeoutError(Exception):
    """An attempt outlived its timeout; retryable like any other failure."""


# Weak keys: workflows pass fresh closures on every run, and a strong cache would keep each one (and all it
# captures) alive for the life of the worker.
_CONTEXT_ARITY: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()


def _takes_context(fn: Callable[..., Any]) -> bool:
    """Whether the step callback takes the StepContext (exactly one required positional argument)."""
    if type(fn) is types.FunctionType:
        # Fast path for plain functions and lambdas (a fresh lambda per call defeats any cache): ~0.3 us
        # instead of inspect.signature's ~6 us on the hot path.
        code = fn.__code__
        return bool(code.co_argcount - len(fn.__defaults__ or ()) == 1)
    try:
        cached = _CONTEXT_ARITY.get(fn)
    except TypeError:  # not weak-referenceable or unhashable: simply not cached
        cached = None
    if cached is None:
        try:
            params = [
                p for p in inspect.signature(fn).parameters.values()
                if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
            ]
            cached = len(params) == 1
        except (TypeError, ValueError):
            cached = False
        try:
            _CONTEXT_ARITY[fn] = cached
        except TypeError:  # not weak-referenceable or unhashable: simply not cached
            pass
    return cached


def _check_name(name: object) -> str:
    if not isinstance(name, str) or not name:
        raise InvalidArgument(f"step name must be a non-empty string, got {name!r}")
    if len(name) > MAX_STEP_NAME:
        raise NameTooLong(f"step name {name[:60]!r}... is {len(name)} chars; the limit is {MAX_STEP_NAME}")
    if "#" in name:
        # `#` numbers repeated keys: a name "x#2" would collide with the second "x" and loop (issue 10).
        raise InvalidStepName(f"step name {name!r} contains '#', which is reserved for repeated step keys")
    return name


# The (workflow, instance) whose step callback is running in this context. A context variable, not a flag on
# the execution: steps awaited side by side (asyncio.gather) run in separate tasks and must not see each
# other's callbacks, while the callback's own task and worker thread inherit it.
_IN_CALLBACK: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar(
    "stepsim_in_callback", default=None)


def _epoch(when: object) -> float:
    if isinstance(when, datetime):
        if when.tzinfo is None:
            raise InvalidArgument(f"sleep_until needs an aware datetime, got naive {when!r}")
        return when.timestamp()
    if isinstance(when, (int, float)) and not isinstance(when, bool):
        return float(when)
    raise InvalidArgument(f"sleep_until needs an aware datetime or epoch seconds, got {when!r}")


class WorkflowStep:
    """The `step` object a workflow function receives; every method is durable and replay-safe."""

    def __init__(self, execution: Execution) -> None:
        self._x = execution
        self._position = 0
        self._seen: dict[str, int] = {}

    def _next(self, type: str, name: str) -> tuple[str, int, dict[str, Any] | None]:
        """Key this call, check it against history at the same position, return (key, position, row)."""
        x = self._x
        x.ensure_live()
        if _IN_CALLBACK.get() == (x.claim.workflow, x.claim.instance_id):
            raise NestedStepError(
                f"step {type}:{name} was called from inside a running step callback; steps may only be "
                "awaited by the workflow function itself")
        x.release_if_draining()
        base = f"{type}:{_check_name(name)}"
        count = self._seen.get(base, 0) + 1
        self._seen[base] = count
        key = base if count == 1 else f"{base}#{count}"
        position = self._position
        self._position += 1
        if position >= MAX_STEPS_PER_RUN:
            raise TooManySteps(f"a run may have at most {MAX_STEPS_PER_RUN} steps; {key!r} is one too many")
        history = x.history
        row = None
        if position < len(history):
            row = history[position]
            if row["step_key"] != key:
                raise NondeterminismError(expected=row["step_key"], found=key, position=position)
        return key, position, row

    # -- do ------------------------------------------------------------------------------------------

    async def do(
        self, name: str, fn: Callable[..., Any], *, retries: Retries | None = None, timeout: Any = None
    ) -> Any:
        """Run `fn` once durably: its JSON result is stored and returned on every replay without calling it.

        Failures retry per `retries` (Cloudflare's defaults when omitted); a step that fails for good raises
        StepFailed into the workflow.
        """
        key, position, row = self._next("do", name)
        if row is not None:
            if row["status"] == "completed":
                return decode(row["result"])
            if row["status"] == "errored":
                raise StepFailed(key, row["error_name"], row["error_message"] or "", row["attempts"])
        policy = retries if retries is not None else DEFAULT_RETRIES
        limit = parse_duration(timeout, what="step timeout") if timeout is not None else DEFAULT_STEP_TIMEOUT
        x = self._x
        attempts = row["attempts"] if row is not None else 0
        if row is not None and row["next_retry_at"] is not None and row["next_retry_at"] > x.now():
            raise Suspended(Suspension("retry", row["next_retry_at"]))
        while True:
            attempt = attempts + 1
            context = StepContext(workflow=x.claim.workflow, instance_id=x.claim.instance_id,
                                  run_number=x.claim.run_number, step_key=key, name=name, attempt=attempt,
                                  runner=x.claim.owner)
            error: BaseException | None = None
            bad_result = False
            result_text = ""
            await x.checkpoint("step:call")
            await x.check_lease(key)
            x.trace("step_call", key=key, attempt=attempt)
            token = _IN_CALLBACK.set((x.claim.workflow, x.claim.instance_id))
            try:
                value = await x.call(fn, context if _takes_context(fn) else None, limit, key, attempt)
            except (Suspended, Abandoned):
                raise
            except Exception as exc:
                error = exc
            else:
                try:
                    result_text = encode(value, what=f"result of step {key!r}")
                except EngineError as exc:  # not JSON / too large: retrying would return the same value
                    error = exc
                    bad_result = True
            finally:
                _IN_CALLBACK.reset(token)
            await x.checkpoint("step:commit")
            write = StepWrite(key=key, name=name, type="do", position=position, status="completed",
                              attempts=attempt, max_attempts=policy.max_attempts, result=result_text)
            if error is None:
                await x.commit(write, None)
                return decode(result_text)
            final = bad_result or is_non_retryable(error) or attempt >= policy.max_attempts
            err_name, err_msg = type(error).__name__, str(error)
            if final:
                await x.commit(attrs.evolve(write, status="errored", result=None, error_name=err_name,
                                            error_message=err_msg), None)
                raise StepFailed(key, err_name, err_msg, attempt)
            retry_at = x.now() + policy.delay_after(attempt)
            waiting = attrs.evolve(write, status="waiting", result=None, next_retry_at=retry_at,
                                   error_name=err_name, error_message=err_msg)
            if retry_at > x.now():
                await x.commit(waiting, Suspension("retry", retry_at))
                raise Suspended(None)
            await x.commit(waiting, None)
            x.release_if_draining()  # a zero-delay retry is a step boundary too
            attempts = attempt

    # -- sleep ---------------------------------------------------------------------------------------

    async def sleep(self, name: str, duration: Any) -> None:
        """Durable sleep: the wake time is persisted, so it survives crashes and runs on without pause."""
        seconds = parse_duration(duration, what="sleep duration")
        key, position, row = self._next("sleep", name)
        await self._sleep(key, name, "sleep", position, row, lambda now: now + seconds)

    async def sleep_until(self, name: str, when: datetime | float) -> None:
        """Durable sleep until an aware datetime or epoch seconds."""
        target = _epoch(when)
        key, position, row = self._next("sleep_until", name)
        await self._sleep(key, name, "sleep_until", position, row, lambda now: target)

    async def _sleep(
        self, key: str, name: str, type: str, position: int, row: dict[str, Any] | None,
        wake: Callable[[float], float],
    ) -> None:
        if row is not None and row["status"] == "completed":
            return
        x = self._x
        now = x.now()
        wake_at = row["wake_at"] if row is not None else wake(now)
        write = StepWrite(key=key, name=name, type=type, position=position, status="completed", wake_at=wake_at)
        await x.checkpoint("step:commit")
        if wake_at <= now:
            await x.commit(write, None)
            return
        if row is None:
            await x.commit(attrs.evolve(write, status="waiting"), Suspension("wake", wake_at))
            raise Suspended(None)
        raise Suspended(Suspension("wake", wake_at))

    # -- wait_for_event ------------------------------------------------------------------------------

    async def wait_for_event(
        self, name: str, *, type: str, timeout: Any = None, match: dict[str, Any] | None = None
    ) -> ReceivedEvent:
        """Wait for a buffered or future event of `type` (optionally matching payload fields).

        Raises WaitForEventTimeout (catchable) if none was sent before the deadline.
        """
        if not isinstance(type, str) or not type:
            raise InvalidArgument(f"event type must be a non-empty string, got {type!r}")
        if len(type) > MAX_EVENT_TYPE:
            raise NameTooLong(f"event type is {len(type)} chars; the limit is {MAX_EVENT_TYPE}")
        if match is not None and not isinstance(match, dict):
            raise InvalidArgument(f"match must be a dict of payload fields, got {match!r}")
        seconds = parse_duration(timeout, what="wait timeout") if timeout is not None else DEFAULT_EVENT_TIMEOUT
        # Checked before the call takes its key and position: a refused call writes nothing, so a replay
        # (which indexes history by position) must not find a hole where it stood.
        if not MIN_EVENT_TIMEOUT <= seconds <= MAX_EVENT_TIMEOUT:
            raise InvalidArgument(f"wait_for_event timeout {timeout!r} is outside 1 s .. 365 days")
        key, position, row = self._next("wait_for_event", name)
        if row is not None and row["status"] == "completed":
            return _received(decode(row["result"]))
        if row is not None and row["status"] == "errored":
            raise WaitForEventTimeout(row["error_message"] or "timed out")
        x = self._x
        now = x.now()
        deadline = row["wake_at"] if row is not None else now + seconds
        write = StepWrite(key=key, name=name, type="wait_for_event", position=position, status="waiting",
                          wake_at=deadline, wait_event_type=type,
                          wait_match=encode(match, what="match") if match is not None else None)
        await x.checkpoint("step:commit")
        outcome = await x.wait(write, match, deadline)
        if outcome.event is not None:
            event = outcome.event
            received = ReceivedEvent(type=event["type"], payload=decode(event["payload"]),
                                     timestamp=_dt(event["created_at"]))
            if outcome.paused:
                raise Suspended(None, paused=True)
            return received
        if outcome.timed_out:
            if outcome.paused:
                raise Suspended(None, paused=True)
            raise WaitForEventTimeout(f"no {type!r} event before the deadline")
        raise Suspended(None, paused=outcome.paused)


def _dt(seconds: float) -> datetime:
    value = to_datetime(seconds)
    assert value is not None
    return value


def _received(stored: dict[str, Any]) -> ReceivedEvent:
    stamp = stored["timestamp"]
    # Stored as ISO-8601 UTC; rows written before that stored epoch seconds.
    when = datetime.fromisoformat(stamp) if isinstance(stamp, str) else _dt(stamp)
    return ReceivedEvent(type=stored["type"], payload=stored["payload"], timestamp=when)

