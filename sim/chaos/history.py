"""The Jepsen-style check of what a chaos run left behind: the engine's tables, the side-effect log, the
faults the controller injected and the client's acknowledged operations.

Every rule is a function of those records alone (no timing assumptions beyond the fault log's times), so
a planted history in the tests shows each rule catching what it is about.
"""

from __future__ import annotations

import itertools
import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import attrs

from properties import Violation
from properties.state import check_state

TERMINAL = ("complete", "errored", "terminated")
# A fault against a worker explains a duplicate execution if it lands between the execution's start (less
# this slack, for a kill of a connection the execution then needed) and the next execution's start.
EXPLAIN_SLACK = 1.0


@attrs.frozen
class Fault:
    """One fault the controller injected: when, what (kill, stop, cont, conn_kill, client_kill), whom."""

    t: float
    kind: str
    worker: str
    pid: int


@attrs.frozen
class Effect:
    """One callback execution, as its side-effect row recorded it."""

    exec_id: str
    instance_id: str
    run_number: int
    step_key: str
    attempt: int
    worker: str
    pid: int
    started_at: float
    ended_at: float | None


def load_effects(conn: Any) -> list[Effect]:
    """Every side-effect row, in start order."""
    return [Effect(exec_id=r[0], instance_id=r[1], run_number=int(r[2]), step_key=r[3], attempt=int(r[4]),
                   worker=r[5], pid=int(r[6]), started_at=float(r[7]),
                   ended_at=None if r[8] is None else float(r[8]))
            for r in conn.execute(
                "SELECT exec_id, instance_id, run_number, step_key, attempt, worker, pid, started_at, ended_at "
                "FROM chaos_effect ORDER BY started_at, exec_id")]


def check_steps(
    conn: Any, effects: Sequence[Effect], faults: Sequence[Fault], *, shared_lock: bool = False
) -> list[Violation]:
    """No step committed twice or from nowhere; every duplicate execution explained by a fault.

    A completed `do` step's result is the id of the execution that committed it: that execution must exist,
    belong to the step and carry the step's attempt count. Two executions of the same attempt of a step
    are legitimate only if a fault hit the first one's worker before the second began (its lease had to
    lapse for anyone else to run it). With `shared_lock`, a SIGSTOP of any worker in between explains it
    too: a process stopped inside a transaction keeps its locks (SQLite's one write lock, a PostgreSQL task
    row), so the holder can neither renew nor commit until it runs again, and its lease lapses meanwhile.
    That allowance cannot hide a fencing bug: the commit must come from the last execution started (an
    earlier one's commit is a commit after its lease was lost).
    """
    out: list[Violation] = []
    by_id = {e.exec_id: e for e in effects}
    for r in conn.execute("SELECT instance_id, run_number, step_key, attempts, result FROM workflow_step "
                          "WHERE type = 'do' AND status = 'completed'"):
        winner = by_id.get(json.loads(r[4])) if r[4] is not None else None
        if winner is None or (winner.instance_id, winner.run_number, winner.step_key) != (r[0], r[1], r[2]):
            out.append(Violation("chaos: step committed from nowhere",
                                 f"{r[0]} {r[2]} committed {r[4]}, which no execution of that step recorded"))
        elif winner.attempt != r[3]:
            out.append(Violation("chaos: step committed twice",
                                 f"{r[0]} {r[2]} shows {r[3]} attempts but was committed by attempt {winner.attempt}"))
        else:
            later = [e for e in effects if (e.instance_id, e.run_number, e.step_key, e.attempt)
                     == (winner.instance_id, winner.run_number, winner.step_key, winner.attempt)
                     and e.started_at > winner.started_at and not _frozen_across(e, winner.started_at, faults)]
            if later:
                # Another runner may start this attempt only after claiming the task, which fences every
                # earlier holder: an earlier execution's commit is a commit after the lease was lost.
                out.append(Violation("chaos: commit by a stale executor",
                                     f"{r[0]} {r[2]} was committed by {winner.worker}'s execution from "
                                     f"{winner.started_at:.3f}, though {later[0].worker} had started it again at "
                                     f"{later[0].started_at:.3f}", {"winner": attrs.asdict(winner)}))
    groups: dict[tuple[str, int, str, int], list[Effect]] = defaultdict(list)
    for e in effects:
        groups[(e.instance_id, e.run_number, e.step_key, e.attempt)].append(e)
    by_pid: dict[int, list[Fault]] = defaultdict(list)
    for f in faults:
        by_pid[f.pid].append(f)
    stops = [f for f in faults if f.kind in ("stop", "cont")] if shared_lock else []
    for key, runs in groups.items():
        for first, second in itertools.pairwise(runs):
            if not _explained(first, second.started_at, [*by_pid[first.pid], *stops]):
                out.append(Violation(
                    "chaos: unexplained duplicate execution",
                    f"{key[0]} {key[2]} attempt {key[3]} ran on {first.worker} (pid {first.pid}) at "
                    f"{first.started_at:.3f} and again on {second.worker} (pid {second.pid}) at "
                    f"{second.started_at:.3f}, with no kill, stop or dropped connection of the first between",
                    {"first": attrs.asdict(first), "second": attrs.asdict(second)}))
    return out


