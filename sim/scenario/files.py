"""Scenario files: finding them, loading their `scenario`, and running many (in parallel) for the CLI.

A scenario file is any `*.py` in a scenario folder except `conftest.py`, `_private.py` and `test_*.py`; it
must have a module docstring (the behaviour it pins down) and a module-level `scenario = Scenario(...)`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path

import attrs

from sim.core.parallel import run_all
from sim.scenario.dsl import Scenario, ScenarioResult
from sim.scenario.errors import ScenarioError

__all__ = ["Job", "discover", "is_scenario_file", "jobs_for", "load", "run_jobs"]

_LOADED: dict[Path, Scenario] = {}


def is_scenario_file(path: Path) -> bool:
    """Whether a path names a scenario file (by its name; the content is checked when it is loaded)."""
    return path.suffix == ".py" and not path.name.startswith(("_", "test_")) and path.name != "conftest.py"


def discover(paths: Iterable[str | Path]) -> list[Path]:
    """Scenario files under the given files and folders (folders searched recursively), sorted, unique."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(p for p in sorted(path.rglob("*.py")) if is_scenario_file(p))
        elif path.is_file():
            found.append(path)
        else:
            raise ScenarioError(f"no such scenario file or folder: {path}")
    seen: set[Path] = set()
    unique = []
    for p in found:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique


def load(path: str | Path) -> Scenario:
    """Import a scenario file (once per process) and return its `scenario`, with its docstring attached."""
    resolved = Path(path).resolve()
    cached = _LOADED.get(resolved)
    if cached is not None:
        return cached
    digest = hashlib.blake2b(str(resolved).encode(), digest_size=4).hexdigest()
    name = f"stepsim_scenarios.{resolved.stem}_{digest}"
    spec = importlib.util.spec_from_file_location(name, resolved)
    if spec is None or spec.loader is None:
        raise ScenarioError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        where = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
        at = f" (at {where.filename}:{where.lineno})" if where is not None else ""
        raise ScenarioError(f"{path}: cannot import it: {type(exc).__name__}: {exc}{at}") from exc
    scenario = getattr(module, "scenario", None)
    if not isinstance(scenario, Scenario):
        raise ScenarioError(f"{path}: a scenario file needs a module-level `scenario = Scenario(...)`")
    doc = (module.__doc__ or "").strip()
    if not doc:
        raise ScenarioError(f"{path}: a scenario file needs a docstring stating the behaviour it pins down")
    scenario = attrs.evolve(scenario, doc=doc, file=str(path))
    _LOADED[resolved] = scenario
    return scenario


@attrs.frozen
class Job:
    """One run to do: a scenario file and a seed (None: the deterministic run), on SQLite or at `database`."""

    path: str
    seed: int | None
    database: str | None = None


def jobs_for(paths: Iterable[Path], seeds: int, *, only_seed: int | None = None,
             match: str | None = None, database: str | None = None) -> list[Job]:
    """The deterministic run plus seeds 0..seeds-1 of every scenario that tolerates something.

    `only_seed` runs just that seed (reproducing a failure); `match` keeps scenarios whose name contains it;
    `database` (a postgresql:// URL) runs them all on PostgreSQL.
    """
    jobs = []
    for path in paths:
        scenario = load(path)
        if match is not None and match not in scenario.name:
            continue
        if only_seed is not None:
            jobs.append(Job(str(path), only_seed, database))
            continue
        jobs.append(Job(str(path), None, database))
        if scenario.tolerates:
            jobs.extend(Job(str(path), s, database) for s in range(seeds))
    return jobs


def run_job(job: Job) -> ScenarioResult:
    """Run one job in this process."""
    return load(job.path).run(job.seed, database=job.database)


def run_jobs(jobs: list[Job], *, workers: int = 1,
             progress: Callable[[Job, ScenarioResult], object] | None = None) -> list[ScenarioResult]:
    """Run every job (across `workers` processes); results come back in job order."""
    return list(run_all(run_job, jobs, jobs=workers, chunksize=1, progress=progress))
