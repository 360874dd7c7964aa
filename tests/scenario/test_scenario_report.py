"""A failing scenario says where and why: file:line of the step, expected vs found, the trace so far."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import engine._txn as txn
from sim.scenario.dsl import ScenarioFailure
from sim.scenario.files import load

HEADER = '''"""A scenario written by a test."""
from engine import WorkflowEvent, WorkflowStep, define_workflow
from sim.scenario.dsl import *


@define_workflow("wf")
async def wf(event: WorkflowEvent, step: WorkflowStep):
    await step.do("one", lambda: 1)
    await step.sleep("nap", "1 min")
    return "done"
'''


def write(tmp_path: Path, body: str, name: str = "sample.py") -> Path:
    path = tmp_path / name
    path.write_text(HEADER + textwrap.dedent(body))
    return path


def line_of(path: Path, text: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), start=1) if text in line)


def test_failing_expectation_names_file_line_expected_found_and_trace(tmp_path: Path) -> None:
    """An unmet expect_status reports its own file:line, both statuses and the trace up to that step."""
    path = write(tmp_path, """
        scenario = Scenario("sample", [wf], steps=[
            create(wf, id="x"),
            run_until_idle(),
            expect_status("x", "complete"),   # wrong on purpose: x is sleeping
            advance("1 min"),
        ])
    """)
    result = load(path).run()
    assert not result.ok and result.report is not None
    report = result.report
    assert f"sample.py:{line_of(path, 'wrong on purpose')}: expect_status('x', 'complete')" in report
    assert "expected: x to be complete" in report
    assert "found:    waiting (run 1, last step sleep:nap)" in report
    assert "a        claim" in report and "key=do:one" in report          # the trace so far
    assert "advance" not in report.split("trace so far")[1]                 # ... and not beyond the failure
    assert "reproduce: stepsim run" in report and "--seeds 0" in report


def test_check_raises_scenario_failure_with_the_report(tmp_path: Path) -> None:
    """Scenario.check raises ScenarioFailure whose message is the whole report."""
    path = write(tmp_path, """
        scenario = Scenario("sample", [wf], steps=[create(wf, id="x"), expect_output("x", 1)])
    """)
    with pytest.raises(ScenarioFailure) as info:
        load(path).check()
    assert info.value.where is not None and info.value.where.endswith(f":{line_of(path, 'expect_output')}")
    assert "expected: x complete with output 1" in str(info.value)


def test_unexpected_engine_error_and_missing_error_are_mismatches(tmp_path: Path) -> None:
    """An action that fails unexpectedly, or succeeds where `raises=` wanted an error, fails at its line."""
    path = write(tmp_path, """
        scenario = Scenario("sample", [wf], steps=[
            create(wf, id="x"),
            pause("x", raises="INSTANCE_TERMINAL"),
        ])
    """)
    report = load(path).run().report or ""
    assert f":{line_of(path, 'pause(')}: pause('x', raises='INSTANCE_TERMINAL')" in report
    assert "expected: pause to fail with INSTANCE_TERMINAL" in report
    assert "found:    it succeeded" in report


def test_scenario_misuse_is_reported_as_a_scenario_error(tmp_path: Path) -> None:
    """Ticking a crashed runner is the scenario's mistake, reported at that line with a hint."""
    path = write(tmp_path, """
        scenario = Scenario("sample", [wf], steps=[
            crash("a"),
            tick("a"),
        ])
    """)
    report = load(path).run().report or ""
    assert f":{line_of(path, 'tick(')}: tick('a')" in report
    assert "scenario error: runner 'a' is down (crashed); restart_runner('a') first" in report


def test_failure_inside_a_concurrent_branch_names_the_inner_step(tmp_path: Path) -> None:
    """An expectation inside concurrent() fails at its own line, marked as inside concurrent()."""
    path = write(tmp_path, """
        scenario = Scenario("sample", [wf], steps=[
            create(wf, id="x"),
            concurrent(
                [tick("a")],
                [expect_status("x", "complete")],   # the inner step
            ),
        ])
    """)
    report = load(path).run().report or ""
    assert f":{line_of(path, 'the inner step')}: expect_status('x', 'complete') (inside concurrent())" in report


def test_a_broken_engine_fence_fails_the_terminate_scenario(monkeypatch: pytest.MonkeyPatch) -> None:
    """With fencing disabled, the runner's late commit overrides the terminate and the scenario catches it."""

    def no_fence(conn, claim, now, lease_until):  # type: ignore[no-untyped-def]
        conn.execute("UPDATE workflow_task SET locked_until = ? WHERE id = ?", (lease_until, claim.task_id))

    monkeypatch.setattr(txn, "fence_txn", no_fence)
    result = load(Path(__file__).parents[2] / "scenarios" / "terminate_beats_completion.py").run()
    assert not result.ok and result.report is not None
    assert "terminate_beats_completion.py:" in result.report and "P4 terminal is final" in result.report


def test_invariant_violations_fail_the_step_that_caused_them(monkeypatch: pytest.MonkeyPatch,
                                                              tmp_path: Path) -> None:
    """A property violated during a step (here P2, a runner claiming out of priority order) fails that step."""
    real = txn.find_due_txn

    def lifo(conn, workflows, now, limit):  # type: ignore[no-untyped-def]
        return list(reversed(real(conn, workflows, now, 100)))[:limit]

    monkeypatch.setattr(txn, "find_due_txn", lifo)
    path = write(tmp_path, """
        scenario = Scenario("sample", [wf], steps=[
            create(wf, id="x"), create(wf, id="y"),
            run_until_idle(),   # here
        ])
    """)
    report = load(path).run().report or ""
    assert f":{line_of(path, '# here')}: run_until_idle()" in report
    assert "P2 priority ordering" in report


def test_pytest_shows_the_scenario_report_for_a_failing_file(tmp_path: Path) -> None:
    """Collected through the conftest hooks, a failing scenario file fails its test items (on SQLite and on
    PostgreSQL, deterministic and seeded) with the report."""
    (tmp_path / "conftest.py").write_text("from sim.scenario.pytest_plugin import pytest_addoption, pytest_collect_file\n")
    path = write(tmp_path, """
        scenario = Scenario("broken-sample", [wf], steps=[
            create(wf, id="x"),
            expect_status("x", "errored"),
        ], tolerates=["interleaving"])
    """)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", str(tmp_path), "-q", "-p", "no:cacheprovider", "--scenario-seeds", "1",
         "-p", "no:xdist", "--rootdir", str(tmp_path), "--scenario-backends", "sqlite"],
        check=False, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "2 failed" in proc.stdout
    assert "broken-sample[seed=0]" in proc.stdout
    assert f"sample.py:{line_of(path, 'errored')}: expect_status('x', 'errored')" in proc.stdout
    assert "found:    queued (run 1)" in proc.stdout
    both = subprocess.run(
        [sys.executable, "-m", "pytest", str(tmp_path), "-q", "-p", "no:cacheprovider", "--scenario-seeds", "1",
         "-p", "no:xdist", "--rootdir", str(tmp_path)],
        check=False, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert "4 failed" in both.stdout or "2 failed, 2 skipped" in both.stdout, both.stdout
    assert "broken-sample[postgres,seed=0]" in both.stdout
