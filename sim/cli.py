"""The `stepsim` command line: drives the engine through its public API and the harness."""

from __future__ import annotations

import asyncio
import os
import tempfile
from typing import Any

import click
from rich.console import Console

from engine import Engine

console = Console()


@click.group()
def main() -> None:
    """stepsim: a durable workflow engine with a deterministic simulation harness."""


async def _demo(database: str, poll: float) -> dict[str, Any]:
    from sim.workflows import approval

    engine = Engine(database, [approval], lease="30 s")
    seen: list[str] = []

    async def show(iid: str) -> str:
        info = await engine.status("approval-workflow", iid)
        state = f"{info.status.value}:{info.current_step}"
        if not seen or seen[-1] != state:
            seen.append(state)
            console.print(f"  [bold]{iid}[/bold] -> {info.status.value}"
                          + (f"  (step {info.current_step})" if info.current_step else ""))
        return info.status.value

    worker = asyncio.ensure_future(engine.run_worker(poll_interval=poll))
    try:
        iid = engine.runtime.new_id()
        await engine.create("approval-workflow", {"request_id": "r1", "amount": 125}, id=iid)
        await show(iid)
        while await show(iid) != "waiting":
            await asyncio.sleep(poll / 2)
        console.print("  sending approval event")
        await engine.send_event("approval-workflow", iid, type="approval", payload={"approved": True})
        while (await engine.history("approval-workflow", iid)).steps[-1].key != "wait_for_event:fulfilment":
            await show(iid)
            await asyncio.sleep(poll / 2)
        await show(iid)
        console.print("  sending fulfillment event")
        await engine.send_event("approval-workflow", iid, type="fulfillment", payload={"confirmation_id": "c1"})
        while await show(iid) not in ("complete", "errored", "terminated"):
            await asyncio.sleep(poll / 2)
        info = await engine.status("approval-workflow", iid)
        return {"status": info.status.value, "output": info.output, "statuses": seen}
    finally:
        await engine.stop()
        await worker
        await engine.close()


@main.command()
@click.option("--database", default=None, help="SQLite file (default: a temporary file)")
@click.option("--poll", default=0.1, show_default=True, help="worker poll interval in seconds")
def demo(database: str | None, poll: float) -> None:
    """Run the approval example end to end on SQLite, printing each status change."""
    with tempfile.TemporaryDirectory() as tmp:
        path = database or os.path.join(tmp, "demo.db")
        console.print(f"approval-workflow on {path}")
        result = asyncio.run(_demo(path, poll))
    console.print(f"result: {result['output']}")
    if result["status"] != "complete":
        raise SystemExit(1)


if __name__ == "__main__":  # pragma: no cover - `python -m sim.cli`
    main()
