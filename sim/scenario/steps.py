"""Scenario actions: what a step does to the world (DESIGN §7). Expectations live in `scenario_expect`.

Every factory returns a `Step` that remembers the file and line it was written on, so a failure points at
the scenario line. Arguments may be plain values or callables of the scenario context (`ctx`), resolved when
the step runs; `ref("name")` reads a value an earlier step saved with `save_as="name"`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Coroutine, Mapping, Sequence
from datetime import datetime
from typing import Any

import attrs

from engine import EngineError, WorkflowDefinition, parse_duration
from sim.scenario.errors import Mismatch, ScenarioError, StepError
from sim.scenario.run import Barrier, ScenarioRun
from sim.world.simulation import run_now

__all__ = [
    "Ref",
    "Step",
    "act",
    "advance",
    "advance_to",
    "concurrent",
    "crash",
    "create",
    "create_batch",
    "event",
    "expire_lease",
    "pause",
    "proceed",
    "ref",
    "release",
    "restart",
    "restart_runner",
    "resume",
    "run_until_idle",
    "terminate",
    "tick",
]

_HERE = os.path.dirname(os.path.abspath(__file__))

Act = Callable[[ScenarioRun], None]
Branch = Callable[[ScenarioRun], Coroutine[Any, Any, Any]]


def where() -> str:
    """`file:line` of the first caller outside the DSL's own modules (the scenario line being written)."""
    frame = sys._getframe(1)
    while frame is not None:
        filename = frame.f_code.co_filename
        inside = os.path.dirname(os.path.abspath(filename)) == _HERE  # every module of sim/scenario/
        if not inside and not filename.startswith("<attrs"):
            return f"{filename}:{frame.f_lineno}"
        frame = frame.f_back  # type: ignore[assignment]
    return "?:0"  # pragma: no cover - there is always a caller


@attrs.frozen
class Ref:
    """A value saved by an earlier step (`save_as=name`), read when the step using it runs."""

    name: str

    def __call__(self, ctx: ScenarioRun) -> Any:
        return ctx[self.name]

    def __repr__(self) -> str:
        return f"ref({self.name!r})"


def ref(name: str) -> Ref:
    """Refer to the value an earlier step saved with `save_as=name`."""
    return Ref(name)


def resolve(ctx: ScenarioRun, value: Any) -> Any:
    """A value as given, or computed from the context if it is callable; dicts and lists are resolved inside."""
    if isinstance(value, (type, WorkflowDefinition, Barrier)):
        return value
    if callable(value):
        return value(ctx)
    if isinstance(value, dict):
        return {k: resolve(ctx, v) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(ctx, v) for v in value]
    if isinstance(value, tuple):
        return tuple(resolve(ctx, v) for v in value)
    return value


def show(value: Any) -> str:
    """Short, readable form of an argument for step labels."""
    if isinstance(value, Ref):
        return repr(value)
    if isinstance(value, WorkflowDefinition):
        return repr(value.name)
    if isinstance(value, Barrier):
        return repr(value.name)
    if callable(value) and not isinstance(value, type):
        name = getattr(value, "__name__", "fn")
        return "<fn>" if name == "<lambda>" else name
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def label(name: str, *args: Any, **kwargs: Any) -> str:
    parts = [show(a) for a in args] + [f"{k}={show(v)}" for k, v in kwargs.items() if v is not None]
    return f"{name}({', '.join(parts)})"


@attrs.frozen(eq=False)
class Step:
    """One line of a scenario: `act(ctx)` runs it; `branch` is how it runs inside `concurrent()`."""

    label: str
    where: str
    act: Act = attrs.field(repr=False)
    branch: Branch | None = attrs.field(default=None, repr=False)
    runner: str | None = None

    @property
    def line(self) -> int:
        return int(self.where.rsplit(":", 1)[1])

    def __repr__(self) -> str:
        return self.label


def client_step(text: str, at: str, fn: Act) -> Step:
    """A step that acts through the client (or on the world) at once; inside concurrent() it is one move."""

    async def branch(ctx: ScenarioRun) -> None:
        await ctx.scheduler.park(f"client:{text}")
        fn(ctx)

    return Step(text, at, fn, branch)


def instance_id(ctx: ScenarioRun, value: Any) -> str:
    iid = resolve(ctx, value)
    if not isinstance(iid, str):
        raise ScenarioError(f"an instance must be an id string (or ref/callable giving one), got {iid!r}")
    return iid


