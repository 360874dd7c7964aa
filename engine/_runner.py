"""The runner: find due tasks, claim them with a lease, replay the workflow, commit or hand back."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from ._codec import encode
from ._errors import EngineError, NondeterminismError, StepFailed
from ._execution import Checkpoint, Execution, Tracer
from ._records import to_datetime
from ._runtime import Runtime
from ._step import Abandoned, Suspended, WorkflowStep
from ._store import Claim, DueTask, LeaseLost, LoadedRun, Store
from ._workflow import SchemaError, WorkflowDefinition, WorkflowEvent


class Runner:
    """One runner identity (`owner`) over a store: ticks claim, execute and release tasks.

    Collaborators come in as arguments; the runner keeps no state between claims except counters.
    """

    def __init__(
        self, *, store: Store, runtime: Runtime, owner: str, workflows: dict[str, WorkflowDefinition],
        lease: float, tracer: Tracer | None = None,
    ) -> None:
        self.store = store
        self.runtime = runtime
        self.owner = owner
        self.workflows = workflows
        self.names = tuple(sorted(workflows))
        self.lease = lease
        self.tracer = tracer
        checkpoint = getattr(runtime, "checkpoint", None)
        self._checkpoint: Checkpoint | None = checkpoint if callable(checkpoint) else None
        self.abandoned = 0
        # Set by Engine.stop(): finish the step in flight, then hand the task back instead of going on.
        self.draining = False

    async def _cp(self, label: str) -> None:
        if self._checkpoint is not None:
            await self._checkpoint(label)

    def trace(self, action: str, **detail: Any) -> None:
        if self.tracer is not None:
            self.tracer(action, detail)

    async def tick(self, max_tasks: int = 10) -> int:
        """Claim and run up to `max_tasks` due tasks, highest priority first; returns how many it ran."""
        if not self.names or max_tasks <= 0:
            return 0
        await self._cp("tick:find")
        now = self.store.now()
        due = await self.store.find_due(self.names, now, max_tasks)
        self.trace("find", now=now, due=[[t.id, t.kind, t.version] for t in due])
        processed = 0
        for task in due:
            if self.draining:
                break
            await self._cp("tick:claim")
            if await self._claim_and_run(task):
                processed += 1
        return processed

    async def _claim_and_run(self, task: DueTask) -> bool:
        try:
            claim = await self.store.claim(task, self.owner, self.lease)
        except Exception as exc:
            # The claim may or may not have committed ("commit outcome unknown"); either way the lease
            # expires and the task is taken over, so skipping it is safe.
            self.trace("claim_error", task=task.id, instance=task.instance_id,
                        reason=f"{type(exc).__name__}: {exc}")
            return False
        if claim is None:
            self.trace("claim_lost", task=task.id, instance=task.instance_id)
            return False
        self.trace("claim", task=claim.task_id, version=claim.version, instance=claim.instance_id,
                    run=claim.run_number, kind=claim.kind, took_over=task.status == "processing",
                    lease_until=self.store.now() + self.lease)
        await self._cp("tick:claimed")
        try:
            await self.execute(claim)
        except (LeaseLost, Abandoned) as exc:
            self.trace("abandon", task=claim.task_id, instance=claim.instance_id, reason=str(exc))
        except Exception as exc:
            # Store faults (I/O error, commit outcome unknown) abandon this claim; the lease expires and the
            # task is retried from durable state, so the runner itself survives.
            self.abandoned += 1
            self.trace("abandon", task=claim.task_id, instance=claim.instance_id,
                        reason=f"{type(exc).__name__}: {exc}")
        return True

    async def execute(self, claim: Claim) -> None:
        """Replay the claimed run from the top and keep going until it suspends, ends or loses the task."""
        loaded = await self.store.load_run(claim)
        if loaded is None:
            return
        execution = Execution(claim=claim, store=self.store, runtime=self.runtime, lease=self.lease,
                              history=loaded.steps, tracer=self.tracer, checkpoint=self._checkpoint,
                              draining=self._is_draining)
        execution.start_heartbeat()
        try:
            await self._execute(claim, loaded, execution)
        except asyncio.CancelledError:
            # Hard stop (the worker's task was cancelled): hand the task back at once, so another runner
            # does not wait out the lease (issue 10). Fenced: a claim already lost releases nothing.
            execution.stopped = True
            try:
                await self._release(claim)
            except BaseException:  # a crashed (simulated) process writes nothing; the cancel still wins
                pass
            raise
        finally:
            execution.stop_heartbeat()

    def _is_draining(self) -> bool:
        return self.draining

    async def _release(self, claim: Claim) -> None:
        try:
            await self.store.release(claim)
        except Exception as exc:  # lost already, or a store fault: the lease expires on its own
            self.trace("release_error", task=claim.task_id, instance=claim.instance_id,
                        reason=f"{type(exc).__name__}: {exc}")
            return
        self.trace("release", task=claim.task_id, version=claim.version, instance=claim.instance_id)

    async def _execute(self, claim: Claim, loaded: LoadedRun, execution: Execution) -> None:
        definition = self.workflows[claim.workflow]
        error: tuple[str, str] | None = None
        output: str | None = None
        try:
            payload = definition.validate_params(json.loads(loaded.params))
        except SchemaError as exc:
            error = ("InvalidParams", str(exc))
        else:
            created = to_datetime(loaded.created_at)
            assert created is not None
            event = WorkflowEvent(payload=payload, instance_id=claim.instance_id, timestamp=created,
                                  workflow=claim.workflow, run_number=claim.run_number)
            try:
                value = await definition.fn(event, WorkflowStep(execution))
            except Suspended as signal:
                execution.stopped = True
                if signal.released:
                    await self._cp("release")
                    await self._release(claim)
                elif signal.suspension is not None:
                    await self._cp("suspend")
                    paused = await self.store.suspend(claim, signal.suspension)
                    self.trace("suspend", task=claim.task_id, version=claim.version, instance=claim.instance_id,
                                kind=signal.suspension.kind, run_at=signal.suspension.run_at, paused=paused)
                return
            except Abandoned:
                raise
            except StepFailed as exc:
                error = (exc.error_name, exc.message)
            except NondeterminismError as exc:
                error = ("NondeterminismError", str(exc))
            except Exception as exc:
                error = (type(exc).__name__, str(exc))
            else:
                try:
                    output = encode(definition.validate_output(value), what="workflow output")
                except SchemaError as exc:
                    error = ("OutputValidationError", str(exc))
                except EngineError as exc:
                    error = (type(exc).__name__, str(exc))
        execution.stopped = True
        await self._cp("finish")
        status = "errored" if error is not None else "complete"
        await self.store.finish(claim, status, output, error)
        self.trace("finish", task=claim.task_id, version=claim.version, instance=claim.instance_id,
                    run=claim.run_number, status=status, error=error[0] if error else None)
