"""One claim's execution state: the fenced doors through which step methods reach the store."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from ._runtime import Runtime
from ._step import Abandoned, StepTimeoutError, Suspended
from ._store import Claim, LeaseLost, StepWrite, Store, Suspension, WaitOutcome

Tracer = Callable[[str, dict[str, Any]], None]
Checkpoint = Callable[[str], Awaitable[None]]


class Execution:
    """Everything step methods need for one claimed task; discarded when the claim ends."""

    def __init__(
        self, *, claim: Claim, store: Store, runtime: Runtime, lease: float, history: tuple[dict[str, Any], ...],
        tracer: Tracer | None, checkpoint: Checkpoint | None,
    ) -> None:
        self.claim = claim
        self.store = store
        self.runtime = runtime
        self.lease = lease
        self.history = history
        self._tracer = tracer
        self._checkpoint = checkpoint
        self.stopped = False

    def now(self) -> float:
        """The scheduling clock: the store's, never the runner's local time (property 6/7 timers)."""
        return self.store.now()

    def ensure_live(self) -> None:
        """Refuse new steps once the workflow was told to stop (it may have swallowed the signal)."""
        if self.stopped:
            raise Abandoned("execution already stopped")

    async def checkpoint(self, label: str) -> None:
        """A point where a simulated scheduler may switch runners; free in production."""
        if self._checkpoint is not None:
            await self._checkpoint(label)

    def trace(self, action: str, **detail: Any) -> None:
        """Report an engine action to the tracer (simulator, debugging); free when none is set."""
        if self._tracer is not None:
            detail.setdefault("task", self.claim.task_id)
            detail.setdefault("version", self.claim.version)
            detail.setdefault("workflow", self.claim.workflow)
            detail.setdefault("instance", self.claim.instance_id)
            detail.setdefault("run", self.claim.run_number)
            self._tracer(action, detail)

    def _stop(self, exc: BaseException) -> BaseException:
        self.stopped = True
        return exc

    def _abandon(self, key: str, exc: Exception) -> BaseException:
        # A lost lease or a store failure (I/O error, commit outcome unknown) ends this claim. Abandoned is
        # a BaseException so workflow code that catches Exception around a step cannot swallow it; the
        # task's lease then expires and the run resumes from what was durably committed.
        if isinstance(exc, LeaseLost):
            self.trace("lease_lost", key=key, reason=str(exc))
        else:
            self.trace("store_error", key=key, reason=f"{type(exc).__name__}: {exc}")
        return self._stop(Abandoned(str(exc)))

    def check_lease(self, key: str) -> None:
        """Before a callback runs: a runner whose lease lapsed must not start a side effect that another
        runner may already have completed (property 1). A read, so the hot path keeps one write per step."""
        if not self.store.holds_lease(self.claim):
            raise self._abandon(key, LeaseLost("lease lapsed before the step callback"))

    async def commit(self, write: StepWrite, suspension: Suspension | None) -> None:
        """Commit one step row (plus an optional hand-back) in one fenced transaction.

        Raises Abandoned if the lease is gone and Suspended if a pause took effect at this boundary.
        """
        try:
            paused = await self.store.commit_step(self.claim, write, suspension, self.lease)
        except Exception as exc:
            raise self._abandon(write.key, exc) from exc
        self.trace("commit", key=write.key, status=write.status, attempts=write.attempts,
                   suspend=suspension.kind if suspension else None, paused=paused)
        if paused:
            raise self._stop(Suspended(None, paused=True))
        if suspension is not None:
            self.stopped = True

    async def wait(self, write: StepWrite, match: dict[str, Any] | None, deadline: float) -> WaitOutcome:
        """Consume a matching event, time out, or park; one fenced transaction."""
        try:
            outcome = await self.store.wait_event(self.claim, write, match, deadline, self.lease)
        except Exception as exc:
            raise self._abandon(write.key, exc) from exc
        self.trace("commit", key=write.key, status="completed" if outcome.event else
                   ("errored" if outcome.timed_out else "waiting"), attempts=0,
                   event=outcome.event["id"] if outcome.event else None, paused=outcome.paused,
                   suspend=None if (outcome.event or outcome.timed_out) else "wake")
        if outcome.paused or not (outcome.event or outcome.timed_out):
            self.stopped = True
        return outcome

    async def guard(self, awaitable: Awaitable[Any], timeout: float, key: str, attempt: int) -> Any:
        """Await an async step callback under its attempt timeout, renewing the lease meanwhile.

        The watcher measures time by the seconds it slept (never assuming sleep moves now()); on timeout the
        callback is cancelled and the attempt fails; on a lost lease the whole execution is abandoned.
        """
        work = asyncio.ensure_future(awaitable)
        watcher = asyncio.ensure_future(self._watch(timeout))
        try:
            await asyncio.wait((work, watcher), return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            work.cancel()
            watcher.cancel()
            raise
        if work.done():
            watcher.cancel()
            return work.result()
        work.cancel()
        try:
            await work
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # we are being cancelled ourselves (shutdown), not just the callback
        except Exception:  # the callback's own reaction to cancellation is irrelevant now
            pass
        if watcher.result() == "timeout":
            raise StepTimeoutError(f"step {key!r} attempt {attempt} timed out after {timeout:g} s")
        self.trace("lease_lost", key=key, reason="heartbeat refused")
        raise self._stop(Abandoned("lease lost while the step ran"))

    async def _watch(self, timeout: float) -> str:
        elapsed = 0.0
        interval = max(self.lease / 3.0, 0.001)
        while True:
            wait = min(timeout - elapsed, interval)
            await self.runtime.sleep(wait)
            elapsed += wait
            if elapsed >= timeout:
                return "timeout"
            try:
                renewed = await self.store.renew_lease(self.claim, self.lease)
            except Exception:  # a store fault while renewing: treat the lease as gone (safe side)
                renewed = False
            if not renewed:
                return "lost"
            self.trace("renew", lease_until=self.now() + self.lease)