def _frozen_across(execution: Effect, moment: float, faults: Sequence[Fault]) -> bool:
    """Whether the execution's worker was SIGSTOPped at `moment` and only continued just before the
    execution's recorded start: its callback may have begun before the stop, the row being written on
    waking, so the recorded start says nothing about the real order."""
    for stop in faults:
        if stop.kind != "stop" or stop.pid != execution.pid or stop.t > moment:
            continue
        resumed = [f.t for f in faults if f.kind == "cont" and f.pid == execution.pid and f.t >= stop.t]
        if not resumed or min(resumed) >= moment:  # still frozen when the winner started
            return True
    return False


def _explained(execution: Effect, until: float, faults: Iterable[Fault]) -> bool:
    """A kill or dropped connection in [start - slack, until], or a stop whose frozen interval (to its
    SIGCONT, or to the end) overlaps that window."""
    faults = list(faults)
    low = execution.started_at - EXPLAIN_SLACK
    for f in faults:
        if f.kind in ("kill", "conn_kill") and low <= f.t <= until:
            return True
        if f.kind == "stop" and f.t <= until:
            resumed = [c.t for c in faults if c.kind == "cont" and c.pid == f.pid and c.t >= f.t]
            if not resumed or min(resumed) >= low:
                return True
    return False


def check_events(conn: Any, planned: dict[str, tuple[str, str]], acked: set[str]) -> list[Violation]:
    """Events: none lost (every planned event is stored once, unless its instance had ended), none stored
    twice, same-type events consumed in send order, none accepted after its wait's deadline.

    `planned` maps event ids to (instance, type); `acked` holds the ids the client saw accepted.
    """
    out: list[Violation] = []
    stored: dict[str, Any] = {}
    for r in conn.execute("SELECT event_id, instance_id, type, id, created_at, consumed_by_step_key, consumed_run "
                          "FROM workflow_event ORDER BY id"):
        if r[0] in stored:
            out.append(Violation("chaos: event stored twice", f"event id {r[0]} is stored more than once"))
        stored[r[0]] = r
    statuses = {r[0]: r[1] for r in conn.execute("SELECT instance_id, status FROM workflow_instance")}
    for event_id, (instance, type_) in planned.items():
        if event_id not in stored and (event_id in acked or statuses.get(instance) not in TERMINAL):
            out.append(Violation("chaos: event lost",
                                 f"{type_} event {event_id} for {instance} was "
                                 f"{'acknowledged' if event_id in acked else 'sent until acknowledged'} "
                                 "but is not stored"))
    deadlines = {(r[0], r[1], r[2]): (r[3], r[4]) for r in conn.execute(
        "SELECT instance_id, run_number, step_key, wake_at, position FROM workflow_step "
        "WHERE type = 'wait_for_event'")}
    consumed: dict[tuple[str, str], list[tuple[int, int]]] = defaultdict(list)
    for event_id, r in stored.items():
        if r[5] is None:
            continue
        deadline, position = deadlines.get((r[1], r[6], r[5]), (None, None))
        if deadline is not None and float(r[4]) > float(deadline):
            out.append(Violation("chaos: event accepted late",
                                 f"event {event_id} created at {float(r[4]):.3f} was consumed by {r[5]} of {r[1]}, "
                                 f"whose deadline was {float(deadline):.3f}"))
        if position is not None:
            consumed[(r[1], r[2])].append((int(position), int(r[3])))
    for iid, run, key, deadline, wait_type in conn.execute(
            "SELECT instance_id, run_number, step_key, wake_at, wait_event_type FROM workflow_step "
            "WHERE type = 'wait_for_event' AND status = 'errored' AND error_name = 'WaitForEventTimeout'"):
        missed = [event_id for event_id, r in stored.items() if r[1] == iid and r[2] == wait_type
                  and r[5] is None and float(r[4]) <= float(deadline)]
        if missed:
            out.append(Violation("chaos: event lost",
                                 f"{key} of {iid} timed out at {float(deadline):.3f} while event {missed[0]}, "
                                 "sent before that deadline, waited unconsumed"))
    for (instance, type_), pairs in consumed.items():
        ids = [event for _, event in sorted(pairs)]
        if ids != sorted(ids):
            out.append(Violation("chaos: events reordered",
                                 f"{instance}'s {type_} events were consumed in the order {ids}"))
    return out


