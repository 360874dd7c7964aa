"""Smoke tests for `bench`: every case runs at tiny sizes and the report has its shape.

Never a timing assertion (issue 6): only structure, completion and the write-transaction counter.
"""

from __future__ import annotations

import pytest
from rich.console import Console

import bench
from bench import Sizes, run_benchmarks
from bench._engine_cases import FIXED_WRITES_PER_WORKFLOW

TINY = Sizes.tiny()


@pytest.fixture(scope="module")
def results() -> bench.BenchResults:
    return run_benchmarks(repeats=1, sizes=TINY, include_dbos=False, profile=False)


class TestRunBenchmarks:
    def test_every_engine_case_and_the_raw_limit_are_measured(self, results: bench.BenchResults) -> None:
        """Cases (a)-(d) and each scaling point produce one measurement with one sample per repetition."""
        assert results.problems == ()
        cases = {(m.case, m.system) for m in results.measurements}
        expected = {("a", "engine"), ("b", "engine"), ("c", "engine"), ("d", "sqlite")}
        expected |= {(f"f{n}", "engine") for n in TINY.scaling}
        assert expected <= cases
        for m in results.measurements:
            assert len(m.seconds) == 1 and m.median > 0

    def test_one_write_transaction_per_completed_step(self, results: bench.BenchResults) -> None:
        """Write transactions are the step count plus create, claim and finish per workflow."""
        a = results.get("a", "engine")
        assert a is not None and a.write_transactions == TINY.one_workflow_steps + FIXED_WRITES_PER_WORKFLOW
        for case in ("b", "c"):
            m = results.get(case, "engine")
            assert m is not None
            assert m.write_transactions == TINY.workflows * (TINY.steps_per_workflow + FIXED_WRITES_PER_WORKFLOW)
        marginal = [r for r in bench.ratios(results) if r.name.startswith("(f) marginal write")]
        assert len(marginal) == len(TINY.scaling) - 1
        assert all(r.value == pytest.approx(1.0) and r.ok for r in marginal)

    def test_latency_has_every_sample(self, results: bench.BenchResults) -> None:
        """(g) keeps one sample per created workflow and a median per repetition."""
        assert results.latency is not None
        assert len(results.latency.samples_ms) == TINY.latency_samples
        assert len(results.latency.rep_medians_ms) == 1

    def test_simulator_is_measured(self, results: bench.BenchResults) -> None:
        """(h) measures seeds/s on S1 and the wall time of a sleep-heavy virtual day."""
        sim = results.get("h", "sim")
        assert sim is not None and sim.seeds == TINY.sim_seeds
        assert "seeds/s" in results.sim_note and "24 h of sleep-heavy virtual time" in results.sim_note

    def test_dbos_left_out_is_explained(self, results: bench.BenchResults) -> None:
        """Without DBOS the engine÷DBOS ratios have no value and the report says why."""
        assert results.get("a", "dbos") is None
        assert "DBOS" in results.dbos_note
        dbos_ratios = [r for r in bench.ratios(results) if "DBOS" in r.name]
        assert dbos_ratios and all(r.value is None for r in dbos_ratios)


class TestReport:
    def test_markdown_has_every_section_and_a_row_per_measurement(self, results: bench.BenchResults) -> None:
        """reports/bench.md carries the results table, ratios, latency/simulator/DBOS lines and the method."""
        text = bench.markdown(results)
        for heading in ("# stepsim benchmarks", "## Results", "## Ratios and targets",
                        "## Latency, simulator, DBOS", "## Hot path profile", "## Method"):
            assert heading in text
        assert "| " + " | ".join(bench._report.COLUMNS) + " |" in text
        table = text.split("## Results", 1)[1].split("## Ratios", 1)[0]
        body = [line for line in table.splitlines() if line.startswith("| (")]
        assert len(body) == len(results.measurements)
        assert "t(20) / t(10)" in text and "(g) SQLite: 1-step workflow" in text

    def test_rich_tables_have_the_columns(self, results: bench.BenchResults) -> None:
        """The printed table has every column but the notes (shown as a caption), one row per measurement."""
        main, ratio_table = bench.tables(results)
        assert [c.header for c in main.columns] == list(bench._report.COLUMNS[:-1])
        assert main.row_count == len(results.measurements)
        assert ratio_table.row_count == len(bench.ratios(results))
        console = Console(record=True, width=200)
        bench.print_results(results, console)
        assert "ratios and targets" in console.export_text()


class TestCommand:
    def test_bench_command_main_prints_and_writes_the_report(self, tmp_path: object) -> None:
        """The `stepsim bench` entry point returns 0 and writes the Markdown file it was given."""
        out = tmp_path / "sub" / "bench.md"  # type: ignore[operator]
        console = Console(record=True, width=200)
        code = bench.bench_command_main(1, True, str(out), include_dbos=False, profile=False, console=console,
                                        sizes=TINY)
        assert code == 0
        assert out.read_text(encoding="utf-8").startswith("# stepsim benchmarks")
        assert "stepsim benchmarks" in console.export_text()

    def test_repeats_must_be_positive(self) -> None:
        """Zero repetitions would have no median, so it is refused."""
        with pytest.raises(ValueError):
            run_benchmarks(repeats=0, sizes=TINY)
