"""`stepsim run` runs scenario files under seeds; `stepsim check` adds a fuzz campaign and writes summary.md."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from sim.cli.main import main

GOOD = '''"""Sleeps one minute, then completes."""
from engine import define_workflow
from sim.scenario.dsl import Scenario, advance, create, expect_output, run_until_idle


@define_workflow("nap")
async def nap(event, step):
    await step.sleep("nap", "1 min")
    return "rested"


scenario = Scenario("cli-good", [nap], steps=[
    create(nap, id="n"), run_until_idle(), advance("1 min"), run_until_idle(), expect_output("n", "rested"),
], tolerates=["interleaving", "crash"])
'''

BAD = GOOD.replace("cli-good", "cli-bad").replace('expect_output("n", "rested")', 'expect_output("n", "tired")')


def folder(tmp_path: Path, **files: str) -> Path:
    root = tmp_path / "scenarios"
    root.mkdir()
    for name, text in files.items():
        (root / f"{name}.py").write_text(text)
    return root


def test_run_passes_with_a_summary(tmp_path: Path) -> None:
    """A passing folder runs the deterministic pass plus N seeds per scenario and exits 0."""
    root = folder(tmp_path, good=GOOD)
    result = CliRunner().invoke(main, ["run", str(root), "--seeds", "2", "--reports", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    assert "cli-good" in result.output and "1 scenarios, 3 runs, 0 failed" in result.output


def test_run_fails_with_the_report_and_saves_artifacts(tmp_path: Path) -> None:
    """A failing scenario prints its report, saves report and trace, and exits 1."""
    root = folder(tmp_path, bad=BAD)
    reports = tmp_path / "r"
    result = CliRunner().invoke(main, ["run", str(root / "bad.py"), "--seed", "1", "--reports", str(reports)])
    assert result.exit_code == 1
    assert "expected: n complete with output 'tired'" in result.output
    saved = reports / "failures" / "scenario-cli-bad-seed-1"
    assert "found:" in (saved / "report.txt").read_text() and (saved / "trace.jsonl").read_text()


def test_run_rejects_a_file_without_docstring_or_scenario(tmp_path: Path) -> None:
    """Scenario files must state their behaviour and define `scenario`; the CLI says which rule was broken."""
    root = folder(tmp_path, nodoc=GOOD.split('"""', 2)[2], noscenario='"""Doc."""\nx = 1\n')
    result = CliRunner().invoke(main, ["run", str(root / "nodoc.py")])
    assert result.exit_code != 0 and "needs a docstring" in result.output
    result = CliRunner().invoke(main, ["run", str(root / "noscenario.py")])
    assert result.exit_code != 0 and "needs a module-level `scenario" in result.output


def test_check_runs_scenarios_and_fuzz_and_writes_the_summary(tmp_path: Path) -> None:
    """`stepsim check` passes on a green folder and writes a Markdown summary of both parts."""
    root = folder(tmp_path, good=GOOD)
    reports = tmp_path / "reports"
    result = CliRunner().invoke(main, ["check", "--scenarios", str(root), "--seeds", "1", "--fuzz-seeds", "4",
                                       "--profile", "default", "--profile", "sleepy", "--jobs", "1",
                                       "--reports", str(reports)])
    assert result.exit_code == 0, result.output
    summary = (reports / "summary.md").read_text()
    assert summary.startswith("# stepsim check") and "**PASS**" in summary
    assert "| cli-good | 2 |" in summary
    for leg in ("fuzz default", "fuzz sleepy", "fuzz default (PCT d=3)", "explore steps3", "explore race-pause"):
        assert f"| {leg} |" in summary


def test_check_fails_when_a_scenario_fails(tmp_path: Path) -> None:
    """Any failing scenario run makes `stepsim check` exit non-zero with FAIL in the summary."""
    root = folder(tmp_path, bad=BAD)
    reports = tmp_path / "reports"
    result = CliRunner().invoke(main, ["check", "--scenarios", str(root), "--seeds", "0", "--fuzz-seeds", "2",
                                       "--profile", "calm", "--jobs", "1", "--reports", str(reports)])
    assert result.exit_code == 1
    summary = (reports / "summary.md").read_text()
    assert "**FAIL**" in summary and "### FAIL cli-bad" in summary
    assert (reports / "failures" / "scenario-cli-bad-deterministic" / "report.txt").exists()


def test_check_reports_fuzz_failures_with_their_reproduction(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A fuzz seed that breaks a property fails `stepsim check`; the summary shows it and how to replay it."""
    import engine._txn as txn

    def no_fence(conn, claim, now, lease_until):  # type: ignore[no-untyped-def]
        conn.execute("UPDATE workflow_task SET locked_until = ? WHERE id = ?", (lease_until, claim.task_id))

    monkeypatch.setattr(txn, "fence_txn", no_fence)
    root = folder(tmp_path, good=GOOD)
    reports = tmp_path / "reports"
    result = CliRunner().invoke(main, ["check", "--scenarios", str(root), "--seeds", "0", "--fuzz-seeds", "60",
                                       "--profile", "default", "--jobs", "1", "--reports", str(reports)])
    assert result.exit_code == 1
    summary = (reports / "summary.md").read_text()
    assert "**FAIL**" in summary and "### FAIL fuzz default" in summary
    assert "reproduce: stepsim replay --seed" in summary and "## Failure artifacts" in summary
