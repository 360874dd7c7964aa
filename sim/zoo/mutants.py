"""The bug zoo's mutant library: realistic engine bugs, each applied by a context manager (issue 7).

A mutant is one small change to the real engine, modelled on a bug that shipped in a real engine. Most are a
source edit of one engine function: `rewrite` reads the function's source, applies the edit (the old text
must occur exactly once, or a given number of times, so an engine refactor fails loudly instead of silently
testing the real engine), recompiles it against the module's live globals and swaps it in; the rest swap in
a few-line replacement. `engine/` never knows: callers look engine functions up at call time
(`txn.claim_txn`, methods on the class), so a swap reaches every simulated runner, and the `Patcher` (or
pytest's `monkeypatch`, which has the same `setattr`) puts everything back.

`apply(name)` is the one entry point: `with apply("blind-claim"): ...` runs the block against that mutant.
Each `ZooMutant` also says where its bug is reachable: the seeded `Setting` (profile and, where the mixed
workload rarely gets there, a fixed workload), the explorer configuration that contains it (if any), and its
best mode with a small budget for the CI gate (tests/zoo/test_zoo_gate.py).
"""
from __future__ import annotations

import sqlite3
import weakref
from collections.abc import Iterator
from contextlib import contextmanager

import engine._execution as execution
import engine._runner as runner
import engine._step as step
import engine._txn as txn
from engine._store import Claim
from engine._txn_store import TxnStore
from sim.world.current import CURRENT_WORLD
from sim.world.simulation import RunResult, World
from sim.zoo.patching import Patch, Patcher, rewrite, rewritten
from sim.zoo.semantic import SEMANTIC
from sim.zoo.settings import (
    CALM,
    CHARGES,
    CLOCK_JUMP,
    CRASHES,
    CRASHING_DOZERS,
    DEFAULT,
    DUPLICATES,
    LATE,
    LIFECYCLE,
    MODES,
    NAMES,
    NAPS,
    PAIRS,
    PROMPT,
    SLOW_SYNC,
    Setting,
    ZooMutant,
    mutant_profile,
)


def _patch_blind_claim(p: Patch) -> None:
    # No optimistic check: a claim succeeds even if another runner claimed the task since it was found.
    rewrite(p, txn, "claim_txn",
            ("AND version = ? AND ((status = 'pending' AND run_at <= ?) ", "AND ? IS NOT NULL AND ((? IS NOT NULL) "),
            ("OR (status = 'processing' AND locked_until < ?))", "OR (? IS NOT NULL))"))


def _patch_lease_off_by_one(p: Patch) -> None:
    # The expiry test counts a lease as expired at its last instant (<= instead of <), while the holder's
    # fence still counts it as live there (>=): at t == locked_until two runners hold the task.
    rewrite(p, txn, "find_due_txn", ("locked_until < ?", "locked_until <= ?"))
    rewrite(p, txn, "claim_txn", ("locked_until < ?", "locked_until <= ?"))


def _patch_stale_owner(p: Patch) -> None:
    # The fence checks that the lease is live but not whose it is: a runner whose task was taken over
    # keeps committing into the new claimant's lease.
    rewrite(p, txn, "held_until_txn", ("AND lock_owner = ? AND version = ? ", "AND ? IS NOT NULL AND ? IS NOT NULL "))


def _patch_expired_commit(p: Patch) -> None:
    # The fence checks whose lease it is but not whether it ran out: after a clock jump a stalled runner
    # commits although any runner may already have taken the task over.
    rewrite(p, txn, "held_until_txn", ("AND locked_until >= ?", "AND ? IS NOT NULL"))


def _fill_result_txn(conn: sqlite3.Connection, claim: Claim, key: str, result: str, now: float,
                     lease_until: float) -> None:
    txn.fence_txn(conn, claim, now, lease_until)
    conn.execute("UPDATE workflow_step SET result = ? WHERE workflow_name = ? AND instance_id = ? AND "
                 "run_number = ? AND step_key = ?", (result, claim.workflow, claim.instance_id, claim.run_number, key))


