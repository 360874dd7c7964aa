"""`stepsim chaos` end to end with real processes, kept small: a clean engine passes on both backends, and
workers serving a planted bug fail the history check.

These tests wait on real worker processes (not on sleeps of their own); each is bounded by max_seconds.
"""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from sim.chaos.controller import ChaosConfig, run_chaos
from sim.cli.main import main

SMALL = {"workers": 2, "workflows": 30, "kills": 3, "max_seconds": 120.0, "heal_seconds": 60.0}


def test_chaos_on_sqlite_passes_and_counts_its_faults(tmp_path: Path) -> None:
    """Kills, stops and client kills on SQLite leave a history with no violation and every order ended."""
    report = run_chaos(ChaosConfig(database=str(tmp_path / "chaos.db"), **SMALL))  # type: ignore[arg-type]
    assert report.ok, report.markdown()
    assert report.faults["kill"] + report.faults["client_kill"] >= 3
    assert sum(report.statuses.values()) == 30 and set(report.statuses) <= {"complete"}
    # three steps for each order paid on time, one for the three paid late on purpose (their wait timed out)
    assert report.executions >= 27 * 3 + 3


def test_chaos_on_postgres_passes_with_killed_connections(postgres_url: str) -> None:
    """The same on PostgreSQL, where backends are also terminated under the workers."""
    report = run_chaos(ChaosConfig(database=postgres_url, seed=3, **SMALL))  # type: ignore[arg-type]
    assert report.ok, report.markdown()
    assert report.backend == "PostgreSQL"
    assert sum(report.statuses.values()) == 30


def test_chaos_catches_workers_that_claim_without_fencing(tmp_path: Path) -> None:
    """Workers serving the zoo's blind claim (no optimistic check) run steps twice with no fault to explain
    it: the history check fails the run, and `stepsim chaos` exits 1 with the report."""
    out = tmp_path / "report.md"
    result = CliRunner().invoke(main, ["chaos", "--db", str(tmp_path / "bad.db"), "--workers", "2",
                                       "--workflows", "30", "--kills", "2", "--max-seconds", "120", "--heal-seconds", "15",
                                       "--mutant", "blind-claim", "--out", str(out)])
    assert result.exit_code == 1, result.output
    assert "chaos: unexplained duplicate execution" in out.read_text()
