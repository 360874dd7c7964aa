"""The simulator over PostgreSQL: the same seeds, faults, properties and model judge the engine on it.

Runs share this process's scratch schema (`sim_<pid>`), emptied between seeds, so a seed replays to the
same trace; the zoo's mutants are caught there by the same searches and properties as on SQLite.
"""

from __future__ import annotations

import attrs
import pytest
from click.testing import CliRunner

from sim.cli.main import main
from sim.search.campaign import repro_line, resolve_profile
from sim.world.simulation import World
from sim.zoo.mutants import MUTANTS, apply


def test_a_seed_replays_to_the_same_trace_on_postgres(postgres_url: str) -> None:
    """Same seed, same trace, byte for byte, on PostgreSQL too; and the clean engine passes every check."""
    profile = resolve_profile("default", database=postgres_url)
    first = [World(seed, profile).run() for seed in range(4)]
    again = [World(seed, profile).run() for seed in range(4)]
    assert [r.trace.digest() for r in first] == [r.trace.digest() for r in again]
    assert all(r.ok for r in first), [v.render() for r in first for v in r.violations]
    assert sum(r.stats["checks"] for r in first) > 100


@pytest.mark.parametrize("name", ["event-twice", "blind-heartbeat", "record-first", "output-unvalidated"])
def test_zoo_mutants_are_caught_on_postgres(postgres_url: str, name: str) -> None:
    """A mutant of each kind (an event consumed twice, a heartbeat that ignores fencing, a journal written
    before its effect, an output never validated) fails a seeded search on PostgreSQL by its property or
    by the reference model."""
    mutant = MUTANTS[name]
    setting = attrs.evolve(mutant.setting, profile=attrs.evolve(mutant.setting.profile, database=postgres_url))
    with apply(name):
        caught = next((r for r in (setting.run(seed) for seed in range(20)) if r.violations), None)
    assert caught is not None, f"{name} not caught in 20 PostgreSQL seeds"
    assert mutant.expects(caught.violations[0].prop), caught.violations[0].render()


def test_fuzz_and_replay_take_a_postgres_url(postgres_url: str) -> None:
    """`stepsim fuzz --db URL` runs its seeds on PostgreSQL and `stepsim replay --db URL` replays one there;
    a failure's reproduction line carries the URL."""
    runner = CliRunner()
    fuzzed = runner.invoke(main, ["fuzz", "--seeds", "3", "--jobs", "1", "--db", postgres_url])
    assert fuzzed.exit_code == 0, fuzzed.output
    assert "seeds run: 3" in fuzzed.output
    replayed = runner.invoke(main, ["replay", "--seed", "2", "--view", "none", "--db", postgres_url])
    assert replayed.exit_code == 0, replayed.output
    assert "all properties hold" in replayed.output
    line = repro_line(7, resolve_profile("default", database=postgres_url))
    assert line.endswith(f"--db {postgres_url}")


def test_db_option_rejects_what_is_not_a_reachable_postgres() -> None:
    """`--db` takes only a postgresql:// URL whose server answers, and says so before running any seed."""
    runner = CliRunner()
    not_pg = runner.invoke(main, ["fuzz", "--seeds", "1", "--db", "app.db"])
    assert not_pg.exit_code == 2 and "postgresql://" in not_pg.output
    down = runner.invoke(main, ["fuzz", "--seeds", "1", "--db", "postgresql://postgres@127.0.0.1:1/test"])
    assert down.exit_code == 2 and "does not answer" in down.output


def test_scenario_files_run_on_postgres(postgres_url: str) -> None:
    """`stepsim run --db URL` runs scenario files on PostgreSQL."""
    result = CliRunner().invoke(main, ["run", "scenarios/approval_flow.py", "--seeds", "1", "--db", postgres_url])
    assert result.exit_code == 0, result.output
    assert "0 failed" in result.output


def test_orphaned_scratch_schemas_are_dropped(postgres_url: str) -> None:
    """A campaign's pool worker exits without cleanup: the next run drops this machine's scratch schemas
    whose process is gone, and keeps those of live processes."""
    from sim.world.databases import create_schema, drop_orphans, drop_schema, worker_schema

    live = worker_schema("orphantest")
    dead = live.rsplit("_", 1)[0] + "_4194303"  # the last pid Linux can hand out: never alive here
    create_schema(postgres_url, live)
    create_schema(postgres_url, dead)
    try:
        assert drop_orphans(postgres_url, "orphantest") == [dead]
    finally:
        drop_schema(postgres_url, live)
        drop_schema(postgres_url, dead)
