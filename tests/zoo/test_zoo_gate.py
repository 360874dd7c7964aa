"""The bug-zoo gate (issue 7): the harness must find every realistic engine bug, and know its own noise.

Every mutant of sim/zoo/mutants.py is caught by its best mode within a small budget, by the property it
breaks, on a seed the real engine passes; the canary fails the fraction of seeds its coin promises; the
determinism self-check passes the real engine and flags a wall-clock read; and every "sometimes" probe is
reached by a short fuzz campaign, so the properties are not only ever checked on easy runs.
"""

from __future__ import annotations

import math
import types
from pathlib import Path

import pytest
from click.testing import CliRunner

import engine._execution as execution
import engine._records as records
import engine._runner as runner
import engine._sqlite_store as store
import engine._step as step
import engine._txn as txn
from engine._txn_store import TxnStore
from sim.search.campaign import self_check
from sim.world.probes import probe_campaign
from sim.world.workload import get_profile
from sim.zoo.cells import Budget, run_cell
from sim.zoo.mutants import CANARY_RATE, DEFAULT, MUTANTS, apply

pytestmark = pytest.mark.zoo

BUGS = [name for name, m in MUTANTS.items() if m.oracle == "violation" and name != "canary"]
CANARY_SEEDS = 200
PROBE_SEEDS = 200  # per profile (default and swarm): 400 runs


def _engine_functions() -> dict[tuple[str, str], object]:
    """Every function and method the mutants may replace, by (owner, name)."""
    found: dict[tuple[str, str], object] = {}
    for owner in (txn, step, store.SqliteStore, TxnStore, step.WorkflowStep, execution.Execution, runner.Runner,
                  records.Retries):
        for name, value in vars(owner).items():
            if isinstance(value, types.FunctionType):
                found[(getattr(owner, "__name__", str(owner)), name)] = value
    return found


def _binomial_band(n: int, p: float, alpha: float = 1e-3) -> tuple[int, int]:
    """The counts outside which a Binomial(n, p) lands with probability below alpha (two-sided)."""
    pmf = [math.comb(n, k) * p**k * (1 - p) ** (n - k) for k in range(n + 1)]
    lo, tail = 0, 0.0
    while tail + pmf[lo] < alpha / 2:
        tail += pmf[lo]
        lo += 1
    hi, tail = n, 0.0
    while tail + pmf[hi] < alpha / 2:
        tail += pmf[hi]
        hi -= 1
    return lo, hi


@pytest.mark.parametrize("name", BUGS)
def test_mutant_is_caught_by_its_best_mode(name: str) -> None:
    """The mutant's best mode finds it within the gate budget, by the property it breaks."""
    mutant = MUTANTS[name]
    budget = Budget(seeds=mutant.gate_budget, explore_cap=mutant.gate_budget, machine_examples=mutant.gate_budget,
                    shrink=False)
    cell = run_cell(name, mutant.best, budget)
    assert cell.detected, f"{name} not caught by {mutant.best} in {mutant.gate_budget} runs: {cell}"
    assert mutant.expects(cell.prop), f"{name} was caught by {cell.prop}, expected {mutant.prop} {mutant.also}"


def test_every_mutant_applies_and_is_undone() -> None:
    """Each mutant's edits still match the engine's source, and leaving `apply` restores every function."""
    before = _engine_functions()
    for name in MUTANTS:
        with apply(name):
            assert _engine_functions() != before, f"{name} changed nothing"
        assert _engine_functions() == before, f"{name} left the engine patched"
    assert not hasattr(txn, "_zoo_park_txn") and not hasattr(step, "_zoo_fill_result_txn")


def test_canary_fails_its_known_fraction_of_seeds() -> None:
    """The canary's coin fires with probability CANARY_RATE per seed, and every seed where it fires fails."""
    with apply("canary"):
        failing = sum(1 for seed in range(CANARY_SEEDS) if DEFAULT.run(seed).violations)
    lo, hi = _binomial_band(CANARY_SEEDS, CANARY_RATE)
    assert lo <= failing <= hi, f"canary failed {failing}/{CANARY_SEEDS} seeds; expected {lo}..{hi}"


def test_self_check_passes_the_real_engine() -> None:
    """Clean seeds replay to byte-identical traces."""
    assert self_check(range(6), get_profile("default")) == []


def test_self_check_flags_a_wall_clock_read() -> None:
    """A wall-clock timestamp in a trace record makes every rerun differ, and the self-check says so."""
    with apply("wall-clock-trace"):
        assert self_check(range(3), get_profile("default")) == [0, 1, 2]


def test_every_sometimes_probe_is_hit() -> None:
    """A few hundred fuzz seeds reach every declared probe at least once."""
    report = probe_campaign(PROBE_SEEDS)
    assert report.seeds == 2 * PROBE_SEEDS
    assert report.missed == [], report.render()


def test_zoo_command_writes_a_table(tmp_path: Path) -> None:
    """`stepsim zoo` on one mutant and one mode writes a Markdown row for it."""
    from sim.cli.main import main

    out = tmp_path / "zoo.md"
    result = CliRunner().invoke(main, ["zoo", "--mutant", "priority-ties", "--modes", "random,explore",
                                       "--budget", "20", "--jobs", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert "`priority-ties`" in text and "| n/a |" in text


@pytest.mark.parametrize(("name", "examples"), [("hash-step-names", 100), ("events-leak-across-runs", 600)])
def test_issue_10_rules_are_caught_by_the_state_machine_search(name: str, examples: int) -> None:
    """The model's `#` and run-scoped-event rules (issue 10) let the Hypothesis machine find their mutants."""
    cell = run_cell(name, "machine", Budget(seeds=1, explore_cap=1, machine_examples=examples, shrink=False))
    assert cell.detected, f"{name} not caught by the machine in {examples} examples: {cell}"
