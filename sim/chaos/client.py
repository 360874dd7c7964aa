"""The chaos run's client process: `python -m sim.chaos.client DATABASE PLAN ACKS`.

It performs the planned operations (creates with fixed ids, events with event ids) through an `Engine`,
appending each one's index to ACKS once the engine accepted it (or refused it for good: an event to an
instance that already ended). The controller kills it at random moments; a restarted client starts again
from the first unacknowledged operation, so a call killed mid-flight is sent again, and must be harmless
(ids make creates and sends idempotent).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from engine import Engine, EngineError, StoreUnavailable
from sim.chaos.workflows import EffectLog, chaos_workflows


def acknowledged(path: Path) -> dict[int, str]:
    """Operation index -> outcome ("ok" or an error code), from the ack file (a torn last line is ignored)."""
    if not path.exists():
        return {}
    done: dict[int, str] = {}
    for line in path.read_text().splitlines():
        index, _, outcome = line.partition(" ")
        if index.isdigit() and outcome:
            done[int(index)] = outcome
    return done


async def perform(engine: Engine, op: dict[str, Any]) -> str:
    """One planned operation; returns its outcome. Transient store errors are retried here."""
    while True:
        try:
            if op["op"] == "create":
                await engine.create(op["workflow"], op["params"], id=op["id"])
            else:
                await engine.send_event(op["workflow"], op["id"], type=op["type"], payload=op["payload"],
                                        event_id=op["event_id"])
            return "ok"
        except StoreUnavailable:
            await asyncio.sleep(0.05)  # the database is being disrupted; the id makes the retry safe
        except EngineError as exc:
            return exc.code


async def run(database: str, plan_path: Path, ack_path: Path) -> None:
    """Perform every unacknowledged operation of the plan, in order."""
    plan = json.loads(plan_path.read_text())
    done = acknowledged(ack_path)
    engine = Engine(database, chaos_workflows(EffectLog(database, "client")), runner_id=f"client:{os.getpid()}")
    try:
        with ack_path.open("a") as acks:
            for index, op in enumerate(plan):
                if index in done:
                    continue
                outcome = await perform(engine, op)
                acks.write(f"{index} {outcome}\n")
                acks.flush()
                os.fsync(acks.fileno())
    finally:
        await engine.close()


if __name__ == "__main__":
    asyncio.run(run(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])))
