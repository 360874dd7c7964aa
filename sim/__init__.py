"""Deterministic simulation of the stepsim engine: virtual clock, controlled scheduler, choices, traces.

One ``ChoiceSource`` decides everything nondeterministic, a ``Scheduler`` runs simulated processes on a
private asyncio loop in the order it dictates, each process talks to the engine through a ``SimRuntime``,
and what happened is kept as a ``Trace`` (DESIGN §5).
"""

from sim.core.choices import (
    FLIP,
    Choice,
    ChoiceSource,
    HypothesisChoices,
    RecordingChoices,
    SeededChoices,
    TapeChoices,
    TapeMismatch,
    dump_tape,
    load_tape,
)
from sim.core.clock import DEFAULT_START, VirtualClock
from sim.core.runtime import SimRuntime
from sim.core.scheduler import Scheduler, SimulationError, StepResult, Waiter, WaiterKind
from sim.core.trace import Trace, TraceRecord

__all__ = [
    "DEFAULT_START",
    "FLIP",
    "Choice",
    "ChoiceSource",
    "HypothesisChoices",
    "RecordingChoices",
    "Scheduler",
    "SeededChoices",
    "SimRuntime",
    "SimulationError",
    "StepResult",
    "TapeChoices",
    "TapeMismatch",
    "Trace",
    "TraceRecord",
    "VirtualClock",
    "Waiter",
    "WaiterKind",
    "dump_tape",
    "load_tape",
]
