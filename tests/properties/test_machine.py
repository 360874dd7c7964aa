"""The Hypothesis state machine (property 10): its harness, its profiles, and the `ci` run in the default suite."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from properties import strategies
from sim.search.harness import Harness
from sim.search.machine import profile_run, program_rules, run_machine
from sim.zoo.quality import MUTANTS, applied
from sim.zoo.mutants import MUTANTS as ZOO

REPORTS = Path(__file__).resolve().parents[2] / "reports"
STALLED = 65535  # a flip drawn this high is True whatever its probability (HypothesisChoices.flip)


class Scripted:
    """Stands in for Hypothesis' data object: answers draws from a script, then 0 (no fault, first choice)."""

    def __init__(self, *values: int) -> None:
        self.values = list(values)
        self.labels: list[str] = []

    def draw(self, strategy: Any, label: Any = None) -> int:
        self.labels.append(str(label))
        return self.values.pop(0) if self.values else 0


@pytest.fixture
def h() -> Any:
    harness = Harness()
    harness.choices.data = Scripted()  # type: ignore[assignment]
    yield harness
    harness.close()


def clean(harness: Harness) -> None:
    # Called after every operation, as the machine's invariant is: the checker snapshots statuses there.
    assert harness.check() == []


class TestHarness:
    def test_events_are_consumed_in_send_order_and_resends_are_no_ops(self, h: Harness) -> None:
        """Two waits take the two events in send order; a resent event id changes nothing."""
        h.create("m-wait", "w0", {"waits": 2, "timeout": 20.0})
        h.tick("r1", None)
        clean(h)
        for payload, event_id in ((5, "e1"), (5, "e1"), (6, None)):
            h.send_event("w0", "go", payload, event_id)
            clean(h)
        h.settle()
        clean(h)
        assert h.oracle.observe()["instances"]["w0"][1:4] == ("complete", 1, [5, 6])

    def test_retries_follow_the_backoff_and_end_at_the_limit(self, h: Harness) -> None:
        """A step failing three times retries at +5 s and +10 s (linear), then errors; the workflow catches it."""
        h.create("m-retry", "r0", {"fail": 3, "catch": True, "backoff": "linear"})
        clean(h)
        for seconds in (0.0, 4.0, 1.0, 10.0):
            h.clock.advance(seconds)
            h.settle()
            clean(h)
        assert h.oracle.observe()["instances"]["r0"][1:4] == ("complete", 1, {"failed": 3})
        assert h.oracle.observe()["steps"][("r0", 1, "do:charge")] == ("do", "errored", 3, None, "RuntimeError", None, None)

    def test_a_sleep_wakes_only_when_the_clock_reaches_it(self, h: Harness) -> None:
        """settle never moves the clock: the sleep waits until a rule advances time past its wake time."""
        h.create("m-sleep", "z0", {"seconds": 10.0})
        h.settle()
        clean(h)
        h.clock.advance(9.0)
        h.settle()
        clean(h)
        assert h.oracle.observe()["instances"]["z0"][1] == "waiting"
        h.clock.advance(1.0)
        h.settle()
        clean(h)
        assert h.oracle.observe()["instances"]["z0"][1:4] == ("complete", 1, ["after", 1])

    def test_a_pause_mid_flight_takes_effect_at_the_next_step_boundary(self, h: Harness) -> None:
        """Paused while a runner is inside a step, the instance pauses at that step's commit."""
        h.create("m-steps", "s0", {"k": 2, "park": True})
        h.tick("r1", "callback")
        clean(h)
        h.pause("s0")
        clean(h)
        assert h.oracle.observe()["instances"]["s0"][5] is True  # requested, not yet applied
        h.tick("r1", None)
        clean(h)
        assert h.oracle.observe()["instances"]["s0"][1] == "paused"
        h.resume("s0")
        clean(h)
        h.settle()
        clean(h)
        assert h.oracle.observe()["instances"]["s0"][1] == "complete"

    def test_a_stalled_runner_is_fenced_out_after_a_takeover(self, h: Harness) -> None:
        """r1 stalls before its commit; r2 takes the task over; r1's late commit is refused (property 3)."""
        h.create("m-steps", "s0", {"k": 1, "park": False})
        h.tick("r1", "step:commit")
        clean(h)
        h.choices.data = Scripted(STALLED, 3)  # type: ignore[assignment]  # r1 stalls; cuts in after 3 moves
        h.tick("r2", None)
        clean(h)
        assert h.checker.disrupted  # r1 abandoned its claim
        assert h.oracle.observe()["instances"]["s0"][1] == "complete"

    def test_a_crashed_runner_leaves_work_another_runner_takes_over(self, h: Harness) -> None:
        """After a crash mid-step and the lease's expiry, the other runner replays and completes the run."""
        h.create("m-steps", "s0", {"k": 2, "park": False})
        h.tick("r1", "step:commit")
        clean(h)
        h.crash("r1")
        h.settle()
        clean(h)
        assert h.oracle.observe()["instances"]["s0"][1] == "running"  # r1's lease still holds the task
        h.clock.advance(strategies.LEASE + 1)
        h.settle()
        clean(h)
        assert h.oracle.observe()["instances"]["s0"][1] == "complete"
        h.start_runner("r1")
        h.tick("r1", None)
        clean(h)

    def test_terminate_beats_a_completion_in_flight(self, h: Harness) -> None:
        """Terminated while its run waits to finish, the instance stays terminated (property 4)."""
        h.create("m-steps", "s0", {"k": 1, "park": False})
        h.tick("r1", "finish")
        clean(h)
        h.terminate("s0")
        clean(h)
        h.tick("r1", None)
        clean(h)
        assert h.oracle.observe()["instances"]["s0"][1] == "terminated"

    def test_a_planted_disagreement_is_reported(self, h: Harness) -> None:
        """A step row that changes behind the engine's back breaks agreement with the model (property 10)."""
        h.create("m-steps", "s0", {"k": 1, "park": False})
        h.settle()
        clean(h)
        h.conn.execute("UPDATE workflow_step SET attempts = 2")
        assert any("property 10 (steps)" in p for p in h.check())

    def test_lost_progress_is_reported_after_settle(self, h: Harness) -> None:
        """An instance whose task vanished is owed progress once the runners are idle (property 9's spirit)."""
        h.create("m-steps", "s0", {"k": 1, "park": False})
        clean(h)
        h.conn.execute("DELETE FROM workflow_task")
        h.settle()
        assert any("s0 is owed progress" in p for p in h.check())


