"""One execution of a scenario: real `Engine` runners over one SQLite database, driven move by move.

A `ScenarioRun` is the world a scenario's steps act on (and the context their callables receive). Like
`sim.world.simulation.World` it gives every runner its own `SimStore` over one shared in-memory connection and a
`SimRuntime` of one `Scheduler`, and the same `properties.Checker` sees every engine action and runs after
every move. Unlike the fuzzing world it has no background workers: a runner moves only when a step says so
(`tick`, `run_until_idle`, `concurrent`, `release`, `proceed`) or when time passes (`advance`), so a scenario
can hand-write an interleaving. Under a seed, the decisions a scenario leaves open (which runner moves next
when several may) are drawn from the seed, and the faults it tolerates are injected (see `FAULT_KINDS`).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from engine import Engine, History, InstanceInfo
from properties import Checker, Violation
from properties.oracle import Oracle
from sim.core.choices import SeededChoices
from sim.core.clock import VirtualClock
from sim.core.runtime import SimRuntime
from sim.core.scheduler import Scheduler, Waiter
from sim.core.trace import Trace
from sim.scenario.callbacks import CURRENT_RUN, Barrier, busy, hang, run_state
from sim.scenario.errors import InvariantBroken, Mismatch, ScenarioError, StepError
from sim.scenario.trace import TraceView, render_trace, runner_matches
from sim.world.databases import fresh_database, release
from sim.world.faults import FaultConfig
from sim.world.programs import CallbackReports
from sim.world.reporting import reporting
from sim.world.simulation import ClientRuntime, SimStore, client_store, run_now, sim_store

if TYPE_CHECKING:
    from sim.scenario.dsl import Scenario

__all__ = ["CURRENT_RUN", "FAULT_KINDS", "Barrier", "ScenarioRun", "busy", "hang", "run_state"]

#: What a scenario may declare in `tolerates=`; only these are varied or injected under `--seeds`.
FAULT_KINDS: dict[str, str] = {
    "interleaving": "runners in run_until_idle(), concurrent() and advance() move in a seed-chosen order",
    "crash": "a runner crashes at a yield point inside run_until_idle() and restarts; its lease is let "
             "expire (the clock moves past it) so the others recover its work",
    "lease_expiry": "a runner inside run_until_idle() stalls while the clock jumps past its lease; another "
                    "runner takes over and the stale one is fenced when it wakes",
    "duplicate_event": "event() steps that carry an event_id are sent twice",
}

CRASH_RATE = 0.02  # per move inside run_until_idle(); with at most MAX_INJECTED faults per run
STALL_RATE = 0.02
MAX_INJECTED = 2
MAX_MOVES = 500_000
MAX_ROUNDS = 1_000

@attrs.define(eq=False)
class _Gate:
    open: bool = False
    calls: int = 0
    waiting: dict[str, asyncio.Future[None]] = attrs.Factory(dict)


@attrs.define(eq=False)
class RunnerSlot:
    """A named runner: its current incarnation's engine and store, and what the scenario did to it."""

    name: str
    owner: str
    store: SimStore
    engine: Engine
    alive: bool = True
    stalled: bool = False
    injected_stall: bool = False


