"""Workflow definitions: `define_workflow`, schemas for params and output, and `WorkflowEvent`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import attrs

from ._errors import InvalidArgument, NameTooLong
from ._records import MAX_WORKFLOW_NAME

if TYPE_CHECKING:
    from ._step import WorkflowStep

WorkflowFn = Callable[["WorkflowEvent", "WorkflowStep"], Awaitable[Any]]


@attrs.frozen
class WorkflowEvent:
    """What a workflow function receives: validated params, its instance id, and its creation time."""

    payload: Any
    instance_id: str
    timestamp: datetime
    workflow: str = ""
    run_number: int = 1


class SchemaError(Exception):
    """A value failed a params or output schema; `messages` lists what the validator said."""

    def __init__(self, messages: list[str]) -> None:
        super().__init__("; ".join(messages))
        self.messages = messages


def _pydantic_messages(exc: Exception) -> list[str]:
    errors = getattr(exc, "errors", None)
    if not callable(errors):
        return [str(exc)]
    out = []
    for err in errors():
        loc = ".".join(str(part) for part in err.get("loc", ()))
        out.append(f"{loc}: {err.get('msg')}" if loc else str(err.get("msg")))
    return out or [str(exc)]


class Schema:
    """Adapter over the three accepted schema kinds: attrs class, pydantic model, or validating callable."""

    def __init__(self, spec: Any) -> None:
        self.spec = spec
        if isinstance(spec, type) and attrs.has(spec):
            self.kind = "attrs"
        elif isinstance(spec, type) and hasattr(spec, "model_validate"):
            self.kind = "pydantic"
        elif callable(spec):
            self.kind = "callable"
        else:
            raise InvalidArgument(f"schema must be an attrs class, a pydantic model or a callable, not {spec!r}")

    def validate(self, raw: Any) -> Any:
        """Return the validated value or raise SchemaError with the validator's messages."""
        try:
            if self.kind == "attrs":
                if isinstance(raw, self.spec):
                    return raw
                if not isinstance(raw, dict):
                    raise SchemaError([f"expected an object, got {type(raw).__name__}"])
                return self.spec(**raw)
            if self.kind == "pydantic":
                return self.spec.model_validate(raw)
            return self.spec(raw)
        except SchemaError:
            raise
        except Exception as exc:  # validators signal failure by raising anything
            if self.kind == "pydantic":
                raise SchemaError(_pydantic_messages(exc)) from exc
            raise SchemaError([str(exc) or type(exc).__name__]) from exc

    def to_json_value(self, value: Any) -> Any:
        """Plain JSON form of a validated value (attrs/pydantic instances become dicts)."""
        if attrs.has(type(value)):
            return attrs.asdict(value)
        dump = getattr(value, "model_dump", None)
        if callable(dump):
            return dump(mode="json")
        return value


@attrs.frozen(eq=False)
class WorkflowDefinition:
    """A named workflow function plus its optional schemas; what `Engine(workflows=[...])` takes."""

    name: str
    fn: WorkflowFn
    params: Schema | None = None
    output: Schema | None = None

    def validate_params(self, raw: Any) -> Any:
        """The value handed to the workflow as `event.payload`."""
        return raw if self.params is None else self.params.validate(raw)

    def validate_output(self, value: Any) -> Any:
        """The JSON value stored as the instance's output."""
        if self.output is None:
            return value
        return self.output.to_json_value(self.output.validate(value))

    async def __call__(self, event: WorkflowEvent, step: WorkflowStep) -> Any:
        return await self.fn(event, step)


def check_workflow_name(name: object) -> str:
    """Workflow names are non-empty strings of at most 64 characters."""
    if not isinstance(name, str) or not name:
        raise InvalidArgument(f"workflow name must be a non-empty string, got {name!r}")
    if len(name) > MAX_WORKFLOW_NAME:
        raise NameTooLong(f"workflow name {name[:80]!r} is {len(name)} chars; the limit is {MAX_WORKFLOW_NAME}")
    return name


def define_workflow(
    name: str, fn: WorkflowFn | None = None, *, params: Any = None, output: Any = None
) -> Any:
    """Register-free definition of a workflow, usable as `@define_workflow(name)` or `define_workflow(name, fn)`.

    Definitions are plain values handed to `Engine(workflows=[...])`; nothing global is registered, so
    tests and simulators can build engines with any mix of workflows.
    """
    check_workflow_name(name)
    params_schema = Schema(params) if params is not None else None
    output_schema = Schema(output) if output is not None else None

    def wrap(func: WorkflowFn) -> WorkflowDefinition:
        if not callable(func):
            raise InvalidArgument(f"workflow {name!r} needs an async function, got {func!r}")
        return WorkflowDefinition(name=name, fn=func, params=params_schema, output=output_schema)

    return wrap(fn) if fn is not None else wrap
