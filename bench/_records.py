"""Frozen records for benchmark sizes, measurements and a whole run's results."""

from __future__ import annotations

import statistics
from typing import Any

import attrs


@attrs.frozen(kw_only=True)
class Sizes:
    """How big each workload is; `Sizes()` is the full run the issue asks for (DESIGN §8 `stepsim bench`)."""

    one_workflow_steps: int = 1000          # (a) one workflow of this many steps
    workflows: int = 500                    # (b), (c) this many workflows ...
    steps_per_workflow: int = 10            # ... of this many steps each
    concurrency: int = 4                    # (c) runner tasks / DBOS threads
    scaling: tuple[int, ...] = (1000, 2000, 4000)   # (f) one workflow of each size
    latency_samples: int = 30               # (g) create->complete samples per repetition
    poll_interval: float = 0.01             # (g) the worker's poll interval, seconds
    raw_commits: int = 5000                 # (d) INSERT+UPDATE commits per repetition
    sim_seeds: int = 20                     # (h) seeds per repetition, when the simulator exists
    process_workflows: int = 400            # (i) workflows drained by 1, 2, 4 worker processes

    @classmethod
    def quick(cls) -> Sizes:
        """A run of a few seconds with the same shapes, for a first look (`stepsim bench --quick`)."""
        return cls(one_workflow_steps=200, workflows=50, scaling=(200, 400, 800), latency_samples=10,
                   raw_commits=1000, sim_seeds=5, process_workflows=60)

    @classmethod
    def tiny(cls) -> Sizes:
        """The smallest shapes that still exercise every case; for smoke tests."""
        return cls(one_workflow_steps=20, workflows=6, steps_per_workflow=3, concurrency=2, scaling=(10, 20, 40),
                   latency_samples=2, poll_interval=0.002, raw_commits=20, sim_seeds=2, process_workflows=6)


def median(values: tuple[float, ...]) -> float:
    """Median of the repetitions (the figure every table shows)."""
    return statistics.median(values) if values else float("nan")


@attrs.frozen(kw_only=True)
class Measurement:
    """One case on one system: wall seconds per repetition plus what each repetition did."""

    case: str                       # "a".."h", or "f1000" style for scaling points
    system: str                     # "engine", "dbos", "sqlite", "sim"
    label: str
    seconds: tuple[float, ...]
    steps: int = 0                  # completed steps per repetition
    workflows: int = 0              # completed workflows per repetition
    commits: int = 0                # raw SQLite commits per repetition
    seeds: int = 0                  # simulator seeds per repetition
    write_transactions: int | None = None   # store.write_transactions delta per repetition (engine only)
    note: str = ""

    @property
    def median(self) -> float:
        return median(self.seconds)

    def rate(self, count: int) -> float | None:
        """`count` per median second, or None when the case does not count that unit."""
        if count <= 0 or not self.seconds or self.median <= 0:
            return None
        return count / self.median

    @property
    def steps_per_s(self) -> float | None:
        return self.rate(self.steps)

    @property
    def workflows_per_s(self) -> float | None:
        return self.rate(self.workflows)

    @property
    def commits_per_s(self) -> float | None:
        return self.rate(self.commits)

    @property
    def seeds_per_s(self) -> float | None:
        return self.rate(self.seeds)

    @property
    def writes_per_step(self) -> float | None:
        if self.write_transactions is None or self.steps <= 0:
            return None
        return self.write_transactions / self.steps


@attrs.frozen(kw_only=True)
class Latency:
    """(g) create->complete latency of a 1-step workflow with a polling worker, over all samples."""

    samples_ms: tuple[float, ...]
    rep_medians_ms: tuple[float, ...]
    poll_interval: float

    @property
    def median_ms(self) -> float:
        return median(self.rep_medians_ms)

    @property
    def p90_ms(self) -> float:
        ordered = sorted(self.samples_ms)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]


@attrs.frozen(kw_only=True)
class ProfileLine:
    """One function's own time in the profiled hot path."""

    function: str
    location: str
    self_seconds: float
    share: float                    # of the profiled total


@attrs.frozen(kw_only=True)
class StatementLine:
    """One kind of SQL statement on the hot path: how often and how long per completed step."""

    kind: str
    calls_per_step: float
    us_per_step: float
    share: float                    # of all time spent in sqlite3's execute


@attrs.frozen(kw_only=True)
class Ratio:
    """A derived figure with the issue's target, if it has one."""

    name: str
    value: float | None
    target: str = ""
    ok: bool | None = None
    note: str = ""


@attrs.frozen(kw_only=True)
class BenchResults:
    """Everything one `run_benchmarks` call measured; rendered by `bench._report`."""

    repeats: int
    sizes: Sizes
    measurements: tuple[Measurement, ...]
    latency: Latency | None
    dbos_version: str | None
    dbos_note: str
    sim_note: str
    environment: dict[str, Any]
    profile: tuple[ProfileLine, ...] = ()
    profile_note: str = ""
    statements: tuple[StatementLine, ...] = ()
    problems: tuple[str, ...] = ()   # correctness failures seen while measuring (never timings)
    latency_pg: Latency | None = None  # (g) on PostgreSQL, woken by NOTIFY
    postgres_note: str = "PostgreSQL not measured in this run"

    def get(self, case: str, system: str) -> Measurement | None:
        """The measurement of `case` on `system`, or None if it was skipped."""
        for m in self.measurements:
            if m.case == case and m.system == system:
                return m
        return None
