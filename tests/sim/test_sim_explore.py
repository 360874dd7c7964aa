"""The exhaustive explorer: complete enumeration, pinned search sizes, violations as replayable tapes."""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest
from click.testing import CliRunner

import engine._txn as txn
from engine._store import Claim, DueTask
from sim.cli.main import main
from sim.search.explore import CONFIGS, Enumerator, ExploreConfig, explore, replay_tape, write_tape

STEPS3 = CONFIGS["steps3"]


def test_enumerator_walks_every_path_of_a_choice_tree_once() -> None:
    """Depth-first backtracking over Enumerator tapes visits each leaf of an irregular tree exactly once."""
    leaves = []
    prefix: list[int] = []
    while True:
        enum = Enumerator(prefix)
        first = enum.choose("a", 3)
        second = enum.choose("b", first + 1)  # 1, 2 or 3 options depending on the first choice
        leaves.append((first, second))
        tape = list(enum.tape)
        while tape and tape[-1].value + 1 >= tape[-1].n:
            tape.pop()
        if not tape:
            break
        prefix = [c.value for c in tape[:-1]] + [tape[-1].value + 1]
    assert leaves == [(0, 0), (1, 0), (1, 1), (2, 0), (2, 1), (2, 2)]


@pytest.mark.parametrize(
    ("config", "executions", "states"),
    [
        (STEPS3, 39, 2),
        (attrs.evolve(STEPS3, preemption_bound=1, max_crashes=1), 116, 78),
        (attrs.evolve(STEPS3, preemption_bound=1, max_lease_expiries=1), 120, 34),
        (CONFIGS["race-pause"], 1779, 1237),
    ],
    ids=["2x3-steps", "2x3-steps-crash", "2x3-steps-lease-expiry", "sleep-event-pause-race"],
)
def test_reference_configurations_have_pinned_search_sizes(config: ExploreConfig, executions: int, states: int) -> None:
    """A change in the search (bounds, pruning, yield points) changes these counts and must be noticed."""
    stats = explore(config)
    assert stats.violation is None
    assert stats.exhausted
    assert (stats.executions, stats.distinct_states) == (executions, states)


def test_pruning_only_removes_revisits() -> None:
    """With pruning off the same space is walked with more executions and still no violation."""
    config = attrs.evolve(STEPS3, preemption_bound=1, max_crashes=1)
    pruned, full = explore(config), explore(config, prune=False)
    assert full.exhausted and full.violation is None
    assert full.executions > pruned.executions


def _claim_without_version_check(
    conn: object, task: DueTask, owner: str, now: float, lease_until: float
) -> Claim:
    """Mutant: claim whatever was found, without the optimistic check."""
    conn.execute(  # type: ignore[attr-defined]
        "UPDATE workflow_task SET status = 'processing', lock_owner = ?, locked_until = ?, version = ? WHERE id = ?",
        (owner, lease_until, task.version + 1, task.id),
    )
    return Claim(task_id=task.id, version=task.version + 1, owner=owner, workflow=task.workflow,
                 instance_id=task.instance_id, run_number=task.run_number, kind=task.kind)


def test_explorer_finds_a_claim_race_and_its_tape_replays(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A claim without the optimistic check is found; the violating tape replays to the same violation."""
    monkeypatch.setattr(txn, "claim_txn", _claim_without_version_check)
    stats = explore(STEPS3)
    assert stats.violation is not None and stats.violation.startswith("P3")
    assert stats.violating_tape is not None and len(stats.violating_tape) <= 12
    tape = tmp_path / "race.tape"
    write_tape(tape, STEPS3, stats.violating_tape)
    outcome, result = replay_tape(tape)
    assert not outcome.ok and result.violations[0].prop.startswith("P3")
    cli = CliRunner().invoke(main, ["replay", "--tape", str(tape)])
    assert cli.exit_code == 1 and "P3" in cli.output


def test_explore_command_reports_counts() -> None:
    """`stepsim explore` prints executions and distinct states and exits 0 on a clean engine."""
    result = CliRunner().invoke(main, ["explore", "--config", "steps3"])
    assert result.exit_code == 0, result.output
    assert "39 executions" in result.output and "bound exhausted" in result.output


def test_symmetric_states_share_one_fingerprint() -> None:
    """Two states that differ only by which runner holds the lease fingerprint the same (symmetry reduction)."""
    from sim.search.explore import Enumerator, ExploreWorld

    marks = []
    for first in ("r1", "r2"):
        world = ExploreWorld(STEPS3, Enumerator([]), keep_trace=False)
        with world.scheduler:
            world.scheduler.run_until_quiescent()
            world.conn.execute("UPDATE workflow_task SET status = 'processing', lock_owner = ?, locked_until = ?",
                               (first, world.clock.now() + 30))
            marks.append(world.fingerprint())
        world.conn.close()
    assert marks[0] == marks[1]
