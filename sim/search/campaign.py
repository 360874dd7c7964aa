"""Fuzzing campaigns: many seeds (in parallel), failure artifacts under reports/, and a summary."""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import attrs

from sim.core.parallel import run_all
from sim.search.pct import PCTPicker
from sim.world.simulation import RunResult, World
from sim.world.workload import Profile, get_profile


def resolve_profile(
    name: str, *, runners: int | None = None, swarm: bool = False, database: str | None = None
) -> Profile:
    """A named profile with command-line overrides applied (`database`: run on PostgreSQL at that URL)."""
    profile = get_profile(name)
    if database:
        profile = attrs.evolve(profile, database=database)
    if runners is not None:
        profile = attrs.evolve(profile, runners=runners)
    if swarm and not profile.swarm:
        profile = attrs.evolve(profile, swarm=True)
    return profile


def repro_line(seed: int, profile: Profile, pct_depth: int | None = None) -> str:
    """The one command that reproduces a seed, overrides included."""
    base = get_profile(profile.name)
    line = f"stepsim replay --seed {seed} --profile {profile.name}"
    if pct_depth:
        line += f" --scheduler pct --depth {pct_depth}"
    if profile.runners != base.runners:
        line += f" --runners {profile.runners}"
    if profile.swarm and not base.swarm:
        line += " --swarm"
    if profile.database:
        line += f" --db {shlex.quote(profile.database)}"
    return line


@attrs.frozen
class SeedOutcome:
    """The picklable summary of one seed, sent back from worker processes."""

    seed: int
    ok: bool
    violation: str | None
    faults: dict[str, int]
    checks: int
    digest: str


def run_one(seed: int, profile: Profile, *, pct_depth: int | None = None) -> tuple[SeedOutcome, RunResult]:
    """Run a seed and summarise it; with `pct_depth`, runners are scheduled by PCT instead of uniformly."""
    picker = PCTPicker(seed, depth=pct_depth) if pct_depth else None
    result = World(seed, profile, picker=picker).run()
    outcome = SeedOutcome(seed=seed, ok=result.ok,
                          violation=result.violations[0].render() if result.violations else None,
                          faults=result.stats["faults"], checks=result.stats["checks"], digest=result.trace.digest())
    return outcome, result


def save_failure(result: RunResult, profile: Profile, reports: Path, pct_depth: int | None = None) -> Path:
    """Write the violation, the trace and a database dump for a failing seed; returns the folder."""
    folder = reports / "failures" / f"{profile.name}-seed-{result.seed}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "violation.txt").write_text(
        "\n\n".join(v.render() for v in result.violations) + f"\n\nreproduce: {repro_line(result.seed, profile, pct_depth)}\n")
    (folder / "trace.jsonl").write_text(result.trace.to_jsonl())
    (folder / "database.jsonl").write_text(result.dump)
    return folder


def run_seed(args: tuple[int, Profile, str, int | None]) -> SeedOutcome:
    """Run (seed, profile, reports dir, PCT depth) and save its artifacts if it failed; one campaign item."""
    seed, profile, reports, pct_depth = args
    outcome, result = run_one(seed, profile, pct_depth=pct_depth)
    if not outcome.ok:
        save_failure(result, profile, Path(reports), pct_depth)
    return outcome


@attrs.define
class Summary:
    """Aggregate of a campaign."""

    seeds: int = 0
    failures: list[SeedOutcome] = attrs.Factory(list)
    faults: dict[str, int] = attrs.Factory(dict)
    checks: int = 0

    def add(self, outcome: SeedOutcome) -> None:
        self.seeds += 1
        self.checks += outcome.checks
        for kind, count in outcome.faults.items():
            self.faults[kind] = self.faults.get(kind, 0) + count
        if not outcome.ok:
            self.failures.append(outcome)


def campaign(
    seeds: Iterable[int], profile: Profile, *, jobs: int = 1, reports: Path = Path("reports"),
    progress: Callable[[SeedOutcome], Any] | None = None, pct_depth: int | None = None,
) -> Summary:
    """Run seeds across `jobs` processes; failures are saved under reports/failures/."""
    summary = Summary()
    work = [(seed, profile, str(reports), pct_depth) for seed in seeds]
    for outcome in run_all(run_seed, work, jobs=jobs):
        summary.add(outcome)
        if progress is not None:
            progress(outcome)
    return summary


def self_check(seeds: Iterable[int], profile: Profile) -> list[int]:
    """Rerun seeds twice and return those whose trace digests differ (lost determinism)."""
    return [seed for seed in seeds if run_one(seed, profile)[0].digest != run_one(seed, profile)[0].digest]


def default_jobs() -> int:
    """One worker per core."""
    return max(1, os.cpu_count() or 1)