def _patch_record_first(p: Patch) -> None:
    # The step row is written `completed` before the callback runs and the result is filled in by a second
    # write after it; replay treats a completed row without a result as "the callback never finished" and
    # calls it again. A crash (or failure) between the two writes replays a completed step's side effect.
    p.setattr(step, "_zoo_fill_result_txn", _fill_result_txn, raising=False)
    rewrite(p, step.WorkflowStep, "do",
            ('if row["status"] == "completed":', 'if row["status"] == "completed" and row["result"] is not None:'),
            ('x.trace("step_call", key=key, attempt=attempt)\n',
             ('x.trace("step_call", key=key, attempt=attempt)\n'
              '        await x.commit(StepWrite(key=key, name=name, type="do", position=position, '
              'status="completed", attempts=attempt, max_attempts=policy.max_attempts, result=None), None)\n')),
            ("            await x.commit(write, None)\n            return decode(result_text)\n",
             ("            try:\n"
              "                await x.store.fenced(_zoo_fill_result_txn, x.claim, key, result_text, "
              "lease=x.lease)\n"
              "            except Exception as exc:\n"
              "                raise x._abandon(key, exc) from exc\n"
              "            return decode(result_text)\n")))


def _blind_renew_txn(conn: sqlite3.Connection, claim: Claim, now: float, lease_until: float) -> None:
    # Extends whatever lease the task has now, without asking whose it is or whether it already ran out.
    del now
    conn.execute("UPDATE workflow_task SET locked_until = ? WHERE id = ?", (lease_until, claim.task_id))


async def _blind_renew_lease(self: TxnStore, claim: Claim, lease: float) -> bool:
    await self.fenced(_blind_renew_txn, claim, lease=lease)
    return True


def _patch_blind_heartbeat(p: Patch) -> None:
    # The heartbeat renews the task's lease by id alone: a runner that lost the task (taken over, or handed
    # back to pending by an expiry) keeps extending a lease it no longer owns, and keeps running.
    p.setattr(TxnStore, "renew_lease", _blind_renew_lease)


def _patch_terminate_overwritten(p: Patch) -> None:
    # The finishing runner skips its fence once the instance is terminated (terminate deleted its task, and
    # "the instance is over anyway"), so a completion that was in flight overwrites `terminated`.
    rewrite(p, txn, "finish_txn", (
        "    fence_txn(conn, claim, now, lease_until)\n",
        ("    if conn.execute('SELECT status FROM workflow_instance WHERE workflow_name = ? AND instance_id = ?',\n"
         "                    (claim.workflow, claim.instance_id)).fetchone()[0] != 'terminated':\n"
         "        fence_txn(conn, claim, now, lease_until)\n")))


def _patch_paused_consumes(p: Patch) -> None:
    # An event for a waiting instance that has no task re-enqueues it ("the wake-up must never be lost"),
    # forgetting that a paused instance has no task on purpose: it is claimed and consumes the event.
    rewrite(p, txn, "send_event_txn", (
        '    return "sent"\n',
        ("        if conn.execute('SELECT 1 FROM workflow_task WHERE workflow_name = ? AND instance_id = ?',\n"
         "                        (workflow, instance_id)).fetchone() is None:\n"
         "            _insert_task(conn, workflow, instance_id, inst['run_number'], 'wake', now)\n"
         '    return "sent"\n')))


def _patch_event_twice(p: Patch) -> None:
    # The consumed event is never marked, so a later wait of the same type (after a restart) takes it again.
    rewrite(p, txn, "wait_event_txn",
            ('"UPDATE workflow_event SET consumed_by_step_key = ?, consumed_run = ?, delivered_at = ? WHERE id = ?"',
             '"SELECT ?, ?, ?, ?"'))


def _patch_priority_ties(p: Patch) -> None:
    # Equal priorities are broken newest first: a later `run` task jumps an older one (LIFO starvation).
    rewrite(p, txn, "find_due_txn", ("ORDER BY priority, run_at, id", "ORDER BY priority, run_at DESC, id DESC"))


