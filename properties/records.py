"""The reference model's records: instances, their journal rows, events and what a callback attempt did.

Plain attrs classes, kept apart from the rules in `properties.model` that read and write them.
"""

from __future__ import annotations

from typing import Any

import attrs

from properties.programs import Request


@attrs.define
class StepState:
    """One journal row: `status` is waiting, completed or errored; `result` a Do value or a received event."""

    type: str
    status: str
    attempts: int = 0
    result: Any = None
    error: str | None = None
    wake_at: float | None = None
    next_retry_at: float | None = None
    message: str | None = None
    at_once: bool = attrs.field(default=False, eq=False)  # a zero-delay retry: the run goes on without a hand-back


@attrs.define
class EventState:
    id: int
    workflow: str
    instance: str
    type: str
    payload: Any
    event_id: str | None
    created_at: float
    consumed: tuple[int, str] | None = None  # (run, step key)
    run: int = 1  # the run current when it was sent: only that run may consume it


@attrs.define
class InstanceState:
    workflow: str
    instance_id: str
    params: Any
    status: str = "queued"
    run: int = 1
    output: Any = None
    error: tuple[str, str] | None = None
    pause_requested: bool = False
    steps: dict[tuple[int, str], StepState] = attrs.Factory(dict)  # every run's journal, keyed (run, key)
    claimed_at: float = 0.0  # when the current run was last claimed: lower bound of a runner's `now`
    created_at: float = 0.0  # when it was created: the workflow's `event.timestamp`
    # Bumped whenever the current run's journal changes; `replay` is a function of (run, journal) only, so
    # its answer is kept until then (P12 asks every instance at every quiet point).
    journal_version: int = attrs.field(default=0, eq=False)
    replayed: tuple[tuple[int, int, int], Pending] | None = attrs.field(default=None, eq=False, repr=False)


@attrs.define
class Attempt:
    """What one step callback did, as the adapter saw it: started at `start` under `timeout`; ended at `end`
    returning (ok, value) or raising (not ok, message). A hang never ends."""

    start: float
    timeout: float
    end: float | None = None
    ok: bool = False
    value: Any = None
    error: str = "RuntimeError"  # the class of what it raised
    final: bool = False  # what it raised opts out of retries (NonRetryableError or `non_retryable = True`)


@attrs.frozen
class Pending:
    """Where a replay of the current run stops: at `key` (a request not yet finished) or at the end."""

    key: str | None = None
    request: Request | None = None
    step: StepState | None = None
    output: Any = None
    error: tuple[str, str | None] | None = None  # a message None: only the engine knows the wording


__all__ = ["Attempt", "EventState", "InstanceState", "Pending", "StepState"]
