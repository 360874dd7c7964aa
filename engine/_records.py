"""Frozen records returned to callers and handed to workflow code."""

from __future__ import annotations

import enum
from datetime import datetime, timezone
from typing import Any, Generic, TypeVar

import attrs

from ._durations import parse_duration

# Limits of DESIGN §2, each enforced with its own coded error.
MAX_WORKFLOW_NAME = 64
MAX_STEP_NAME = 256
MAX_EVENT_TYPE = 128
MAX_PAYLOAD_BYTES = 1024 * 1024
MAX_STEPS_PER_RUN = 10_000
MAX_BATCH = 100


class Status(str, enum.Enum):
    """Instance status; the last three are terminal."""

    QUEUED = "queued"
    RUNNING = "running"
    WAITING = "waiting"
    PAUSED = "paused"
    COMPLETE = "complete"
    ERRORED = "errored"
    TERMINATED = "terminated"

    def __str__(self) -> str:
        return self.value

    @property
    def is_terminal(self) -> bool:
        """True for complete, errored and terminated."""
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset({Status.COMPLETE, Status.ERRORED, Status.TERMINATED})


def to_datetime(seconds: float | None) -> datetime | None:
    """Epoch seconds as an aware UTC datetime (records never carry naive times)."""
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, tz=timezone.utc)


@attrs.frozen
class ErrorInfo:
    name: str
    message: str


@attrs.frozen(kw_only=True)
class InstanceInfo:
    workflow: str
    instance_id: str
    status: Status
    output: Any
    error: ErrorInfo | None
    run_number: int
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    current_step: str | None
    params: Any = None
    pause_requested: bool = False


@attrs.frozen(kw_only=True)
class StepRecord:
    key: str
    name: str
    type: str
    status: str
    attempts: int
    max_attempts: int | None
    result: Any
    error: ErrorInfo | None
    wake_at: datetime | None
    next_retry_at: datetime | None


@attrs.frozen(kw_only=True)
class EventRecord:
    id: str
    type: str
    payload: Any
    created_at: datetime
    consumed_by: str | None


@attrs.frozen(kw_only=True)
class History:
    steps: tuple[StepRecord, ...]
    events: tuple[EventRecord, ...]
    run_number: int = 1


T = TypeVar("T")


@attrs.frozen
class Page(Generic[T]):
    items: tuple[T, ...]
    next_cursor: str | None


@attrs.frozen
class ReceivedEvent:
    """What `wait_for_event` returns: the event's type, payload and when it was sent."""

    type: str
    payload: Any
    timestamp: datetime


@attrs.frozen(kw_only=True)
class StepContext:
    """Handed to a step callback that takes one argument."""

    workflow: str
    instance_id: str
    run_number: int
    step_key: str
    name: str
    attempt: int
    # The runner running this attempt (an engine's runner id, or `id:i` for its loops with concurrency > 1):
    # for logs and for telling apart two runners that ran the same attempt after a lease was lost.
    runner: str = ""

    @property
    def idempotency_key(self) -> str:
        """`workflow:instance:run:step_key`: stable across attempts, replays and runners."""
        return f"{self.workflow}:{self.instance_id}:{self.run_number}:{self.step_key}"


_BACKOFFS = ("constant", "linear", "exponential")


def _check_backoff(_: object, __: object, value: str) -> None:
    if value not in _BACKOFFS:
        raise ValueError(f"invalid backoff {value!r}: expected one of {', '.join(_BACKOFFS)}")


def _check_limit(_: object, __: object, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"invalid retry limit {value!r}: expected an int >= 0")


def _retry_delay(value: object) -> float:
    return parse_duration(value, what="retry delay")


@attrs.frozen
class Retries:
    """Retry policy: `limit` retries after the first attempt, `delay` before the first retry, `backoff`."""

    limit: int = attrs.field(validator=_check_limit)
    delay: float = attrs.field(converter=_retry_delay)
    backoff: str = attrs.field(default="exponential", validator=_check_backoff)

    @property
    def max_attempts(self) -> int:
        """limit + 1."""
        return self.limit + 1

    def delay_after(self, attempt: int) -> float:
        """Seconds to wait after failed attempt `attempt` (1-based), per DESIGN §2's formulas."""
        if self.backoff == "constant":
            return self.delay
        if self.backoff == "linear":
            return self.delay * attempt
        return float(self.delay * 2 ** (attempt - 1))


DEFAULT_RETRIES = Retries(limit=5, delay=10.0, backoff="exponential")
DEFAULT_STEP_TIMEOUT = 600.0
DEFAULT_EVENT_TIMEOUT = 86400.0
