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
