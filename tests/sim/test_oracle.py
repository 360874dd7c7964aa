"""The reference model rides along in the seeded searches (issue 12): what it judges and how it reports."""

from __future__ import annotations

import time

import attrs
import pytest

import engine._txn as txn
from properties.model import Model
from properties.programs import Do, SleepUntil, Wait, call_error
from sim.core.watchdog import Hang, wall_budget
from sim.search.machine import FIXED_SEED, choose_seed
from sim.world.simulation import World, run_seed
from sim.world.workload import get_profile
from sim.zoo.patching import Patcher, rewrite


def test_campaign_seeds_are_judged_by_the_model_and_pass() -> None:
    """Default and swarm seeds pass with the oracle on, and most of their instances are the model's scripts."""
    judged = 0
    for profile in ("default", "swarm"):
        for seed in range(15):
            result = run_seed(seed, profile)
            assert result.ok, [v.render() for v in result.violations]
            judged += result.stats["judged"]
    assert judged >= 30


def test_a_wrong_committed_row_is_a_model_violation() -> None:
    """A step row the engine writes wrongly (digits of its result changed) fails the seed as `model`."""
    patch = Patcher()
    rewrite(patch, txn, "_write_step", ("step.result,", "step.result.replace('1', '2') if step.result else step.result,"))
    try:
        result = next(r for seed in range(10) if not (r := run_seed(seed, "default")).ok)
    finally:
        patch.undo()
    assert result.violations[0].prop == "model"
    assert "the model expects" in result.violations[0].message


def test_the_oracle_can_be_switched_off_for_the_generic_properties_alone() -> None:
    """With `oracle=False` the same broken engine passes the seed: only the model saw it."""
    patch = Patcher()
    rewrite(patch, txn, "_write_step", ("step.result,", "step.result.replace('1', '2') if step.result else step.result,"))
    try:
        seed = next(s for s in range(10) if not run_seed(s, "default").ok)
        blind = World(seed, attrs.evolve(get_profile("default"), oracle=False)).run()
    finally:
        patch.undo()
    assert blind.ok


def test_refused_calls_are_refused_in_the_engines_order() -> None:
    """The model's refusal rules: `#`, empty and long names; a wait's type, match and timeout range first."""
    assert call_error(Do("x#2")) == ("INVALID_STEP_NAME", False)
    assert call_error(Do("")) == ("INVALID_ARGUMENT", False)
    assert call_error(Do("n" * 300)) == ("NAME_TOO_LONG", False)
    assert call_error(Wait("x#2", "", 5.0)) == ("INVALID_ARGUMENT", False)
    assert call_error(Wait("a", "t" * 200, 5.0)) == ("NAME_TOO_LONG", False)
    assert call_error(Wait("a", "go", 0.5)) == ("INVALID_ARGUMENT", False)
    assert call_error(Wait("a", "go", 5.0, match=["k"])) == ("INVALID_ARGUMENT", False)
    assert call_error(SleepUntil("a", 1.0, form="naive")) == ("INVALID_ARGUMENT", False)
    assert call_error(Wait("a", "go", 1.0)) is None and call_error(Do("a")) is None


def test_batches_are_all_or_nothing_in_the_model() -> None:
    """One bad item refuses the whole batch with its code; otherwise new ids are created, repeats skipped."""
    m = Model()
    assert m.create_batch("m-script", [("a", {"script": []}), ("bad id!", {"script": []})]) == "INVALID_ID"
    assert m.create_batch("m-script", [("a", {"script": []}), ("b", {"script": "x"})]) == "INVALID_PARAMS"
    assert m.create_batch("m-script", [("a", {"script": []}), "junk"]) == "INVALID_ARGUMENT"
    assert m.instances == {}
    assert m.create_batch("m-script", [("a", {"script": []}), ("a", {"script": []})]) == ["a"]
    assert m.create_batch("m-script", [(f"x{i}", {"script": []}) for i in range(101)]) == "BATCH_TOO_LARGE"


def test_a_spinning_block_raises_hang_within_its_budget() -> None:
    """The wall-clock budget interrupts code that never yields (and costs nothing when not exceeded)."""
    started = time.perf_counter()
    with pytest.raises(Hang), wall_budget(0.2):
        while True:
            pass
    assert time.perf_counter() - started < 5.0
    with wall_budget(0.2):
        total = sum(range(1000))
    assert total == 499500


def test_the_machine_draws_a_fixed_seed_unless_asked_for_a_random_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """The default suite decides the same way on every run; STEPSIM_HYPOTHESIS_SEED=random explores."""
    monkeypatch.delenv("STEPSIM_HYPOTHESIS_SEED", raising=False)
    assert choose_seed() == FIXED_SEED
    monkeypatch.setenv("STEPSIM_HYPOTHESIS_SEED", "7")
    assert choose_seed() == 7
    monkeypatch.setenv("STEPSIM_HYPOTHESIS_SEED", "random")
    assert {choose_seed() for _ in range(3)} != {FIXED_SEED}
