"""The chaos history check, rule by rule, on planted histories: each rule flags the history it is about and
passes the same history once the fault log (or the data) explains it."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from engine._schema import migrate
from engine._sqlite_store import connect
from sim.chaos.history import (
    Effect,
    Fault,
    check_events,
    check_final_state,
    check_steps,
    load_effects,
    recovery_latencies,
)
from sim.chaos.workflows import EFFECT_DDL


def database() -> sqlite3.Connection:
    conn = connect(":memory:")
    migrate(conn)
    conn.execute(EFFECT_DDL)
    conn.execute("INSERT INTO workflow_instance (workflow_name, instance_id, status, params, created_at, updated_at) "
                 "VALUES ('chaos-order', 'o1', 'complete', '{}', 0, 0)")
    return conn


def effect(conn: sqlite3.Connection, exec_id: str, *, pid: int, started: float, attempt: int = 1,
           key: str = "do:reserve", ended: float | None = None) -> None:
    conn.execute("INSERT INTO chaos_effect VALUES (?, 'chaos-order', 'o1', 1, ?, ?, ?, ?, ?, ?)",
                 (exec_id, key, attempt, f"w{pid}", pid, started, ended))


def step(conn: sqlite3.Connection, key: str, *, result: Any = None, attempts: int = 1, type_: str = "do",
         position: int = 0, wake_at: float | None = None) -> None:
    conn.execute("INSERT INTO workflow_step (workflow_name, instance_id, run_number, step_key, position, name, type, "
                 "status, attempts, result, wake_at, updated_at) VALUES ('chaos-order', 'o1', 1, ?, ?, ?, ?, "
                 "'completed', ?, ?, ?, 0)",
                 (key, position, key.split(":")[1], type_, attempts, json.dumps(result), wake_at))


def event(conn: sqlite3.Connection, event_id: str, *, type_: str, created: float, consumed_by: str | None) -> None:
    conn.execute("INSERT INTO workflow_event (workflow_name, instance_id, run_number, event_id, type, payload, "
                 "created_at, consumed_by_step_key, consumed_run) VALUES ('chaos-order', 'o1', 1, ?, ?, '{}', ?, ?, ?)",
                 (event_id, type_, created, consumed_by, 1 if consumed_by else None))


def test_a_duplicate_execution_needs_a_fault_of_its_first_worker() -> None:
    """Two executions of one attempt pass only if the first one's worker was killed or stopped in between."""
    conn = database()
    effect(conn, "a", pid=1, started=10.0)
    effect(conn, "b", pid=2, started=14.0, ended=14.1)
    step(conn, "do:reserve", result="b")
    effects = load_effects(conn)
    flagged = check_steps(conn, effects, [])
    assert [v.prop for v in flagged] == ["chaos: unexplained duplicate execution"]
    assert check_steps(conn, effects, [Fault(11.0, "kill", "w1", 1)]) == []
    assert check_steps(conn, effects, [Fault(11.0, "stop", "w1", 1)]) == []
    assert check_steps(conn, effects, [Fault(11.0, "kill", "w3", 3)]) != []  # another worker's kill explains nothing
    assert check_steps(conn, effects, [Fault(15.0, "kill", "w1", 1)]) != []  # too late to explain it


def test_on_sqlite_a_stopped_lock_holder_explains_a_duplicate() -> None:
    """SQLite has one write lock: a SIGSTOP of any worker may have frozen it, so with `shared_lock` a stop of
    another worker in the window explains the duplicate; a kill (whose lock dies with it) does not."""
    conn = database()
    effect(conn, "a", pid=1, started=10.0)
    effect(conn, "b", pid=1, started=20.0, ended=20.1)
    step(conn, "do:reserve", result="b")
    effects = load_effects(conn)
    stop = [Fault(12.0, "stop", "w3", 3)]
    assert check_steps(conn, effects, stop) != []
    assert check_steps(conn, effects, stop, shared_lock=True) == []
    assert check_steps(conn, effects, [Fault(12.0, "kill", "w3", 3)], shared_lock=True) != []


def test_a_commit_must_come_from_the_last_execution_started() -> None:
    """Once another worker started the attempt again it had claimed the task, so the earlier execution's
    commit is one made after losing the lease, whatever fault explains the second run."""
    conn = database()
    effect(conn, "a", pid=1, started=10.0, ended=30.0)
    effect(conn, "b", pid=2, started=14.0, ended=14.1)
    step(conn, "do:reserve", result="a")
    props = [v.prop for v in check_steps(conn, load_effects(conn), [Fault(11.0, "stop", "w1", 1)])]
    assert props == ["chaos: commit by a stale executor"]
    conn.execute("UPDATE workflow_step SET result = ?", (json.dumps("b"),))
    assert check_steps(conn, load_effects(conn), [Fault(11.0, "stop", "w1", 1)]) == []


def test_a_start_recorded_on_waking_from_a_stop_does_not_count_as_later() -> None:
    """A worker stopped between its lease check and its callback's first write records its start only when
    continued: that execution may really have begun before the winner's, so it is not a stale commit."""
    conn = database()
    effect(conn, "w", pid=4, started=10.8)
    effect(conn, "late", pid=3, started=12.99)
    step(conn, "do:reserve", result="w")
    frozen = [Fault(7.8, "stop", "w3", 3), Fault(12.98, "cont", "w3", 3)]
    assert check_steps(conn, load_effects(conn), frozen, shared_lock=True) == []
    awake = [Fault(7.8, "stop", "w3", 3), Fault(9.0, "cont", "w3", 3)]  # continued before the winner began
    assert "chaos: commit by a stale executor" in [
        v.prop for v in check_steps(conn, load_effects(conn), awake, shared_lock=True)]


