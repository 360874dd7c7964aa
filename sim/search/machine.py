"""Property 10: a Hypothesis state machine drives the real engine and checks it against the reference model.

Rules are the client operations (create, create_batch, send_event, pause, resume, terminate, restart),
ticks of a given runner (possibly stopping mid-flight at a checkpoint), runner crashes and restarts, clock
moves (small steps and lease-crossing jumps), lease expiries, and `settle` (run every live runner until
idle). Scheduling decisions inside a tick come from Hypothesis data through `sim.core.choices.HypothesisChoices`,
so Hypothesis shrinks interleavings as well as rules. After every rule the safety properties (DESIGN §6)
must hold and the engine's state must equal the model's; after `settle` the model also says what the
engine still owes. The cluster itself is `sim.search.harness.Harness`.

`run_machine` runs it under a settings profile and a seed; a failure is Hypothesis' replayable program plus
the seed, also saved under reports/failures/.
"""

from __future__ import annotations

import functools
import os
import re
import secrets
from collections.abc import Callable
from pathlib import Path
from time import perf_counter
from typing import Any

import attrs
import hypothesis
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)

from properties import strategies as s
from sim.search.harness import Harness

# --- the state machine ----------------------------------------------------------------------------------


@attrs.define
class MachineStats:
    """Counters a run of the machine leaves behind (examples, rule steps, when the first failure showed)."""

    examples: int = 0
    checks: int = 0
    busy: float = 0.0  # seconds inside rules and the invariant: engine, harness, model and checkers
    first_failure_example: int | None = None
    first_failure_at: float | None = None

    @property
    def rules(self) -> int:
        """Rule steps run (the invariant also runs once per example before any rule)."""
        return self.checks - self.examples