def check_outputs(conn: Any, late_every: int) -> list[Violation]:
    """What each completed order says it saw: its own payment (none for the orders paid late on purpose,
    whose wait must have timed out), its two items in send order, and the executions its steps committed."""
    out: list[Violation] = []
    committed = {(r[0], r[1]): json.loads(r[2]) for r in conn.execute(
        "SELECT instance_id, step_key, result FROM workflow_step WHERE type = 'do' AND status = 'completed'")}
    for iid, params, output in conn.execute(
            "SELECT instance_id, params, output FROM workflow_instance WHERE status = 'complete' ORDER BY seq"):
        n, seen = json.loads(params)["n"], json.loads(output)
        if n % late_every == 0:
            if seen.get("paid") is not None:
                out.append(Violation("chaos: event accepted late",
                                     f"{iid} was paid only after its deadline, yet its output says paid={seen['paid']}"))
            continue
        if seen.get("paid") is None:
            continue  # paid on time but processed after the deadline under chaos: a legal timeout
        wanted = {"paid": n, "items": [1, 2],
                  "effects": [committed.get((iid, k)) for k in ("do:reserve", "do:charge", "do:ship")]}
        for field, value in wanted.items():
            if seen.get(field) != value:
                out.append(Violation("chaos: wrong output",
                                     f"{iid} output {field}={seen.get(field)!r}, expected {value!r}"))
    return out


def check_final_state(conn: Any) -> list[Violation]:
    """After healing: no instance stuck short of a terminal state, and the tables' own invariants."""
    out = [Violation("chaos: stuck instance", f"{r[0]} is still {r[1]} after healing")
           for r in conn.execute("SELECT instance_id, status FROM workflow_instance "
                                 "WHERE status NOT IN ('complete', 'errored', 'terminated') ORDER BY seq")]
    return out + check_state(conn)


def recovery_latencies(effects: Sequence[Effect], faults: Sequence[Fault]) -> list[float]:
    """For each kill or stop that caught an execution in flight: seconds until another worker started that
    step again (the takeover after the lease lapsed)."""
    out = []
    for f in faults:
        if f.kind not in ("kill", "stop"):
            continue
        caught = [e for e in effects if e.pid == f.pid and e.started_at <= f.t
                  and (e.ended_at is None or e.ended_at >= f.t)]
        for e in caught:
            again = [o.started_at for o in effects if o.pid != f.pid and o.started_at > f.t
                     and (o.instance_id, o.run_number, o.step_key) == (e.instance_id, e.run_number, e.step_key)]
            if again:
                out.append(min(again) - f.t)
    return out
