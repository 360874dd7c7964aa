"""Mutation tests for the invariant checkers (DESIGN §6): a checker that never fires on its mutant is a bug.

Each mutant in `mutants.py` breaks the engine for one property; its seeds must produce a violation of that
property. The control tests run the same seeds on the real engine, which must pass them, so every catch is
the mutant's doing and not a checker that fires on anything.
"""

from __future__ import annotations

import attrs
import pytest
from mutants import MUTANTS, Mutant, Setting, caught_by, control_seeds, rewrite

import engine._txn as txn

CONTROLS = sorted(control_seeds().items(), key=lambda item: item[0].name)


@pytest.mark.parametrize("mutant", MUTANTS, ids=lambda m: f"{m.prop}-{m.name.replace(' ', '-')}")
def test_checker_catches_mutant(mutant: Mutant, monkeypatch: pytest.MonkeyPatch) -> None:
    """Some seed of the mutant's range reports a violation of the property the mutant breaks, on its own: the
    reference model, which sees many of these bugs first, is off."""
    mutant.apply(monkeypatch)
    others: dict[str, int] = {}
    alone = Setting(attrs.evolve(mutant.setting.profile, oracle=False), mutant.setting.workload)
    for seed in mutant.seeds:
        result = alone.run(seed)
        if caught_by(result, mutant.prop):
            return
        for violation in result.violations:
            others.setdefault(violation.prop, seed)
    pytest.fail(f"{mutant.prop} never fired on mutant {mutant.name!r} in {mutant.setting.name}, seeds "
                f"{mutant.seeds.start}..{mutant.seeds.stop - 1}; other properties (first seed): {others}")


@pytest.mark.parametrize(("setting", "seeds"), CONTROLS, ids=[setting.name for setting, _ in CONTROLS])
def test_unmutated_engine_passes_mutant_seeds(setting: Setting, seeds: range) -> None:
    """The real engine passes every seed the mutants run in this setting."""
    failed = {seed: [v.render() for v in result.violations]
              for seed in seeds if (result := setting.run(seed)).violations}
    assert failed == {}


def test_rewrite_refuses_an_edit_that_does_not_match(monkeypatch: pytest.MonkeyPatch) -> None:
    """A mutant whose edit no longer matches the engine's source fails loudly instead of testing nothing."""
    with pytest.raises(AssertionError, match="must match 1 time"):
        rewrite(monkeypatch, txn, "claim_txn", ("no such text", "anything"))
    assert txn.claim_txn.__code__.co_filename == txn.__file__


def test_rewrite_patches_the_module_and_is_undone() -> None:
    """A rewritten function is what callers find on the module until monkeypatch undoes it."""
    original = txn.find_due_txn
    with pytest.MonkeyPatch.context() as mp:
        rewrite(mp, txn, "find_due_txn", ("ORDER BY priority, run_at, id", "ORDER BY priority DESC, run_at, id"))
        assert txn.find_due_txn is not original
        assert txn.find_due_txn.__globals__ is original.__globals__
    assert txn.find_due_txn is original
