"""What scenario files call from inside workflows and step callbacks: the run's scratch state, simulated busy
time, hangs and barriers. Each finds the current run through `CURRENT_RUN`, set while a scenario runs."""

from __future__ import annotations

import asyncio
import contextvars
from typing import TYPE_CHECKING, Any

import attrs

from properties.workflows import REPLAYING, Unmodelable
from sim.core.runtime import SimRuntime

if TYPE_CHECKING:
    from sim.scenario.run import ScenarioRun

__all__ = ["CURRENT_RUN", "Barrier", "busy", "hang", "run_state"]

CURRENT_RUN: contextvars.ContextVar[ScenarioRun | None] = contextvars.ContextVar("stepsim_scenario", default=None)


def run_state() -> dict[str, Any]:
    """A scratch dict private to the current scenario run (a fresh one per seed); empty outside scenarios.

    Workflows and step callbacks in scenario files use it for side-effect ledgers, e.g. to count charges.
    A workflow body that reads it is one the reference model cannot replay: it leaves that instance to the
    generic properties.
    """
    if REPLAYING.get():
        raise Unmodelable("the workflow reads run_state() outside a step")
    run = CURRENT_RUN.get()
    return run.state if run is not None else {}


def busy(seconds: float) -> None:
    """Inside a sync step callback: block the runner for `seconds` of simulated time (its `time.sleep`).

    The simulated runtime runs sync callbacks inline and lets that time pass afterwards as a timer, so the
    runner's heartbeat and the attempt timeout race it as they race a worker thread in production.
    """
    run = CURRENT_RUN.get()
    if run is None:
        return
    process = run.scheduler.current_process()
    if process is None:
        raise RuntimeError("busy() must be called from a step callback run by a scenario runner")
    run.record(process, "busy", seconds=seconds)
    runtime = run.slot(process).store.runtime
    assert isinstance(runtime, SimRuntime)
    runtime.busy(seconds)


async def hang() -> None:
    """Block the calling step callback until it is cancelled (by its attempt timeout or a lost lease)."""
    await asyncio.get_running_loop().create_future()


@attrs.frozen
class Barrier:
    """A named gate for step callbacks: `await gate.wait()` stops the callback mid-flight until a later
    `release(gate)` step. With `times=n` only the first n calls stop; after the release every call passes.
    Outside a scenario run, `wait()` returns at once.
    """

    name: str
    times: int | None = None

    async def wait(self) -> None:
        run = CURRENT_RUN.get()
        if run is not None:
            await run.barrier_wait(self)
