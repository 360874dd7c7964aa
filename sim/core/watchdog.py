"""A wall-clock budget for one simulated run, so an engine that never yields fails its seed instead of
hanging the campaign, `stepsim check` or CI.

Inside a simulation every wait is virtual, so a run that takes minutes of real time is an engine (or a
callback) spinning without yielding to the scheduler; no cooperative check can interrupt that. A POSIX
interval timer can: its signal handler runs between two bytecodes of the spinning code and raises `Hang`.
The budget decides only whether a run failed, never what it did, so traces stay deterministic.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


class Hang(KeyboardInterrupt):
    """The run exceeded its wall-clock budget. A KeyboardInterrupt subclass on purpose: asyncio re-raises
    those out of the event loop instead of storing them in the task that happened to be running, and
    engine code that catches Exception around a step cannot swallow it."""


@contextmanager
def wall_budget(seconds: float | None) -> Iterator[None]:
    """Raise `Hang` in this thread if the block runs longer than `seconds` of real time (None: no budget).

    Only the main thread can receive signals; elsewhere (a test's worker thread) the block runs unguarded.
    """
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expired(signum: int, frame: FrameType | None) -> None:
        raise Hang(f"the run did not end within {seconds:g} s of wall time")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


__all__ = ["Hang", "wall_budget"]
