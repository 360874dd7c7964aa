"""The chaos run's workflows: every step callback records its own execution in a side-effect table.

`chaos_effect` lives in the engine's database but is written outside the engine's transactions, on the
worker's own connection, the way a real side effect (a charge, an email) escapes the engine. Each row is
one callback execution; the step's committed result names the execution that won, so the history check
can tell a commit from a duplicate execution, and a duplicate from a legitimate retry.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from typing import Any

from engine import Retries, StepContext, WaitForEventTimeout, define_workflow

EFFECT_DDL = """
CREATE TABLE IF NOT EXISTS chaos_effect (
    exec_id TEXT PRIMARY KEY,
    workflow_name TEXT NOT NULL,
    instance_id TEXT NOT NULL,
    run_number INTEGER NOT NULL,
    step_key TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    worker TEXT NOT NULL,
    pid INTEGER NOT NULL,
    started_at DOUBLE PRECISION NOT NULL,
    ended_at DOUBLE PRECISION
)
"""
PAY_TIMEOUT = 8.0  # seconds an order waits for its payment; late payments are sent after it
LATE_EVERY = 10  # every tenth order is paid late on purpose (its wait must time out)
SLOW_EVERY = 7  # every seventh order's shipping takes SLOW_SECONDS, widening the window for kills
SLOW_SECONDS = 0.4
FAIL_EVERY = 5  # every fifth order's charge fails on its first attempt (a legitimate second execution)


class EffectLog:
    """This process's connection for side-effect rows (thread-safe: callbacks run on worker threads)."""

    def __init__(self, database: str, worker: str) -> None:
        self.database = database
        self.worker = worker
        self._lock = threading.Lock()
        self._conn: Any = None

    def _connection(self) -> Any:
        if self._conn is None:
            if self.database.startswith(("postgres://", "postgresql://")):
                import psycopg

                self._conn = psycopg.connect(self.database, autocommit=True, application_name="chaos-effects")
            else:
                self._conn = sqlite3.connect(self.database, isolation_level=None, check_same_thread=False,
                                             timeout=30.0)
        return self._conn

    def _execute(self, sql: str, params: tuple[Any, ...]) -> None:
        marks = sql if not self.database.startswith(("postgres://", "postgresql://")) else sql.replace("?", "%s")
        with self._lock:
            try:
                self._connection().execute(marks, params)
            except Exception:  # noqa: BLE001 - any driver's error on a killed connection
                # A dropped connection (the chaos run kills them): reconnect once and write again.
                self._conn = None
                self._connection().execute(marks, params)

    def started(self, ctx: StepContext) -> str:
        """Record the start of one execution; returns its id (what the step's result will carry)."""
        exec_id = f"{self.worker}:{os.getpid()}:{time.time_ns()}"
        self._execute(
            "INSERT INTO chaos_effect (exec_id, workflow_name, instance_id, run_number, step_key, attempt, "
            "worker, pid, started_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (exec_id, ctx.workflow, ctx.instance_id, ctx.run_number, ctx.step_key, ctx.attempt, self.worker,
             os.getpid(), time.time()))
        return exec_id

    def ended(self, exec_id: str) -> None:
        """Record that the execution's callback returned (not that its step committed)."""
        self._execute("UPDATE chaos_effect SET ended_at = ? WHERE exec_id = ?", (time.time(), exec_id))


def chaos_workflows(log: EffectLog) -> list[Any]:
    """The workflows a chaos run drives, recording into `log`."""

    def effect(slow: float = 0.0, fail_first: bool = False) -> Any:
        def callback(ctx: StepContext) -> str:
            exec_id = log.started(ctx)
            if slow:
                time.sleep(slow)
            if fail_first and ctx.attempt == 1:
                log.ended(exec_id)
                raise RuntimeError("first charge attempt declined")
            log.ended(exec_id)
            return exec_id

        return callback

    quick = Retries(limit=3, delay=0.05, backoff="constant")

    @define_workflow("chaos-order")
    async def order(event: Any, step: Any) -> Any:
        n = int(event.payload["n"])
        reserved = await step.do("reserve", effect(), retries=quick, timeout="30 s")
        try:
            paid = await step.wait_for_event("pay", type="pay", timeout=PAY_TIMEOUT)
        except WaitForEventTimeout:
            return {"n": n, "paid": None}
        first = await step.wait_for_event("item", type="item", timeout="5 min")
        second = await step.wait_for_event("item", type="item", timeout="5 min")
        charged = await step.do("charge", effect(fail_first=n % FAIL_EVERY == 0), retries=quick, timeout="30 s")
        await step.sleep("settle", 0.05)
        shipped = await step.do("ship", effect(slow=SLOW_SECONDS if n % SLOW_EVERY == 0 else 0.0), retries=quick,
                                timeout="30 s")
        return {"n": n, "paid": paid.payload["amount"], "items": [first.payload["seq"], second.payload["seq"]],
                "effects": [reserved, charged, shipped]}

    return [order]
