"""The runtime: the engine's only door to time, randomness, ids and waiting (DESIGN §4)."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from typing import Protocol, runtime_checkable


@runtime_checkable
class Runtime(Protocol):
    """What the engine needs from the outside world; a simulator supplies its own.

    A runtime may also define ``async def checkpoint(label: str) -> None``: the engine awaits it at every
    point where a simulated scheduler may switch runners (between transactions, around step callbacks).
    """

    random: random.Random

    def now(self) -> float:
        """Seconds since the epoch."""
        ...

    def new_id(self) -> str:
        """A fresh id for instances and runners."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait; the engine never assumes this moves now()."""
        ...


class SystemRuntime:
    """Production runtime: the real clock, OS randomness, uuid4 ids and asyncio sleeps."""

    def __init__(self) -> None:
        self.random = random.Random()

    def now(self) -> float:
        """Wall-clock seconds since the epoch."""
        return time.time()

    def new_id(self) -> str:
        """A random 32-hex-digit id."""
        return uuid.uuid4().hex

    async def sleep(self, seconds: float) -> None:
        """Real asyncio sleep."""
        await asyncio.sleep(max(0.0, seconds))