def _patch_skewed_timers(p: Patch) -> None:
    # Step timers (sleep wake-ups, retry times, wait deadlines) read the runner's own, possibly skewed,
    # clock instead of the one scheduling clock.
    rewrite(p, step.WorkflowStep, "do", ("x.now()", "x.runtime.now()", 3))
    rewrite(p, step.WorkflowStep, "_sleep", ("now = x.now()", "now = x.runtime.now()"))
    rewrite(p, step.WorkflowStep, "wait_for_event", ("now = x.now()", "now = x.runtime.now()"))


def _patch_retry_counter(p: Patch) -> None:
    # The attempt counter lives in the runner's memory: a replay (after a crash or a retry wait) counts from
    # 1 again, so attempts pass the limit.
    rewrite(p, step.WorkflowStep, "do", ('attempts = row["attempts"] if row is not None else 0', "attempts = 0"))


def _patch_retries_past_limit(p: Patch) -> None:
    # Off by one in the give-up check: a step runs one attempt more than limit + 1.
    rewrite(p, step.WorkflowStep, "do", ("attempt >= policy.max_attempts", "attempt > policy.max_attempts"))


UNSCHEDULED = 1e15  # "parked": the hand-back's first write; the second write sets the real wake-up time


def _schedule_txn(conn: sqlite3.Connection, task_id: int, run_at: float) -> None:
    conn.execute("UPDATE workflow_task SET run_at = ? WHERE id = ? AND status = 'pending' AND run_at = ?",
                 (run_at, task_id, UNSCHEDULED))


def _patch_lost_wakeup_crash(p: Patch) -> None:
    # A sleep's or retry's hand-back parks the task in one write and sets its wake-up time in a second; a
    # runner that crashes between the two leaves the task parked forever (a liveness bug).
    p.setattr(execution, "_zoo_schedule_txn", _schedule_txn, raising=False)
    p.setattr(execution, "_ZOO_UNSCHEDULED", UNSCHEDULED, raising=False)
    rewrite(p, execution.Execution, "commit", (
        "paused = await self.store.commit_step(self.claim, write, suspension, self.lease)",
        ("paused = await self.store.commit_step(self.claim, write, suspension and Suspension(suspension.kind, "
         "_ZOO_UNSCHEDULED), self.lease)")), (
        "    if suspension is not None:\n        self.stopped = True\n",
        ("    if suspension is not None:\n"
         "        self.stopped = True\n"
         "        await self.checkpoint(\"handback:schedule\")\n"
         "        try:\n"
         "            await self.store.write(_zoo_schedule_txn, self.claim.task_id, suspension.run_at)\n"
         "        except Exception as exc:\n"
         "            raise self._abandon(write.key, exc) from exc\n")))


def _patch_late_event(p: Patch) -> None:
    # The buffer lookup forgets the wait's deadline: an event sent after the wait timed out (but before a
    # runner processed the timeout) is accepted.
    rewrite(p, txn, "_first_event", ("AND created_at <= ? ", "AND (created_at <= ? OR 1) "))


def _patch_wakeup_overwritten(p: Patch) -> None:
    # send_event wakes the task whatever its state, so the hand-back's re-check of the buffer was dropped as
    # redundant; but parking a wait is now two writes (the waiting row, then the hand-back), and the
    # hand-back reschedules the task to the wait's deadline, overwriting a wake-up send_event set in between.
    rewrite(p, txn, "send_event_txn", (" AND status = 'pending'", ""))
    p.setattr(txn, "_zoo_hand_back", rewritten(txn, "_hand_back", ("if waiting is not None and _first_event(",
                                                                   "if False and _first_event(")), raising=False)
    p.setattr(txn, "_zoo_wait_no_park_txn", rewritten(txn, "wait_event_txn", (
        'return WaitOutcome(paused=_hand_back(conn, claim, Suspension("wake", deadline), now, requested))',
        "return WaitOutcome(paused=False)")), raising=False)
    p.setattr(execution, "_zoo_park_txn", rewritten(txn, "suspend_txn", ("return _hand_back(",
                                                                        "return _zoo_hand_back(")), raising=False)
    rewrite(p, TxnStore, "wait_event", ("txn.wait_event_txn", "txn._zoo_wait_no_park_txn"))
    rewrite(p, execution.Execution, "wait", (
        "    if outcome.paused or not (outcome.event or outcome.timed_out):\n",
        ("    if not (outcome.event or outcome.timed_out):\n"
         "        await self.checkpoint(\"wait:park\")\n"
         "        try:\n"
         "            paused = await self.store.fenced(_zoo_park_txn, self.claim, Suspension(\"wake\", deadline), "
         "lease=0.0)\n"
         "        except Exception as exc:\n"
         "            raise self._abandon(write.key, exc) from exc\n"
         "        outcome = WaitOutcome(paused=paused)\n"
         "    if outcome.paused or not (outcome.event or outcome.timed_out):\n")))


