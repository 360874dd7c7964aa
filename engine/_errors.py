"""Errors: caller-facing `EngineError`s with stable codes, and the exceptions workflow code sees."""

from __future__ import annotations

from typing import Any


class EngineError(Exception):
    """Base of every error the engine raises to its callers; `code` is stable and maps to HTTP statuses."""

    code = "ENGINE_ERROR"
    http_status = 400

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        """JSON shape used by the HTTP layer and the CLI."""
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details is not None:
            body["details"] = self.details
        return body


class WorkflowNotFound(EngineError):
    code = "WORKFLOW_NOT_FOUND"
    http_status = 404


class InstanceNotFound(EngineError):
    code = "INSTANCE_NOT_FOUND"
    http_status = 404


class InstanceTerminal(EngineError):
    code = "INSTANCE_TERMINAL"
    http_status = 409


class InvalidParams(EngineError):
    code = "INVALID_PARAMS"
    http_status = 400


class InvalidId(EngineError):
    code = "INVALID_ID"
    http_status = 400


class EventIdConflict(EngineError):
    code = "EVENT_ID_CONFLICT"
    http_status = 409


class BatchTooLarge(EngineError):
    code = "BATCH_TOO_LARGE"
    http_status = 400


class PayloadTooLarge(EngineError):
    code = "PAYLOAD_TOO_LARGE"
    http_status = 413


class NameTooLong(EngineError):
    code = "NAME_TOO_LONG"
    http_status = 400


class TooManySteps(EngineError):
    code = "TOO_MANY_STEPS"
    http_status = 400


class StoreUnavailable(EngineError):
    """The database could not be reached (or a commit's outcome is unknown) after the store's bounded retries.

    Nothing was half-written: a transaction either committed whole or not at all. With `outcome_unknown`, it
    may have committed; creates and sends with an id are idempotent, so calling again is safe.
    """

    code = "STORE_UNAVAILABLE"
    http_status = 503

    def __init__(self, message: str, *, outcome_unknown: bool = False, details: Any = None) -> None:
        super().__init__(message, details=details)
        self.outcome_unknown = outcome_unknown


class InvalidArgument(EngineError, ValueError):
    """A bad argument (a ValueError too, so code written against plain ValueError keeps working)."""

    code = "INVALID_ARGUMENT"
    http_status = 400


class InvalidCursor(EngineError):
    code = "INVALID_CURSOR"
    http_status = 400


class NotSerializable(EngineError):
    code = "NOT_JSON_SERIALIZABLE"
    http_status = 400


class InvalidStepName(EngineError):
    """A step name containing `#`, which is reserved for repeat keys (`do:x#2`)."""

    code = "INVALID_STEP_NAME"
    http_status = 400


class NonRetryableError(Exception):
    """Raise from a step callback to stop retrying at once; the step fails with this error."""


class NestedStepError(EngineError, NonRetryableError):
    """A step method was called from inside a running step callback of the same instance.

    Steps are keyed by their position in the workflow body; a step started from inside another step's
    callback has no stable position (the callback may run again after a crash), so it is refused at the call.
    """

    code = "NESTED_STEP"
    http_status = 400


class WaitForEventTimeout(NonRetryableError):
    """Raised into the workflow when `wait_for_event` reaches its deadline without a matching event."""


class StepFailed(Exception):
    """A step that failed for good; raised into the workflow, the same class live and on replay.

    `error_name` is the original exception's class name, `message` its message, `attempts` how many
    attempts ran, so workflow code can branch on the failure deterministically.
    """

    def __init__(self, step_key: str, error_name: str, message: str, attempts: int) -> None:
        super().__init__(message)
        self.step_key = step_key
        self.error_name = error_name
        self.message = message
        self.attempts = attempts

    def __str__(self) -> str:
        return self.message


class NondeterminismError(Exception):
    """Replay met a different step than history records at the same position; the instance errors."""

    def __init__(self, expected: str, found: str, position: int) -> None:
        super().__init__(
            f"nondeterministic workflow: at step {position + 1} history records {expected!r} "
            f"but replay found {found!r}"
        )
        self.expected = expected
        self.found = found
        self.position = position


class OutputValidationError(Exception):
    """The workflow's return value failed its `output` schema."""


def is_non_retryable(exc: BaseException) -> bool:
    """True when `exc` opts out of retries: a NonRetryableError or any class with `non_retryable = True`."""
    return isinstance(exc, NonRetryableError) or bool(getattr(type(exc), "non_retryable", False))
