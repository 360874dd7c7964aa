"""Trace invariants, checked as each engine action is reported (DESIGN §6 properties 1, 2, 3, 5, 6, 7).

The simulator calls `on_record` synchronously from the engine's tracer, right after the transaction the
record describes, so the database seen here is exactly the state that action produced. `on_move` runs after
every simulated action for the state invariants.
"""

from __future__ import annotations

import math
import sqlite3
from typing import Any

import attrs

from properties.state import TerminalWatch, check_state, instances
from properties.violation import Violation

# Faults that never cost a runner its lease: a failing or hanging callback is renewed like any other, and
# a repeated event touches no task.
HARMLESS_TO_LEASES = frozenset({"step_raise", "step_hang", "duplicate_event", "event", "create"})

PRIORITY_SQL = (
    "SELECT id FROM workflow_task WHERE (status = 'pending' AND run_at <= ?) OR "
    "(status = 'processing' AND locked_until < ?) ORDER BY priority, run_at, id LIMIT ?"
)


@attrs.define
class Lease:
    owner: str
    version: int
    until: float


class Checker:
    """Incremental checker over one simulated database; collects violations instead of raising."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.violations: list[Violation] = []
        self.checks = 0
        self.leases: dict[int, Lease] = {}
        self.completed_commits: dict[tuple[str, str, int, str], int] = {}
        self.consumed: dict[int, str] = {}
        self.calls: dict[tuple[str, str, int, str], int] = {}
        self.found: dict[str, list[int]] = {}
        self.disrupted = False
        self.statuses: dict[tuple[str, str], str] = {}
        self.watch = TerminalWatch()
        self._checked_at = -1  # conn.total_changes at the last state check
        self._due_at: tuple[float | None, float | None] = (None, None)  # earliest run_at, earliest lapse
        self._due_at_changes = -1  # conn.total_changes when _due_at was read
        # P11 (no spurious lease loss) is on once the world promises to report every fault (`on_fault`).
        self.watch_leases = False
        self._claimed: dict[tuple[str, int], float] = {}  # (runner, task) -> when it claimed the task
        self.disrupted_at = -math.inf  # the last fault that may legitimately cost a lease or delay a runner

    def _fail(self, prop: str, message: str, **evidence: Any) -> None:
        self.violations.append(Violation(prop, message, evidence))

    def on_fault(self, kind: str, t: float) -> None:
        """A fault (or client operation) happened at `t`; all but those that cannot touch a lease excuse a
        lease loss after it (P11)."""
        if kind not in HARMLESS_TO_LEASES:
            self.disrupted_at = t

    def _on_lease_lost(self, t: float, runner: str, d: dict[str, Any]) -> None:
        # P11: a live runner that nothing stalled, no clock moved under and no client touched keeps its lease,
        # however long its callback takes (the heartbeat renews it; DESIGN §2 "Details").
        since = self._claimed.get((runner, d["task"]))
        if self.watch_leases and since is not None and self.disrupted_at < since:
            self._fail("P11 spurious lease loss", f"runner {runner} lost its lease on task {d['task']} "
                       f"({d.get('instance')}) at {t}, claimed at {since}, with no fault since", t=t,
                       reason=d.get("reason"))

    def _step_row(self, workflow: str, instance: str, run: int, key: str) -> dict[str, Any] | None:
        row = self.conn.execute(
            "SELECT * FROM workflow_step WHERE workflow_name = ? AND instance_id = ? AND run_number = ? "
            "AND step_key = ?",
            (workflow, instance, run, key),
        ).fetchone()
        return dict(row) if row is not None else None

    # -- trace records -------------------------------------------------------------------------------

    def on_record(self, t: float, runner: str, action: str, detail: dict[str, Any]) -> None:
        """Check one engine action the moment it happened."""
        self.checks += 1
        handler = getattr(self, f"_on_{action}", None)
        if handler is not None:
            handler(t, runner, detail)
        if action in ("lease_lost", "abandon", "store_error"):
            self.disrupted = True

    def _nothing_due(self, now: float) -> bool:
        """True when no task is due at `now`, from the earliest due times, read again only after a write.

        Idle polls are most of a sleep-heavy run (a day of 60 s polls is 1,440 finds per runner), and between
        two writes the queue only becomes due as time passes.
        """
        changes = self.conn.total_changes
        if changes != self._due_at_changes:
            row = self.conn.execute(
                "SELECT MIN(CASE WHEN status = 'pending' THEN run_at END), "
                "MIN(CASE WHEN status = 'processing' THEN locked_until END) FROM workflow_task").fetchone()
            self._due_at, self._due_at_changes = (row[0], row[1]), changes
        pending, lapses = self._due_at
        return (pending is None or now < pending) and (lapses is None or now <= lapses)

    def _on_find(self, t: float, runner: str, d: dict[str, Any]) -> None:
        # Property 2: what a runner found must be the true top of the due queue, in priority order.
        found = [row[0] for row in d["due"]]
        if not found and self._nothing_due(d["now"]):
            self.found[runner] = found
            return
        expected = [r[0] for r in self.conn.execute(PRIORITY_SQL, (d["now"], d["now"], max(len(found), 1)))]
        if found != expected[: len(found)] or (not found and expected):
            self._fail("P2 priority ordering", f"runner {runner} found {found}, due order is {expected}",
                       found=d["due"], now=d["now"])
        self.found[runner] = found

    def _tried(self, runner: str, task: int) -> None:
        # Property 2 is about claims: a runner must also try its found tasks in the order it found them,
        # or a correct find still lets it take a `run` before the `wake` found ahead of it.
        queue = self.found.get(runner, [])
        if task not in queue:
            return
        skipped = queue[: queue.index(task)]
        if skipped:
            self._fail("P2 priority ordering", f"runner {runner} tried task {task} before {skipped}, which it "
                       f"found ahead of it", found=list(queue))
        del queue[: queue.index(task) + 1]

    def _on_claim_lost(self, t: float, runner: str, d: dict[str, Any]) -> None:
        self._tried(runner, d["task"])

    def _on_claim_error(self, t: float, runner: str, d: dict[str, Any]) -> None:
        self._tried(runner, d["task"])

    def _on_claim(self, t: float, runner: str, d: dict[str, Any]) -> None:
        task, version = d["task"], d["version"]
        self._tried(runner, task)
        held = self.leases.get(task)
        if held is not None and held.until >= t:
            self._fail("P3 lease exclusivity", f"runner {runner} claimed task {task} v{version} while "
                       f"{held.owner} held v{held.version} until {held.until}", t=t)
        if held is not None and held.version >= version:
            self._fail("P3 lease exclusivity", f"task {task} claimed twice at version {version}",
                       holders=[held.owner, runner])
        if d.get("took_over"):
            self.disrupted = True
        self.leases[task] = Lease(runner, version, d["lease_until"])
        self._claimed[(runner, task)] = t

    def resync_leases(self) -> None:
        """Adopt the task table's leases after a commit whose outcome the runner never learned.

        With "commit outcome unknown" the transaction did commit but the runner traced nothing, so the
        trace-built lease model would miss a hand-back; the database is the truth at that instant.
        """
        self.leases = {
            r["id"]: Lease(r["lock_owner"], r["version"], r["locked_until"])
            for r in self.conn.execute(
                "SELECT id, lock_owner, version, locked_until FROM workflow_task WHERE status = 'processing'"
            )
        }

    def _holder_ok(self, t: float, runner: str, d: dict[str, Any], what: str) -> bool:
        held = self.leases.get(d["task"])
        if held is None or held.owner != runner or held.version != d["version"] or held.until < t:
            self._fail("P3 fencing", f"runner {runner} {what} task {d['task']} v{d['version']} without a "
                       f"valid lease", lease=attrs.asdict(held) if held else None, t=t, instance=d.get("instance"))
            return False
        return True

    def _db_until(self, task: int, fallback: float) -> float:
        # The engine renews only when half the lease is gone, so the database, not the trace, says how long
        # the lease now runs.
        row = self.conn.execute("SELECT locked_until FROM workflow_task WHERE id = ?", (task,)).fetchone()
        return float(row[0]) if row is not None and row[0] is not None else fallback

    def _on_renew(self, t: float, runner: str, d: dict[str, Any]) -> None:
        if self._holder_ok(t, runner, d, "renewed"):
            self.leases[d["task"]].until = self._db_until(d["task"], d["lease_until"])

    def _on_commit(self, t: float, runner: str, d: dict[str, Any]) -> None:
        workflow, instance, run, key = d["workflow"], d["instance"], d["run"], d["key"]
        ok = self._holder_ok(t, runner, d, "committed to")
        if ok and d.get("suspend") is None and not d.get("paused"):
            self.leases[d["task"]].until = self._db_until(d["task"], self.leases[d["task"]].until)
        elif ok:
            self.leases.pop(d["task"], None)
        inst = self.conn.execute(
            "SELECT status, run_number FROM workflow_instance WHERE workflow_name = ? AND instance_id = ?",
            (workflow, instance),
        ).fetchone()
        if inst is None or inst["run_number"] != run:
            self._fail("P3 fencing", f"commit of {key} into run {run} of {instance}, current run is "
                       f"{inst['run_number'] if inst else None}")
        if self.statuses.get((workflow, instance)) == "paused":
            self._fail("P6 paused never advanced", f"{instance} committed {key} while paused")
        if self.statuses.get((workflow, instance)) in ("complete", "errored", "terminated") and inst is not None \
                and inst["run_number"] == run:
            self._fail("P4 terminal is final", f"{instance} committed {key} after it ended")
        row = self._step_row(workflow, instance, run, key)
        if d["status"] == "completed":
            ident = (workflow, instance, run, key)
            self.completed_commits[ident] = self.completed_commits.get(ident, 0) + 1
            if self.completed_commits[ident] > 1:
                self._fail("P1 no double execution", f"step {key} of {instance} committed twice")
            if row is not None and row["type"] in ("sleep", "sleep_until") and t < (row["wake_at"] or 0):
                self._fail("P6 timers", f"sleep {key} of {instance} completed at {t} before its wake time "
                           f"{row['wake_at']}")
        event = d.get("event")
        if event is not None:
            self._check_event(workflow, instance, run, key, event, row)

    def _check_event(
        self, workflow: str, instance: str, run: int, key: str, event: int, row: dict[str, Any] | None
    ) -> None:
        if event in self.consumed:
            self._fail("P5 events", f"event {event} consumed twice: by {self.consumed[event]} and {key}")
        self.consumed[event] = key
        ev = self.conn.execute("SELECT * FROM workflow_event WHERE id = ?", (event,)).fetchone()
        if row is None or ev is None:
            return
        if ev["run_number"] != run:
            self._fail("P5 events", f"{key} of {instance} run {run} consumed event {event} sent to run "
                       f"{ev['run_number']}")
        if ev["created_at"] > row["wake_at"]:
            self._fail("P5 events", f"{key} of {instance} accepted event {event} created at {ev['created_at']} "
                       f"after its deadline {row['wake_at']}")
        if row["wait_match"] is None:
            earlier = self.conn.execute(
                "SELECT id FROM workflow_event WHERE workflow_name = ? AND instance_id = ? AND run_number = ? "
                "AND type = ? AND id < ? AND consumed_run IS NULL AND created_at <= ?",
                (workflow, instance, run, ev["type"], event, row["wake_at"]),
            ).fetchall()
            if earlier:
                self._fail("P5 events", f"{key} of {instance} consumed event {event} before earlier same-type "
                           f"events {[e[0] for e in earlier]}")

    def _on_step_call(self, t: float, runner: str, d: dict[str, Any]) -> None:
        workflow, instance, run, key, attempt = d["workflow"], d["instance"], d["run"], d["key"], d["attempt"]
        ident = (workflow, instance, run, key)
        self.calls[ident] = self.calls.get(ident, 0) + 1
        row = self._step_row(workflow, instance, run, key)
        if row is not None and row["status"] in ("completed", "errored"):
            self._fail("P1 no double execution", f"callback of {key} ({instance}) ran again after it was "
                       f"{row['status']}", attempt=attempt)
        persisted = row["attempts"] if row is not None else 0
        if attempt != persisted + 1:
            self._fail("P7 retries", f"{key} of {instance} ran attempt {attempt} but {persisted} attempts are "
                       f"recorded", row=row)
        if row is not None and row["next_retry_at"] is not None and t < row["next_retry_at"]:
            self._fail("P7 retries", f"{key} of {instance} retried at {t} before {row['next_retry_at']}")

    def _on_suspend(self, t: float, runner: str, d: dict[str, Any]) -> None:
        if self._holder_ok(t, runner, d, "handed back"):
            self.leases.pop(d["task"], None)

    def _on_release(self, t: float, runner: str, d: dict[str, Any]) -> None:
        # A draining runner gave its task back, due now (graceful stop).
        if self._holder_ok(t, runner, d, "released"):
            self.leases.pop(d["task"], None)

    def _on_finish(self, t: float, runner: str, d: dict[str, Any]) -> None:
        if self._holder_ok(t, runner, d, "finished"):
            self.leases.pop(d["task"], None)

    # -- after every move ----------------------------------------------------------------------------

    def snapshot(self) -> None:
        """Refresh only the status snapshot the trace checks use (an explorer replaying a prefix whose states
        were already checked on an earlier path skips the state invariants)."""
        self.statuses = {k: v["status"] for k, v in instances(self.conn).items()}

    def on_move(self) -> None:
        """State invariants after a simulated action; also snapshots statuses for the next trace checks.

        They are functions of the tables, so an action that changed nothing cannot break them anew: the
        connection's change counter skips the queries (most moves of idle runners write nothing).
        """
        changes = self.conn.total_changes
        if changes == self._checked_at:
            return
        self._checked_at = changes
        self.checks += 1
        insts = instances(self.conn)
        self.violations.extend(check_state(self.conn, self.watch, insts))
        self.statuses = {k: v["status"] for k, v in insts.items()}

    def at_end(self) -> None:
        """Property 1's exactness: with no crash or lease loss, each completed callback ran once per attempt."""
        self.checks += 1
        if self.disrupted:
            return
        for r in self.conn.execute(
            "SELECT workflow_name, instance_id, run_number, step_key, attempts FROM workflow_step "
            "WHERE type = 'do' AND status IN ('completed', 'errored')"
        ):
            calls = self.calls.get((r[0], r[1], r[2], r[3]), 0)
            if calls != r[4]:
                self._fail("P1 no double execution", f"{r[3]} of {r[1]} recorded {r[4]} attempts but its "
                           f"callback ran {calls} times")

