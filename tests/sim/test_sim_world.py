"""The simulated world drives the real engine deterministically and reports failures reproducibly."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

import engine._txn as txn
from sim.search.campaign import campaign, repro_line, resolve_profile, save_failure, self_check
from sim.cli.main import main
from sim.world.simulation import run_seed


def test_same_seed_gives_byte_identical_trace() -> None:
    """Two runs of one seed produce the same trace, byte for byte, and the same database."""
    first, second = run_seed(7, "default"), run_seed(7, "default")
    assert first.trace.to_jsonl() == second.trace.to_jsonl()
    assert first.dump == second.dump
    assert len(first.trace) > 50


def test_different_seeds_give_different_traces() -> None:
    """Different seeds explore different interleavings and faults."""
    digests = {run_seed(seed, "default").trace.digest() for seed in range(8)}
    assert len(digests) == 8


def test_swarm_enables_different_fault_subsets_per_seed() -> None:
    """Swarm mode draws a different subset of fault kinds per seed."""
    subsets = {tuple(run_seed(seed, "swarm").stats["enabled_faults"]) for seed in range(10)}
    assert len(subsets) > 3


@pytest.mark.parametrize(("profile", "seeds"), [("default", 150), ("swarm", 100), ("s1", 100), ("calm", 30)])
def test_fuzz_campaign_is_green_on_the_real_engine(profile: str, seeds: int, tmp_path: Path) -> None:
    """A few hundred seeds with crashes, lease expiries, store faults and lifecycle races break no property."""
    summary = campaign(range(seeds), resolve_profile(profile), reports=tmp_path)
    assert [f.violation for f in summary.failures] == []
    assert summary.seeds == seeds
    if profile != "calm":
        assert sum(summary.faults.values()) > 0


def test_faults_of_every_kind_fire_in_the_default_profile(tmp_path: Path) -> None:
    """The default profile actually exercises every fault kind it declares."""
    summary = campaign(range(200), resolve_profile("default"), reports=tmp_path)
    for kind in ("crash", "clock_jump", "skew", "busy", "io_error", "commit_unknown", "step_raise",
                 "duplicate_event", "late_event", "lifecycle", "stall"):
        assert summary.faults.get(kind, 0) > 0, kind


def test_every_instance_ends_after_the_liveness_phase() -> None:
    """After faults stop, the calm world drives every instance to a terminal or paused state."""
    result = run_seed(3, "calm")
    assert result.ok
    statuses = [line for line in result.dump.splitlines() if '"table": "workflow_instance"' in line]
    assert statuses and all(('"complete"' in s or '"errored"' in s or '"terminated"' in s or '"paused"' in s)
                            for s in statuses)


def _no_fence(conn, claim, now, lease_until):  # type: ignore[no-untyped-def]
    """Mutant: the fence renews whatever row has this id, owner or not."""
    conn.execute("UPDATE workflow_task SET locked_until = ? WHERE id = ?", (lease_until, claim.task_id))


def test_failing_seed_is_saved_and_replays_from_its_printed_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A broken engine fails a seed; the artifacts are saved and `stepsim replay` fails again the same way."""
    monkeypatch.setattr(txn, "fence_txn", _no_fence)
    profile = resolve_profile("default")
    failing = next(r for r in (run_seed(seed, profile) for seed in range(60)) if not r.ok)
    folder = save_failure(failing, profile, tmp_path)
    assert (folder / "trace.jsonl").read_text() == failing.trace.to_jsonl()
    assert "reproduce: stepsim replay --seed" in (folder / "violation.txt").read_text()
    line = repro_line(failing.seed, profile)
    result = CliRunner().invoke(main, line.split()[1:])
    assert result.exit_code == 1
    assert failing.violations[0].prop in result.output


def test_replay_of_a_passing_seed_exits_zero() -> None:
    """`stepsim replay` on a healthy seed prints the trace and exits 0."""
    result = CliRunner().invoke(main, ["replay", "--seed", "2", "--profile", "s1", "--view", "runners"])
    assert result.exit_code == 0, result.output
    assert "all properties hold" in result.output


def test_self_check_passes_on_clean_seeds() -> None:
    """Rerunning seeds reproduces their trace digests."""
    assert self_check(range(3), resolve_profile("default")) == []
