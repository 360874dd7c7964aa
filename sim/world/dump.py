"""Canonical database dumps: for failure artifacts and for state fingerprints (explorer)."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from typing import Any

import sqlite_utils

TABLES = ("workflow_instance", "workflow_step", "workflow_event", "workflow_task")


def dump_database(conn: Any) -> str:
    """Every engine table as sorted JSON lines: a stable, diffable picture of the store (either backend)."""
    if not isinstance(conn, sqlite3.Connection):
        return "\n".join(json.dumps({"table": table, **dict(row)}, sort_keys=True, default=str)
                         for table, order in _ORDER.items()
                         for row in conn.execute(f"SELECT * FROM {table} ORDER BY {order}")) + "\n"
    db = sqlite_utils.Database(conn)
    lines = []
    for name in TABLES:
        table = db.table(name)
        pks = table.pks
        for row in sorted(table.rows, key=lambda r: tuple(str(r[k]) for k in pks)):
            lines.append(json.dumps({"table": name, **row}, sort_keys=True, default=str))
    return "\n".join(lines) + "\n"


_ORDER = {
    "workflow_instance": "workflow_name, instance_id",
    "workflow_step": "workflow_name, instance_id, run_number, step_key",
    "workflow_event": "id",
    "workflow_task": "id",
}


def state_rows(conn: Any) -> list[tuple[str, tuple[object, ...]]]:
    """Every engine table's rows in key order, tagged with the table: the database part of a state.

    Plain SELECTs rather than dump_database's introspection: the explorer reads thousands of states.
    """
    return [(table, tuple(row)) for table, order in _ORDER.items()
            for row in conn.execute(f"SELECT * FROM {table} ORDER BY {order}")]


def fingerprint(conn: Any, extra: str = "") -> str:
    """blake2b-128 of every engine table's rows in key order, plus `extra` (e.g. the clock and runners)."""
    return digest_rows(state_rows(conn), extra)


def digest_rows(rows: list[tuple[str, tuple[object, ...]]], extra: str) -> str:
    """blake2b-128 of `extra` and the rows (as `state_rows` returns them)."""
    digest = hashlib.blake2b(extra.encode(), digest_size=16)
    for _, row in rows:
        digest.update(repr(row).encode())
    return digest.hexdigest()
