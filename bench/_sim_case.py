"""(h) Simulator throughput: seeds/s of `sim.world.run_seed` on reference scenario S1, and the wall time that
24 h of virtual time takes at the measured rate.

The simulator is built concurrently with the benchmarks, so this case looks for `run_seed` at run time and
says plainly when it is not there (or fails) instead of guessing.
"""

from __future__ import annotations

import gc
import importlib
import time
from typing import Any

from ._records import Measurement, Sizes

NOT_YET = "not yet measured (simulator in progress)"
DAY = 86400.0


def _find_run_seed() -> tuple[Any, str | None]:
    try:
        world = importlib.import_module("sim.world")
    except Exception as exc:  # noqa: BLE001 - an unfinished simulator may fail to import in any way
        return None, f"{NOT_YET}: sim.world does not import ({type(exc).__name__}: {exc})"
    run_seed = getattr(world, "run_seed", None)
    if not callable(run_seed):
        return None, f"{NOT_YET}: sim.world has no run_seed"
    return run_seed, None


def _profile_name() -> str:
    try:
        profiles = importlib.import_module("sim.workload").PROFILES
    except Exception:  # noqa: BLE001 - as above: fall back to the default profile
        return "default"
    return "s1" if "s1" in profiles else "default"


def _sleepy_day(run_seed: Any, repeats: int) -> float | None:
    """Median wall seconds of one 'sleepy' seed (three instances sleeping 4 x 6 h: 24 h of virtual time)."""
    try:
        profiles = importlib.import_module("sim.workload").PROFILES
    except Exception:  # noqa: BLE001 - an unfinished simulator may fail to import in any way
        return None
    if "sleepy" not in profiles:
        return None
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run_seed(0, "sleepy")
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def simulator(sizes: Sizes, repeats: int) -> tuple[Measurement | None, str]:
    """(measurement or None, note). Seeds 0..k-1 in every repetition, so repetitions do the same work."""
    run_seed, problem = _find_run_seed()
    if problem is not None:
        return None, problem
    profile = _profile_name()
    seconds: list[float] = []
    virtual = 0.0
    failing: set[int] = set()
    try:
        for _ in range(repeats):
            gc.collect()
            virtual = 0.0
            start = time.perf_counter()
            for seed in range(sizes.sim_seeds):
                result = run_seed(seed, profile)
                virtual += float(getattr(result, "stats", {}).get("virtual_seconds", 0.0))
                if not getattr(result, "ok", True):
                    failing.add(seed)
            seconds.append(time.perf_counter() - start)
    except Exception as exc:  # noqa: BLE001 - a simulator bug is reported, not a benchmark crash
        return None, f"{NOT_YET}: run_seed raised {type(exc).__name__}: {exc}"
    measurement = Measurement(case="h", system="sim", label=f"simulator, profile {profile!r}",
                              seconds=tuple(seconds), seeds=sizes.sim_seeds)
    wall = measurement.median
    note = f"{sizes.sim_seeds / wall:,.1f} seeds/s on profile {profile!r}"
    if virtual > 0:
        note += (f"; {virtual / sizes.sim_seeds:,.0f} virtual s per seed; 24 h of virtual time ~ "
                 f"{DAY * wall / virtual * 1000:,.1f} ms wall (extrapolated from the seeds' total)")
    day = _sleepy_day(run_seed, repeats)
    if day is not None:
        note += f"; 24 h of sleep-heavy virtual time (profile 'sleepy', measured): {day * 1000:,.0f} ms wall"
    if failing:
        note += f"; seeds reporting violations (the simulator's business, not a timing): {sorted(failing)}"
    return measurement, note
