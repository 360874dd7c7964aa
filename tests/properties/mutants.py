"""Deliberately broken engines ("mutants") for proving that each invariant checker fires (DESIGN §6).

Most mutants are one small source edit to one engine function, applied with pytest's `monkeypatch`: the
function's source is read, the edit applied (the old text must occur exactly once, so an engine refactor
fails loudly instead of silently testing the real engine), and the recompiled function replaces the
original on its module or class; the rest swap in a few-line replacement. Callers look engine functions up at call time (`txn.claim_txn`, module
globals, methods), so the patch reaches every runner in the simulated world, and `monkeypatch` undoes it.

Each mutant names the property that must catch it, the seeds that show it, and the setting (profile and,
where the mixed workload rarely gets there, a fixed workload) under which the bug is reachable: clock jumps
for fencing bugs, lifecycle operations for terminate/pause bugs, duplicate or late events for event bugs.
Seed ranges hold at least three catching seeds with some margin, so small changes to the engine's
interleavings do not silently turn a catch into a miss.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
import pytest

import engine._runner as runner
import engine._txn as txn
import engine._step as step
import sim.zoo.mutants as zoo
from engine._store import Claim

# The edit-and-recompile machinery, the settings and the mutants the zoo shares live with the bug zoo (sim/zoo/mutants.py), which
# applies the same kind of mutants outside pytest; pytest's monkeypatch has the `setattr` they need.
from sim.zoo.mutants import (
    CALM,
    CHARGES,
    CLOCK_JUMP,
    DUPLICATES,
    LATE,
    LIFECYCLE,
    NAPS,
    PROMPT,
    Setting,
    caught_by,
    rewrite,
)

# --- the mutants ----------------------------------------------------------------------------------------


@attrs.frozen
class Mutant:
    """One broken engine: `apply` patches it in; property `prop` must fire on one of `seeds` in `setting`."""

    name: str
    prop: str
    setting: Setting
    seeds: range
    apply: Callable[[pytest.MonkeyPatch], None]


_DELETE_TASKS = 'conn.execute("DELETE FROM workflow_task WHERE workflow_name = ? AND instance_id = ?", ' \
                "(workflow, instance_id))"


def _p1_replay_reruns_completed(mp: pytest.MonkeyPatch) -> None:
    # Replay ignores a completed step's stored result and calls the callback again.
    rewrite(mp, step.WorkflowStep, "do", ('if row["status"] == "completed":', "if False:"))


def _p1_overwrite_completed(mp: pytest.MonkeyPatch) -> None:
    # The step journal accepts a second completion instead of raising a conflict, so a replay that does
    # not honour a completed wait (it waits again) commits that step a second time with the next event.
    rewrite(mp, txn, "_write_step", (" WHERE workflow_step.status NOT IN ('completed', 'errored')", ""))
    rewrite(mp, step.WorkflowStep, "wait_for_event", ('if row is not None and row["status"] == "completed":',
                                                      "if False:"))


def _p2_priority_reversed(mp: pytest.MonkeyPatch) -> None:
    rewrite(mp, txn, "find_due_txn", ("ORDER BY priority, run_at, id", "ORDER BY priority DESC, run_at, id"))


def _p2_claims_out_of_order(mp: pytest.MonkeyPatch) -> None:
    # The find is right, but the runner then claims what it found from the back: runs before wake-ups.
    rewrite(mp, runner.Runner, "tick", ("for task in due:", "for task in reversed(due):"))


def _p4_fence_passes_deleted_task(mp: pytest.MonkeyPatch) -> None:
    # The fence only refuses a task that another runner holds; a task deleted by terminate (or restart,
    # or pause) fences nothing any more, so the old runner keeps writing into the ended run.
    fence = txn.fence_txn

    def fence_txn(conn: Any, claim: Claim, now: float, lease_until: float) -> None:
        if conn.execute("SELECT 1 FROM workflow_task WHERE id = ?", (claim.task_id,)).fetchone() is not None:
            fence(conn, claim, now, lease_until)

    mp.setattr(txn, "fence_txn", fence_txn)


def _p4_pause_terminal(mp: pytest.MonkeyPatch) -> None:
    # pause() forgets to refuse terminal instances and turns them into paused ones.
    rewrite(mp, txn, "pause_txn", ('if inst["status"] in TERMINAL:', "if False:"))


def _p5_newest_first(mp: pytest.MonkeyPatch) -> None:
    rewrite(mp, txn, "_first_event", ('ORDER BY id"', 'ORDER BY id DESC"'))


def _p6_pause_keeps_task(mp: pytest.MonkeyPatch) -> None:
    # A paused instance keeps its task, so runners keep claiming (and advancing) it.
    rewrite(mp, txn, "_apply_pause", (_DELETE_TASKS, "pass"))


def _p8_terminate_keeps_task(mp: pytest.MonkeyPatch) -> None:
    rewrite(mp, txn, "terminate_txn", (_DELETE_TASKS, "pass"))


def _p8_resume_without_task(mp: pytest.MonkeyPatch) -> None:
    rewrite(mp, txn, "resume_txn", ('_insert_task(conn, workflow, instance_id, inst["run_number"], "resume", now)',
                                    "pass"))


def _p8_restart_keeps_old_task(mp: pytest.MonkeyPatch) -> None:
    rewrite(mp, txn, "restart_txn", (_DELETE_TASKS, "pass"))


def _p9_wake_in_milliseconds(mp: pytest.MonkeyPatch) -> None:
    # A unit slip: a hand-back stores its wake time in milliseconds, parking the instance for millennia.
    rewrite(mp, txn, "_hand_back", ("run_at = suspension.run_at", "run_at = suspension.run_at * 1000"))


def _p9_lost_wakeup(mp: pytest.MonkeyPatch) -> None:
    # send_event buffers the event but never wakes the waiting task: the instance sleeps until its wait
    # deadline although its event is there. (Dropping only the hand-back's re-check of the buffer is an
    # equivalent mutant today: every hand-back that parks a wait runs in wait_event_txn, which has just
    # looked at the buffer itself.)
    rewrite(mp, txn, "send_event_txn", ('if waiting is not None and waiting["wait_event_type"] == type:', "if False:"))


MUTANTS = (
    Mutant("replay reruns completed step", "P1", CALM, range(16), _p1_replay_reruns_completed),
    Mutant("completed wait overwritten on replay", "P1", DUPLICATES, range(12), _p1_overwrite_completed),
    Mutant("find_due priority reversed", "P2", CALM, range(5), _p2_priority_reversed),
    Mutant("find_due ties reversed", "P2", CALM, range(10), zoo._patch_priority_ties),
    Mutant("claims taken out of found order", "P2", CALM, range(5), _p2_claims_out_of_order),
    Mutant("claim without optimistic check", "P3", CALM, range(5), zoo._patch_blind_claim),
    Mutant("fence ignores owner and version", "P3", CLOCK_JUMP, range(10), zoo._patch_stale_owner),
    Mutant("fence ignores lease expiry", "P3", CLOCK_JUMP, range(5), zoo._patch_expired_commit),
    Mutant("renewal ignores ownership", "P3", CLOCK_JUMP, range(16), zoo._patch_blind_heartbeat),
    Mutant("fence passes a deleted task", "P4", LIFECYCLE, range(24), _p4_fence_passes_deleted_task),
    Mutant("pause accepts terminal instance", "P4", LIFECYCLE, range(5), _p4_pause_terminal),
    Mutant("consumed event not marked", "P5", zoo.PAIRS, range(16), zoo._patch_event_twice),
    Mutant("event accepted after deadline", "P5", LATE, range(16), zoo._patch_late_event),
    Mutant("events consumed newest first", "P5", DUPLICATES, range(12), _p5_newest_first),
    Mutant("pause keeps the task", "P6", LIFECYCLE, range(5), _p6_pause_keeps_task),
    Mutant("timers on the runner's skewed clock", "P6", NAPS, range(5), zoo._patch_skewed_timers),
    Mutant("retries past the limit", "P7", CHARGES, range(3), zoo._patch_retries_past_limit),
    Mutant("attempt counter kept in memory", "P7", CHARGES, range(3), zoo._patch_retry_counter),
    Mutant("terminate keeps the task", "P8", LIFECYCLE, range(5), _p8_terminate_keeps_task),
    Mutant("resume inserts no task", "P8", LIFECYCLE, range(20), _p8_resume_without_task),
    Mutant("restart keeps the old run's task", "P8", LIFECYCLE, range(8), _p8_restart_keeps_old_task),
    Mutant("wake time in milliseconds", "P9", PROMPT, range(6), _p9_wake_in_milliseconds),
    Mutant("lost wake-up", "P9", PROMPT, range(10), _p9_lost_wakeup),
)


def control_seeds() -> dict[Setting, range]:
    """Every setting the mutants use, with the widest seed range any mutant runs in it."""
    widest: dict[Setting, range] = {}
    for mutant in MUTANTS:
        known = widest.get(mutant.setting, range(0))
        widest[mutant.setting] = max(known, mutant.seeds, key=len)
    return widest


__all__ = ["MUTANTS", "Mutant", "Setting", "caught_by", "control_seeds", "rewrite"]
