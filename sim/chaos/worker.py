"""One chaos worker process: `python -m sim.chaos.worker DATABASE NAME [--concurrency N] [--lease S]`.

A real `Engine.run_worker` over the shared database, with the chaos workflows. SIGTERM stops it gracefully;
the controller's SIGKILL and SIGSTOP are the point. It prints "ready" once its engine is open.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys

from engine import Engine
from sim.chaos.workflows import EffectLog, chaos_workflows


async def serve(database: str, name: str, concurrency: int, lease: float, poll: float) -> None:
    """Run the worker until SIGTERM."""
    log = EffectLog(database, name)
    engine = Engine(database, chaos_workflows(log), runner_id=f"{name}:{os.getpid()}", lease=lease)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, lambda: asyncio.ensure_future(engine.stop()))
    print("ready", flush=True)
    try:
        await engine.run_worker(poll_interval=poll, concurrency=concurrency)
    finally:
        await engine.close()


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and serve."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("database")
    parser.add_argument("name")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--lease", type=float, default=3.0)
    parser.add_argument("--poll", type=float, default=0.1)
    parser.add_argument("--mutant", default=None, help="serve a zoo mutant instead of the real engine")
    args = parser.parse_args(argv)
    if args.mutant is None:
        asyncio.run(serve(args.database, args.name, args.concurrency, args.lease, args.poll))
        return
    from sim.zoo.mutants import apply

    with apply(args.mutant):  # shows the history check catching a planted bug in real processes
        asyncio.run(serve(args.database, args.name, args.concurrency, args.lease, args.poll))


if __name__ == "__main__":
    main(sys.argv[1:])
