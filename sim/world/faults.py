"""Fault switches and rates, and swarm mode (a random subset of fault kinds per seed)."""

from __future__ import annotations

import attrs

from sim.core.choices import ChoiceSource

FAULT_KINDS = (
    "crash", "clock_jump", "skew", "busy", "io_error", "commit_unknown", "step_raise", "step_hang",
    "duplicate_event", "late_event", "lifecycle", "stall", "drain",
)


@attrs.frozen(kw_only=True)
class FaultConfig:
    """Probability of each fault per opportunity (driver action, write transaction, or step callback)."""

    crash: float = 0.0
    restart_runner: float = 0.3
    clock_jump: float = 0.0
    skew: float = 0.0
    busy: float = 0.0
    io_error: float = 0.0
    commit_unknown: float = 0.0
    step_raise: float = 0.0
    step_hang: float = 0.0
    duplicate_event: float = 0.0
    late_event: float = 0.0
    lifecycle: float = 0.0
    stall: float = 0.0  # a runner paused past its lease (a GC pause or a suspended VM), then resumed
    drain: float = 0.0  # a graceful stop (a deploy): the step in flight commits, its task is handed back
    max_crashes: int = 3

    @classmethod
    def none(cls) -> FaultConfig:
        """No faults at all (the liveness phase and plain interleaving runs)."""
        return cls(restart_runner=1.0)

    @classmethod
    def default(cls) -> FaultConfig:
        """Every fault kind at a moderate rate."""
        return cls(crash=0.01, clock_jump=0.01, skew=0.005, busy=0.02, io_error=0.005, commit_unknown=0.005,
                   step_raise=0.05, step_hang=0.01, duplicate_event=0.2, late_event=0.05, lifecycle=0.01,
                   stall=0.005, drain=0.005)

    @classmethod
    def swarm(cls, choices: ChoiceSource) -> FaultConfig:
        """A random subset of fault kinds with random rates, drawn from the seed (swarm testing)."""
        base = cls.default()
        rates: dict[str, float] = {}
        for kind in FAULT_KINDS:
            enabled = choices.flip("swarm", 0.5)
            scale = (1, 2, 4)[choices.choose("swarm", 3)]
            rates[kind] = min(getattr(base, kind) * scale, 0.5) if enabled else 0.0
        return cls(**rates)

    def enabled(self) -> list[str]:
        """The fault kinds with a non-zero rate."""
        return [kind for kind in FAULT_KINDS if getattr(self, kind) > 0]