def workflow_name(value: Any) -> str:
    return value.name if isinstance(value, WorkflowDefinition) else str(value)


def call_client(ctx: ScenarioRun, what: str, coro: Coroutine[Any, Any, Any], raises: Any,
                judge: Callable[[Any], None] | None = None) -> Any:
    """Run one client operation; `raises="CODE"` or `("CODE", "text")` says it must fail with that error.
    `judge` (from `ctx.judge`) is given the answer, the result or the error code, for the model to check."""
    try:
        result = run_now(coro)
    except EngineError as exc:
        if judge is not None:
            judge(exc.code)
        if raises is None:
            raise Mismatch(f"{what} to succeed", f"{exc.code}: {exc}") from None
        code, text = (raises, None) if isinstance(raises, str) else raises
        if exc.code != code or (text is not None and text not in str(exc)):
            want = code if text is None else f"{code} mentioning {text!r}"
            raise Mismatch(f"{what} to fail with {want}", f"{exc.code}: {exc}") from None
        ctx.record("client", "rejected", op=what, code=exc.code)
        return None
    if judge is not None:
        judge(result)
    if raises is not None:
        raise Mismatch(f"{what} to fail with {raises}", f"it succeeded (returned {result!r})")
    return result


# -- client actions ---------------------------------------------------------------------------------


def create(workflow: Any, params: Any = None, *, id: Any = None, save_as: str | None = None,
           raises: Any = None) -> Step:
    """Create an instance (`id=None`: the engine picks one); `save_as` keeps its id for `ref()`."""
    wf = workflow_name(workflow)

    def run(ctx: ScenarioRun) -> None:
        given, body = resolve(ctx, id), resolve(ctx, params)
        # An id the engine picks is judged once known (the model cannot predict it).
        judge = ctx.judge("create", given, wf, params=body) if given is not None else None
        iid = call_client(ctx, "create", ctx.client.create(wf, body, id=given), raises, judge)
        if given is None and iid is not None:
            ctx.judge("create", iid, wf, params=body)(iid)
        if iid is not None:
            ctx.workflow_of[iid] = wf
            ctx.record("client", "create", workflow=wf, instance=iid)
        if save_as is not None:
            ctx.names[save_as] = iid

    return client_step(label("create", wf, params, id=id, save_as=save_as, raises=raises), where(), run)


def create_batch(workflow: Any, items: Any, *, save_as: str | None = None, raises: Any = None) -> Step:
    """Create many instances at once (`items`: [{"id": ..., "params": ...}]); saves the ids it created."""
    wf = workflow_name(workflow)

    def run(ctx: ScenarioRun) -> None:
        resolved = resolve(ctx, items)
        pairs = [(i.get("id"), i.get("params")) if isinstance(i, Mapping) else i for i in resolved]
        # Items without an id get the engine's ids, which the model cannot predict: such a batch is not judged.
        judge = (ctx.judge("batch", "", wf, params=pairs)
                 if all(isinstance(p, tuple) and p[0] is not None for p in pairs) else None)
        if judge is None:
            ctx.oracle.model.partial.add(wf)
        created = call_client(ctx, "create_batch", ctx.client.create_batch(wf, resolved), raises, judge)
        for item in resolved:
            if isinstance(item, Mapping) and isinstance(item.get("id"), str) and created is not None:
                ctx.workflow_of.setdefault(item["id"], wf)
        if created is not None:
            ctx.record("client", "create_batch", workflow=wf, created=list(created))
        if save_as is not None:
            ctx.names[save_as] = created

    return client_step(label("create_batch", wf, items, save_as=save_as, raises=raises), where(), run)


def event(instance: Any, type: str, payload: Any = None, *, event_id: Any = None, workflow: str | None = None,
          raises: Any = None) -> Step:
    """Send an event to an instance (buffered until a matching wait consumes it)."""

    def run(ctx: ScenarioRun) -> None:
        iid = instance_id(ctx, instance)
        wf = ctx.workflow(iid, workflow)
        eid, body = resolve(ctx, event_id), resolve(ctx, payload)
        ctx.record("client", "event", instance=iid, type=type, event_id=eid)

        def send() -> None:
            judge = ctx.judge("event", iid, wf, type=type, payload=body, event_id=eid)
            call_client(ctx, "send_event", ctx.client.send_event(wf, iid, type=type, payload=body, event_id=eid),
                        raises, lambda got: judge("ok" if got is None else got))

        send()
        if eid is not None and "duplicate_event" in ctx.active and ctx.choices.flip("fault", 0.5):
            ctx.fault("duplicate_event", "client", instance=iid, event_id=eid)
            ctx.injected.append(f"duplicate_event {eid}")
            send()

    return client_step(label("event", instance, type, payload, event_id=event_id, raises=raises), where(), run)


