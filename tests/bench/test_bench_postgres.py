"""The PostgreSQL rows of `stepsim bench` at tiny sizes: every case runs, counts its work and cleans up.

Never a timing assertion: only which rows exist, that their work completed, and the write counter.
"""

from __future__ import annotations

import psycopg
import pytest

import bench
from bench import Sizes, run_benchmarks
from bench._engine_cases import FIXED_WRITES_PER_WORKFLOW

TINY = Sizes.tiny()


def _leftovers(url: str) -> set[str]:
    with psycopg.connect(url, autocommit=True) as conn:
        return {r[0] for r in conn.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'bench_%' "
            "UNION ALL SELECT datname FROM pg_database WHERE datname LIKE 'bench_%'")}


@pytest.fixture(scope="module")
def before(postgres_url: str) -> set[str]:
    return _leftovers(postgres_url)


@pytest.fixture(scope="module")
def results(postgres_url: str, before: set[str]) -> bench.BenchResults:
    return run_benchmarks(repeats=1, sizes=TINY, include_dbos=True, profile=False, include_sim=False,
                          postgres=postgres_url)


def test_every_postgres_row_is_measured(results: bench.BenchResults) -> None:
    """The engine's (a)-(c), DBOS's (a)-(c) when installed, and (i) with 1, 2, 4 processes on both backends."""
    assert results.problems == ()
    cases = {(m.case, m.system) for m in results.measurements}
    assert {("a", "engine-pg"), ("a-async", "engine-pg"), ("b", "engine-pg"), ("c", "engine-pg")} <= cases
    assert {(f"i{n}", system) for n in (1, 2, 4) for system in ("engine", "engine-pg")} <= cases
    if results.dbos_version is not None:
        assert {("a", "dbos-pg"), ("b", "dbos-pg"), ("c", "dbos-pg")} <= cases
    assert "synchronous_commit=" in results.postgres_note


def test_postgres_hot_path_is_one_write_per_step(results: bench.BenchResults) -> None:
    """On PostgreSQL too, a step costs one write transaction (plus create, claim, finish per workflow)."""
    a = results.get("a", "engine-pg")
    assert a is not None and a.write_transactions == TINY.one_workflow_steps + FIXED_WRITES_PER_WORKFLOW


def test_notify_latency_and_ratios_are_reported(results: bench.BenchResults) -> None:
    """(g) on PostgreSQL has its samples; the report carries the PostgreSQL ratios with their targets."""
    assert results.latency_pg is not None and len(results.latency_pg.samples_ms) == TINY.latency_samples
    names = [r.name for r in bench.ratios(results)]
    assert "(i) PostgreSQL: 4 worker processes ÷ 1, workflows/s" in names
    assert any(n.startswith("(a) PostgreSQL: engine steps/s ÷ DBOS") for n in names)
    text = bench.markdown(results)
    assert "engine, PostgreSQL" in text and "(g) PostgreSQL:" in text


def test_bench_leaves_no_schema_behind(results: bench.BenchResults, postgres_url: str, before: set[str]) -> None:
    """Every scratch schema and database the PostgreSQL rows made is dropped again."""
    assert _leftovers(postgres_url) <= before
