"""(h) Simulator throughput: seeds/s of `sim.world.simulation.run_seed` on reference scenario S1, and the measured wall
time of 24 h of sleep-heavy virtual time (profile 'sleepy')."""

from __future__ import annotations

import gc
import time

from sim.world.simulation import run_seed

from ._records import Measurement, Sizes

DAY = 86400.0


def _sleepy_day(repeats: int) -> float:
    """Median wall seconds of one 'sleepy' seed (three instances sleeping 4 x 6 h: 24 h of virtual time)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run_seed(0, "sleepy")
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def simulator(sizes: Sizes, repeats: int) -> tuple[Measurement, str]:
    """(measurement, note). Seeds 0..k-1 in every repetition, so repetitions do the same work."""
    seconds: list[float] = []
    virtual = 0.0
    failing: set[int] = set()
    for _ in range(repeats):
        gc.collect()
        virtual = 0.0
        start = time.perf_counter()
        for seed in range(sizes.sim_seeds):
            result = run_seed(seed, "s1")
            virtual += float(result.stats["virtual_seconds"])
            if not result.ok:
                failing.add(seed)
        seconds.append(time.perf_counter() - start)
    measurement = Measurement(case="h", system="sim", label="simulator, profile 's1'",
                              seconds=tuple(seconds), seeds=sizes.sim_seeds)
    wall = measurement.median
    note = (f"{sizes.sim_seeds / wall:,.1f} seeds/s on profile 's1'; {virtual / sizes.sim_seeds:,.0f} virtual s "
            f"per seed; 24 h of sleep-heavy virtual time (profile 'sleepy', measured): "
            f"{_sleepy_day(repeats) * 1000:,.0f} ms wall")
    if failing:
        note += f"; seeds reporting violations (the simulator's business, not a timing): {sorted(failing)}"
    return measurement, note