def test_a_retry_is_not_a_duplicate() -> None:
    """Attempt 2 after attempt 1 failed is a new attempt, needing no fault; the commit names attempt 2."""
    conn = database()
    effect(conn, "a", pid=1, started=10.0, ended=10.1)
    effect(conn, "b", pid=1, started=10.2, attempt=2, ended=10.3)
    step(conn, "do:reserve", result="b", attempts=2)
    assert check_steps(conn, load_effects(conn), []) == []


def test_a_commit_must_name_an_execution_of_its_step_and_attempt() -> None:
    """A result no execution recorded, or an attempt count that disagrees with the committing execution, is
    a step committed from nowhere or twice."""
    conn = database()
    effect(conn, "a", pid=1, started=10.0, ended=10.1)
    step(conn, "do:reserve", result="ghost")
    assert [v.prop for v in check_steps(conn, load_effects(conn), [])] == ["chaos: step committed from nowhere"]
    conn.execute("UPDATE workflow_step SET result = ?, attempts = 2", (json.dumps("a"),))
    assert [v.prop for v in check_steps(conn, load_effects(conn), [])] == ["chaos: step committed twice"]


def test_events_lost_late_or_reordered_are_flagged() -> None:
    """An acknowledged event missing, one consumed after its wait's deadline, and same-type events consumed
    out of send order are each a violation; the clean history passes."""
    conn = database()
    step(conn, "wait_for_event:item", type_="wait_for_event", position=1, wake_at=100.0)
    step(conn, "wait_for_event:item#2", type_="wait_for_event", position=2, wake_at=100.0)
    event(conn, "i1", type_="item", created=5.0, consumed_by="wait_for_event:item")
    event(conn, "i2", type_="item", created=6.0, consumed_by="wait_for_event:item#2")
    planned = {"i1": ("o1", "item"), "i2": ("o1", "item")}
    assert check_events(conn, planned, {"i1", "i2"}) == []
    lost = check_events(conn, {**planned, "i3": ("o1", "item")}, {"i1", "i2", "i3"})
    assert [v.prop for v in lost] == ["chaos: event lost"]
    conn.execute("UPDATE workflow_event SET consumed_by_step_key = CASE event_id WHEN 'i1' THEN "
                 "'wait_for_event:item#2' ELSE 'wait_for_event:item' END")
    assert [v.prop for v in check_events(conn, planned, {"i1", "i2"})] == ["chaos: events reordered"]
    conn.execute("UPDATE workflow_event SET created_at = 150.0 WHERE event_id = 'i2'")
    assert "chaos: event accepted late" in [v.prop for v in check_events(conn, planned, {"i1", "i2"})]


def test_a_wait_that_timed_out_past_an_on_time_event_lost_it() -> None:
    """A wait that timed out while an event of its type, sent before its deadline, sat unconsumed is a lost
    delivery (a lost wake-up); one sent after the deadline may stay unconsumed."""
    conn = database()
    conn.execute("INSERT INTO workflow_step (workflow_name, instance_id, run_number, step_key, position, name, "
                 "type, status, wake_at, wait_event_type, error_name, updated_at) VALUES ('chaos-order', 'o1', 1, "
                 "'wait_for_event:pay', 1, 'pay', 'wait_for_event', 'errored', 100.0, 'pay', "
                 "'WaitForEventTimeout', 0)")
    event(conn, "late", type_="pay", created=150.0, consumed_by=None)
    assert check_events(conn, {"late": ("o1", "pay")}, {"late"}) == []
    event(conn, "ontime", type_="pay", created=50.0, consumed_by=None)
    props = [v.prop for v in check_events(conn, {"late": ("o1", "pay"), "ontime": ("o1", "pay")}, {"ontime"})]
    assert props == ["chaos: event lost"]


def test_an_event_to_an_ended_instance_may_be_refused() -> None:
    """A planned event that was never acknowledged and whose instance ended is a refusal, not a loss."""
    conn = database()
    assert check_events(conn, {"late": ("o1", "pay")}, set()) == []
    conn.execute("UPDATE workflow_instance SET status = 'waiting'")
    assert [v.prop for v in check_events(conn, {"late": ("o1", "pay")}, set())] == ["chaos: event lost"]


def test_an_instance_left_short_of_terminal_is_stuck() -> None:
    """After healing, a waiting instance is stuck (and, with no task, breaks property 8 too)."""
    conn = database()
    assert check_final_state(conn) == []
    conn.execute("UPDATE workflow_instance SET status = 'waiting'")
    props = [v.prop for v in check_final_state(conn)]
    assert "chaos: stuck instance" in props and any(p.startswith("P8") for p in props)


def test_recovery_latency_is_kill_to_takeover() -> None:
    """A kill that caught a step in flight counts the seconds until another worker started that step."""
    effects = [Effect("a", "o1", 1, "do:ship", 1, "w1", 1, 10.0, None),
               Effect("b", "o1", 1, "do:ship", 1, "w2", 2, 13.5, 13.6),
               Effect("c", "o2", 1, "do:ship", 1, "w1", 1, 20.0, 20.1)]
    assert recovery_latencies(effects, [Fault(10.5, "kill", "w1", 1)]) == [3.0]
    assert recovery_latencies(effects, [Fault(30.0, "kill", "w1", 1)]) == []
