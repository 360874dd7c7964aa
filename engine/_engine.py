"""The `Engine` facade: instance management plus the runner entry points (DESIGN §2)."""

from __future__ import annotations

import asyncio
import re
from datetime import datetime
from collections.abc import Iterable, Mapping
from typing import Any

from ._codec import decode, encode
from ._durations import parse_duration
from ._errors import (
    BatchTooLarge,
    InstanceNotFound,
    InvalidArgument,
    InvalidCursor,
    InvalidId,
    InvalidParams,
    NameTooLong,
    StoreUnavailable,
    WorkflowNotFound,
)
from ._execution import Tracer
from ._records import (
    MAX_BATCH,
    MAX_EVENT_TYPE,
    ErrorInfo,
    EventRecord,
    History,
    InstanceInfo,
    Page,
    Status,
    StepRecord,
    to_datetime,
)
from ._runner import Runner
from ._runtime import Runtime, SystemRuntime
from ._sqlite_store import SqliteStore
from ._store import Store
from ._workflow import SchemaError, WorkflowDefinition

ID_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_:-]{0,127}$")


def check_id(value: object, *, what: str = "instance id") -> str:
    """Ids match ^[A-Za-z0-9_][A-Za-z0-9_:-]{0,127}$; anything else is INVALID_ID."""
    if not isinstance(value, str) or not ID_PATTERN.match(value):
        raise InvalidId(f"invalid {what} {value!r}: must match {ID_PATTERN.pattern}")
    return value


def _when(seconds: float) -> datetime:
    value = to_datetime(seconds)
    assert value is not None
    return value


def _error(name: str | None, message: str | None) -> ErrorInfo | None:
    return None if name is None else ErrorInfo(name=name, message=message or "")


def _info(row: Mapping[str, Any]) -> InstanceInfo:
    return InstanceInfo(
        workflow=row["workflow_name"], instance_id=row["instance_id"], status=Status(row["status"]),
        output=decode(row["output"]), error=_error(row["error_name"], row["error_message"]),
        run_number=row["run_number"], created_at=_when(row["created_at"]),
        updated_at=_when(row["updated_at"]), started_at=to_datetime(row["started_at"]),
        completed_at=to_datetime(row["completed_at"]), current_step=row["current_step"],
        params=decode(row["params"]), pause_requested=bool(row["pause_requested"]),
    )


def _step_record(row: Mapping[str, Any]) -> StepRecord:
    return StepRecord(
        key=row["step_key"], name=row["name"], type=row["type"], status=row["status"], attempts=row["attempts"],
        max_attempts=row["max_attempts"], result=decode(row["result"]),
        error=_error(row["error_name"], row["error_message"]), wake_at=to_datetime(row["wake_at"]),
        next_retry_at=to_datetime(row["next_retry_at"]),
    )


def _event_record(row: Mapping[str, Any]) -> EventRecord:
    return EventRecord(
        id=row["event_id"] if row["event_id"] is not None else str(row["id"]), type=row["type"],
        payload=decode(row["payload"]), created_at=_when(row["created_at"]),
        consumed_by=row["consumed_by_step_key"],
    )


