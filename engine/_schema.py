"""Versioned schema migrations; each is applied with its bookkeeping row in one transaction."""

from __future__ import annotations

import sqlite3

MIGRATIONS: tuple[tuple[int, str], ...] = (
    (
        1,
        """
CREATE TABLE workflow_instance (
    seq INTEGER PRIMARY KEY,
    workflow_name TEXT NOT NULL,
    instance_id TEXT NOT NULL,
    status TEXT NOT NULL,
    params TEXT NOT NULL,
    output TEXT,
    error_name TEXT,
    error_message TEXT,
    run_number INTEGER NOT NULL DEFAULT 1,
    pause_requested INTEGER NOT NULL DEFAULT 0,
    version INTEGER NOT NULL DEFAULT 0,
    current_step TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    started_at REAL,
    completed_at REAL,
    UNIQUE (workflow_name, instance_id)
);
CREATE INDEX workflow_instance_by_status ON workflow_instance (workflow_name, status, seq);

CREATE TABLE workflow_step (
    workflow_name TEXT NOT NULL,
    instance_id TEXT NOT NULL,
    run_number INTEGER NOT NULL,
    step_key TEXT NOT NULL,
    position INTEGER NOT NULL,
    name TEXT NOT NULL,
    type TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER,
    next_retry_at REAL,
    wake_at REAL,
    wait_event_type TEXT,
    wait_match TEXT,
    result TEXT,
    error_name TEXT,
    error_message TEXT,
    updated_at REAL NOT NULL,
    PRIMARY KEY (workflow_name, instance_id, run_number, step_key),
    FOREIGN KEY (workflow_name, instance_id)
        REFERENCES workflow_instance (workflow_name, instance_id) ON DELETE CASCADE
);
-- Partial: only waiting steps are looked up by status, and completed rows then cost no index write.
CREATE INDEX workflow_step_waiting ON workflow_step (workflow_name, instance_id, run_number)
    WHERE status = 'waiting';

CREATE TABLE workflow_event (
    id INTEGER PRIMARY KEY,
    workflow_name TEXT NOT NULL,
    instance_id TEXT NOT NULL,
    event_id TEXT,
    type TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at REAL NOT NULL,
    consumed_by_step_key TEXT,
    consumed_run INTEGER,
    delivered_at REAL,
    FOREIGN KEY (workflow_name, instance_id)
        REFERENCES workflow_instance (workflow_name, instance_id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX workflow_event_idempotency ON workflow_event (workflow_name, event_id)
    WHERE event_id IS NOT NULL;
CREATE INDEX workflow_event_buffer ON workflow_event (workflow_name, instance_id, type, consumed_run, id);

CREATE TABLE workflow_task (
    -- AUTOINCREMENT: a task id is never reused, so a stale claim (id, owner, version) can never match a
    -- task created later for a resume or restart (property 3).
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    workflow_name TEXT NOT NULL,
    instance_id TEXT NOT NULL,
    run_number INTEGER NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('wake', 'retry', 'resume', 'run')),
    priority INTEGER NOT NULL,
    run_at REAL NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'processing')),
    lock_owner TEXT,
    locked_until REAL,
    version INTEGER NOT NULL DEFAULT 0,
    UNIQUE (workflow_name, instance_id, run_number),
    FOREIGN KEY (workflow_name, instance_id)
        REFERENCES workflow_instance (workflow_name, instance_id) ON DELETE CASCADE
);
CREATE INDEX workflow_task_due ON workflow_task (status, priority, run_at, id);
CREATE INDEX workflow_task_lease ON workflow_task (status, locked_until);
CREATE INDEX workflow_task_instance ON workflow_task (workflow_name, instance_id);
""",
    ),
    (
        2,
        """
-- Events belong to the run that was current when they were sent: restart never hands an older run's
-- unconsumed events to the new run (issue 10). Older rows take the run that consumed them, else the
-- instance's current run (what they would have been delivered to).
ALTER TABLE workflow_event ADD COLUMN run_number INTEGER NOT NULL DEFAULT 1;
UPDATE workflow_event SET run_number = COALESCE(consumed_run, (
    SELECT i.run_number FROM workflow_instance i
    WHERE i.workflow_name = workflow_event.workflow_name AND i.instance_id = workflow_event.instance_id));
DROP INDEX workflow_event_buffer;
CREATE INDEX workflow_event_buffer ON workflow_event (workflow_name, instance_id, run_number, type, consumed_run, id);
""",
    ),
)


def split_statements(script: str) -> list[str]:
    """Split SQL into statements with sqlite3.complete_statement, never on ';' (STYLE: storage)."""
    statements: list[str] = []
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            if buffer.strip():
                statements.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        raise ValueError(f"incomplete SQL statement in migration: {buffer.strip()[:80]!r}")
    return statements


def _applied(conn: sqlite3.Connection) -> set[int]:
    try:
        return {int(r[0]) for r in conn.execute("SELECT version FROM schema_migrations")}
    except sqlite3.OperationalError:  # no table yet: a new database
        return set()


def migrate(conn: sqlite3.Connection) -> list[int]:
    """Apply every pending migration; returns the versions applied. Safe to run from many processes.

    A database already at the latest version is only read: opening an engine then never waits for the write
    lock, which a busy (or stopped) process may hold for longer than the busy timeout (found by `stepsim
    chaos`: a worker restarted while another was SIGSTOPped in a write died at start).
    """
    if {version for version, _ in MIGRATIONS} <= _applied(conn):
        return []
    conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY)")
    applied: list[int] = []
    for version, script in MIGRATIONS:
        conn.execute("BEGIN IMMEDIATE")
        try:
            done = conn.execute("SELECT 1 FROM schema_migrations WHERE version = ?", (version,)).fetchone()
            if done is None:
                for statement in split_statements(script):
                    conn.execute(statement)
                conn.execute("INSERT INTO schema_migrations (version) VALUES (?)", (version,))
                applied.append(version)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return applied
