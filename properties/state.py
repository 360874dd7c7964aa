"""State invariants: plain functions over the store's tables at one moment (DESIGN §6 properties 4, 6, 7, 8)."""

from __future__ import annotations

import sqlite3
from typing import Any

from properties.violation import Violation

TERMINAL = ("complete", "errored", "terminated")


def instances(conn: sqlite3.Connection) -> dict[tuple[str, str], dict[str, Any]]:
    """Every instance row keyed by (workflow, instance_id)."""
    return {
        (r["workflow_name"], r["instance_id"]): dict(r)
        for r in conn.execute(
            "SELECT workflow_name, instance_id, status, run_number, output, error_name, error_message, "
            "pause_requested FROM workflow_instance ORDER BY seq"
        )
    }


def check_tasks(conn: sqlite3.Connection, insts: dict[tuple[str, str], dict[str, Any]]) -> list[Violation]:
    """Property 8 (+6): one task per non-terminal, non-paused instance, for its current run; none otherwise."""
    out: list[Violation] = []
    tasks: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in conn.execute("SELECT id, workflow_name, instance_id, run_number, status, kind FROM workflow_task"):
        tasks.setdefault((r["workflow_name"], r["instance_id"]), []).append(dict(r))
    for key, inst in insts.items():
        mine = tasks.pop(key, [])
        wants_task = inst["status"] not in TERMINAL and inst["status"] != "paused"
        if wants_task and len(mine) != 1:
            out.append(Violation("P8 one active task", f"{key[1]} is {inst['status']} with {len(mine)} tasks",
                                 {"instance": inst, "tasks": mine}))
        elif not wants_task and mine:
            prop = "P6 paused never polled" if inst["status"] == "paused" else "P8 one active task"
            out.append(Violation(prop, f"{key[1]} is {inst['status']} but still has a task",
                                 {"instance": inst, "tasks": mine}))
        for task in mine:
            if task["run_number"] != inst["run_number"]:
                out.append(Violation("P8 one active task", f"task of stale run {task['run_number']} for {key[1]}",
                                     {"instance": inst, "task": task}))
    for key, orphan in tasks.items():
        out.append(Violation("P8 one active task", f"task for unknown instance {key}", {"tasks": orphan}))
    return out


def check_attempts(conn: sqlite3.Connection) -> list[Violation]:
    """Property 7: a step never records more attempts than limit + 1."""
    return [
        Violation("P7 retries", f"step {r['step_key']} of {r['instance_id']} ran {r['attempts']} attempts, "
                  f"max {r['max_attempts']}", {"step": dict(r)})
        for r in conn.execute(
            "SELECT instance_id, run_number, step_key, attempts, max_attempts FROM workflow_step "
            "WHERE max_attempts IS NOT NULL AND attempts > max_attempts"
        )
    ]


class TerminalWatch:
    """Property 4: once terminal, an instance's run keeps its status, output and error until a restart."""

    def __init__(self) -> None:
        self.final: dict[tuple[str, str], tuple[Any, ...]] = {}

    def check(self, insts: dict[tuple[str, str], dict[str, Any]]) -> list[Violation]:
        out = []
        for key, inst in insts.items():
            seen = self.final.get(key)
            now = (inst["run_number"], inst["status"], inst["output"], inst["error_name"], inst["error_message"])
            if seen is not None and seen[0] == inst["run_number"] and seen != now:
                out.append(Violation("P4 terminal is final", f"{key[1]} left terminal state {seen[1]} in run "
                                     f"{seen[0]}", {"was": seen, "now": now}))
            if inst["status"] in TERMINAL and (seen is None or seen[0] != inst["run_number"] or seen == now):
                self.final[key] = now
            elif seen is not None and seen[0] != inst["run_number"]:
                del self.final[key]
        return out


def check_state(
    conn: sqlite3.Connection, watch: TerminalWatch | None = None,
    insts: dict[tuple[str, str], dict[str, Any]] | None = None,
) -> list[Violation]:
    """All state invariants at this moment (`insts` may be passed in when the caller already read them)."""
    if insts is None:
        insts = instances(conn)
    out = check_tasks(conn, insts) + check_attempts(conn)
    if watch is not None:
        out += watch.check(insts)
    return out
