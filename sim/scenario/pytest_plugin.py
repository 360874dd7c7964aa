"""pytest collection of scenario files: each file is a test item named after its scenario, plus one item per
seed (`name[seed=N]`) when the scenario tolerates faults. `scenarios/conftest.py` imports these hooks.

`--scenario-seeds K` (default 3) sets how many seeds the suite runs per scenario; 0 runs only the
deterministic pass.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sim.scenario.dsl import Scenario, ScenarioFailure
from sim.scenario.files import is_scenario_file, load

DEFAULT_SEEDS = 3


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--scenario-seeds", type=int, default=DEFAULT_SEEDS,
                     help=f"seeds run per scenario file (default {DEFAULT_SEEDS}; 0 = deterministic run only)")


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if is_scenario_file(file_path):
        collector: pytest.Collector = ScenarioFile.from_parent(parent, path=file_path)
        return collector
    return None


class ScenarioFile(pytest.File):
    """A scenario file: its deterministic run and its seeded runs."""

    def collect(self) -> Iterator[pytest.Item]:
        scenario = load(self.path)
        seeds = self.config.getoption("--scenario-seeds", default=DEFAULT_SEEDS)
        yield ScenarioItem.from_parent(self, name=scenario.name, scenario=scenario, seed=None)
        if scenario.tolerates:
            for seed in range(int(seeds)):
                yield ScenarioItem.from_parent(self, name=f"{scenario.name}[seed={seed}]", scenario=scenario,
                                               seed=seed)


class ScenarioItem(pytest.Item):
    """One run of a scenario; a failure shows the scenario's own report (line, expected/found, trace)."""

    def __init__(self, *, scenario: Scenario, seed: int | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.scenario = scenario
        self.seed = seed

    def runtest(self) -> None:
        self.scenario.check(self.seed)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, ScenarioFailure):
            return excinfo.value.report
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        mode = "deterministic" if self.seed is None else f"seed {self.seed}"
        return self.path, 0, f"scenario {self.scenario.name} ({mode})"
