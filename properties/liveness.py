"""Property 9: with faults off and runners alive, every instance not paused ends within the bound."""

from __future__ import annotations

import sqlite3

from properties.violation import Violation


def _flag(conn: sqlite3.Connection, prop: str, columns: str, where: str, say: str) -> list[Violation]:
    """One violation of `prop` per instance row matching `where`; `say` is formatted with the row."""
    return [Violation(prop, say.format(**dict(r)), {"instance": dict(r)})
            for r in conn.execute(f"SELECT workflow_name, instance_id, run_number, {columns} "
                                  f"FROM workflow_instance WHERE {where} ORDER BY seq")]


def check_liveness(conn: sqlite3.Connection, bound: float) -> list[Violation]:
    """Instances still neither terminal nor paused after the liveness phase are violations."""
    return _flag(conn, "P9 liveness", "status, current_step",
                 "status NOT IN ('complete', 'errored', 'terminated', 'paused')",
                 "{instance_id} ({workflow_name}) is still {status} after "
                 f"{bound:g} s of healthy virtual time")


def check_replays(conn: sqlite3.Connection) -> list[Violation]:
    """The simulator's own workflows are deterministic, so no instance of theirs may end errored by a
    nondeterminism error: if one does, the engine mis-keyed or misplaced a step (e.g. a nested step)."""
    return _flag(conn, "P10 replay", "error_message",
                 "status = 'errored' AND error_name = 'NondeterminismError'",
                 "{instance_id} ({workflow_name}) errored as nondeterministic: {error_message}")
