""""Sometimes" probes: situations a fuzz campaign must reach at least once, read back from run traces.

A property says what must always hold; a probe says what must sometimes happen, or the properties are
checked only on easy runs (Antithesis calls these sometimes-assertions). Each probe is computed after the
fact from a RunResult's trace: who held a lease on which instance until when, which step callback a runner
was inside, which instances were paused. The campaign function runs K seeds of the default and swarm
profiles and reports which probes were hit, how often and first where; the zoo gate requires every one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import attrs

from sim.core.trace import TraceRecord
from sim.world.workload import get_profile
from sim.world.simulation import RunResult, World

PROBES = (
    "lease expired mid-step",
    "two runners contend for a task",
    "event while paused",
    "terminate during a step",
    "crash between effect and commit",
    "retries exhausted",
    "priority tie",
)


def _runner_name(owner: str) -> str:
    """`r2.3` (the third incarnation of runner r2) -> `r2`: crash records name the runner, not the owner."""
    return owner.split(".", 1)[0]


@attrs.define
class _Walk:
    """What the trace says at the current record: leases, callbacks in flight, paused instances."""

    holders: dict[str, tuple[str, float]] = attrs.Factory(dict)  # instance -> (owner, lease until)
    in_call: dict[str, tuple[str, str]] = attrs.Factory(dict)  # owner -> (instance, step key) of a started callback
    paused: set[str] = attrs.Factory(set)
    pause_requested: set[str] = attrs.Factory(set)
    hit: set[str] = attrs.Factory(set)

    def held(self, instance: str, t: float) -> bool:
        holder = self.holders.get(instance)
        return holder is not None and holder[1] >= t

    def calling(self, instance: str) -> bool:
        return any(inst == instance for inst, _ in self.in_call.values())

    def release(self, owner: str, instance: str) -> None:
        self.in_call.pop(owner, None)
        if self.holders.get(instance, ("", 0.0))[0] == owner:
            del self.holders[instance]

    def lifecycle(self, op: str, instance: str, t: float) -> None:
        if op == "pause":
            if self.held(instance, t):
                self.pause_requested.add(instance)
            else:
                self.paused.add(instance)
        elif op in ("resume", "terminate", "restart"):
            # Mid-execution: a runner holds a live lease on the instance or is inside one of its callbacks.
            if op == "terminate" and (self.calling(instance) or self.held(instance, t)):
                self.hit.add("terminate during a step")
            self.paused.discard(instance)
            self.pause_requested.discard(instance)

    def engine(self, r: TraceRecord) -> None:
        d, owner = r.detail, r.runner
        instance = str(d.get("instance"))
        if r.action == "claim":
            self.holders[instance] = (owner, float(d["lease_until"]))
        elif r.action == "claim_lost":
            self.hit.add("two runners contend for a task")
        elif r.action == "find":
            kinds = [task[1] for task in d.get("due", [])]
            if len(kinds) != len(set(kinds)):  # two due tasks of one kind share a priority: a tie
                self.hit.add("priority tie")
        elif r.action == "step_call":
            self.in_call[owner] = (instance, str(d["key"]))
        elif r.action == "renew" and instance in self.holders:
            self.holders[instance] = (owner, float(d["lease_until"]))
        elif r.action == "lease_lost":
            self.hit.add("lease expired mid-step")
            self.release(owner, instance)
        elif r.action == "commit":
            self.in_call.pop(owner, None)
            if d.get("status") == "errored" and str(d.get("key", "")).startswith("do:") and d.get("attempts", 0) > 1:
                self.hit.add("retries exhausted")
            if d.get("paused"):
                self.paused.add(instance)
                self.pause_requested.discard(instance)
            if d.get("paused") or d.get("suspend") is not None:
                self.release(owner, instance)
        elif r.action in ("suspend", "finish", "abandon", "store_error"):
            if r.action == "suspend" and d.get("paused"):
                self.paused.add(instance)
                self.pause_requested.discard(instance)
            self.release(owner, instance)


def probes_hit(result: RunResult) -> set[str]:
    """The probes one run reached, read from its trace."""
    walk = _Walk()
    records = result.trace.records
    for i, r in enumerate(records):
        rejected = i + 1 < len(records) and records[i + 1].action == "rejected"
        if r.runner == "client":
            instance = str(r.detail.get("instance"))
            if r.action in ("event", "fault:duplicate_event") and not rejected and instance in walk.paused:
                walk.hit.add("event while paused")
            elif r.action in ("pause", "resume", "terminate", "restart") and not rejected:
                walk.lifecycle(r.action, instance, r.t)
            elif r.action == "fault:lifecycle" and not rejected:
                walk.lifecycle(str(r.detail["op"]), str(r.detail["instance"]), r.t)
        elif r.action == "fault:crash":
            if any(_runner_name(owner) == r.runner for owner in walk.in_call):
                walk.hit.add("crash between effect and commit")
            for owner in [o for o in walk.in_call if _runner_name(o) == r.runner]:
                del walk.in_call[owner]
        elif not r.action.startswith("fault:") and r.action not in ("move", "start", "liveness"):
            walk.engine(r)
    return walk.hit


@attrs.define
class ProbeReport:
    """How many seeds hit each probe, and the first (profile, seed) that did."""

    seeds: int = 0
    counts: dict[str, int] = attrs.Factory(lambda: dict.fromkeys(PROBES, 0))
    first: dict[str, tuple[str, int]] = attrs.Factory(dict)

    def add(self, profile: str, seed: int, hit: Iterable[str]) -> None:
        self.seeds += 1
        for probe in hit:
            self.counts[probe] += 1
            self.first.setdefault(probe, (profile, seed))

    @property
    def missed(self) -> list[str]:
        """Probes no seed reached."""
        return [p for p in PROBES if not self.counts[p]]

    def render(self) -> str:
        """Markdown table rows: probe, seeds hit, first seed."""
        lines = ["| probe | seeds that hit it | first |", "|---|---|---|"]
        for probe in PROBES:
            first = self.first.get(probe)
            where = f"`stepsim replay --seed {first[1]} --profile {first[0]}`" if first else "**never**"
            lines.append(f"| {probe} | {self.counts[probe]} / {self.seeds} | {where} |")
        return "\n".join(lines)


def probe_campaign(seeds: int, profiles: Sequence[str] = ("default", "swarm"), *, start: int = 0) -> ProbeReport:
    """Run `seeds` seeds of each profile on the real engine and collect which probes they hit."""
    report = ProbeReport()
    for name in profiles:
        profile = get_profile(name)
        for seed in range(start, start + seeds):
            report.add(name, seed, probes_hit(World(seed, profile).run()))
    return report


def probe_stats(result: RunResult) -> dict[str, Any]:
    """Probes of one run together with its fault counters (for `stepsim zoo --replay`)."""
    return {"probes": sorted(probes_hit(result)), "faults": result.stats.get("faults", {})}


__all__ = ["PROBES", "ProbeReport", "probe_campaign", "probe_stats", "probes_hit"]
