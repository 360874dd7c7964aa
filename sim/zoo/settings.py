"""Where each kind of engine bug is reachable (settings: a profile and maybe a fixed workload), and the
record that describes one zoo mutant."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import attrs

from sim.core.choices import ChoiceSource
from sim.search.pct import PCTPicker
from sim.world.faults import FaultConfig
from sim.world.simulation import RunResult, World
from sim.world.workload import Op, Profile, get_profile
from sim.zoo.patching import Patch

# --- settings that make each kind of bug reachable -----------------------------------------------------


def mutant_profile(name: str, **faults: Any) -> Profile:
    """Four instances of the mixed workload with only the named faults on."""
    return Profile(name=f"mutant-{name}", instances=4, faults=FaultConfig(**faults))


def _naps() -> list[Op]:
    """Short durable sleeps, each instance paused and resumed mid-nap (a resume replays the sleep early)."""
    ops = [Op(kind="create", workflow="sleepy-workflow", instance_id=f"n{i}", params={"naps": 3, "nap": "1 min"})
           for i in range(3)]
    for _ in range(3):
        for i in range(3):
            ops += [Op(kind="pause", workflow="sleepy-workflow", instance_id=f"n{i}"),
                    Op(kind="resume", workflow="sleepy-workflow", instance_id=f"n{i}")]
    return ops


def _charges() -> list[Op]:
    """Charges that fail 3 to 5 times against a limit of 3 retries: recovered on the last try or given up."""
    return [Op(kind="create", workflow="charge-workflow", instance_id=f"c{n}",
               params={"fail_times": n, "backoff": backoff, "amount": 10})
            for n, backoff in ((3, "constant"), (4, "linear"), (5, "exponential"))]


def _pairs() -> list[Op]:
    """Instances that wait twice for the same event type, each sent its two events (some before it runs)."""
    ops = []
    for i in range(3):
        iid = f"p{i}"
        ops.append(Op(kind="create", workflow="pair-workflow", instance_id=iid))
        ops += [Op(kind="event", workflow="pair-workflow", instance_id=iid, event_type="item", payload={"n": n})
                for n in (1, 2)]
    return ops


def _names() -> list[Op]:
    """Workflows that try a `#` step name and a step nested in a step callback (both must be refused)."""
    return [Op(kind="create", workflow=wf, instance_id=f"{wf[0]}{i}", params={})
            for i in range(2) for wf in ("names-workflow", "nested-workflow")]


def _dozers() -> list[Op]:
    """Sleeps and retries only: every step boundary is a hand-back with a wake-up time."""
    return [Op(kind="create", workflow="sleepy-workflow", instance_id=f"z{i}", params={"naps": 3, "nap": "1 min"})
            for i in range(3)] + _charges()


@attrs.frozen
class Setting:
    """A profile, and optionally a fixed workload that replaces the seed's generated one."""

    profile: Profile
    workload: Callable[[], list[Op]] | None = None

    @property
    def name(self) -> str:
        """The profile's name, plus the fixed workload's if there is one."""
        return self.profile.name + (f"+{self.workload.__name__.strip('_')}" if self.workload else "")

    def swarm(self) -> Setting:
        """The same setting with swarm faults: a random subset of fault kinds and rates per seed."""
        return Setting(attrs.evolve(self.profile, name=f"{self.profile.name}-swarm", swarm=True), self.workload)

    def world(self, seed: int, *, pct_depth: int | None = None, choices: ChoiceSource | None = None) -> World:
        """The world of one seed (uniform or PCT scheduling), built but not run."""
        picker = PCTPicker(seed, depth=pct_depth) if pct_depth else None
        world = World(seed, self.profile, choices=choices, picker=picker)
        if self.workload is not None:
            world.ops = self.workload()
        return world

    def run(self, seed: int, *, pct_depth: int | None = None, choices: ChoiceSource | None = None) -> RunResult:
        """One simulated seed in this setting, against whatever engine is patched in right now."""
        return self.world(seed, pct_depth=pct_depth, choices=choices).run()


CALM = Setting(mutant_profile("calm"))
LIFECYCLE = Setting(mutant_profile("lifecycle", lifecycle=0.1))
CLOCK_JUMP = Setting(mutant_profile("clock-jump", clock_jump=0.1, step_hang=0.2))
LATE = Setting(mutant_profile("late", late_event=0.5))
DUPLICATES = Setting(mutant_profile("duplicates", duplicate_event=1.0))
NAPS = Setting(mutant_profile("skew", skew=0.2), _naps)
CHARGES = Setting(mutant_profile("crash", crash=0.02), _charges)
CRASHES = Setting(mutant_profile("crashes", crash=0.05))
PAIRS = Setting(mutant_profile("lifecycle", lifecycle=0.1), _pairs)
NAMES = Setting(mutant_profile("calm"), _names)
SLOW_SYNC = Setting(attrs.evolve(get_profile("slow-sync"), name="mutant-slow-sync", faults=FaultConfig.none()))
CRASHING_DOZERS = Setting(attrs.evolve(mutant_profile("crash-dozers", crash=0.05), liveness_bound=1800.0), _dozers)
# Healthy runners, every event delivered, the liveness phase starting while instances still wait: nothing
# should need its 1-hour event timeout, so a bound below it shows a wake-up that comes only at the deadline
# (scripts are left out: their waits time out and their sleeps last hours by design).
PROMPT = Setting(attrs.evolve(mutant_profile("prompt"), liveness_bound=1800.0, max_actions=100, scripts=0.0))
DEFAULT = Setting(Profile(name="default"))


# --- the mutants ----------------------------------------------------------------------------------------

Oracle = Literal["violation", "determinism"]
MODES = ("random", "swarm", "pct", "explore", "machine")


@attrs.frozen(kw_only=True)
class ZooMutant:
    """One realistic engine bug, where it is reachable, and how the CI gate finds it quickly.

    `prop` is the property expected to catch it ("P3" ...) or "determinism" for the self-check; `oracle`
    says whether a detection is a property violation or a trace that differs between two runs of a seed.
    """

    def expects(self, prop: str | None) -> bool:
        """Whether a detection by `prop` (e.g. "P3 fencing") is one this mutant should cause."""
        return prop is not None and prop.split()[0] in (self.prop, *self.also)

    name: str
    title: str
    models: str
    prop: str
    patch: Callable[[Patch], None]
    also: tuple[str, ...] = ()  # other properties that may legitimately fire first
    explore_note: str = ""  # why the explorer misses a bug its configuration is meant to contain
    setting: Setting
    explore: str | None = None
    best: str = "random"
    gate_budget: int = 200
    lease_race: bool = False
    oracle: Oracle = "violation"


__all__ = ["CALM", "CHARGES", "CLOCK_JUMP", "CRASHES", "CRASHING_DOZERS", "DEFAULT", "DUPLICATES", "LATE",
           "LIFECYCLE", "MODES", "NAMES", "NAPS", "PAIRS", "PROMPT", "SLOW_SYNC", "Oracle", "Setting", "ZooMutant",
           "mutant_profile"]
