"""The scenario DSL (DESIGN §7): multi-step flows, races between runners, and what must come out of them.

A scenario file is a Python module with a docstring stating the behaviour it pins down and a module-level
`scenario`::

    from sim.scenario.dsl import Scenario, advance, create, event, expect_status, run_until_idle
    from sim.world.workflows import approval

    scenario = Scenario("approval-flow", [approval], runners=["a", "b"], steps=[
        create(approval, {"request_id": "r1", "amount": 125}, id="r1"),
        run_until_idle(),                        expect_status("r1", "waiting"),
        event("r1", "approval", {"approved": True}),
        run_until_idle(), advance("2 s"), run_until_idle(),
        event("r1", "fulfillment", {"confirmation_id": "c1"}),
        run_until_idle(),                        expect_status("r1", "complete"),
    ], tolerates=["interleaving", "crash", "lease_expiry"])

Runners are real `Engine` objects over one shared SQLite database, moved only by the steps; the invariant
checker of `properties` runs after every move, so a scenario also fails on any violated property. With a
seed (`scenario.run(seed=3)`, `stepsim run --seeds K`), the decisions the steps leave open and the faults
listed in `tolerates` (see `FAULT_KINDS`) vary with the seed, and every expectation must still hold.
"""

from __future__ import annotations

import os
import shlex
import time
import traceback
from typing import Any

import attrs

from engine import WorkflowDefinition, parse_duration
from sim.core.trace import Trace
from sim.core.watchdog import Hang, wall_budget
from sim.scenario.errors import InvariantBroken, Mismatch, ScenarioError, ScenarioFailure, StepError
from sim.scenario.expect import (
    expect,
    expect_calls,
    expect_error,
    expect_history,
    expect_instances,
    expect_output,
    expect_status,
    expect_trace,
    expect_value,
)
from sim.scenario.run import CURRENT_RUN, FAULT_KINDS, Barrier, ScenarioRun, busy, hang, run_state
from sim.scenario.steps import (
    Ref,
    Step,
    act,
    advance,
    advance_to,
    concurrent,
    crash,
    create,
    create_batch,
    event,
    expire_lease,
    pause,
    proceed,
    ref,
    release,
    restart,
    restart_runner,
    resume,
    run_until_idle,
    terminate,
    tick,
    where,
)
from sim.scenario.trace import Entry, TraceView

HANG_BUDGET = 60.0  # wall seconds a scenario run may take; they take milliseconds unless something spins

__all__ = [
    "FAULT_KINDS", "Barrier", "Entry", "Ref", "Scenario", "ScenarioError", "ScenarioFailure", "ScenarioResult",
    "ScenarioRun", "Step", "TraceView", "act", "advance", "advance_to", "barrier", "busy", "concurrent", "crash",
    "create", "create_batch", "event", "expect", "expect_calls", "expect_error", "expect_history",
    "expect_instances", "expect_output", "expect_status", "expect_trace", "expect_value", "expire_lease",
    "hang", "pause", "proceed", "ref", "release", "restart", "restart_runner", "resume", "run_state",
    "run_until_idle", "terminate", "tick",
]


def barrier(name: str, *, times: int | None = None) -> Barrier:
    """A gate for step callbacks: `await gate.wait()` stops there until a `release(gate)` step."""
    return Barrier(name, times)


def _tolerates(value: Any) -> tuple[str, ...]:
    kinds = tuple(value)
    unknown = [k for k in kinds if k not in FAULT_KINDS]
    if unknown:
        raise ScenarioError(f"unknown tolerates {unknown}; known: {sorted(FAULT_KINDS)}")
    return kinds


def _runners(value: Any) -> tuple[str, ...]:
    names = tuple(value)
    if not names or len(set(names)) != len(names) or not all(isinstance(n, str) and n for n in names):
        raise ScenarioError(f"runners must be distinct non-empty names, got {names!r}")
    if any(n.startswith("client") or "." in n for n in names):
        raise ScenarioError(f"runner names may not start with 'client' or contain '.': {names!r}")
    return names


def _steps(value: Any) -> tuple[Step, ...]:
    steps = tuple(value)
    for s in steps:
        if not isinstance(s, Step):
            raise ScenarioError(f"steps must be DSL steps (create, tick, expect_status, ...), got {s!r}")
    return steps


@attrs.frozen
class ScenarioResult:
    """What one run of a scenario did; `report` is the failure report (None when it passed)."""

    scenario: str
    seed: int | None
    report: str | None
    where: str | None
    trace: Trace
    moves: int
    injected: tuple[str, ...]
    seconds: float

    @property
    def ok(self) -> bool:
        return self.report is None