class TestProfiles:
    def test_one_variable_chooses_the_profile(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """STEPSIM_HYPOTHESIS_PROFILE picks dev, ci or exhaustive; unset means ci; anything else is an error."""
        monkeypatch.delenv(strategies.PROFILE_ENV, raising=False)
        assert strategies.profile_name() == "ci"
        monkeypatch.setenv(strategies.PROFILE_ENV, "exhaustive")
        assert strategies.profile_settings().max_examples == strategies.PROFILES["exhaustive"]["max_examples"]
        monkeypatch.setenv(strategies.PROFILE_ENV, "nightly")
        with pytest.raises(ValueError, match="nightly"):
            strategies.profile_name()

    def test_profiles_are_registered_with_hypothesis(self) -> None:
        """The three profiles can be loaded by name through Hypothesis itself."""
        strategies.register_profiles()
        for name, overrides in strategies.PROFILES.items():
            assert settings.get_profile(name).max_examples == overrides["max_examples"]
        assert settings.get_profile("ci").database is None  # a ci run is fixed by its seed alone

    def test_program_rules_counts_rule_steps_only(self) -> None:
        """Invariant checks, the constructor and teardown are not rule steps."""
        program = ("state = StepsimMachine()\nstate.properties_hold()\n(instances_0,) = state.create_batch(x)\n"
                   "instances_1 = state.create(spec=1)\nstate.tick(data=data(...))\nDraw 1 (sched/2): 1\n"
                   "state.teardown()")
        assert program_rules(program) == 3


def test_quality_mutants_come_from_the_zoo_catalogue() -> None:
    """Each quality-tier mutant is a bug-zoo mutant (one definition per broken engine), and applying it
    swaps an engine function that is restored afterwards."""
    import engine._txn as txn
    import engine._step as step

    for mutant in MUTANTS:
        assert mutant.zoo_name in ZOO
        before = (dict(vars(txn)), step.WorkflowStep.do)
        with applied(mutant):
            during = (dict(vars(txn)), step.WorkflowStep.do)
        assert during != before
        assert (dict(vars(txn)), step.WorkflowStep.do) == before


def test_a_failure_prints_and_saves_the_program_and_the_seed(tmp_path: Path) -> None:
    """Against a broken engine the machine fails with the shrunk program and seed, also saved under reports/."""
    blind = next(m for m in MUTANTS if m.slug == "blind-claim")
    with applied(blind), pytest.raises(AssertionError, match="P3 lease exclusivity") as failure:
        run_machine(strategies.quality_settings(300), seed=0, profile="selftest", reports=tmp_path)
    saved = (tmp_path / "failures" / "machine-selftest.txt").read_text()
    assert "seed: 0" in saved and "state.create(" in saved and "reproduce:" in saved
    assert any("seed: 0" in note for note in failure.value.__notes__)


def test_machine_agrees_with_the_model() -> None:
    """The state machine under STEPSIM_HYPOTHESIS_PROFILE (ci by default) finds no property violation."""
    stats = profile_run(reports=REPORTS)
    assert stats.rules > 0