def _patch_sync_no_heartbeat(p: Patch) -> None:
    # The engine's first version: a sync callback blocks the event loop, so no heartbeat runs while it
    # does; a sync step longer than the lease loses it, is run again by another runner, and so forever.
    rewrite(p, execution.Execution, "call", (
        "        value = self._run_sync(fn, *args)\n",
        "        self.stop_heartbeat()\n        value = self._run_sync(fn, *args)\n"))


def _patch_heartbeat_too_late(p: Patch) -> None:
    # The renewal timer counts a whole lease from the last renewal instead of aiming before the expiry: the
    # renewal always arrives just after the lease ran out, so any step longer than one lease loses it.
    rewrite(p, execution.Execution, "_beat", ("wait = until - third - self.now()", "wait = until + 1 - self.now()"))


def _patch_events_leak(p: Patch) -> None:
    # The event buffer is per instance, not per run: an event no earlier run consumed completes a wait of
    # the run a restart started (a stale webhook finishing a restarted order).
    rewrite(p, txn, "_first_event", ("AND run_number = ? AND type", "AND run_number <= ? AND type"))


def _patch_hash_names(p: Patch) -> None:
    # Step names are not checked for '#': do("x"), do("x#2"), do("x") keys the third as do:x#2 too; its
    # commit is refused as a second completion and the run retries it after every lease, forever.
    rewrite(p, step, "_check_name", ('    if "#" in name:\n', "    if False:\n"))


def _patch_nested_steps(p: Patch) -> None:
    # A step started from inside another step's callback is accepted: it takes the next position, and the
    # replay after the next suspension meets it where the workflow's own next step should be.
    rewrite(p, step.WorkflowStep, "_next", (
        "if _IN_CALLBACK.get() == (x.claim.workflow, x.claim.instance_id):", "if False:"))


CANARY_RATE = 0.1


def _patch_canary(p: Patch) -> None:
    # Not a real bug: at a world's first create, a coin from the seed's choice stream (p = CANARY_RATE)
    # decides whether that instance gets a second task. Every seed where it fires fails property 8, so the
    # fraction of failing seeds is known in advance: the gate checks the harness reports exactly that.
    original = txn.create_instances_txn
    fired: weakref.WeakKeyDictionary[World, bool] = weakref.WeakKeyDictionary()  # per world, this patch only

    def create_instances_txn(conn: sqlite3.Connection, workflow: str, items: list[tuple[str, str]],
                             now: float) -> list[str]:
        created = original(conn, workflow, items, now)
        world = CURRENT_WORLD.get()
        if created and world is not None and world not in fired:
            fired[world] = world.choices.flip("canary", CANARY_RATE)
            if fired[world]:
                txn._insert_task(conn, workflow, created[0], 0, "run", now)  # a task of a run that never was
        return created

    p.setattr(txn, "create_instances_txn", create_instances_txn)


def _patch_wall_clock(p: Patch) -> None:
    # A debugging timestamp from the wall clock in the runner's `find` record: the engine still behaves the
    # same, but a seed no longer replays to the same trace (the determinism self-check must flag it).
    rewrite(p, runner.Runner, "tick", ('self.trace("find", now=now,',
                                       'self.trace("find", now=now, wall=__import__("time").time(),'))


