"""One claim's execution state: the fenced doors through which step methods reach the store."""

from __future__ import annotations

import asyncio
import inspect
import types
from collections.abc import Awaitable, Callable, Generator
from typing import Any

from ._runtime import Runtime, run_in_thread
from ._step import Abandoned, StepTimeoutError, Suspended
from ._store import Claim, LeaseLost, StepWrite, Store, Suspension, WaitOutcome

Tracer = Callable[[str, dict[str, Any]], None]
Checkpoint = Callable[[str], Awaitable[None]]


class Execution:
    """Everything step methods need for one claimed task; discarded when the claim ends."""

    def __init__(
        self, *, claim: Claim, store: Store, runtime: Runtime, lease: float, history: tuple[dict[str, Any], ...],
        tracer: Tracer | None, checkpoint: Checkpoint | None, draining: Callable[[], bool] = lambda: False,
    ) -> None:
        self.claim = claim
        self.store = store
        self.runtime = runtime
        self.lease = lease
        self.history = history
        self._tracer = tracer
        self._checkpoint = checkpoint
        self.draining = draining
        self.stopped = False
        self._heartbeat: asyncio.Future[None] | None = None
        self._lost: asyncio.Future[None] | None = None  # resolved by the heartbeat when the lease is gone

    def now(self) -> float:
        """The scheduling clock: the store's, never the runner's local time (property 6/7 timers)."""
        return self.store.now()

    def release_if_draining(self) -> None:
        """At a step boundary of a stopping runner: hand the task back (the step before this one committed;
        another runner replays from here at once)."""
        if self.draining():
            self.stopped = True
            raise Suspended(None, released=True)

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

    async def check_lease(self, key: str) -> None:
        """Before a callback runs: a runner whose lease lapsed must not start a side effect that another
        runner may already have completed (property 1). A read, so the hot path keeps one write per step."""
        if not await self.store.holds_lease(self.claim):
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

    # -- step callbacks -----------------------------------------------------------------------------

    async def call(self, fn: Callable[..., Any], context: Any, timeout: float, key: str, attempt: int) -> Any:
        """Run one attempt of a step callback under its timeout while the heartbeat keeps the lease.

        Async callbacks run on the loop; sync ones through the runtime's `run_sync` (a worker thread in
        production, inline with simulated duration under simulation), so neither can starve the heartbeat
        (issue 10: a 70 s sync step under a 60 s lease lost its lease and ran forever).
        """
        args = () if context is None else (context,)
        started = self.now()
        if _is_async(fn):
            value = fn(*args)
        else:
            value = self._run_sync(fn, *args)
        if inspect.isawaitable(value):
            # One timeout for the whole attempt, also when a sync callable returned a coroutine.
            value = await self._guard(_settled(value), timeout, key, attempt, started)
        return value

    async def _guard(self, awaitable: Awaitable[Any], timeout: float, key: str, attempt: int,
                     started: float) -> Any:
        """Await the callback, its attempt timeout and the heartbeat's lease-lost signal; first one wins.

        On timeout the callback is cancelled (a sync one in a thread runs on, its result discarded) and the
        attempt fails; on a lost lease the whole execution is abandoned. A callback whose timer fired in the
        same turn is judged by when it finished on the runtime's clock: past its deadline (a clock that jumped
        while it was suspended) it outlived its timeout, and its outcome is discarded (DESIGN §2); on time, it
        stands. (A thread's finish is seen when the loop next runs: a loop blocked past the deadline by other
        code costs that attempt a retry, never a late commit.)
        """
        # The callback runs in its own task (its own context, its own current_task() for asyncio.timeout,
        # TaskGroup and cancel scopes). One turn of the loop first: a callback that never suspends is done
        # then, and needs no timeout race.
        finished: list[float] = []

        async def timed() -> Any:
            try:
                return await awaitable
            finally:
                finished.append(self.now())

        work = asyncio.ensure_future(timed())
        try:
            await _one_turn()
        except BaseException:
            work.cancel()
            raise
        if work.done():
            return work.result()
        timer = asyncio.ensure_future(self.runtime.sleep(timeout))
        lost = self._lost
        waits: tuple[asyncio.Future[Any], ...] = (work, timer) if lost is None else (work, timer, lost)
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            work.cancel()
            timer.cancel()
            raise
        timer.cancel()
        if work.done() and finished and finished[0] - started <= timeout:
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
        if lost is not None and lost.done():
            raise self._stop(Abandoned("lease lost while the step ran"))
        raise StepTimeoutError(f"step {key!r} attempt {attempt} timed out after {timeout:g} s")

    # -- heartbeat --------------------------------------------------------------------------------

    def start_heartbeat(self) -> None:
        """Keep the claim's lease alive from the claim on, until `stop_heartbeat` (property 3)."""
        self._lost = asyncio.get_running_loop().create_future()
        self._heartbeat = asyncio.ensure_future(self._beat())

    def stop_heartbeat(self) -> None:
        """Stop renewing: the claim ended (suspended, finished, abandoned or released)."""
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            self._heartbeat = None

    async def _read_until(self, known: float) -> float | None:
        """The lease's end as the store says; on a store fault, what this heartbeat last knew (a failed read
        must neither end the heartbeat silently nor declare the lease lost: the renewal decides)."""
        try:
            return await self.store.held_until(self.claim)
        except Exception as exc:  # a store fault (PostgreSQL connection lost): retry on the next round
            self.trace("renew_error", reason=f"{type(exc).__name__}: {exc}")
            return known

    async def _beat(self) -> None:
        # Renew when a third of the lease is left, at the latest, reading the expiry on the scheduling clock
        # (issue 10: renewals used to start only once a callback yielded, then slept a fixed interval). Step
        # commits also extend the lease, so on waking the lease is read again before writing.
        third = self.lease / 3.0
        until = self.claim.lease_until or await self._read_until(self.now() + third)
        while until is not None:
            wait = until - third - self.now()
            if wait > 0:
                await self.runtime.sleep(wait)
                until = await self._read_until(until)
                if until is None or until - third > self.now():
                    continue
            try:
                renewed = await self.store.renew_lease(self.claim, self.lease)
            except Exception as exc:  # a store fault: try again soon; the lease itself says when to give up
                self.trace("renew_error", reason=f"{type(exc).__name__}: {exc}")
                await self.runtime.sleep(third / 8.0)
                until = await self._read_until(until)
                continue
            if not renewed:
                break
            until = self.now() + self.lease
            self.trace("renew", lease_until=until)
        self.trace("lease_lost", reason="heartbeat found the lease gone")
        assert self._lost is not None
        if not self._lost.done():
            self._lost.set_result(None)

    def _run_sync(self, fn: Callable[..., Any], *args: Any) -> Any:
        runner = getattr(self.runtime, "run_sync", None)
        if runner is None:
            return run_in_thread(fn, *args)
        return runner(fn, *args)


async def _settled(awaitable: Awaitable[Any]) -> Any:
    """Await the callback's result, and the awaitable a sync callable may have returned (`lambda: fetch()`)."""
    value = await awaitable
    if inspect.isawaitable(value):
        value = await value
    return value


@types.coroutine
def _one_turn() -> Generator[None, None, None]:
    """Let every task that is ready run once (asyncio.sleep(0) without the ambient call, DESIGN §4)."""
    yield


def _is_async(fn: Callable[..., Any]) -> bool:
    """True for coroutine functions (also behind partial or an async __call__): they run on the loop."""
    if type(fn) is types.FunctionType:  # fast path: plain functions and lambdas
        return bool(fn.__code__.co_flags & inspect.CO_COROUTINE)
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(getattr(fn, "__call__", None))