def _lifecycle(op: str, instance: Any, workflow: str | None, raises: Any, save_as: str | None = None) -> Step:
    def run(ctx: ScenarioRun) -> None:
        iid = instance_id(ctx, instance)
        wf = ctx.workflow(iid, workflow)
        ctx.record("client", op, instance=iid)
        judge = ctx.judge(op, iid, wf)
        answer = (lambda got: judge(got)) if op == "restart" else (lambda got: judge("ok" if got is None else got))
        result = call_client(ctx, op, getattr(ctx.client, op)(wf, iid), raises, answer)
        if save_as is not None:
            ctx.names[save_as] = result

    return client_step(label(op, instance, raises=raises, save_as=save_as), where(), run)


def pause(instance: Any, *, workflow: str | None = None, raises: Any = None) -> Step:
    """Pause an instance (at once, or at the next step boundary if a runner is executing it)."""
    return _lifecycle("pause", instance, workflow, raises)


def resume(instance: Any, *, workflow: str | None = None, raises: Any = None) -> Step:
    """Resume a paused instance."""
    return _lifecycle("resume", instance, workflow, raises)


def terminate(instance: Any, *, workflow: str | None = None, raises: Any = None) -> Step:
    """Terminate an instance; a runner still executing it can no longer commit."""
    return _lifecycle("terminate", instance, workflow, raises)


def restart(instance: Any, *, workflow: str | None = None, save_as: str | None = None, raises: Any = None) -> Step:
    """Start a new run of an instance (any status); `save_as` keeps the new run number."""
    return _lifecycle("restart", instance, workflow, raises, save_as)


def act(fn: Callable[[ScenarioRun], Any], description: str) -> Step:
    """Any other action, as a function of the context (its return value is ignored)."""
    return client_step(f"act({description!r})", where(), lambda ctx: fn(ctx) and None)


# -- runners ----------------------------------------------------------------------------------------


def _start_op(ctx: ScenarioRun, runner: str, kind: str, max_tasks: int, save_as: str | None) -> None:
    ctx.slot(runner)
    if ctx.in_flight(runner):
        ctx.proceed(runner)
        if ctx.in_flight(runner):
            raise ScenarioError(f"{kind}({runner!r}): runner {runner!r} is busy: {ctx.why_busy(runner)}")
    ctx.spawn(runner, ctx.runner_op(runner, kind, max_tasks=max_tasks), on_done=ctx.saver(save_as))
    ctx.drive([runner])


def tick(runner: str, *, max_tasks: int = 10, save_as: str | None = None) -> Step:
    """One pass of a runner: claim up to `max_tasks` due tasks and run them (until done or blocked)."""

    def run(ctx: ScenarioRun) -> None:
        _start_op(ctx, runner, "tick", max_tasks, save_as)

    async def branch(ctx: ScenarioRun) -> None:
        result = await ctx.slot(runner).engine.tick(max_tasks)
        if save_as is not None:
            ctx.names[save_as] = result

    return Step(label("tick", runner, save_as=save_as), where(), run, branch, runner)


def run_until_idle(*runners: str, save_as: str | None = None) -> Step:
    """Run the given runners (default: every runner that is up) until nothing is due at this time."""

    def run(ctx: ScenarioRun) -> None:
        names = list(runners) or [n for n in ctx.scenario.runners if ctx.slot(n).alive]
        for name in names:
            if not ctx.slot(name).alive:
                raise ScenarioError(f"runner {name!r} is down (crashed); restart_runner({name!r}) first")
        ctx.run_until_idle(names, save_as=save_as)

    branch: Branch | None = None
    if len(runners) == 1:
        async def one(ctx: ScenarioRun) -> None:
            result = await ctx.slot(runners[0]).engine.run_until_idle()
            if save_as is not None:
                ctx.names[save_as] = result

        branch = one
    return Step(label("run_until_idle", *runners, save_as=save_as), where(), run, branch,
                runners[0] if len(runners) == 1 else None)


