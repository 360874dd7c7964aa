"""The store protocol: the narrow surface the runner and the engine facade need from a database.

A PostgreSQL store implements the same methods; the runner never sees SQL. Write methods are async because
the store owns the transaction and its bounded retry (which waits through the runtime); each call is one
synchronous transaction, so no transaction ever spans an `await` (DESIGN §3).
"""

from __future__ import annotations

from typing import Any, Protocol

import attrs

TASK_PRIORITY = {"wake": 0, "retry": 1, "resume": 2, "run": 3}


class LeaseLost(Exception):
    """A fenced write found that this runner no longer holds the task (property 3); nothing was written."""


@attrs.frozen(kw_only=True)
class DueTask:
    id: int
    workflow: str
    instance_id: str
    run_number: int
    kind: str
    run_at: float
    version: int
    status: str


@attrs.frozen(kw_only=True)
class Claim:
    """A task this runner holds: the (id, owner, version) triple fences every later write."""

    task_id: int
    version: int
    owner: str
    workflow: str
    instance_id: str
    run_number: int
    kind: str
    # When the lease taken with the claim runs out (store clock): the heartbeat schedules its first renewal
    # from it. 0.0 means unknown, and the heartbeat reads the lease from the store instead.
    lease_until: float = 0.0


@attrs.frozen(kw_only=True)
class StepWrite:
    """One step row as the runner wants it stored."""

    key: str
    name: str
    type: str
    position: int
    status: str
    attempts: int = 0
    max_attempts: int | None = None
    next_retry_at: float | None = None
    wake_at: float | None = None
    wait_event_type: str | None = None
    wait_match: str | None = None
    result: str | None = None
    error_name: str | None = None
    error_message: str | None = None


@attrs.frozen
class Suspension:
    """Hand the task back as pending `kind` due at `run_at` (the instance becomes waiting)."""

    kind: str
    run_at: float


@attrs.frozen(kw_only=True)
class LoadedRun:
    """Everything a replay needs, read in one go at claim time."""

    status: str
    params: str
    created_at: float
    run_number: int
    steps: tuple[dict[str, Any], ...]


@attrs.frozen(kw_only=True)
class WaitOutcome:
    """Result of a wait_for_event transaction: the consumed event, a timeout, or still waiting."""

    paused: bool
    event: dict[str, Any] | None = None
    timed_out: bool = False


class Store(Protocol):
    """What the runner and the Engine facade call; implementations own connections and transactions."""

    def now(self) -> float:
        """The one scheduling clock (the runtime's for SQLite, the database's for PostgreSQL)."""
        ...

    def close(self) -> None: ...
    async def aclose(self) -> None: ...
    async def wait_for_work(self, workflows: tuple[str, ...], timeout: float) -> None:
        """Idle between empty worker ticks, at most `timeout`; may return early when work arrives."""
        ...

    # instance management
    async def create_instances(self, workflow: str, items: list[tuple[str, str]], now: float) -> list[str]: ...
    async def get_instance(self, workflow: str, instance_id: str) -> dict[str, Any] | None: ...
    async def list_instances(
        self, workflow: str, status: str | None, limit: int, after: int | None
    ) -> list[dict[str, Any]]: ...
    async def history(self, workflow: str, instance_id: str, run_number: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]: ...
    async def send_event(
        self, workflow: str, instance_id: str, event_id: str | None, type: str, payload: str, now: float
    ) -> str: ...
    async def pause(self, workflow: str, instance_id: str, now: float) -> str: ...
    async def resume(self, workflow: str, instance_id: str, now: float) -> str: ...
    async def terminate(self, workflow: str, instance_id: str, now: float) -> str: ...
    async def restart(self, workflow: str, instance_id: str, now: float) -> int: ...

    # runner
    async def find_due(self, workflows: tuple[str, ...], now: float, limit: int) -> list[DueTask]: ...
    # Fenced writes read `now` themselves at each try (a retry must never reuse a stale time).
    async def claim(self, task: DueTask, owner: str, lease: float) -> Claim | None: ...
    async def load_run(self, claim: Claim) -> LoadedRun | None: ...
    async def holds_lease(self, claim: Claim) -> bool: ...
    async def held_until(self, claim: Claim) -> float | None:
        """When the claim's live lease runs out, or None once it is lost (a read)."""
        ...
    async def renew_lease(self, claim: Claim, lease: float) -> bool: ...
    async def commit_step(self, claim: Claim, step: StepWrite, suspend: Suspension | None, lease: float) -> bool: ...
    async def wait_event(
        self, claim: Claim, step: StepWrite, match: dict[str, Any] | None, deadline: float, lease: float
    ) -> WaitOutcome: ...
    async def suspend(self, claim: Claim, suspension: Suspension) -> bool: ...
    async def release(self, claim: Claim) -> None:
        """Hand a claimed task back as due now (graceful stop); fenced, so a lost claim releases nothing."""
        ...
    async def finish(
        self, claim: Claim, status: str, output: str | None, error: tuple[str, str] | None
    ) -> None: ...
