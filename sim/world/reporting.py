"""Any workflow's step callbacks, reporting each attempt to the oracle: what lets the model judge them.

The model replays a workflow function itself (`properties.workflows`), but never runs its step callbacks: what
an attempt did (its StepContext, its result or its error, when it began and ended) is reported from a wrapper
around the callback, as the model's own programs report it (`sim.world.programs`). `reporting(definitions,
reports)` gives each definition a `step` whose `do` wraps the callback; everything else is the engine's step.

The wrapper keeps what the engine reads off a callback: sync or async (a sync one still runs through the
runtime), whether it takes the StepContext, and a sync callable that returns an awaitable.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from engine import NonRetryableError, WorkflowDefinition, WorkflowEvent, WorkflowStep, parse_duration
from engine._execution import _is_async
from engine._step import _takes_context
from properties.workflows import DEFAULT_STEP_TIMEOUT


def _final(exc: BaseException) -> bool:
    """DESIGN §2: NonRetryableError, or any exception whose class opts out, is never retried."""
    return isinstance(exc, NonRetryableError) or bool(getattr(type(exc), "non_retryable", False))


def _wrap(fn: Callable[..., Any], timeout: float, reports: Any) -> Callable[..., Any]:
    with_context = _takes_context(fn)

    def started(ctx: Any) -> None:
        reports.attempt_started(ctx, timeout)

    def failed(ctx: Any, exc: Exception) -> None:
        reports.attempt_ended(ctx, False, str(exc), type(exc).__name__, _final(exc))

    async def settle(ctx: Any, awaitable: Any) -> Any:
        try:
            value = await awaitable
            if inspect.isawaitable(value):  # as the engine does: `async def f(): return fetch()`
                value = await value
        except Exception as exc:
            failed(ctx, exc)
            raise
        reports.attempt_ended(ctx, True, value)
        return value

    if _is_async(fn):

        async def run_async(ctx: Any) -> Any:
            started(ctx)
            return await settle(ctx, fn(ctx) if with_context else fn())

        return run_async

    def run(ctx: Any) -> Any:
        started(ctx)
        try:
            value = fn(ctx) if with_context else fn()
        except Exception as exc:
            failed(ctx, exc)
            raise
        if inspect.isawaitable(value):
            return settle(ctx, value)
        reports.attempt_ended(ctx, True, value)
        return value

    return run


class ReportingStep:
    """The engine's step, with every `do` callback reporting its attempts to `reports`."""

    def __init__(self, step: WorkflowStep, reports: Any) -> None:
        self._step = step
        self._reports = reports

    def __getattr__(self, name: str) -> Any:
        return getattr(self._step, name)

    async def do(self, name: Any, fn: Callable[..., Any], *, retries: Any = None, timeout: Any = None) -> Any:
        try:
            limit = DEFAULT_STEP_TIMEOUT if timeout is None else parse_duration(timeout)
        except ValueError:  # the engine refuses it; the callback never runs
            limit = DEFAULT_STEP_TIMEOUT
        return await self._step.do(name, _wrap(fn, limit, self._reports), retries=retries, timeout=timeout)


def reporting(definitions: tuple[WorkflowDefinition, ...] | list[WorkflowDefinition], reports: Any
              ) -> list[WorkflowDefinition]:
    """Each definition (same name and schemas) running on a `ReportingStep` that reports to `reports` (an
    object with `attempt_started(ctx, timeout)` and `attempt_ended(ctx, ok, value, error, final)`)."""

    def wrapped(definition: WorkflowDefinition) -> WorkflowDefinition:
        async def run(event: WorkflowEvent, step: WorkflowStep) -> Any:
            return await definition.fn(event, ReportingStep(step, reports))  # type: ignore[arg-type]

        return WorkflowDefinition(name=definition.name, fn=run, params=definition.params,
                                  output=definition.output)

    return [wrapped(d) for d in definitions]


__all__ = ["ReportingStep", "reporting"]