class ScenarioRun(CallbackReports):
    """The world of one scenario execution, and the context (`ctx`) passed to a scenario's callables.

    The reference model judges every run (`oracle`): the scenario's workflows are replayed by the model
    itself, their callbacks report each attempt, and client operations are predicted before they run.

    For scenario authors: `ctx["name"]` (a value saved with `save_as=`), `ctx.now` (seconds since the
    start), `ctx.state` (see `run_state`), `ctx.trace` (a `TraceView`), `ctx.status(iid)`,
    `ctx.history(iid, run=None)` and `ctx.count(table)`.
    """

    def __init__(
        self, scenario: Scenario, seed: int | None, *, oracle: bool = True, database: str | None = None
    ) -> None:
        self.scenario = scenario
        self.database = database
        self.judging = oracle
        self.seed = seed
        self.active: frozenset[str] = frozenset(scenario.tolerates) if seed is not None else frozenset()
        self.choices = SeededChoices(seed if seed is not None else 0)
        self.clock = VirtualClock()
        self.t0 = self.clock.now()
        self.scheduler = Scheduler(self.choices, self.clock)
        self.conn = fresh_database(database)
        self.faults = FaultConfig.none()  # SimStore's own fault hooks stay off; scenario faults are below
        self.checker = Checker(self.conn)
        self.oracle = Oracle(self.conn, scenario.workflows)
        self._judged = 0
        self._workflows = reporting(scenario.workflows, self)
        self._trace = Trace()
        self.fault_counts: dict[str, int] = {}
        self.injected: list[str] = []
        self.names: dict[str, Any] = {}
        self.state: dict[str, Any] = {}
        self.workflow_of: dict[str, str] = {}
        self.moves = 0
        self._gates: dict[str, _Gate] = {}
        self._dead_injected: set[str] = set()
        self._incarnation: dict[str, int] = {}
        self._on_done: dict[str, Callable[[Any], None] | None] = {}
        client_runtime = ClientRuntime(self.clock)
        self.client = Engine(
            store=client_store(self.conn, client_runtime, self.clock.now),
            workflows=scenario.workflows, runtime=client_runtime, runner_id="client")
        self.slots: dict[str, RunnerSlot] = {}
        for name in scenario.runners:
            self._start(name)

    # -- the context API -----------------------------------------------------------------------------

    def __getitem__(self, name: str) -> Any:
        try:
            return self.names[name]
        except KeyError:
            raise ScenarioError(f"nothing was saved as {name!r} (known: {sorted(self.names)})") from None

    @property
    def now(self) -> float:
        """Seconds since the scenario started."""
        return self.clock.now() - self.t0

    @property
    def trace(self) -> TraceView:
        """The trace so far."""
        return TraceView(self._trace.records, self.t0)

    def workflow(self, instance: str, given: str | None = None) -> str:
        """The workflow an instance belongs to: given, remembered from its create, or the only one."""
        if given is not None:
            return given
        if instance in self.workflow_of:
            return self.workflow_of[instance]
        names = [w.name for w in self.scenario.workflows]
        if len(names) == 1:
            return names[0]
        raise ScenarioError(f"which workflow is instance {instance!r}? pass workflow=... (it was not created "
                            f"by this scenario and there are several: {names})")

    def status(self, instance: str, *, workflow: str | None = None) -> InstanceInfo:
        """The instance's current `InstanceInfo`."""
        info: InstanceInfo = run_now(self.client.status(self.workflow(instance, workflow), instance))
        return info

    def history(self, instance: str, *, run: int | None = None, workflow: str | None = None) -> History:
        """The instance's `History` (current run, or run number `run`)."""
        history: History = run_now(self.client.history(self.workflow(instance, workflow), instance, run))
        return history

    def count(self, table: str) -> int:
        """Rows in one of the engine's tables (workflow_instance, workflow_step, workflow_event, ...)."""
        if not table.isidentifier():
            raise ScenarioError(f"not a table name: {table!r}")
        return int(self.conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])

    def at(self, offset: float) -> float:
        """Epoch seconds of a scenario time (seconds since the start)."""
        return self.t0 + offset

    # -- recording -----------------------------------------------------------------------------------

    def record(self, runner: str, action: str, **detail: Any) -> None:
        self._trace.add(self.clock.now(), runner, action, detail)

    def fault(self, kind: str, runner: str, **detail: Any) -> None:
        """Record a fault (also what SimStore calls for its own fault hooks)."""
        self.fault_counts[kind] = self.fault_counts.get(kind, 0) + 1
        self.record(runner, f"fault:{kind}", **detail)

    def _on_engine(self, owner: str, action: str, detail: dict[str, Any]) -> None:
        t = self.clock.now()
        self._trace.add(t, owner, action, detail)
        self.checker.on_record(t, owner, action, detail)
        self.oracle.on_engine(owner, action, detail, t)

    def trace_records(self) -> Trace:
        return self._trace

    # -- runners -------------------------------------------------------------------------------------

    def _start(self, name: str) -> None:
        n = self._incarnation.get(name, 0) + 1
        self._incarnation[name] = n
        owner = name if n == 1 else f"{name}.{n}"
        runtime = SimRuntime(self.scheduler, name, seed=self.seed or 0)
        store = sim_store(self, runtime, owner)
        engine = Engine(store=store, workflows=self._workflows, runtime=runtime, runner_id=owner,
                        lease=self.scenario.lease, tracer=functools.partial(self._on_engine, owner))
        self.slots[name] = RunnerSlot(name=name, owner=owner, store=store, engine=engine)
        if n > 1:
            self.record(name, "runner:start", owner=owner)

    def slot(self, name: str) -> RunnerSlot:
        try:
            return self.slots[name]
        except KeyError:
            raise ScenarioError(f"unknown runner {name!r}; this scenario has {sorted(self.slots)}") from None

    def in_flight(self, name: str) -> bool:
        """True while the runner is inside an operation (blocked at a barrier, hanging, or stalled)."""
        return self.scheduler.is_alive(name)

    def blocked_at(self, name: str) -> str | None:
        """The barrier a runner's callback is stopped at, if any."""
        for gate_name, gate in self._gates.items():
            if name in gate.waiting:
                return gate_name
        return None

    def usable(self, name: str) -> RunnerSlot:
        slot = self.slot(name)
        if not slot.alive:
            raise ScenarioError(f"runner {name!r} is down (crashed); restart_runner({name!r}) first")
        return slot

    def why_busy(self, name: str) -> str:
        gate = self.blocked_at(name)
        if gate is not None:
            return f"its step callback is stopped at barrier {gate!r}; release({gate!r}) first"
        return "its previous operation has not finished (a hanging callback waits for time: advance(...))"

    def crash(self, name: str, *, injected: bool = False, at: str | None = None) -> None:
        """Stop the runner at its current yield point; its store writes nothing more."""
        slot = self.usable(name)

        def kill() -> None:
            slot.store.alive = False

        if self.in_flight(name):
            self.scheduler.crash(name, on_crash=kill)
        kill()
        slot.alive = False
        slot.stalled = False
        for gate in self._gates.values():
            gate.waiting.pop(name, None)
        if injected:
            self._dead_injected.add(slot.owner)
            self.injected.append(f"crash {slot.owner}")
        self.checker.disrupted = True  # a crash mid-callback may legitimately rerun it (P1's exactness)
        self.fault("crash", slot.owner, injected=injected, **({"at": at} if at else {}))

    def restart_runner(self, name: str) -> None:
        """Start a new incarnation of a crashed runner (owner `a.2`, `a.3`, ...)."""
        if self.slot(name).alive:
            raise ScenarioError(f"runner {name!r} is not down; crash({name!r}) it first")
        self._start(name)

    def leases_of(self, name: str) -> list[float]:
        """`locked_until` of live leases held by any incarnation of the runner."""
        now = self.clock.now()
        return [
            float(r[1]) for r in self.conn.execute(
                "SELECT lock_owner, locked_until FROM workflow_task WHERE status = 'processing' AND locked_until >= ?",
                (now,))
            if r[0] is not None and runner_matches(r[0], name)
        ]

    def expire_lease(self, name: str) -> None:
        """The runner stalls (if it is mid-operation) and the clock jumps 1 s past the leases it holds."""
        leases = self.leases_of(name)
        if not leases:
            raise ScenarioError(f"runner {name!r} holds no live lease to expire")
        slot = self.slot(name)
        if slot.alive and self.in_flight(name):
            slot.stalled = True
        target = max(leases) + 1.0
        self.fault("lease_expiry", slot.owner, until=target)
        self.advance_to(target)

    # -- driving -------------------------------------------------------------------------------------

    def spawn(self, name: str, coro: Coroutine[Any, Any, Any], *,
              on_done: Callable[[Any], None] | None = None) -> None:
        """Start a simulated process (a runner operation or a concurrent() branch); it moves when driven."""
        self.scheduler.spawn(name, coro)
        self._on_done[name] = on_done

    def saver(self, save_as: str | None) -> Callable[[Any], None] | None:
        """An `on_done` that stores the result under `save_as` (None: discard it)."""
        if save_as is None:
            return None
        return lambda value: self.names.__setitem__(save_as, value)

    def runner_op(self, name: str, kind: str, *, max_tasks: int = 10) -> Coroutine[Any, Any, int]:
        engine = self.usable(name).engine

        async def op() -> int:
            if kind == "tick":
                return await engine.tick(max_tasks)
            return await engine.run_until_idle()

        return op()

    def _pick(self, mine: list[Waiter], prefer: Callable[[Waiter], bool] | None,
              schedule: list[str] | None) -> Waiter:
        if schedule:
            name = schedule.pop(0)
            own = [w for w in mine if w.process == name]
            if not own:
                movable = sorted({w.process for w in mine})
                raise ScenarioError(f"schedule: {name!r} cannot move now (movable: {movable})")
            return own[0]
        if "interleaving" in self.active:
            return mine[self.choices.choose("sched", len(mine))]
        if prefer is not None:
            preferred = [w for w in mine if prefer(w)]
            if preferred:
                return preferred[0]
        return mine[0]

    def drive(self, procs: Iterable[str], *, prefer: Callable[[Waiter], bool] | None = None,
              schedule: list[str] | None = None, inject: bool = False) -> None:
        """Move the given processes, one parked waiter at a time, until none of them can move at this time.

        The clock never moves here: a process whose only waiters are future timers (a heartbeat while its
        callback is stopped at a barrier, a hanging callback) is blocked until time passes.
        """
        procs = set(procs)
        sched = self.scheduler
        for _ in range(MAX_MOVES):
            sched.run_until_quiescent()
            self._check_loop()
            now = self.clock.now()
            mine = [w for w in sched.waiters() if w.process in procs and (w.due is None or w.due <= now)]
            if not mine:
                self._collect(procs)
                return
            chosen = self._pick(mine, prefer, schedule)
            if inject and self._inject(chosen, procs):
                continue
            sched.step(pick=functools.partial(_index_of, chosen))
            self.moves += 1
            self.checker.on_move()
            self.raise_violations()
        raise ScenarioError(f"the runners did not settle within {MAX_MOVES} moves (a livelock?)")

    def _check_loop(self) -> None:
        if self.scheduler.unhandled:
            context = self.scheduler.unhandled[0]
            raise ScenarioError(f"unhandled error in the simulation loop: {context.get('message')} "
                                f"{context.get('exception')!r}")

    def _collect(self, procs: Iterable[str]) -> None:
        """Results of finished operations go where `save_as` said; a runner that died of an error fails."""
        for name in sorted(procs):
            if not self.scheduler.is_done(name):
                continue
            exc = self.scheduler.exception(name)
            if exc is not None:
                if isinstance(exc, (Mismatch, ScenarioError, StepError)):
                    raise exc
                raise ScenarioError(f"process {name!r} died with {type(exc).__name__}: {exc}") from exc
            on_done = self._on_done.pop(name, None)
            if on_done is not None:
                on_done(self.scheduler.result(name))

    @property
    def stores(self) -> dict[str, Any]:  # type: ignore[override]
        """Each runner's current store (it knows the incarnation's owner id), for callback reports."""
        return {name: slot.store for name, slot in self.slots.items()}

    def raise_violations(self, *, whole: bool = False) -> None:
        """Raise the properties' and the model's violations so far; with `whole`, the model also compares
        every table and what the client API reads back (the end of a run)."""
        found = self.oracle.violations[self._judged:] if self.judging else []
        self._judged += len(found)
        if whole and self.judging and not found and not self.checker.violations:
            self.oracle.check_reads(self.client, run_now)
            found = self.oracle.violations[self._judged:] or self.oracle.disagreements()
        for message in found[:8]:
            self.checker.violations.append(Violation("model", message))
        if self.checker.violations:
            raise InvariantBroken(list(self.checker.violations))

    def judge(self, kind: str, instance: str, workflow: str, **predict: Any) -> Callable[[Any], None]:
        """Ask the model what a client operation must answer before it runs; returns the function the
        answer (a result, or an error code) is checked with."""
        expected = self.oracle.predict(kind, instance, workflow=workflow, now=self.clock.now(), **predict)
        return lambda got: self.oracle.answered(kind, instance, expected, got)

    def _inject(self, chosen: Waiter, procs: set[str]) -> bool:
        """Maybe fire a tolerated fault instead of moving `chosen`; True if one fired."""
        slot = self.slots.get(chosen.process)
        disruptive = [f for f in self.injected if f.startswith(("crash", "lease_expiry"))]
        if slot is None or not slot.alive or len(disruptive) >= MAX_INJECTED:
            return False
        if "crash" in self.active and self.choices.flip("fault", CRASH_RATE):
            self.crash(slot.name, injected=True, at=chosen.label)
            self._start(slot.name)
            procs.discard(slot.name)
            return True
        if "lease_expiry" in self.active and self.choices.flip("fault", STALL_RATE):
            now = self.clock.now()
            leases = [float(r[0]) for r in self.conn.execute(
                "SELECT locked_until FROM workflow_task WHERE status = 'processing' AND lock_owner = ? "
                "AND locked_until >= ?", (slot.owner, now))]
            if not leases:
                return False
            slot.stalled = slot.injected_stall = True
            procs.discard(slot.name)
            self.injected.append(f"lease_expiry {slot.owner}")
            self.fault("lease_expiry", slot.owner, injected=True, until=max(leases) + 1.0)
            self.scheduler.advance_to(max(leases) + 1.0)
            return True
        return False

    def _recover(self) -> bool:
        """Undo the scenario-invisible part of injected faults: wake stalled runners, expire dead leases."""
        did = False
        for slot in self.slots.values():
            if slot.injected_stall and slot.alive:
                slot.stalled = slot.injected_stall = False
                self.drive([slot.name])
                did = True
        now = self.clock.now()
        dead = [float(r[1]) for r in self.conn.execute(
            "SELECT lock_owner, locked_until FROM workflow_task WHERE status = 'processing' AND locked_until >= ?",
            (now,)) if r[0] in self._dead_injected]
        if dead:
            self.advance_to(max(dead) + 1.0)
            did = True
        return did

    def proceed(self, name: str) -> None:
        """Let a runner's in-flight operation continue (un-stalling it) until it finishes or blocks again."""
        slot = self.usable(name)
        slot.stalled = False
        self.drive([name])

    def run_until_idle(self, names: list[str], *, save_as: str | None = None) -> int:
        """Rounds of `run_until_idle` on the runners until a round finds nothing to do; returns the total."""
        total = 0
        for _ in range(MAX_ROUNDS):
            for name in names:
                if self.slots[name].alive and self.in_flight(name):
                    self.proceed(name)
            ready = [n for n in names if self.slots[n].alive and not self.in_flight(n)]
            counts: list[int] = []
            if "interleaving" in self.active:
                for name in ready:
                    self.spawn(name, self.runner_op(name, "run_until_idle"), on_done=counts.append)
                self.drive(ready, inject=True)
            else:
                for name in ready:
                    self.spawn(name, self.runner_op(name, "run_until_idle"), on_done=counts.append)
                    self.drive([name], inject=True)
            interrupted = len(counts) < len(ready)  # an injected crash cut an operation short
            recovered = self._recover()
            total += sum(counts)
            if not sum(counts) and not recovered and not interrupted:
                if save_as is not None:
                    self.names[save_as] = total
                return total
        raise ScenarioError(f"run_until_idle did not settle after {MAX_ROUNDS} rounds")

    def in_flight_names(self) -> list[str]:
        return [n for n in self.scheduler.processes if self.scheduler.is_alive(n)]

    def advance_to(self, target: float) -> None:
        """Let time pass to epoch `target`: each timer of a non-stalled in-flight process fires at its due
        time (heartbeats renew leases, hanging attempts time out), then the clock rests at `target`."""
        now = self.clock.now()
        if target < now:
            raise ScenarioError(f"cannot go back in time to {target - self.t0:g} s (now {now - self.t0:g} s)")
        for _ in range(MAX_MOVES):
            procs = [n for n in self.in_flight_names() if not (n in self.slots and self.slots[n].stalled)]
            self.drive(procs)
            procs = [n for n in self.in_flight_names() if not (n in self.slots and self.slots[n].stalled)]
            dues = [w.due for w in self.scheduler.waiters()
                    if w.process in procs and w.due is not None and self.clock.now() < w.due <= target]
            if not dues:
                break
            self.scheduler.advance_to(min(dues))
        if target > self.clock.now():
            self.scheduler.advance_to(target)
        self.drive([n for n in self.in_flight_names() if not (n in self.slots and self.slots[n].stalled)])

    # -- barriers ------------------------------------------------------------------------------------

    async def barrier_wait(self, barrier: Barrier) -> None:
        gate = self._gates.setdefault(barrier.name, _Gate())
        gate.calls += 1
        proc = self.scheduler.current_process() or "?"
        if gate.open or (barrier.times is not None and gate.calls > barrier.times):
            self.record(proc, "barrier:pass", barrier=barrier.name)
            return
        self.record(proc, "barrier:wait", barrier=barrier.name)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        gate.waiting[proc] = future
        try:
            await future
        finally:
            if gate.waiting.get(proc) is future:
                del gate.waiting[proc]
        # Continuing is a scheduled move of its own, so the scheduler (or the seed) decides when it happens.
        await self.scheduler.park(f"barrier:{barrier.name}")
        self.record(proc, "barrier:continue", barrier=barrier.name)

    def release(self, name: str) -> None:
        """Open the barrier; the callbacks stopped there continue first, then their runners run on."""
        gate = self._gates.setdefault(name, _Gate())
        waiting = sorted(gate.waiting)
        if not waiting:
            raise ScenarioError(f"release({name!r}): no step callback is stopped at that barrier")
        gate.open = True
        self.record("scenario", "release", barrier=name, runners=waiting)
        for future in gate.waiting.values():
            future.set_result(None)
        gate.waiting.clear()
        for proc in waiting:
            if proc in self.slots:
                self.slots[proc].stalled = False
        label = f"barrier:{name}"
        self.drive(waiting, prefer=lambda w: w.label == label)

    def close(self) -> None:
        try:
            self.scheduler.close()
        finally:
            release(self.conn)

    def failure_context(self) -> str:
        """Seed, injected faults and the trace so far, for failure reports."""
        lines = []
        if self.injected:
            lines.append("  injected faults: " + ", ".join(self.injected))
        lines.append(f"  trace so far ({len(self._trace)} records; seconds since the start; idle polls hidden):")
        lines.append(render_trace(self.trace))
        return "\n".join(lines)


def _index_of(waiter: Waiter, eligible: Sequence[Waiter]) -> int:
    return list(eligible).index(waiter)
