"""PCT: probabilistic concurrency testing (Burckhardt et al.) as a scheduler pick for the simulator.

Each process gets a random distinct priority when first seen; the highest-priority eligible process
always moves; at d-1 random step indices the process that just moved drops below every initial priority.
A bug of depth d is then found with probability at least 1/(n * k^(d-1)) per run, far better than uniform
random scheduling for ordering bugs such as lease races.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from sim.core.scheduler import Waiter


class PCTPicker:
    """A `pick` for `Scheduler.step`: deterministic per seed, with `depth - 1` priority change points."""

    def __init__(self, seed: int, *, depth: int = 3, expected_steps: int = 400) -> None:
        if depth < 1:
            raise ValueError(f"PCT depth must be >= 1, got {depth}")
        self.rng = random.Random(f"pct:{seed}")
        self.depth = depth
        self.change_points = sorted(self.rng.sample(range(1, max(expected_steps, depth) + 1), depth - 1))
        self.priorities: dict[str, float] = {}
        self.steps = 0
        self.lowered = 0

    def _priority(self, process: str) -> float:
        if process not in self.priorities:
            # Initial priorities sit above every change-point priority (which are < depth).
            self.priorities[process] = self.depth + self.rng.random()
        return self.priorities[process]

    def __call__(self, waiters: Sequence[Waiter]) -> int:
        best = max(range(len(waiters)), key=lambda i: (self._priority(waiters[i].process), -waiters[i].seq))
        self.steps += 1
        if self.lowered < len(self.change_points) and self.steps == self.change_points[self.lowered]:
            self.lowered += 1
            self.priorities[waiters[best].process] = self.depth - self.lowered - self.rng.random() * 0.5
        return best
