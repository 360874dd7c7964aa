"""Property 9: with faults off and runners alive, every instance not paused ends within the bound."""

from __future__ import annotations

import sqlite3

from properties.violation import Violation


def check_liveness(conn: sqlite3.Connection, bound: float) -> list[Violation]:
    """Instances still neither terminal nor paused after the liveness phase are violations."""
    return [
        Violation("P9 liveness", f"{r['instance_id']} ({r['workflow_name']}) is still {r['status']} after "
                  f"{bound:g} s of healthy virtual time", {"instance": dict(r)})
        for r in conn.execute(
            "SELECT workflow_name, instance_id, status, run_number, current_step FROM workflow_instance "
            "WHERE status NOT IN ('complete', 'errored', 'terminated', 'paused') ORDER BY seq"
        )
    ]


def check_replays(conn: sqlite3.Connection) -> list[Violation]:
    """The simulator's own workflows are deterministic, so no instance of theirs may end errored by a
    nondeterminism error: if one does, the engine mis-keyed or misplaced a step (e.g. a nested step)."""
    return [
        Violation("P10 replay", f"{r['instance_id']} ({r['workflow_name']}) errored as nondeterministic: "
                  f"{r['error_message']}", {"instance": dict(r)})
        for r in conn.execute(
            "SELECT workflow_name, instance_id, run_number, error_message FROM workflow_instance "
            "WHERE status = 'errored' AND error_name = 'NondeterminismError' ORDER BY seq"
        )
    ]