def proceed(runner: str) -> Step:
    """Let a runner that is mid-operation (stalled by expire_lease, say) continue until it finishes or blocks."""
    return Step(label("proceed", runner), where(), lambda ctx: ctx.proceed(runner))


def release(barrier: Barrier | str) -> Step:
    """Open a barrier: the step callbacks stopped there continue, then their runners run on."""
    name = barrier.name if isinstance(barrier, Barrier) else barrier
    return Step(label("release", name), where(), lambda ctx: ctx.release(name))


def crash(runner: str) -> Step:
    """Crash a runner where it stands (no cleanup, nothing more written); its lease stays until it expires."""
    return Step(label("crash", runner), where(), lambda ctx: ctx.crash(runner))


def restart_runner(runner: str) -> Step:
    """Start a crashed runner again, as a new incarnation (`a.2`)."""
    return Step(label("restart_runner", runner), where(), lambda ctx: ctx.restart_runner(runner))


def expire_lease(runner: str) -> Step:
    """The runner stalls and the clock jumps 1 s past the leases it holds, so others may take its tasks."""
    return Step(label("expire_lease", runner), where(), lambda ctx: ctx.expire_lease(runner))


def advance(duration: Any) -> Step:
    """Let time pass ("2 s", "15 min", seconds, timedelta); timers of in-flight runners fire on the way."""

    def run(ctx: ScenarioRun) -> None:
        seconds = parse_duration(resolve(ctx, duration), what="advance")
        ctx.advance_to(ctx.clock.now() + seconds)

    return Step(label("advance", duration), where(), run)


def advance_to(time: Any) -> Step:
    """Let time pass until a scenario time (seconds since the start) or an aware datetime."""

    def run(ctx: ScenarioRun) -> None:
        value = resolve(ctx, time)
        target = value.timestamp() if isinstance(value, datetime) else ctx.at(float(value))
        ctx.advance_to(target)

    return Step(label("advance_to", time), where(), run)


def concurrent(*branches: Step | Sequence[Step], schedule: Sequence[str] | None = None) -> Step:
    """Run branches as concurrent processes whose moves interleave at every engine yield point.

    A branch is a step or a list of steps run in order; steps on runner `a` run in a process named `a`,
    other branches in `client-1`, `client-2`, ... By default the earliest-parked move goes first (lockstep);
    `schedule=["a", "b", "b", ...]` hand-writes the first moves by process name; under a seed that tolerates
    interleaving the rest is seed-chosen. Runners still blocked (at a barrier) stay in flight afterwards.
    """
    at = where()
    plan: list[tuple[str, list[Step]]] = []
    clients = 0
    for branch in branches:
        steps = [branch] if isinstance(branch, Step) else list(branch)
        for s in steps:
            if s.branch is None:
                raise ScenarioError(f"{at}: {s.label} cannot run inside concurrent()")
        runners = {s.runner for s in steps if s.runner is not None}
        if len(runners) > 1:
            raise ScenarioError(f"{at}: one concurrent() branch may drive one runner, got {sorted(runners)}")
        if runners:
            name = runners.pop()
        else:
            clients += 1
            name = f"client-{clients}"
        if any(name == other for other, _ in plan):
            raise ScenarioError(f"{at}: two concurrent() branches both use {name!r}")
        plan.append((name, steps))

    def run(ctx: ScenarioRun) -> None:
        for name, steps in plan:
            if name in ctx.slots:
                ctx.usable(name)
                if ctx.in_flight(name):
                    raise ScenarioError(f"concurrent(): runner {name!r} is busy: {ctx.why_busy(name)}")
            ctx.spawn(name, _branch(ctx, steps))
        ctx.drive([name for name, _ in plan], schedule=list(schedule or ()))

    text = "concurrent(" + ", ".join(
        steps[0].label if len(steps) == 1 else "[" + ", ".join(s.label for s in steps) + "]"
        for _, steps in plan) + (f", schedule={list(schedule)!r}" if schedule else "") + ")"
    return Step(text, at, run)


async def _branch(ctx: ScenarioRun, steps: list[Step]) -> None:
    for s in steps:
        assert s.branch is not None
        ctx.record("scenario", "branch-step", at=s.line, step=s.label)
        try:
            await s.branch(ctx)
        except (Mismatch, ScenarioError, EngineError, AssertionError, ValueError, TypeError) as exc:
            raise StepError(s, exc) from exc