def _timed(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Count the rule's seconds into `stats.busy` (the benchmark separates them from Hypothesis' own)."""

    @functools.wraps(fn)
    def timed(self: StepsimMachine, *args: Any, **kwargs: Any) -> Any:
        start = perf_counter()
        try:
            return fn(self, *args, **kwargs)
        finally:
            self.stats.busy += perf_counter() - start

    return timed


class StepsimMachine(RuleBasedStateMachine):
    """Client operations, runner ticks, crashes, clock moves and lease expiries against engine and model."""

    instances = Bundle("instances")

    def __init__(self, stats: MachineStats | None = None) -> None:
        super().__init__()
        self.harness = Harness()
        self.stats = stats if stats is not None else MachineStats()
        self.stats.examples += 1

    @rule(target=instances, spec=s.instance_specs())
    @_timed
    def create(self, spec: tuple[str, str, Any]) -> str:
        return self.harness.create(*spec)

    @rule(target=instances, batch=s.batch_specs())
    @_timed
    def create_batch(self, batch: tuple[str, list[tuple[str, Any]]]) -> Any:
        return multiple(*self.harness.create_batch(*batch))

    @rule(instance=instances, type=s.event_types, payload=s.payloads, event_id=s.event_ids)
    @_timed
    def send_event(self, instance: str, type: str, payload: Any, event_id: str | None) -> None:
        self.harness.send_event(instance, type, payload, event_id)

    @rule(instance=instances)
    @_timed
    def pause(self, instance: str) -> None:
        self.harness.pause(instance)

    @rule(instance=instances)
    @_timed
    def resume(self, instance: str) -> None:
        self.harness.resume(instance)

    @rule(instance=instances)
    @_timed
    def terminate(self, instance: str) -> None:
        self.harness.terminate(instance)

    @rule(instance=instances)
    @_timed
    def restart(self, instance: str) -> None:
        self.harness.restart(instance)

    @rule(runner=s.runners, stop_at=s.stops, data=st.data())
    @_timed
    def tick(self, runner: str, stop_at: str | None, data: st.DataObject) -> None:
        self.harness.choices.data = data
        self.harness.tick(runner, stop_at)

    @precondition(lambda self: any(self.harness.alive(n) for n in s.RUNNERS))
    @rule(runner=s.runners)
    @_timed
    def crash_runner(self, runner: str) -> None:
        if self.harness.alive(runner):
            self.harness.crash(runner)

    @precondition(lambda self: not all(self.harness.alive(n) for n in s.RUNNERS))
    @rule(runner=s.runners)
    @_timed
    def restart_runner(self, runner: str) -> None:
        if not self.harness.alive(runner):
            self.harness.start_runner(runner)

    @rule(seconds=s.clock_steps)
    @_timed
    def advance_clock(self, seconds: float) -> None:
        self.harness.clock.advance(seconds)

    @precondition(lambda self: self.harness.live_leases() > 0)
    @rule(runner=s.runners)
    @_timed
    def expire_lease(self, runner: str) -> None:
        self.harness.expire_lease(runner)

    @rule()
    @_timed
    def settle(self) -> None:
        self.harness.settle()

    @invariant()
    @_timed
    def properties_hold(self) -> None:
        self.stats.checks += 1
        problems = self.harness.check()
        if problems:
            if self.stats.first_failure_at is None:
                self.stats.first_failure_at = perf_counter()
                self.stats.first_failure_example = self.stats.examples
            raise AssertionError("\n".join(problems))

    def teardown(self) -> None:
        self.harness.close()


# --- running it -------------------------------------------------------------------------------------------

_RULE_LINE = re.compile(r"^(?:[\w, ()]+ = )?state\.(?!teardown\(|properties_hold\()\w+\(")


def program_rules(program: str) -> int:
    """How many rule steps a printed falsifying program has."""
    return sum(1 for line in program.splitlines() if _RULE_LINE.match(line.strip()))


FIXED_SEED = 0  # the default suite's seed: a bug the machine can find is found on every CI run, or on none


def choose_seed() -> int:
    """STEPSIM_HYPOTHESIS_SEED if set ("random": a fresh seed, printed with any failure, for nightly
    exploration beyond the default suite), else FIXED_SEED."""
    text = os.environ.get(s.SEED_ENV, "").strip()
    if text == "random":
        return secrets.randbits(32)
    return int(text) if text else FIXED_SEED


def run_machine(config: hypothesis.settings, *, seed: int | None = None, profile: str = "custom",
                reports: Path | None = None, stats: MachineStats | None = None,
                repro: str | None = None) -> MachineStats:
    """Run the machine under `config` and `seed`; on failure save the program and seed, then re-raise.

    `repro` is the command line that replays the run (default: the test under this profile and seed).
    """
    seed = choose_seed() if seed is None else seed
    stats = stats if stats is not None else MachineStats()

    def factory() -> StepsimMachine:
        return StepsimMachine(stats)

    try:
        run_state_machine_as_test(hypothesis.seed(seed)(factory), settings=config)  # type: ignore[no-untyped-call]
    except Exception as exc:
        program = "\n".join(str(n) for n in getattr(exc, "__notes__", []))
        repro = repro or (f"{s.PROFILE_ENV}={profile} {s.SEED_ENV}={seed} python -m pytest "
                          "tests/properties/test_machine.py -p no:cacheprovider -k agrees")
        path = None
        if reports is not None:
            path = reports / "failures" / f"machine-{profile}.txt"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"seed: {seed}\nprofile: {profile}\nreproduce: {repro}\n\n{type(exc).__name__}: {exc}"
                            f"\n\n{program}\n")
        exc.add_note(f"seed: {seed}   reproduce: {repro}" + (f"   saved: {path}" if path else ""))
        raise
    return stats


def profile_run(reports: Path | None = None) -> MachineStats:
    """The machine under the environment's profile (STEPSIM_HYPOTHESIS_PROFILE, default ci)."""
    name = s.profile_name()
    return run_machine(s.profile_settings(name), profile=name, reports=reports)


def timed_run(config: hypothesis.settings, seed: int) -> tuple[MachineStats, float]:
    """Rule steps and wall seconds of one healthy run (the benchmark)."""
    stats = MachineStats()
    start = perf_counter()
    run_machine(config, seed=seed, stats=stats)
    return stats, perf_counter() - start


__all__ = ["MachineStats", "StepsimMachine", "profile_run", "program_rules", "run_machine", "timed_run"]