# sim/search/explore.py's act() lets the client act at once whenever no task is due ("delaying it only shifts
# time"), so no client operation ever waits past a timer: a pause after the wait has parked, or an event
# after the wait's deadline, is outside the space it enumerates. Without that reduction race-pause finds
# both mutants below (measured: 1668 and 1164 executions).
_EAGER_CLIENT = "the explorer's eager-client reduction never delays a client op past a timer"


MUTANTS: dict[str, ZooMutant] = {m.name: m for m in (
    ZooMutant(name="lease-off-by-one", title="lease expiry off by one", prop="P3", setting=CLOCK_JUMP,
              models="queue visibility checks written `<=` on one side and `>=` on the other",
              patch=_patch_lease_off_by_one, lease_race=True, best="random", gate_budget=400,
              # The runner's find already returns the task at the boundary, which the priority check (P2)
              # sees as a task that is not due yet, one move before the double claim (P3).
              also=("P2",)),
    ZooMutant(name="blind-claim", title="claim without the optimistic check", prop="P3", setting=CALM,
              models="UPDATE ... WHERE id = ? without the version/status guard (lost-update claim)",
              patch=_patch_blind_claim, explore="steps3", lease_race=True, best="explore", gate_budget=200),
    ZooMutant(name="stale-owner-commit", title="stale owner commits after losing its lease", prop="P3",
              setting=CLOCK_JUMP, models="fencing on lease liveness without the owner/fencing token",
              patch=_patch_stale_owner, explore="steps3-faults", lease_race=True, best="random", gate_budget=200),
    ZooMutant(name="expired-lease-commit", title="commit after the lease ran out", prop="P3", setting=CLOCK_JUMP,
              models="a GC-paused worker that checks who holds the lock but not until when",
              patch=_patch_expired_commit, explore="steps3-faults", lease_race=True, best="random",
              gate_budget=200),
    # The model sees it first on script instances (a completed row without its result); P1 on the others.
    ZooMutant(name="record-first", title="step record written before its side effect", prop="P1",
              also=("model",), setting=CRASHES, models="journal marks a step done before the effect; recovery re-runs it",
              patch=_patch_record_first, explore="steps3-faults", best="random", gate_budget=200),
    ZooMutant(name="blind-heartbeat", title="heartbeat extends a lease it no longer owns", prop="P3",
              setting=CLOCK_JUMP, models="heartbeat UPDATE by task id only, also after the task went pending",
              patch=_patch_blind_heartbeat, lease_race=True, best="random", gate_budget=300),
    ZooMutant(name="terminate-overwritten", title="terminate overwritten by an in-flight completion", prop="P4",
              setting=LIFECYCLE, models="cancellation lost to a worker's late 'completed' write",
              patch=_patch_terminate_overwritten, best="random", gate_budget=300),
    ZooMutant(name="paused-consumes-event", title="paused instance consumes an event", prop="P6",
              setting=LIFECYCLE, models="signal handler re-enqueues a suspended/paused workflow",
              patch=_patch_paused_consumes, explore="race-pause", best="random", gate_budget=300,
              explore_note=_EAGER_CLIENT),
    ZooMutant(name="event-twice", title="event delivered twice", prop="P5", setting=PAIRS,
              models="consumed message never acknowledged, redelivered to the next waiter",
              patch=_patch_event_twice, best="random", gate_budget=200),
    ZooMutant(name="priority-ties", title="priority order broken on ties", prop="P2", setting=CALM,
              models="ORDER BY priority with the tiebreak reversed (LIFO within a priority)",
              patch=_patch_priority_ties, best="random", gate_budget=100),
    ZooMutant(name="skewed-timers", title="timer read from a runner's skewed clock", prop="P6", also=("model",),
              setting=NAPS,
              models="durable timers computed from the worker's local clock",
              patch=_patch_skewed_timers, best="random", gate_budget=100),
    ZooMutant(name="retry-counter-in-memory", title="retry counter kept in memory", prop="P7", setting=CHARGES,
              models="attempt count held by the worker, reset by a crash or a replay",
              patch=_patch_retry_counter, best="random", gate_budget=100),
    ZooMutant(name="retries-past-limit", title="retries past the limit", prop="P7", also=("model",),
              setting=CHARGES,
              models="an off-by-one in the give-up check (`>` where `>=` was meant)",
              patch=_patch_retries_past_limit, best="random", gate_budget=100),
    ZooMutant(name="lost-wakeup-crash", title="wake-up lost to a crash between two writes", prop="P9",
              also=("P12",), setting=CRASHING_DOZERS, models="hand-back and wake-up time written in separate transactions",
              patch=_patch_lost_wakeup_crash, best="random", gate_budget=300),
    ZooMutant(name="late-event-accepted", title="late event accepted after the wait timed out", prop="P5",
              setting=LATE, models="event lookup without the deadline filter",
              patch=_patch_late_event, explore="race-pause", best="random", gate_budget=200,
              explore_note=_EAGER_CLIENT),
    ZooMutant(name="wakeup-overwritten", title="send_event wake-up overwritten by a reschedule", prop="P9",
              also=("P12",), setting=PROMPT, models="check-then-park wait; the park's reschedule clobbers the signal's wake-up",
              patch=_patch_wakeup_overwritten, best="random", gate_budget=400),
    ZooMutant(name="sync-no-heartbeat", title="no heartbeat while a sync callback runs", prop="P9",
              setting=SLOW_SYNC, models="a blocking callback on the event loop starves the lease renewal",
              patch=_patch_sync_no_heartbeat, best="random", gate_budget=20, also=("P11",)),
    ZooMutant(name="heartbeat-too-late", title="heartbeat renews after the lease ran out", prop="P11",
              also=("P1", "P9"), setting=SLOW_SYNC, models="a renewal timer aimed at the expiry, not before it",
              patch=_patch_heartbeat_too_late, best="random", gate_budget=20),
    ZooMutant(name="events-leak-across-runs", title="events leak into a restarted run", prop="P5",
              setting=LIFECYCLE, models="an event buffer keyed by instance instead of by run",
              patch=_patch_events_leak, best="random", gate_budget=300),
    ZooMutant(name="hash-step-names", title="'#' accepted in step names", prop="P1", also=("P9", "model"),
              setting=NAMES,
              models="user names colliding with the engine's repeat-key suffix",
              patch=_patch_hash_names, best="random", gate_budget=10),
    ZooMutant(name="nested-steps", title="nested step accepted", prop="P10", setting=NAMES,
              models="a step started inside a step callback taking the workflow's next position",
              patch=_patch_nested_steps, best="random", gate_budget=10),
    ZooMutant(name="canary", title=f"canary: fails {CANARY_RATE:.0%} of seeds", prop="P8", setting=DEFAULT,
              models="(calibration) a coin from the choice stream decides whether the bug fires",
              patch=_patch_canary, best="random", gate_budget=100),
    ZooMutant(name="wall-clock-trace", title="wall-clock read in a trace record", prop="determinism",
              setting=DEFAULT, models="time.time() leaking into what should be a replayable record",
              patch=_patch_wall_clock, best="random", gate_budget=3, oracle="determinism"),
    *SEMANTIC,
)}


@contextmanager
def apply(name: str) -> Iterator[ZooMutant]:
    """Run the block against mutant `name`; the real engine is back when the block ends, whatever happens."""
    try:
        mutant = MUTANTS[name]
    except KeyError:
        raise KeyError(f"unknown mutant {name!r}; known: {', '.join(MUTANTS)}") from None
    patcher = Patcher()
    try:
        mutant.patch(patcher)
        yield mutant
    finally:
        patcher.undo()


def caught_by(result: RunResult, prop: str) -> bool:
    """Whether `result` reports a violation of property `prop` (a prefix such as "P3")."""
    return any(v.prop.split()[0] == prop for v in result.violations)


__all__ = ["CALM", "CANARY_RATE", "CHARGES", "CLOCK_JUMP", "CRASHES", "DEFAULT", "DUPLICATES", "LATE", "LIFECYCLE",
           "MODES", "MUTANTS", "NAPS", "PROMPT", "Patch", "Patcher", "Setting", "ZooMutant", "apply", "caught_by",
           "mutant_profile", "rewrite", "rewritten"]