class Engine:
    """A durable workflow engine over one database, and one runner identity.

    Several Engine objects (processes, machines, simulated runners) may share a database; each claims work
    under its own `runner_id` with leases, so a task runs on one runner at a time.
    """

    def __init__(
        self, database: str = ":memory:", workflows: Iterable[WorkflowDefinition] = (), *,
        runtime: Runtime | None = None, runner_id: str | None = None, lease: Any = "60 s",
        store: Store | None = None, tracer: Tracer | None = None,
    ) -> None:
        self.runtime: Runtime = runtime if runtime is not None else SystemRuntime()
        self.workflows: dict[str, WorkflowDefinition] = {}
        for definition in workflows:
            if not isinstance(definition, WorkflowDefinition):
                raise InvalidArgument(f"workflows must be define_workflow(...) results, got {definition!r}")
            self.workflows[definition.name] = definition
        self.lease = parse_duration(lease, what="lease")
        if self.lease <= 0:
            raise InvalidArgument("lease must be longer than 0 s")
        if store is None:
            if database.startswith(("postgres://", "postgresql://")):
                from ._pg_store import PostgresStore  # psycopg loads only when PostgreSQL is used

                store = PostgresStore(database, runtime=self.runtime)
            else:
                store = SqliteStore(database, runtime=self.runtime)
        self.store: Store = store
        self.runner_id = runner_id if runner_id is not None else self.runtime.new_id()
        self.tracer = tracer
        self.runner = Runner(store=store, runtime=self.runtime, owner=self.runner_id, workflows=self.workflows,
                             lease=self.lease, tracer=tracer)
        self._stopping = False
        self._sleepers: set[asyncio.Future[Any]] = set()
        self._active: dict[Runner, None] = {}  # runners whose worker loop is running

    # -- lifecycle ---------------------------------------------------------------------------------

    async def __aenter__(self) -> Engine:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop workers and close the store's connection."""
        await self.stop()
        await self.store.aclose()

    # -- instance management -----------------------------------------------------------------------

    def _definition(self, workflow: str) -> WorkflowDefinition:
        definition = self.workflows.get(workflow)
        if definition is None:
            raise WorkflowNotFound(f"unknown workflow {workflow!r}; this engine knows {sorted(self.workflows)}")
        return definition

    def _prepare(self, definition: WorkflowDefinition, instance_id: Any, params: Any) -> tuple[str, str]:
        iid = self.runtime.new_id() if instance_id is None else check_id(instance_id)
        try:
            definition.validate_params(params)
        except SchemaError as exc:
            raise InvalidParams(f"invalid params for {definition.name!r}: {exc}", details=exc.messages) from exc
        if definition.params is not None:
            params = definition.params.to_json_value(params)
        return iid, encode(params, what="params")

    async def create(self, workflow: str, params: Any = None, *, id: str | None = None) -> str:
        """Create an instance (queued) and return its id; an existing id returns that instance unchanged."""
        iid, encoded = self._prepare(self._definition(workflow), id, params)
        await self.store.create_instances(workflow, [(iid, encoded)], self.store.now())
        return iid

    async def create_batch(self, workflow: str, items: Iterable[Mapping[str, Any]]) -> list[str]:
        """Create up to 100 instances in one transaction; returns the ids created (existing ids skipped).

        One invalid item rejects the whole batch and writes nothing.
        """
        definition = self._definition(workflow)
        items = list(items)
        if len(items) > MAX_BATCH:
            raise BatchTooLarge(f"create_batch takes at most {MAX_BATCH} items, got {len(items)}")
        prepared = []
        for index, item in enumerate(items):
            if not isinstance(item, Mapping):
                raise InvalidArgument(f"batch item {index} must be a mapping with 'id' and 'params'")
            try:
                prepared.append(self._prepare(definition, item.get("id"), item.get("params")))
            except InvalidParams as exc:
                raise InvalidParams(f"batch item {index}: {exc}", details=exc.details) from exc
        return await self.store.create_instances(workflow, prepared, self.store.now())

    async def _row(self, workflow: str, instance_id: str) -> dict[str, Any]:
        check_id(instance_id)
        row = await self.store.get_instance(workflow, instance_id)
        if row is None:
            if workflow not in self.workflows:
                raise WorkflowNotFound(f"unknown workflow {workflow!r}")
            raise InstanceNotFound(f"no instance {instance_id!r} of workflow {workflow!r}")
        return row

    async def status(self, workflow: str, instance_id: str) -> InstanceInfo:
        """The instance's current status, output, error and run number."""
        return _info(await self._row(workflow, instance_id))

    async def list_instances(
        self, workflow: str, status: str | Status | None = None, limit: int = 25, cursor: str | None = None
    ) -> Page[InstanceInfo]:
        """Instances in creation order, optionally of one status; pass `next_cursor` back for the next page."""
        if status is not None:
            try:
                status = Status(status).value
            except ValueError:
                raise InvalidArgument(f"unknown status {status!r}") from None
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise InvalidArgument(f"limit must be an int in 1..1000, got {limit!r}")
        after = None
        if cursor is not None:
            if not isinstance(cursor, str) or not cursor.isdigit():
                raise InvalidCursor(f"invalid cursor {cursor!r}")
            after = int(cursor)
        rows = await self.store.list_instances(workflow, status, limit, after)
        more = len(rows) > limit
        rows = rows[:limit]
        return Page(tuple(_info(r) for r in rows), str(rows[-1]["seq"]) if more else None)

    async def history(self, workflow: str, instance_id: str, run_number: int | None = None) -> History:
        """Steps and events of the current run, or of an older run when `run_number` is given."""
        row = await self._row(workflow, instance_id)
        run = row["run_number"] if run_number is None else run_number
        if isinstance(run, bool) or not isinstance(run, int) or not 1 <= run <= row["run_number"]:
            raise InvalidArgument(f"run_number must be in 1..{row['run_number']}, got {run_number!r}")
        steps, events = await self.store.history(workflow, instance_id, run)
        return History(steps=tuple(_step_record(s) for s in steps), events=tuple(_event_record(e) for e in events),
                       run_number=run)

    async def send_event(
        self, workflow: str, instance_id: str, *, type: str, payload: Any = None, event_id: str | None = None
    ) -> None:
        """Buffer an event for the instance (consumed by a matching wait); `event_id` makes resends no-ops."""
        check_id(instance_id)
        if not isinstance(type, str) or not type:
            raise InvalidArgument(f"event type must be a non-empty string, got {type!r}")
        if len(type) > MAX_EVENT_TYPE:
            raise NameTooLong(f"event type is {len(type)} chars; the limit is {MAX_EVENT_TYPE}")
        if event_id is not None:
            check_id(event_id, what="event id")
        encoded = encode(payload, what="event payload")
        await self._row(workflow, instance_id)
        await self.store.send_event(workflow, instance_id, event_id, type, encoded, self.store.now())

    async def pause(self, workflow: str, instance_id: str) -> None:
        """Pause now, or at the next step boundary if a runner is executing the instance."""
        await self._row(workflow, instance_id)
        await self.store.pause(workflow, instance_id, self.store.now())

    async def resume(self, workflow: str, instance_id: str) -> None:
        """Resume a paused instance (elapsed timers fire at once); a no-op if it is not paused."""
        await self._row(workflow, instance_id)
        await self.store.resume(workflow, instance_id, self.store.now())

    async def terminate(self, workflow: str, instance_id: str) -> None:
        """Make the instance terminated at once; a late completion by a runner cannot override it."""
        await self._row(workflow, instance_id)
        await self.store.terminate(workflow, instance_id, self.store.now())

    async def restart(self, workflow: str, instance_id: str) -> int:
        """Start a new run (run_number + 1) from any status; returns the new run number."""
        await self._row(workflow, instance_id)
        return await self.store.restart(workflow, instance_id, self.store.now())

    # -- running -----------------------------------------------------------------------------------

    async def tick(self, max_tasks: int = 10) -> int:
        """One runner pass: claim up to `max_tasks` due tasks in priority order and run each; returns count."""
        return await self.runner.tick(max_tasks)

    async def run_until_idle(self, *, max_ticks: int = 100_000) -> int:
        """Tick until nothing is due at `now()`; never waits for a timer. Returns tasks processed."""
        total = 0
        for _ in range(max_ticks):
            processed = await self.runner.tick(100)
            if processed == 0:
                return total
            total += processed
        raise RuntimeError(f"run_until_idle did not settle after {max_ticks} ticks")

    async def run_worker(self, poll_interval: Any = "1 s", *, max_tasks: int = 10, concurrency: int = 1) -> None:
        """Poll for due work until cancelled or `stop()`; idles through the runtime between empty ticks.

        With concurrency > 1, that many runner loops share this engine's store, each with its own identity.
        """
        interval = parse_duration(poll_interval, what="poll interval")
        self._stopping = False
        if concurrency <= 1:
            await self._worker_loop(self.runner, interval, max_tasks)
            return
        runners = [
            Runner(store=self.store, runtime=self.runtime, owner=f"{self.runner_id}:{i}", workflows=self.workflows,
                   lease=self.lease, tracer=self._tracer_for(f"{self.runner_id}:{i}"))
            for i in range(concurrency)
        ]
        loops = [asyncio.ensure_future(self._worker_loop(r, interval, max_tasks)) for r in runners]
        try:
            await asyncio.gather(*loops)
        finally:
            for loop in loops:
                loop.cancel()

    def _tracer_for(self, owner: str) -> Tracer | None:
        """The tracer for one of several runner loops: its records name the loop (`runner`), the identity its
        leases are held under, so a trace tells the loops of one engine apart."""
        tracer = self.tracer
        if tracer is None:
            return None
        return lambda action, detail: tracer(action, {**detail, "runner": owner})

    async def _worker_loop(self, runner: Runner, interval: float, max_tasks: int) -> None:
        self._active[runner] = None
        try:
            await self._poll(runner, interval, max_tasks)
        finally:
            runner.draining = False
            del self._active[runner]

    async def _poll(self, runner: Runner, interval: float, max_tasks: int) -> None:
        while not self._stopping:
            try:
                productive = await runner.tick(max_tasks)
            except StoreUnavailable as exc:
                # The database is down or unreachable: keep the worker alive and poll again (a server
                # restart must not end run_worker); leases keep every task safe meanwhile.
                runner.trace("tick_error", reason=f"{type(exc).__name__}: {exc}")
                productive = 0
            if productive:
                # Yield between productive ticks so sibling runner loops (concurrency > 1) get work too.
                await self.runtime.sleep(0)
                continue
            if self._stopping:
                # stop() ran while this tick awaited the store: it could not cancel a wait not yet begun.
                break
            sleeper = asyncio.ensure_future(self._idle(runner, interval))
            self._sleepers.add(sleeper)
            try:
                await sleeper
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise
                # stop() cancelled only our idle wait: fall through and leave the loop.
            finally:
                self._sleepers.discard(sleeper)

    async def _idle(self, runner: Runner, interval: float) -> None:
        """Wait for work through the store; if the store cannot even say when (database down), just sleep."""
        try:
            await self.store.wait_for_work(runner.names, interval)
        except StoreUnavailable as exc:
            runner.trace("tick_error", reason=f"{type(exc).__name__}: {exc}")
            await self.runtime.sleep(interval)

    async def stop(self) -> None:
        """Ask run_worker loops to return, gracefully; returns at once.

        An idle loop returns at once; a busy one lets its step in flight finish and commit, then hands the
        task back as due now, so another runner takes it over without waiting out the lease. (Cancelling
        run_worker's task instead is a hard stop: the step in flight is abandoned, its task handed back.)
        """
        self._stopping = True
        for runner in self._active:
            runner.draining = True
        for sleeper in list(self._sleepers):
            sleeper.cancel()
