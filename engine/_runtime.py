"""The runtime: the engine's only door to time, randomness, ids and waiting (DESIGN §4)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import random
import time
import uuid
from collections.abc import Callable
from typing import Any, Protocol, TypeVar, runtime_checkable

T = TypeVar("T")


@runtime_checkable
class Runtime(Protocol):
    """What the engine needs from the outside world; a simulator supplies its own.

    A runtime may also define ``async def checkpoint(label: str) -> None``: the engine awaits it at every
    point where a simulated scheduler may switch runners (between transactions, around step callbacks);
    and ``run_sync(fn, *args)``: how a sync step callback runs off the event loop, so the heartbeat and the
    attempt timeout keep running beside it; it returns an awaitable of the result (or, for a call that
    already finished inline, the result itself). Without one, a worker thread is used (`run_in_thread`).
    And ``run_blocking(fn)``: where a store runs one synchronous transaction that waits on the network
    (PostgreSQL); it returns an awaitable of the result. Without one, the store runs it inline, which is what
    a simulated runtime wants (every transaction then happens at one scheduling point).
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


def run_in_thread(
    fn: Callable[..., T], *args: Any, executor: concurrent.futures.Executor | None = None
) -> asyncio.Future[T]:
    """Run a sync step callback in a worker thread (context variables included), leaving the loop free.

    `executor` defaults to the loop's default one (runtimes without `run_sync`). A thread cannot be stopped:
    after a timeout or a lost lease the engine stops waiting for it and discards whatever it returns, but
    the call runs on to its end and keeps its thread until then.
    """
    context = contextvars.copy_context()
    return asyncio.get_running_loop().run_in_executor(executor, functools.partial(context.run, fn, *args))


class SystemRuntime:
    """Production runtime: the real clock, OS randomness, uuid4 ids and asyncio sleeps."""

    def __init__(self, *, max_sync_threads: int = 32, max_store_threads: int = 16) -> None:
        self.random = random.Random()
        self.max_sync_threads = max_sync_threads
        self.max_store_threads = max_store_threads
        # Created on first use; its own, so hung sync callbacks cannot exhaust the loop's default executor
        # (which DNS lookups and other libraries share).
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        # Store transactions get threads of their own: callbacks that hang must never starve the commits
        # and heartbeats that keep leases alive.
        self._store_executor: concurrent.futures.ThreadPoolExecutor | None = None

    def now(self) -> float:
        """Wall-clock seconds since the epoch."""
        return time.time()

    def new_id(self) -> str:
        """A random 32-hex-digit id."""
        return uuid.uuid4().hex

    def monotonic(self) -> float:
        """Seconds on a clock no one sets (for offsets that must survive a wall-clock step)."""
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        """Real asyncio sleep."""
        await asyncio.sleep(max(0.0, seconds))

    def run_sync(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Sync step callbacks run in a worker thread, so a slow one keeps its lease (DESIGN §2)."""
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=self.max_sync_threads, thread_name_prefix="stepsim-step")
        return run_in_thread(fn, *args, executor=self._executor)

    def run_blocking(self, fn: Callable[[], T]) -> asyncio.Future[T]:
        """A store's synchronous transaction (network round trips) in a worker thread, off the event loop."""
        if self._store_executor is None:
            self._store_executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=self.max_store_threads, thread_name_prefix="stepsim-store")
        return asyncio.get_running_loop().run_in_executor(self._store_executor, fn)
