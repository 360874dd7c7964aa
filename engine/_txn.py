"""One transaction's work each, for both backends: `*_txn(conn, ...)` functions.

Callers (the stores) own BEGIN/COMMIT and the retry loop; ids and timestamps arrive as arguments so a
retried body cannot change them. Functions that take a `Claim` first fence on it (property 3).

The SQL is portable: `?` placeholders (the PostgreSQL adapter, `_pg_conn`, rewrites them) and nothing only
one dialect knows. Where PostgreSQL needs more than SQLite, `_locking` adds it: SQLite's `BEGIN IMMEDIATE`
serialises every writer, while PostgreSQL under READ COMMITTED lets two transactions read the same row, so
a transaction that reads before it writes locks what it read, always the task row(s) before the instance row
(one order everywhere, so two writers of one instance queue instead of deadlocking).
"""

from __future__ import annotations

import json
from typing import Any

import attrs

from ._errors import EventIdConflict, InstanceNotFound, InstanceTerminal
from ._records import to_datetime
from ._store import TASK_PRIORITY, Claim, DueTask, LeaseLost, LoadedRun, StepWrite, Suspension, WaitOutcome

TERMINAL = ("complete", "errored", "terminated")

_INSTANCE_COLUMNS = (
    "seq, workflow_name, instance_id, status, params, output, error_name, error_message, run_number, "
    "pause_requested, version, current_step, created_at, updated_at, started_at, completed_at"
)


def _locking(conn: Any, clause: str = "FOR UPDATE") -> str:
    """A row-lock clause where the backend needs one (PostgreSQL), else nothing (SQLite)."""
    return f" {clause}" if getattr(conn, "locks_rows", False) else ""


def _instance(conn: Any, workflow: str, instance_id: str) -> Any:
    """The instance row, locked for this transaction (with its task first) on PostgreSQL."""
    if getattr(conn, "locks_rows", False):
        conn.execute(
            "SELECT id FROM workflow_task WHERE workflow_name = ? AND instance_id = ? ORDER BY id FOR UPDATE",
            (workflow, instance_id),
        ).fetchall()
    row = conn.execute(
        f"SELECT {_INSTANCE_COLUMNS} FROM workflow_instance WHERE workflow_name = ? AND instance_id = ?"
        + _locking(conn),
        (workflow, instance_id),
    ).fetchone()
    if row is None:
        raise InstanceNotFound(f"no instance {instance_id!r} of workflow {workflow!r}")
    return row


def _insert_task(
    conn: Any, workflow: str, instance_id: str, run_number: int, kind: str, run_at: float
) -> None:
    conn.execute(
        "INSERT INTO workflow_task (workflow_name, instance_id, run_number, kind, priority, run_at, status) "
        "VALUES (?, ?, ?, ?, ?, ?, 'pending')",
        (workflow, instance_id, run_number, kind, TASK_PRIORITY[kind], run_at),
    )


# --- instance management -------------------------------------------------------------------------


def create_instances_txn(
    conn: Any, workflow: str, items: list[tuple[str, str]], now: float
) -> list[str]:
    """Insert instances (id, params JSON) with a `run` task each; existing ids are skipped (idempotent)."""
    created = []
    for instance_id, params in items:
        cur = conn.execute(
            "INSERT INTO workflow_instance (workflow_name, instance_id, status, params, created_at, updated_at) "
            "VALUES (?, ?, 'queued', ?, ?, ?) ON CONFLICT (workflow_name, instance_id) DO NOTHING",
            (workflow, instance_id, params, now, now),
        )
        if cur.rowcount:
            _insert_task(conn, workflow, instance_id, 1, "run", now)
            created.append(instance_id)
    return created


