"""Smoke tests for the parts of `bench` that need optional packages: DBOS (e) and the profilers."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import Sizes
from bench._dbos_cases import dbos_cases, load_dbos
from bench._profile import statement_breakdown, statement_kind

TINY = Sizes.tiny()


class TestDbosCases:
    def test_dbos_runs_a_b_c_with_the_engine_pragmas(self, tmp_path: Path) -> None:
        """With dbos installed, (a)-(c) run on DBOS over WAL files with synchronous=NORMAL (1)."""
        app, version, note = load_dbos()
        if app is None:
            pytest.skip(note)
        measured = dbos_cases(app, str(tmp_path), TINY, 1)
        assert [m.case for m in measured] == ["a", "b", "c"]
        assert all(m.system == "dbos" and m.steps > 0 and len(m.seconds) == 1 for m in measured)
        assert all("journal_mode=wal synchronous=1" in m.note for m in measured)
        assert version and version in note


class TestStatementBreakdown:
    def test_kinds_name_the_verb_and_table(self) -> None:
        """Statements are grouped by verb and table, with transaction control kept whole."""
        assert statement_kind("UPDATE workflow_task SET x = 1") == "UPDATE workflow_task"
        assert statement_kind("INSERT INTO workflow_step (a) VALUES (?)") == "INSERT INTO workflow_step"
        assert statement_kind("SELECT 1 FROM workflow_task WHERE id = ?") == "SELECT workflow_task"
        assert statement_kind("BEGIN IMMEDIATE") == "BEGIN IMMEDIATE"
        assert statement_kind("COMMIT") == "COMMIT"

    def test_one_commit_per_step_plus_three_per_workflow(self, tmp_path: Path) -> None:
        """Counting COMMITs at the connection agrees with the store's counter: steps + create, claim, finish."""
        steps = 20
        lines = {line.kind: line for line in statement_breakdown(str(tmp_path), steps)}
        runs = 5  # PROFILE_RUNS workflows of `steps` steps
        commits = lines["COMMIT"].calls_per_step * steps * runs
        assert commits == pytest.approx(runs * (steps + 3))

    def test_pyinstrument_profile_names_functions(self, tmp_path: Path) -> None:
        """The pyinstrument summary lists functions with their share of own time."""
        pytest.importorskip("pyinstrument")
        from bench._profile import pyinstrument_profile

        lines, note = pyinstrument_profile(str(tmp_path), 50)
        assert "pyinstrument" in note
        assert lines and all(0 <= line.share <= 1 for line in lines)
