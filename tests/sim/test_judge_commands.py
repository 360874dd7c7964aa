"""`stepsim coverage` and `stepsim mutate`: the measures of how much the searches can see (issue 12)."""

from __future__ import annotations

import types
from pathlib import Path

from click.testing import CliRunner

import engine._codec as codec
import engine._txn as txn
from sim.cli.main import main
from sim.zoo.mutate import Mutation, apply_mutation, judge, mutations
from sim.zoo.patching import Patcher


def test_coverage_writes_the_branch_figure_and_a_reason_for_every_gap(tmp_path: Path) -> None:
    """A tiny sweep still measures engine/ in a fresh interpreter and lists each uncovered branch."""
    out = tmp_path / "coverage.md"
    result = CliRunner().invoke(main, ["coverage", "--seeds", "2", "--profile", "calm", "--out", str(out)])
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert "**Branches: " in text and "| `engine/_txn.py` |" in text
    assert "## Every uncovered branch and line, with the reason" in text
    assert "production wiring the simulator replaces" in text  # reasons are attached, not only listed


def test_every_mutation_applies_and_is_undone() -> None:
    """Each mutant compiles and swaps in; undoing the patch restores the engine's own functions."""
    found = [m for m in mutations(("engine._txn", "engine._codec"))]
    before = {name: fn for name, fn in vars(txn).items() if isinstance(fn, types.FunctionType)}
    assert len(found) > 100 and {m.kind for m in found} >= {"compare", "sql-compare", "sql-condition", "remove"}
    for mutation in found:
        patch = Patcher()
        apply_mutation(mutation, patch)
        patch.undo()
    assert {name: fn for name, fn in vars(txn).items() if isinstance(fn, types.FunctionType)} == before


def test_the_searches_kill_a_blind_claim() -> None:
    """A claim that no longer checks the task is unchanged since it was found (the version condition dropped:
    two runners can claim one task) is killed by a search, by a property."""
    fence = next(m for m in mutations(("engine._txn",))
                 if m.owner == "claim_txn" and m.kind == "sql-condition" and "AND version = ?" not in m.after
                 and m.after.startswith("UPDATE workflow_task"))
    verdict = judge((fence, 20))
    assert verdict.status == "killed" and verdict.by is not None, verdict
    assert Mutation("engine._codec", "encode", 0, 0, 0, "t", "", "").id == "engine._codec:encode:0.0"
    assert codec.encode(1, what="x") == "1"  # the engine is itself again


def test_mutate_writes_the_score_and_the_survivors(tmp_path: Path) -> None:
    """`stepsim mutate` on a few mutants writes the score, the per-module table and the lists."""
    out = tmp_path / "mutation.md"
    result = CliRunner().invoke(main, ["mutate", "--module", "engine._codec", "--seeds", "3", "--limit", "4",
                                       "--jobs", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert "**Score: " in text and "| `engine._codec` | 4 |" in text and "## Surviving mutants" in text
