"""A benchmark worker process for (i): `python -m bench._worker DATABASE POLL_SECONDS`.

Opens its engine, prints "ready", waits for SIGUSR1 (so start-up is outside the timed region), then runs
`run_worker` (one runner loop) until SIGTERM.
"""

from __future__ import annotations

import asyncio
import signal
import sys

from engine import Engine

from ._engine_cases import make_workflows


async def serve(database: str, poll: float) -> None:
    """Drain the benchmark workflows until told to stop."""
    go, stopping = asyncio.Event(), asyncio.Event()
    async with Engine(database, make_workflows()) as engine:

        def stop() -> None:
            stopping.set()
            go.set()
            asyncio.ensure_future(engine.stop())

        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGUSR1, go.set)
        loop.add_signal_handler(signal.SIGTERM, stop)
        print("ready", flush=True)
        await go.wait()
        if not stopping.is_set():
            await engine.run_worker(poll_interval=poll)


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1], float(sys.argv[2])))