def get_instance_txn(conn: Any, workflow: str, instance_id: str) -> dict[str, Any] | None:
    """The instance row as a dict, or None."""
    row = conn.execute(
        f"SELECT {_INSTANCE_COLUMNS} FROM workflow_instance WHERE workflow_name = ? AND instance_id = ?",
        (workflow, instance_id),
    ).fetchone()
    return dict(row) if row is not None else None


def list_instances_txn(
    conn: Any, workflow: str, status: str | None, limit: int, after: int | None
) -> list[dict[str, Any]]:
    """Instances in creation order after cursor `after` (a seq); `limit + 1` rows tell if more exist."""
    sql = f"SELECT {_INSTANCE_COLUMNS} FROM workflow_instance WHERE workflow_name = ? AND seq > ?"
    args: list[Any] = [workflow, after if after is not None else -1]
    if status is not None:
        sql += " AND status = ?"
        args.append(status)
    sql += " ORDER BY seq LIMIT ?"
    args.append(limit + 1)
    return [dict(r) for r in conn.execute(sql, args)]


def history_txn(
    conn: Any, workflow: str, instance_id: str, run_number: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Steps of one run in execution order, and the events sent to that run in send order."""
    steps = [
        dict(r)
        for r in conn.execute(
            "SELECT * FROM workflow_step WHERE workflow_name = ? AND instance_id = ? AND run_number = ? "
            "ORDER BY position",
            (workflow, instance_id, run_number),
        )
    ]
    events = [
        dict(r)
        for r in conn.execute(
            "SELECT * FROM workflow_event WHERE workflow_name = ? AND instance_id = ? AND run_number = ? "
            "ORDER BY id",
            (workflow, instance_id, run_number),
        )
    ]
    return steps, events


def _waiting_for(conn: Any, workflow: str, instance_id: str, run_number: int) -> Any:
    row: Any = conn.execute(
        "SELECT step_key, wait_event_type, wait_match, wake_at FROM workflow_step "
        "WHERE workflow_name = ? AND instance_id = ? AND run_number = ? AND status = 'waiting' "
        "AND type = 'wait_for_event'",
        (workflow, instance_id, run_number),
    ).fetchone()
    return row


def send_event_txn(
    conn: Any, workflow: str, instance_id: str, event_id: str | None, type: str,
    payload: str, now: float,
) -> str:
    """Buffer an event; wake the instance if it waits for this type. Returns 'sent' or 'duplicate'."""
    if event_id is not None:
        existing = conn.execute(
            "SELECT instance_id FROM workflow_event WHERE workflow_name = ? AND event_id = ?",
            (workflow, event_id),
        ).fetchone()
        if existing is not None:
            if existing[0] != instance_id:
                raise EventIdConflict(
                    f"event id {event_id!r} was already used for instance {existing[0]!r} of {workflow!r}"
                )
            return "duplicate"
    inst = _instance(conn, workflow, instance_id)
    if inst["status"] in TERMINAL:
        raise InstanceTerminal(f"instance {instance_id!r} is {inst['status']}; it accepts no events")
    conn.execute(
        "INSERT INTO workflow_event (workflow_name, instance_id, run_number, event_id, type, payload, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (workflow, instance_id, inst["run_number"], event_id, type, payload, now),
    )
    waiting = _waiting_for(conn, workflow, instance_id, inst["run_number"])
    if waiting is not None and waiting["wait_event_type"] == type:
        # Only a pending task is moved; a processing runner re-checks the buffer in suspend_txn.
        conn.execute(
            "UPDATE workflow_task SET kind = 'wake', priority = 0, "
            "run_at = CASE WHEN run_at <= ? THEN run_at ELSE ? END "
            "WHERE workflow_name = ? AND instance_id = ? AND run_number = ? AND status = 'pending'",
            (now, now, workflow, instance_id, inst["run_number"]),
        )
    return "sent"


def pause_txn(conn: Any, workflow: str, instance_id: str, now: float) -> str:
    """Pause now if no runner holds a live lease, else request pause at the next step boundary."""
    inst = _instance(conn, workflow, instance_id)
    if inst["status"] in TERMINAL:
        raise InstanceTerminal(f"instance {instance_id!r} is {inst['status']}; it cannot be paused")
    if inst["status"] == "paused":
        return "paused"
    in_flight = conn.execute(
        "SELECT 1 FROM workflow_task WHERE workflow_name = ? AND instance_id = ? AND status = 'processing' "
        "AND locked_until >= ?",
        (workflow, instance_id, now),
    ).fetchone()
    if in_flight is not None:
        conn.execute(
            "UPDATE workflow_instance SET pause_requested = 1, updated_at = ?, version = version + 1 "
            "WHERE workflow_name = ? AND instance_id = ?",
            (now, workflow, instance_id),
        )
        return "requested"
    _apply_pause(conn, workflow, instance_id, now)
    return "paused"


def _apply_pause(conn: Any, workflow: str, instance_id: str, now: float) -> None:
    # A paused instance has no task, so it is neither claimed nor polled (property 6).
    conn.execute("DELETE FROM workflow_task WHERE workflow_name = ? AND instance_id = ?", (workflow, instance_id))
    conn.execute(
        "UPDATE workflow_instance SET status = 'paused', pause_requested = 0, updated_at = ?, "
        "version = version + 1 WHERE workflow_name = ? AND instance_id = ?",
        (now, workflow, instance_id),
    )


def resume_txn(conn: Any, workflow: str, instance_id: str, now: float) -> str:
    """Resume a paused instance with a `resume` task; cancel a pending pause request; else no-op."""
    inst = _instance(conn, workflow, instance_id)
    if inst["status"] in TERMINAL:
        raise InstanceTerminal(f"instance {instance_id!r} is {inst['status']}; it cannot be resumed")
    if inst["status"] == "paused":
        conn.execute(
            "UPDATE workflow_instance SET status = 'queued', pause_requested = 0, updated_at = ?, "
            "version = version + 1 WHERE workflow_name = ? AND instance_id = ?",
            (now, workflow, instance_id),
        )
        _insert_task(conn, workflow, instance_id, inst["run_number"], "resume", now)
        return "resumed"
    if inst["pause_requested"]:
        conn.execute(
            "UPDATE workflow_instance SET pause_requested = 0, updated_at = ?, version = version + 1 "
            "WHERE workflow_name = ? AND instance_id = ?",
            (now, workflow, instance_id),
        )
        return "cancelled"
    return "noop"


def terminate_txn(conn: Any, workflow: str, instance_id: str, now: float) -> str:
    """Terminal at once; deleting the task fences any runner still executing it (terminate beats completion)."""
    inst = _instance(conn, workflow, instance_id)
    if inst["status"] in TERMINAL:
        raise InstanceTerminal(f"instance {instance_id!r} is already {inst['status']}")
    conn.execute("DELETE FROM workflow_task WHERE workflow_name = ? AND instance_id = ?", (workflow, instance_id))
    conn.execute(
        "UPDATE workflow_instance SET status = 'terminated', pause_requested = 0, updated_at = ?, "
        "completed_at = ?, version = version + 1 WHERE workflow_name = ? AND instance_id = ?",
        (now, now, workflow, instance_id),
    )
    return "terminated"


def restart_txn(conn: Any, workflow: str, instance_id: str, now: float) -> int:
    """Start run N+1 from any status; the old run's task goes, so a stale runner is fenced out."""
    inst = _instance(conn, workflow, instance_id)
    run_number = inst["run_number"] + 1
    conn.execute("DELETE FROM workflow_task WHERE workflow_name = ? AND instance_id = ?", (workflow, instance_id))
    conn.execute(
        "UPDATE workflow_instance SET status = 'queued', run_number = ?, output = NULL, error_name = NULL, "
        "error_message = NULL, pause_requested = 0, current_step = NULL, started_at = NULL, "
        "completed_at = NULL, updated_at = ?, version = version + 1 WHERE workflow_name = ? AND instance_id = ?",
        (run_number, now, workflow, instance_id),
    )
    _insert_task(conn, workflow, instance_id, run_number, "run", now)
    return int(run_number)


# --- runner ----------------------------------------------------------------------------------------


def find_due_txn(conn: Any, workflows: tuple[str, ...], now: float, limit: int) -> list[DueTask]:
    """Due tasks in priority order wake, retry, resume, run, then run_at, then id (property 2).

    A processing task whose lease expired is due again: its runner is presumed dead.
    """
    marks = ",".join("?" * len(workflows))
    rows = conn.execute(
        "SELECT id, workflow_name, instance_id, run_number, kind, run_at, version, status FROM workflow_task "
        f"WHERE workflow_name IN ({marks}) AND ((status = 'pending' AND run_at <= ?) "
        "OR (status = 'processing' AND locked_until < ?)) ORDER BY priority, run_at, id LIMIT ?",
        (*workflows, now, now, limit),
    ).fetchall()
    return [
        DueTask(id=r[0], workflow=r[1], instance_id=r[2], run_number=r[3], kind=r[4], run_at=r[5],
                version=r[6], status=r[7])
        for r in rows
    ]


def next_due_txn(conn: Any, workflows: tuple[str, ...]) -> float | None:
    """When the next task of these workflows falls due (a pending run_at or a lease's end), or None.

    An idle worker sleeps until then at most, so a retry or a wake-up is not late by a whole poll interval.
    """
    marks = ",".join("?" * len(workflows))
    row = conn.execute(
        "SELECT MIN(CASE WHEN status = 'pending' THEN run_at ELSE locked_until END) FROM workflow_task "
        f"WHERE workflow_name IN ({marks})",
        workflows,
    ).fetchone()
    return None if row is None or row[0] is None else float(row[0])


def claim_txn(
    conn: Any, task: DueTask, owner: str, now: float, lease_until: float
) -> Claim | None:
    """Optimistic claim: succeeds only if the row is unchanged since it was found and still due.

    On PostgreSQL the row is first locked with SKIP LOCKED: a task another transaction holds right now is
    left to it rather than waited for (competing runners never queue on one row).
    """
    if getattr(conn, "locks_rows", False) and conn.execute(
        "SELECT id FROM workflow_task WHERE id = ? FOR UPDATE SKIP LOCKED", (task.id,)
    ).fetchone() is None:
        return None
    cur = conn.execute(
        "UPDATE workflow_task SET status = 'processing', lock_owner = ?, locked_until = ?, version = version + 1 "
        "WHERE id = ? AND version = ? AND ((status = 'pending' AND run_at <= ?) "
        "OR (status = 'processing' AND locked_until < ?))",
        (owner, lease_until, task.id, task.version, now, now),
    )
    if cur.rowcount != 1:
        return None
    conn.execute(
        "UPDATE workflow_instance SET status = 'running', started_at = COALESCE(started_at, ?), updated_at = ?, "
        "version = version + 1 WHERE workflow_name = ? AND instance_id = ? AND status NOT IN "
        "('complete', 'errored', 'terminated', 'paused')",
        (now, now, task.workflow, task.instance_id),
    )
    return Claim(task_id=task.id, version=task.version + 1, owner=owner, workflow=task.workflow,
                 instance_id=task.instance_id, run_number=task.run_number, kind=task.kind, lease_until=lease_until)


def load_run_txn(conn: Any, claim: Claim) -> LoadedRun | None:
    """The instance's params and the claimed run's steps; None if the run is no longer current."""
    inst = conn.execute(
        "SELECT status, params, created_at, run_number FROM workflow_instance "
        "WHERE workflow_name = ? AND instance_id = ?",
        (claim.workflow, claim.instance_id),
    ).fetchone()
    if inst is None or inst[3] != claim.run_number:
        return None
    steps = tuple(
        dict(r)
        for r in conn.execute(
            "SELECT step_key, type, status, attempts, next_retry_at, wake_at, result, error_name, error_message "
            "FROM workflow_step WHERE workflow_name = ? AND instance_id = ? AND run_number = ? ORDER BY position",
            (claim.workflow, claim.instance_id, claim.run_number),
        )
    )
    return LoadedRun(status=inst[0], params=inst[1], created_at=inst[2], run_number=inst[3], steps=steps)


def fence_txn(conn: Any, claim: Claim, now: float, lease_until: float) -> None:
    """Check this runner still holds the task, or raise LeaseLost (property 3); renew the lease if needed.

    The lease is rewritten only once less than half of it is left: a step commit then touches no task
    page, which keeps the hot path's transaction small. `lease_until <= now` means "release now".
    """
    until = held_until_txn(conn, claim, now, lock=True)
    if until is None:
        raise LeaseLost(f"runner {claim.owner} lost task {claim.task_id} of {claim.instance_id!r}")
    if until - now < (lease_until - now) / 2:
        conn.execute("UPDATE workflow_task SET locked_until = ? WHERE id = ?", (lease_until, claim.task_id))


def renew_txn(conn: Any, claim: Claim, now: float, lease_until: float) -> None:
    """Heartbeat: fence, then always extend the lease to `lease_until` (a step commit extends only past
    half-life; a heartbeat runs while a long callback is in flight and must not be skipped)."""
    if held_until_txn(conn, claim, now, lock=True) is None:
        raise LeaseLost(f"runner {claim.owner} lost task {claim.task_id} of {claim.instance_id!r}")
    conn.execute("UPDATE workflow_task SET locked_until = ? WHERE id = ?", (lease_until, claim.task_id))


def held_until_txn(conn: Any, claim: Claim, now: float, *, lock: bool = False) -> float | None:
    """When this claim's lease ends, or None if the claim no longer holds a live lease.

    `lock` (inside a fenced write) keeps the task row locked to the end of the transaction on PostgreSQL, so
    no claim can slip in between this check and the write it guards.
    """
    row = conn.execute(
        "SELECT locked_until FROM workflow_task WHERE id = ? AND lock_owner = ? AND version = ? "
        "AND status = 'processing' AND locked_until >= ?" + (_locking(conn) if lock else ""),
        (claim.task_id, claim.owner, claim.version, now),
    ).fetchone()
    return None if row is None else float(row[0])


def _write_step(conn: Any, claim: Claim, step: StepWrite, now: float) -> bool:
    """Upsert the step row and bump the instance version; returns whether a pause is requested."""
    cur = conn.execute(
        "INSERT INTO workflow_step (workflow_name, instance_id, run_number, step_key, position, name, type, "
        "status, attempts, max_attempts, next_retry_at, wake_at, wait_event_type, wait_match, result, "
        "error_name, error_message, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (workflow_name, instance_id, run_number, step_key) DO UPDATE SET status = excluded.status, "
        "attempts = excluded.attempts, max_attempts = excluded.max_attempts, "
        "next_retry_at = excluded.next_retry_at, wake_at = excluded.wake_at, "
        "wait_event_type = excluded.wait_event_type, wait_match = excluded.wait_match, "
        "result = excluded.result, error_name = excluded.error_name, error_message = excluded.error_message, "
        "updated_at = excluded.updated_at WHERE workflow_step.status NOT IN ('completed', 'errored')",
        (claim.workflow, claim.instance_id, claim.run_number, step.key, step.position, step.name, step.type,
         step.status, step.attempts, step.max_attempts, step.next_retry_at, step.wake_at, step.wait_event_type,
         step.wait_match, step.result, step.error_name, step.error_message, now),
    )
    if cur.rowcount != 1:
        # A finished step is never overwritten: a second completion is a conflict (STYLE: DBOS).
        raise LeaseLost(f"step {step.key!r} of {claim.instance_id!r} is already finished")
    requested = conn.execute(
        "UPDATE workflow_instance SET version = version + 1, updated_at = ?, current_step = ? "
        "WHERE workflow_name = ? AND instance_id = ? RETURNING pause_requested",
        (now, step.key, claim.workflow, claim.instance_id),
    ).fetchone()
    return bool(requested[0])


def _hand_back(
    conn: Any, claim: Claim, suspension: Suspension, now: float, pause_requested: bool
) -> bool:
    """Return the task as pending (or pause the instance if asked); True if the instance is now paused."""
    if _pause_if(conn, claim, now, pause_requested):
        return True
    run_at = suspension.run_at
    kind = suspension.kind
    waiting = _waiting_for(conn, claim.workflow, claim.instance_id, claim.run_number)
    if waiting is not None and _first_event(conn, claim, waiting["wait_event_type"],
                                             _load_match(waiting["wait_match"]), waiting["wake_at"]) is not None:
        # An event arrived while we ran: never reschedule past it (the lost wake-up bug).
        run_at, kind = min(run_at, now), "wake"
    conn.execute(
        "UPDATE workflow_task SET status = 'pending', kind = ?, priority = ?, run_at = ?, lock_owner = NULL, "
        "locked_until = NULL WHERE id = ?",
        (kind, TASK_PRIORITY[kind], run_at, claim.task_id),
    )
    conn.execute(
        "UPDATE workflow_instance SET status = 'waiting', updated_at = ?, version = version + 1 "
        "WHERE workflow_name = ? AND instance_id = ?",
        (now, claim.workflow, claim.instance_id),
    )
    return False


def _pause_if(conn: Any, claim: Claim, now: float, requested: bool) -> bool:
    """Apply a requested pause at this step boundary; True if the instance is now paused."""
    if requested:
        _apply_pause(conn, claim.workflow, claim.instance_id, now)
    return requested


def commit_step_txn(
    conn: Any, claim: Claim, step: StepWrite, suspend: Suspension | None, now: float,
    lease_until: float,
) -> bool:
    """The hot path: fence + renew, the step row, the instance version, and an optional hand-back.

    Returns True if a pending pause took effect at this step boundary.
    """
    fence_txn(conn, claim, now, lease_until)
    requested = _write_step(conn, claim, step, now)
    if suspend is not None:
        return _hand_back(conn, claim, suspend, now, requested)
    return _pause_if(conn, claim, now, requested)


def _load_match(text: str | None) -> dict[str, Any] | None:
    return json.loads(text) if text else None


def _first_event(
    conn: Any, claim: Claim, type: str, match: dict[str, Any] | None, deadline: float
) -> Any:
    # Same-type events of this run are consumed in send order; one created after the deadline never counts
    # (property 5), nor one sent to an earlier run (issue 10: a stale webhook must not finish a restart).
    for row in conn.execute(
        "SELECT id, type, payload, created_at FROM workflow_event WHERE workflow_name = ? AND instance_id = ? "
        "AND run_number = ? AND type = ? AND consumed_run IS NULL AND created_at <= ? ORDER BY id",
        (claim.workflow, claim.instance_id, claim.run_number, type, deadline),
    ):
        if match is None:
            return row
        payload = json.loads(row["payload"])
        if isinstance(payload, dict) and all(payload.get(k) == v for k, v in match.items()):
            return row
    return None


def wait_event_txn(
    conn: Any, claim: Claim, step: StepWrite, match: dict[str, Any] | None, deadline: float,
    now: float, lease_until: float,
) -> WaitOutcome:
    """Consume the first matching buffered event, or time out, or park the instance until the deadline."""
    fence_txn(conn, claim, now, lease_until)
    assert step.wait_event_type is not None
    event = _first_event(conn, claim, step.wait_event_type, match, deadline)
    if event is not None:
        conn.execute(
            "UPDATE workflow_event SET consumed_by_step_key = ?, consumed_run = ?, delivered_at = ? WHERE id = ?",
            (step.key, claim.run_number, now, event["id"]),
        )
        # Stored in the shape every ReceivedEvent has in results and outputs (DESIGN §2: ISO-8601 UTC).
        sent = to_datetime(event["created_at"])
        assert sent is not None
        result = json.dumps({"type": event["type"], "payload": json.loads(event["payload"]),
                             "timestamp": sent.isoformat()}, separators=(",", ":"))
        requested = _write_step(conn, claim, _with(step, status="completed", result=result), now)
        return WaitOutcome(paused=_pause_if(conn, claim, now, requested), event=dict(event))
    if now >= deadline:
        requested = _write_step(conn, claim, _with(step, status="errored", error_name="WaitForEventTimeout",
                                error_message=f"no {step.wait_event_type!r} event before the deadline"), now)
        return WaitOutcome(paused=_pause_if(conn, claim, now, requested), timed_out=True)
    requested = _write_step(conn, claim, step, now)
    return WaitOutcome(paused=_hand_back(conn, claim, Suspension("wake", deadline), now, requested))


def _with(step: StepWrite, **changes: Any) -> StepWrite:
    return attrs.evolve(step, **changes)


def _pause_requested(conn: Any, claim: Claim) -> bool:
    # Locked on PostgreSQL: a pause or an event arriving now waits for this hand-back, then sees it.
    row = conn.execute(
        "SELECT pause_requested FROM workflow_instance WHERE workflow_name = ? AND instance_id = ?"
        + _locking(conn),
        (claim.workflow, claim.instance_id),
    ).fetchone()
    return bool(row[0])


def suspend_txn(
    conn: Any, claim: Claim, suspension: Suspension, now: float, lease_until: float
) -> bool:
    """Hand the task back without writing a step (a replay that found nothing new to do)."""
    fence_txn(conn, claim, now, lease_until)
    requested = _pause_requested(conn, claim)
    return _hand_back(conn, claim, suspension, now, requested)


def release_txn(conn: Any, claim: Claim, now: float, lease_until: float) -> None:
    """Give a claimed task back, due now and with its kind kept, so another runner need not wait out the
    lease (graceful stop). The instance shows `queued` until a runner claims it again; a pause requested
    meanwhile takes effect here, this being a step boundary."""
    fence_txn(conn, claim, now, lease_until)
    requested = _pause_requested(conn, claim)
    if _pause_if(conn, claim, now, requested):
        return
    conn.execute(
        "UPDATE workflow_task SET status = 'pending', run_at = ?, lock_owner = NULL, locked_until = NULL "
        "WHERE id = ?",
        (now, claim.task_id),
    )
    conn.execute(
        "UPDATE workflow_instance SET status = 'queued', updated_at = ?, version = version + 1 "
        "WHERE workflow_name = ? AND instance_id = ? AND status = 'running'",
        (now, claim.workflow, claim.instance_id),
    )


def finish_txn(
    conn: Any, claim: Claim, status: str, output: str | None, error: tuple[str, str] | None,
    now: float, lease_until: float,
) -> None:
    """Make the instance terminal and drop its task; fenced, so a terminated instance stays terminated."""
    fence_txn(conn, claim, now, lease_until)
    conn.execute("DELETE FROM workflow_task WHERE id = ?", (claim.task_id,))
    conn.execute(
        "UPDATE workflow_instance SET status = ?, output = ?, error_name = ?, error_message = ?, "
        "pause_requested = 0, completed_at = ?, updated_at = ?, version = version + 1 "
        "WHERE workflow_name = ? AND instance_id = ?",
        (status, output, error[0] if error else None, error[1] if error else None, now, now,
         claim.workflow, claim.instance_id),
    )
