"""Campaigns as pytest items, so pytest-xdist spreads them over cores and machines (issue 11).

    python -m pytest -p sim.search.campaign_pytest --campaign default --campaign-seeds 0:1000 -n auto
    python -m pytest -p sim.search.campaign_pytest --campaign swarm --campaign-seeds 0:5000 \\
        --tx ssh=build1//python=python3 --tx ssh=build2//python=python3 --dist load

Each seed is one item, `campaign[PROFILE-seed-N]`. A seed's outcome depends on (profile, seed) alone, so however
xdist deals the items out, a distributed campaign has the same outcomes and trace digests as a local
`stepsim fuzz` over the same seeds; `--campaign-report FILE` writes them (seed -> ok, digest, violation) on
the controller for comparison. With `--campaign`, the run is the campaign only: other collected tests are
deselected. A failing seed fails its item with the violation and its `stepsim replay` line, and its trace and
database dump are saved under `--campaign-reports` (default `reports/`), as `stepsim fuzz` does.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sim.search.campaign import repro_line, resolve_profile, run_seed
from sim.world.workload import Profile


def pytest_addoption(parser: pytest.Parser) -> None:
    """`--campaign PROFILE`, `--campaign-seeds START:STOP`, `--campaign-report FILE`, `--campaign-reports DIR`."""
    group = parser.getgroup("stepsim campaign")
    group.addoption("--campaign", default=None, metavar="PROFILE", help="run a fuzz campaign of this profile")
    group.addoption("--campaign-seeds", default="0:100", metavar="START:STOP", help="seeds, as a range")
    group.addoption("--campaign-report", default=None, metavar="FILE", help="write outcomes as JSON")
    group.addoption("--campaign-reports", default="reports", metavar="DIR", help="where failures are saved")


def parse_seeds(spec: str) -> range:
    """`START:STOP` (STOP excluded) or a count `N` (0..N-1)."""
    try:
        if ":" in spec:
            start, stop = (int(part) for part in spec.split(":", 1))
            return range(start, stop)
        return range(int(spec))
    except ValueError:
        raise pytest.UsageError(f"--campaign-seeds takes START:STOP or N, got {spec!r}") from None


class SeedItem(pytest.Item):
    """One seed of the campaign: run the world, fail with the violation if a property broke."""

    def __init__(self, *, seed: int, profile: Profile, reports: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.seed = seed
        self.profile = profile
        self.reports = reports

    def runtest(self) -> None:
        outcome = run_seed((self.seed, self.profile, self.reports, None))
        self.user_properties.append(("stepsim", {"seed": self.seed, "ok": outcome.ok, "digest": outcome.digest,
                                                 "violation": outcome.violation}))
        if not outcome.ok:
            raise CampaignFailure(f"{outcome.violation}\n  reproduce: {repro_line(self.seed, self.profile)}")

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, CampaignFailure):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, self.name


class CampaignFailure(Exception):
    """A property broke on this seed."""


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """Replace the collected tests by one item per seed when `--campaign` is given."""
    name = config.getoption("campaign")
    if name is None:
        return
    try:
        profile = resolve_profile(name)
    except KeyError as exc:
        raise pytest.UsageError(str(exc.args[0])) from None
    reports = str(config.getoption("campaign_reports"))
    config.hook.pytest_deselected(items=list(items))
    items[:] = [SeedItem.from_parent(session, name=f"campaign[{profile.name}-seed-{seed}]", seed=seed,
                                     profile=profile, reports=reports)
                for seed in parse_seeds(config.getoption("campaign_seeds"))]


class _Outcomes:
    """Collects each seed's outcome where reports arrive (the controller, under xdist) and writes them."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.seen: dict[int, dict[str, Any]] = {}

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        for key, value in report.user_properties:
            if key == "stepsim" and isinstance(value, dict):
                self.seen[int(value["seed"])] = value

    @pytest.hookimpl
    def pytest_sessionfinish(self) -> None:
        Path(self.path).write_text(json.dumps([self.seen[s] for s in sorted(self.seen)], indent=1) + "\n")


def pytest_configure(config: pytest.Config) -> None:
    """Collect outcomes on the controller only (an xdist worker has `workerinput`)."""
    path = config.getoption("campaign_report")
    if path and not hasattr(config, "workerinput"):
        config.pluginmanager.register(_Outcomes(path), "stepsim-campaign-outcomes")
