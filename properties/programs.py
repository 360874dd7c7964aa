"""The workflows the reference model can judge: small generator programs yielding step requests.

A program is a workflow written as a generator: it yields `Do`, `Sleep`, `SleepUntil` and `Wait` requests
and receives each step's value (or has `Failed`, `TimedOut` or `Refused` thrown in). The simulator runs the
same programs on the engine through an adapter (`sim.world.programs`), and the model (`properties.model`)
runs them against its own journal, so every disagreement is about the engine's step semantics, never about
workflow logic.

`script_program` interprets a list of request specs from the instance's params: the workload generator
(`sim.world.workload`) draws random scripts that reach every option of the step API.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from datetime import datetime, timezone
from typing import Any

import attrs


class Failed(Exception):
    """Thrown into a program when a Do step failed for good (the engine's StepFailed)."""

    def __init__(self, error_name: str, message: str, attempts: int, key: str = "") -> None:
        super().__init__(message)
        self.error_name = error_name
        self.message = message
        self.attempts = attempts
        self.key = key


class TimedOut(Exception):
    """Thrown into a program when a Wait reached its deadline (the engine's WaitForEventTimeout)."""


class Refused(Exception):
    """Thrown into a program at a step call the engine refuses (DESIGN §2: InvalidStepName for a `#` in the
    name, NameTooLong, InvalidArgument); `code` is the error's stable code. Nothing is written."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@attrs.frozen
class Do:
    """`step.do(name, ...)` whose callback fails its first `fail` attempts; Retries(limit, delay, backoff).

    On the engine side `park` makes the callback async with one yield point inside (where the simulator may
    inject a failure or a hang), and `busy` makes it a sync callback that blocks its runner for that many
    simulated seconds. `timeout` is the attempt timeout.
    """

    name: str
    fail: int = 0
    limit: int = 2
    delay: float = 5.0
    backoff: str = "constant"
    park: bool = False
    busy: float = 0.0
    timeout: float | None = None  # None: the adapter's default
    result: str = "ok"  # "unjson": the callback returns a set; "huge": a string over the payload limit
    # How the engine side writes the callback: "def" (sync, takes the StepContext), "partial" (a
    # functools.partial), "object" (a callable instance), "async" (async, done in one loop turn), "awaitable"
    # (sync, returns a coroutine), "async-awaitable" (async, returns a coroutine), "slots" (a callable that
    # cannot be weakly referenced), "nested" (async, calls a step itself: NestedStepError, never retried).
    shape: str = "def"
    # A user's callback (`properties.workflows`): what it does is known only from the simulator's report of
    # each attempt; `fail` and `result` mean nothing.
    opaque: bool = False
    type = "do"

    def outcome(self, attempt: int) -> tuple[bool, Any]:
        """(True, result) or (False, error message) for attempt `attempt` (1-based)."""
        if attempt <= self.fail:
            return False, f"{self.name} failed attempt {attempt}"
        if self.result == "unjson":
            return True, {self.name, attempt}
        if self.result == "huge":
            return True, "x" * (MAX_PAYLOAD_BYTES + 1)
        return True, [self.name, attempt]

    def delay_after(self, attempt: int) -> float:
        """DESIGN §2: constant d, linear d*n, exponential d*2**(n-1)."""
        if self.backoff == "linear":
            return self.delay * attempt
        if self.backoff == "exponential":
            return self.delay * 2.0 ** (attempt - 1)
        return self.delay


@attrs.frozen
class Sleep:
    """`step.sleep(name, duration)`; `form` is how the duration is written: "seconds", "text" ("10 s"),
    "timedelta", or refused (INVALID_ARGUMENT): "bad" (an unknown unit), "negative", "bool", "list"."""

    name: str
    seconds: float
    form: str = "seconds"
    type = "sleep"


@attrs.frozen
class SleepUntil:
    """`step.sleep_until(name, at)`: wakes at the absolute time `at` (at once if it has passed), given as
    epoch seconds, an aware datetime or (refused: INVALID_ARGUMENT) a naive one (`form`)."""

    name: str
    at: float
    form: str = "epoch"
    type = "sleep_until"


@attrs.frozen
class Wait:
    """`step.wait_for_event(name, type=..., timeout=..., match=...)`; the value sent in is the received
    event as the engine stores it: {"type", "payload", "timestamp" (ISO-8601 UTC)}."""

    name: str
    event_type: str
    timeout: float
    match: Any = attrs.field(default=None, eq=False)  # a dict of payload fields (anything else is refused)
    form: str = "seconds"  # how the timeout is written, as Sleep.form
    type = "wait_for_event"

    def accepts(self, type: str, payload: Any) -> bool:
        """DESIGN §2: the type is equal and every `match` field equals the payload's (a dict payload)."""
        if type != self.event_type:
            return False
        if self.match is None:
            return True
        return isinstance(payload, dict) and all(
            k in payload and payload[k] == v for k, v in self.match.items()
        )


Request = Do | Sleep | SleepUntil | Wait
Program = Callable[[Any], Generator[Request, Any, Any]]

# DESIGN §2's limits, as the engine exports them.
MAX_STEP_NAME, MAX_EVENT_TYPE, MAX_PAYLOAD_BYTES = 256, 128, 1024 * 1024
MIN_EVENT_TIMEOUT, MAX_EVENT_TIMEOUT = 1.0, 365 * 86400.0
BAD_DURATIONS = ("bad", "negative", "bool", "list")
NON_RETRYABLE = frozenset({"NestedStepError"})  # errors a step never retries (DESIGN §2)


def call_error(request: Request) -> tuple[str, bool] | None:
    """The code the engine refuses this step call with, and whether the call used up its key first, or None
    when the call is accepted. No refused call uses its key: it writes nothing, and a replay would find a
    hole at its position (a wait's timeout was once range-checked after keying: NondeterminismError)."""
    # The engine's order: a wait's own arguments and a sleep_until's time first, then the name.
    if isinstance(request, Wait):
        if not isinstance(request.event_type, str) or not request.event_type:
            return "INVALID_ARGUMENT", False
        if len(request.event_type) > MAX_EVENT_TYPE:
            return "NAME_TOO_LONG", False
        if request.match is not None and not isinstance(request.match, dict):
            return "INVALID_ARGUMENT", False
        if request.form in BAD_DURATIONS:
            return "INVALID_ARGUMENT", False
        if not MIN_EVENT_TIMEOUT <= request.timeout <= MAX_EVENT_TIMEOUT:
            return "INVALID_ARGUMENT", False
    if isinstance(request, SleepUntil) and request.form in ("naive", "text"):
        return "INVALID_ARGUMENT", False
    if isinstance(request, Sleep) and request.form in BAD_DURATIONS:
        return "INVALID_ARGUMENT", False
    name = request.name
    if not isinstance(name, str) or not name:
        return "INVALID_ARGUMENT", False
    if len(name) > MAX_STEP_NAME:
        return "NAME_TOO_LONG", False
    if "#" in name:
        return "INVALID_STEP_NAME", False
    return None


def received(type: str, payload: Any, created_at: float) -> dict[str, Any]:
    """A consumed event as a wait returns it (and as its step row stores it)."""
    stamp = datetime.fromtimestamp(created_at, tz=timezone.utc).isoformat()
    return {"type": type, "payload": payload, "timestamp": stamp}


def steps_program(params: Any) -> Generator[Request, Any, Any]:
    """k steps with one repeated name (keys do:s, do:s#2, ...), optionally parking inside the callback;
    with `hash`, a step named "s#2" is tried first (refused, caught)."""
    out: list[Any] = []
    if params.get("hash"):
        try:
            out.append((yield Do("s#2")))
        except Refused:
            out.append("refused")
    for _ in range(params["k"]):
        out.append((yield Do("s", park=params.get("park", False))))
    return out


def wait_program(params: Any) -> Generator[Request, Any, Any]:
    """One or two waits for the same event type; a timeout is caught and recorded."""
    got: list[Any] = []
    for _ in range(params["waits"]):
        try:
            got.append((yield Wait("w", "go", params["timeout"]))["payload"])
        except TimedOut:
            got.append("timeout")
    return got


def sleep_program(params: Any) -> Generator[Request, Any, Any]:
    """A durable sleep, then one step."""
    yield Sleep("nap", params["seconds"])
    return (yield Do("after"))


def retry_program(params: Any) -> Generator[Request, Any, Any]:
    """A step failing `fail` times under Retries(limit=2, delay=5 s); its final failure caught or not."""
    try:
        return (yield Do("charge", fail=params["fail"], backoff=params["backoff"]))
    except Failed as failed:
        if not params["catch"]:
            raise
        return {"failed": failed.attempts}


def request_of(spec: dict[str, Any]) -> Request:
    """One script entry as a request: {"op": "do" | "sleep" | "sleep_until" | "wait", ...fields}."""
    op = spec["op"]
    if op == "do":
        return Do(
            spec["name"],
            fail=spec.get("fail", 0),
            limit=spec.get("limit", 2),
            delay=spec.get("delay", 5.0),
            backoff=spec.get("backoff", "constant"),
            park=spec.get("park", False),
            busy=spec.get("busy", 0.0),
            timeout=spec.get("timeout"),
            result=spec.get("result", "ok"),
            shape=spec.get("shape", "def"),
        )
    if op == "sleep":
        return Sleep(spec["name"], spec["seconds"], form=spec.get("form", "seconds"))
    if op == "sleep_until":
        return SleepUntil(spec["name"], spec["at"], form=spec.get("form", "epoch"))
    if op == "wait":
        return Wait(
            spec["name"],
            spec["type"],
            spec["timeout"],
            match=spec.get("match"),
            form=spec.get("form", "seconds"),
        )
    raise ValueError(f"unknown script op {op!r}")


def script_program(params: Any) -> Generator[Request, Any, Any]:
    """Run `params["script"]` in order; each entry's value (or its caught failure) goes into the output.

    An entry with "catch" catches its final failure or timeout; a refused name (`#`) is always caught.
    """
    out: list[Any] = []
    for spec in params["script"]:
        try:
            value = yield request_of(spec)
        except Failed as failed:
            if not spec.get("catch"):
                raise
            value = {"failed": failed.error_name, "attempts": failed.attempts}
        except TimedOut:
            if not spec.get("catch"):
                raise
            value = "timeout"
        except Refused as refused:
            value = f"refused:{refused.code}"
        out.append(value)
    end = params.get("end")  # an output the engine cannot store: the run errors instead of completing
    return {"set"} if end == "unjson" else "x" * (MAX_PAYLOAD_BYTES + 1) if end == "huge" else out


def script_params(raw: Any) -> Any:
    """m-script's params schema (a validating callable): {"script": [entry, ...]} and nothing else."""
    if (
        not isinstance(raw, dict)
        or not set(raw) <= {"script", "end"}
        or not isinstance(raw.get("script"), list)
    ):
        raise ValueError("params must be {'script': [...]} (and optionally 'end')")
    return raw


def params_valid(workflow: str, params: Any) -> bool:
    """Whether the engine accepts `params` for `workflow` (only m-script has a schema)."""
    if workflow != "m-script":
        return True
    try:
        script_params(params)
    except ValueError:
        return False
    return True


PARAMS: dict[str, Callable[[Any], Any]] = {"m-script": script_params}

PROGRAMS: dict[str, Program] = {
    "m-steps": steps_program,
    "m-wait": wait_program,
    "m-sleep": sleep_program,
    "m-retry": retry_program,
    "m-script": script_program,
}
