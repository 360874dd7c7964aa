"""A manual test runtime: the test moves the clock; sleeps return once the clock has passed their deadline."""

from __future__ import annotations

import asyncio
import random


class ManualRuntime:
    """Runtime whose now() only moves when the test calls advance(); ids are a readable counter."""

    def __init__(self, start: float = 1_700_000_000.0, seed: int = 0) -> None:
        self.t = start
        self.random = random.Random(seed)
        self._ids = 0
        self._timers: list[tuple[float, asyncio.Future[None]]] = []

    def now(self) -> float:
        return self.t

    def new_id(self) -> str:
        self._ids += 1
        return f"id{self._ids:04d}"

    async def sleep(self, seconds: float) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._timers.append((self.t + max(seconds, 0.0), fut))
        if seconds <= 0:
            fut.set_result(None)
        await fut

    async def advance(self, seconds: float) -> None:
        """Move the clock and wake every sleeper whose deadline passed, letting them run."""
        self.t += seconds
        for deadline, fut in list(self._timers):
            if deadline <= self.t and not fut.done():
                fut.set_result(None)
        self._timers = [(d, f) for d, f in self._timers if not f.done()]
        for _ in range(5):
            await asyncio.sleep(0)
