"""The store both backends share: the `Store` protocol's methods over `*_txn` functions, and the retry loop.

A backend (`SqliteStore`, `PostgresStore`) supplies only how one transaction runs (`run_txn`), how a read
runs (`query`, `read`), which errors mean "rolled back, try again" (`is_transient`) and where blocking work
runs (`blocking`: inline for SQLite, off the event loop for PostgreSQL's network round trips). Everything
else, including the order of fence, write and hand-back, is written once here and in `_txn`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from . import _txn as txn
from ._errors import StoreUnavailable
from ._runtime import Runtime
from ._store import Claim, DueTask, LeaseLost, LoadedRun, StepWrite, Suspension, WaitOutcome

T = TypeVar("T")

RETRIES = 8
BACKOFF = 0.005


class TxnStore:
    """The shared half of a store; subclasses own the connection(s) and the transaction itself."""

    runtime: Runtime

    def now(self) -> float:
        """The scheduling clock."""
        raise NotImplementedError

    def run_txn(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(conn, *args)` as one write transaction; roll back on any error."""
        raise NotImplementedError

    def query(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a one-statement read `fn(conn, *args)` outside any transaction."""
        raise NotImplementedError

    def read(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a multi-statement read `fn(conn, *args)` in one snapshot."""
        raise NotImplementedError

    def is_transient(self, exc: BaseException) -> bool:
        """Whether `exc` means the transaction rolled back and may simply run again."""
        raise NotImplementedError

    async def blocking(self, fn: Callable[[], T]) -> T:
        """Where a synchronous database call runs; inline unless a backend says otherwise."""
        return fn()

    async def wait_for_work(self, workflows: tuple[str, ...], timeout: float) -> None:
        """Idle between empty ticks: here simply for `timeout` (PostgreSQL also wakes on NOTIFY)."""
        await self.runtime.sleep(timeout)

    def close(self) -> None:
        """Release the store's connections."""

    async def aclose(self) -> None:
        """Close from the event loop (a backend with background tasks ends them first)."""
        self.close()

    def unavailable(self, exc: BaseException) -> StoreUnavailable | None:
        """The coded error for a failure that outlived the retries (or cannot be retried), if it means the
        database is unreachable or a commit's outcome unknown; None lets `exc` through as it is."""
        return None

    async def _query(self, fn: Callable[..., T], *args: Any) -> T:
        # Reads change nothing, so every transient failure of one is worth another try.
        return await self._retrying(lambda: self.query(fn, *args))

    async def _read(self, fn: Callable[..., T], *args: Any) -> T:
        return await self._retrying(lambda: self.read(fn, *args))

    async def _retrying(self, attempt_once: Callable[[], T]) -> T:
        """Bounded retry of transient failures (the transaction rolled back, so a retry is safe); waits go
        through the runtime. The one retry loop of the store: reads, `write` and `fenced` differ only in
        what they retry. What it gives up on leaves as the backend's coded error (`unavailable`)."""
        for attempt in range(RETRIES):
            try:
                return await self.blocking(attempt_once)
            except Exception as exc:
                if not self.is_transient(exc) or attempt == RETRIES - 1:
                    coded = self.unavailable(exc)
                    if coded is None:
                        raise
                    raise coded from exc
            await self.runtime.sleep(BACKOFF * 2**attempt)
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    async def write(self, fn: Callable[..., T], *args: Any) -> T:
        """One write transaction; its arguments (ids, timestamps) are fixed before any retry."""
        return await self._retrying(lambda: self.run_txn(fn, *args))

    async def fenced(self, fn: Callable[..., T], *args: Any, lease: float) -> T:
        """A write fenced on a claim: `now` and `now + lease` are read afresh for every try.

        A fence checked against a `now` computed before a busy-retry sleep would let a runner commit after
        its lease ran out while it slept (found by the simulator: busy fault + clock jump, property 3).
        """

        def attempt_once() -> T:
            now = self.now()
            return self.run_txn(fn, *args, now, now + lease)

        return await self._retrying(attempt_once)

    # -- instance management --------------------------------------------------------------------

    async def create_instances(self, workflow: str, items: list[tuple[str, str]], now: float) -> list[str]:
        return await self.write(txn.create_instances_txn, workflow, items, now)

    async def get_instance(self, workflow: str, instance_id: str) -> dict[str, Any] | None:
        return await self._query(txn.get_instance_txn, workflow, instance_id)

    async def list_instances(
        self, workflow: str, status: str | None, limit: int, after: int | None
    ) -> list[dict[str, Any]]:
        return await self._query(txn.list_instances_txn, workflow, status, limit, after)

    async def history(
        self, workflow: str, instance_id: str, run_number: int
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        return await self._read(txn.history_txn, workflow, instance_id, run_number)

    async def send_event(
        self, workflow: str, instance_id: str, event_id: str | None, type: str, payload: str, now: float
    ) -> str:
        return await self.write(txn.send_event_txn, workflow, instance_id, event_id, type, payload, now)

    async def pause(self, workflow: str, instance_id: str, now: float) -> str:
        return await self.write(txn.pause_txn, workflow, instance_id, now)

    async def resume(self, workflow: str, instance_id: str, now: float) -> str:
        return await self.write(txn.resume_txn, workflow, instance_id, now)

    async def terminate(self, workflow: str, instance_id: str, now: float) -> str:
        return await self.write(txn.terminate_txn, workflow, instance_id, now)

    async def restart(self, workflow: str, instance_id: str, now: float) -> int:
        return await self.write(txn.restart_txn, workflow, instance_id, now)

    # -- runner -----------------------------------------------------------------------------------

    async def find_due(self, workflows: tuple[str, ...], now: float, limit: int) -> list[DueTask]:
        return await self._query(txn.find_due_txn, workflows, now, limit)

    async def claim(self, task: DueTask, owner: str, lease: float) -> Claim | None:
        return await self.fenced(txn.claim_txn, task, owner, lease=lease)

    async def load_run(self, claim: Claim) -> LoadedRun | None:
        return await self._read(txn.load_run_txn, claim)

    async def holds_lease(self, claim: Claim) -> bool:
        return await self.held_until(claim) is not None

    async def held_until(self, claim: Claim) -> float | None:
        return await self._query(txn.held_until_txn, claim, self.now())

    async def renew_lease(self, claim: Claim, lease: float) -> bool:
        try:
            await self.fenced(txn.renew_txn, claim, lease=lease)
        except LeaseLost:
            return False
        return True

    async def commit_step(self, claim: Claim, step: StepWrite, suspend: Suspension | None, lease: float) -> bool:
        return await self.fenced(txn.commit_step_txn, claim, step, suspend, lease=lease)

    async def wait_event(
        self, claim: Claim, step: StepWrite, match: dict[str, Any] | None, deadline: float, lease: float
    ) -> WaitOutcome:
        return await self.fenced(txn.wait_event_txn, claim, step, match, deadline, lease=lease)

    async def suspend(self, claim: Claim, suspension: Suspension) -> bool:
        return await self.fenced(txn.suspend_txn, claim, suspension, lease=0.0)

    async def release(self, claim: Claim) -> None:
        await self.fenced(txn.release_txn, claim, lease=0.0)

    async def finish(
        self, claim: Claim, status: str, output: str | None, error: tuple[str, str] | None
    ) -> None:
        await self.fenced(txn.finish_txn, claim, status, output, error, lease=0.0)
