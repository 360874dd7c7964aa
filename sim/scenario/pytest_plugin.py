"""pytest collection of scenario files: each file is a test item named after its scenario, plus one item per
seed (`name[seed=N]`) when the scenario tolerates faults. `scenarios/conftest.py` imports these hooks.

`--scenario-seeds K` (default 3) sets how many seeds the suite runs per scenario; 0 runs only the
deterministic pass. Every scenario also runs on PostgreSQL (`name[postgres]`, and its first seed as
`name[postgres,seed=0]`) unless `--scenario-backends sqlite`; the server is STEPSIM_POSTGRES or the local
one, and its absence skips those items (fails them under CI, which must run them).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sim.scenario.dsl import Scenario, ScenarioFailure
from sim.scenario.files import is_scenario_file, load
from sim.world.databases import DEFAULT_POSTGRES, postgres_reachable

DEFAULT_SEEDS = 3
POSTGRES_SEEDS = 1  # seeded runs per scenario on PostgreSQL (the deterministic run comes on top)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--scenario-seeds", type=int, default=DEFAULT_SEEDS,
                     help=f"seeds run per scenario file (default {DEFAULT_SEEDS}; 0 = deterministic run only)")
    parser.addoption("--scenario-backends", default="sqlite,postgres",
                     help="comma-separated backends scenario files run on (default: sqlite,postgres)")


def _postgres(config: pytest.Config) -> str:
    """The PostgreSQL URL for scenario items, checked once per session."""
    cached = getattr(config, "_stepsim_postgres", None)
    if cached is None:
        url = os.environ.get("STEPSIM_POSTGRES", DEFAULT_POSTGRES)
        cached = (url, postgres_reachable(url))
        config._stepsim_postgres = cached  # type: ignore[attr-defined]
    url, problem = cached
    if problem is not None:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is required in CI ({url}): {problem}")
        pytest.skip(f"no PostgreSQL at {url}: {problem}")
    return str(url)


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if is_scenario_file(file_path):
        collector: pytest.Collector = ScenarioFile.from_parent(parent, path=file_path)
        return collector
    return None


class ScenarioFile(pytest.File):
    """A scenario file: its deterministic run and its seeded runs."""

    def collect(self) -> Iterator[pytest.Item]:
        scenario = load(self.path)
        seeds = int(self.config.getoption("--scenario-seeds", default=DEFAULT_SEEDS))
        backends = str(self.config.getoption("--scenario-backends", default="sqlite,postgres")).split(",")
        if "sqlite" in backends:
            yield ScenarioItem.from_parent(self, name=scenario.name, scenario=scenario, seed=None)
            if scenario.tolerates:
                for seed in range(seeds):
                    yield ScenarioItem.from_parent(self, name=f"{scenario.name}[seed={seed}]",
                                                   scenario=scenario, seed=seed)
        if "postgres" in backends:
            yield ScenarioItem.from_parent(self, name=f"{scenario.name}[postgres]", scenario=scenario, seed=None,
                                           postgres=True)
            if scenario.tolerates:
                for seed in range(min(seeds, POSTGRES_SEEDS)):
                    yield ScenarioItem.from_parent(self, name=f"{scenario.name}[postgres,seed={seed}]",
                                                   scenario=scenario, seed=seed, postgres=True)


class ScenarioItem(pytest.Item):
    """One run of a scenario; a failure shows the scenario's own report (line, expected/found, trace)."""

    def __init__(self, *, scenario: Scenario, seed: int | None, postgres: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.scenario = scenario
        self.seed = seed
        self.postgres = postgres

    def runtest(self) -> None:
        self.scenario.check(self.seed, database=_postgres(self.config) if self.postgres else None)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, ScenarioFailure):
            return excinfo.value.report
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        mode = ("deterministic" if self.seed is None else f"seed {self.seed}") + (
            ", PostgreSQL" if self.postgres else "")
        return self.path, 0, f"scenario {self.scenario.name} ({mode})"