@attrs.frozen
class Scenario:
    """A named flow over some workflows: runner names, steps, and the faults its expectations tolerate."""

    name: str
    workflows: tuple[WorkflowDefinition, ...] = attrs.field(converter=tuple)
    steps: tuple[Step, ...] = attrs.field(kw_only=True, converter=_steps)
    runners: tuple[str, ...] = attrs.field(kw_only=True, default=("a", "b"), converter=_runners)
    tolerates: tuple[str, ...] = attrs.field(kw_only=True, default=(), converter=_tolerates)
    lease: Any = attrs.field(kw_only=True, default="30 s")
    doc: str | None = attrs.field(kw_only=True, default=None)
    file: str = attrs.field(kw_only=True, factory=lambda: where().rsplit(":", 1)[0])

    def __attrs_post_init__(self) -> None:
        parse_duration(self.lease, what="lease")
        for wf in self.workflows:
            if not isinstance(wf, WorkflowDefinition):
                raise ScenarioError(f"workflows must be define_workflow(...) results, got {wf!r}")

    def run(
        self, seed: int | None = None, *, oracle: bool = True, database: str | None = None
    ) -> ScenarioResult:
        """Run once: deterministically (seed None) or under a seed; never raises for a failing scenario.
        `oracle=False` leaves out the reference model's verdicts (to measure what the expectations alone
        catch); `database` a postgresql:// URL runs it on PostgreSQL (default: in-memory SQLite)."""
        started = time.perf_counter()
        ctx = ScenarioRun(self, seed, oracle=oracle, database=database)
        token = CURRENT_RUN.set(ctx)
        report: str | None = None
        at: str | None = None
        current: Step | None = None
        try:
            with wall_budget(HANG_BUDGET):  # a step that never yields fails the scenario instead of hanging it
                for current in self.steps:
                    ctx.record("scenario", "step", at=current.line, step=current.label)
                    current.act(ctx)
                    ctx.checker.on_move()
                    ctx.raise_violations()
                current = None
                ctx.checker.at_end()
                ctx.raise_violations(whole=True)
        except (Exception, Hang) as exc:  # noqa: BLE001 - whatever a step raises becomes a report naming its line
            step, error = (exc.step, exc.error) if isinstance(exc, StepError) else (current, exc)
            at = step.where if step is not None else None
            report = self._report(ctx, step, error, nested=isinstance(exc, StepError))
        finally:
            CURRENT_RUN.reset(token)
            ctx.close()
        return ScenarioResult(scenario=self.name, seed=seed, report=report, where=at,
                              trace=ctx.trace_records(), moves=ctx.moves, injected=tuple(ctx.injected),
                              seconds=time.perf_counter() - started)

    def check(self, seed: int | None = None, *, database: str | None = None) -> ScenarioResult:
        """Run once and raise `ScenarioFailure` (with the full report) if it failed."""
        result = self.run(seed, database=database)
        if result.report is not None:
            raise ScenarioFailure(result.report, scenario=self.name, seed=seed, where=result.where)
        return result

    def repro(self, seed: int | None, database: str | None = None) -> str:
        """The command that reruns exactly this run (on PostgreSQL too, if it ran there)."""
        path = _short(self.file)
        line = f"stepsim run {path}" + (f" --seed {seed}" if seed is not None else " --seeds 0")
        return line + (f" --db {shlex.quote(database)}" if database else "")

    def _report(self, ctx: ScenarioRun, step: Step | None, error: BaseException, *, nested: bool) -> str:
        mode = ("deterministic run" if ctx.seed is None else
                f"seed {ctx.seed}, varying {', '.join(self.tolerates) or 'nothing'}")
        lines = [f"scenario {self.name!r} failed ({mode})"]
        if step is not None:
            inside = " (inside concurrent())" if nested else ""
            lines.append(f"  at {_short(step.where)}: {step.label}{inside}")
        else:
            lines.append(f"  at the end of {_short(self.file)}: final invariant checks")
        if isinstance(error, Mismatch):
            lines.append(f"  expected: {error.expected}")
            lines.append(f"  found:    {error.found}")
        elif isinstance(error, InvariantBroken):
            lines.append("  expected: every property of DESIGN §6 to hold")
            lines.append("  found:    " + "\n            ".join(v.render() for v in error.violations))
        elif isinstance(error, ScenarioError):
            lines.append(f"  scenario error: {error}")
        else:
            lines.append(f"  unexpected {type(error).__name__}: {error}")
            tb = "".join(traceback.format_exception(type(error), error, error.__traceback__, limit=-6))
            lines.append("    " + tb.rstrip().replace("\n", "\n    "))
        lines.append(ctx.failure_context())
        lines.append(f"  reproduce: {self.repro(ctx.seed, ctx.database)}")
        return "\n".join(lines)


def _short(path: str) -> str:
    """A path relative to the working directory when it is below it."""
    try:
        rel = os.path.relpath(path)
    except ValueError:  # pragma: no cover - another drive on Windows
        return path
    return path if rel.startswith("..") else rel
