"""stepsim's durable workflow engine: public API (DESIGN §2). Private modules are re-exported here."""

from ._durations import parse_duration
from ._engine import Engine, check_id
from ._errors import (
    BatchTooLarge,
    EngineError,
    EventIdConflict,
    InstanceNotFound,
    InstanceTerminal,
    InvalidArgument,
    InvalidCursor,
    InvalidId,
    InvalidParams,
    InvalidStepName,
    NameTooLong,
    NestedStepError,
    NondeterminismError,
    NonRetryableError,
    NotSerializable,
    OutputValidationError,
    PayloadTooLarge,
    StepFailed,
    StoreUnavailable,
    TooManySteps,
    WaitForEventTimeout,
    WorkflowNotFound,
)
from ._records import (
    ErrorInfo,
    EventRecord,
    History,
    InstanceInfo,
    Page,
    ReceivedEvent,
    Retries,
    Status,
    StepContext,
    StepRecord,
)
from ._runtime import Runtime, SystemRuntime
from ._sqlite_store import SqliteStore
from ._step import StepTimeoutError, WorkflowStep
from ._store import LeaseLost, Store
from ._workflow import WorkflowDefinition, WorkflowEvent, define_workflow

__all__ = [
    "BatchTooLarge", "Engine", "EngineError", "ErrorInfo", "EventIdConflict", "EventRecord", "History",
    "InstanceInfo", "InstanceNotFound", "InstanceTerminal", "InvalidArgument", "InvalidCursor", "InvalidId",
    "InvalidParams", "InvalidStepName", "LeaseLost", "NameTooLong", "NestedStepError", "NonRetryableError",
    "NondeterminismError", "NotSerializable",
    "OutputValidationError", "Page", "PayloadTooLarge", "ReceivedEvent", "Retries", "Runtime", "SqliteStore",
    "Status", "StepContext", "StepFailed", "StoreUnavailable", "StepRecord", "StepTimeoutError", "Store", "SystemRuntime",
    "TooManySteps", "WaitForEventTimeout", "WorkflowDefinition", "WorkflowEvent", "WorkflowNotFound",
    "WorkflowStep", "check_id", "define_workflow", "parse_duration", "PostgresStore",
]


def __getattr__(name: str) -> object:
    # psycopg loads only for engines that use PostgreSQL: a SQLite user never pays its import.
    if name == "PostgresStore":
        from ._pg_store import PostgresStore

        return PostgresStore
    raise AttributeError(f"module 'engine' has no attribute {name!r}")
