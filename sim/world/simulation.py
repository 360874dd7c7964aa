"""The simulated world: N real `Engine` runners over one SQLite database, a client, faults and checkers.

Every decision comes from one ChoiceSource, so a seed replays the whole run: which runner moves, which
client operation or fault happens next, how far the clock jumps. Properties are checked after every move.
"""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import attrs

from engine import Engine, EngineError, SqliteStore
from properties import Checker, Violation, check_liveness, check_replays
from properties.oracle import NOT_JUDGED, Oracle
from sim.core.choices import ChoiceSource, SeededChoices
from sim.core.clock import VirtualClock
from sim.core.runtime import SimRuntime
from sim.core.scheduler import Scheduler, SimulationError, Waiter
from sim.core.trace import Trace
from sim.core.watchdog import Hang, wall_budget
from sim.world.current import CURRENT_WORLD
from sim.world.databases import fresh_database, release
from sim.world.dump import dump_database
from sim.world.faults import FaultConfig
from sim.world.programs import CallbackReports, program_workflows
from sim.world.reporting import reporting
from sim.world.workload import Op, Profile, build_workload, library

DEFAULT_STEP_TIMEOUT = 60.0  # for the programs' Do steps that name none
HELD_WAITS = 40  # actions a `when_held` client op waits for its instance to be held before it goes anyway


class Crashed(BaseException):
    """Raised by a dead runner's store: a crashed process writes nothing more."""


class _FaultHooks:
    """A runner's store over the shared connection, with the fault hooks of the simulator: busy and I/O
    errors before a transaction, and a commit whose outcome the runner never learns after one. Mixed into
    each backend's store, so the same seed injects the same faults on SQLite and on PostgreSQL."""

    world: World
    owner: str
    alive: bool

    def __init__(self, world: Any, runtime: SimRuntime, owner: str) -> None:
        super().__init__(self._address(world), runtime=runtime, connection=world.conn,  # type: ignore[call-arg]
                         clock=world.clock.now, migrate_schema=False)
        self.world = world
        self.owner = owner
        self.alive = True

    def _address(self, world: Any) -> str:
        """What the backend's store is told it opens (it is handed the world's connection)."""
        raise NotImplementedError

    def _busy(self) -> Exception:
        raise NotImplementedError

    def _io_error(self, message: str) -> Exception:
        raise NotImplementedError

    def _commit_unknown(self) -> Exception:
        """What the backend's store raises when a COMMIT's outcome is unknown (never retried whole)."""
        raise NotImplementedError

    def run_txn(self, fn: Any, *args: Any) -> Any:
        if not self.alive:
            raise Crashed(self.owner)
        world = self.world
        faults = world.faults
        if world.choices.flip("fault", faults.busy):
            world.fault("busy", self.owner)
            raise self._busy()
        if world.choices.flip("fault", faults.io_error):
            world.fault("io_error", self.owner)
            raise self._io_error("disk I/O error")
        result = super().run_txn(fn, *args)  # type: ignore[misc]
        if world.choices.flip("fault", faults.commit_unknown):
            world.fault("commit_unknown", self.owner)
            world.checker.resync_leases()
            world.oracle.unreported(self.owner, getattr(fn, "__name__", ""), args, result, world.clock.now())
            raise self._commit_unknown()
        return result

    def read(self, fn: Any, *args: Any) -> Any:
        if not self.alive:
            raise Crashed(self.owner)
        return super().read(fn, *args)  # type: ignore[misc]


class SimStore(_FaultHooks, SqliteStore):
    """A simulated runner's SQLite store."""

    def _address(self, world: Any) -> str:
        return ":memory:"

    def _busy(self) -> Exception:
        return sqlite3.OperationalError("database is locked")

    def _io_error(self, message: str) -> Exception:
        return sqlite3.OperationalError(message)

    def _commit_unknown(self) -> Exception:
        return sqlite3.OperationalError("disk I/O error (commit outcome unknown)")


def sim_store(world: Any, runtime: SimRuntime, owner: str) -> Any:
    """A simulated runner's store on the world's database, whichever backend that is."""
    if isinstance(world.conn, sqlite3.Connection):
        return SimStore(world, runtime, owner)
    from sim.world.pg_store import SimPgStore

    return SimPgStore(world, runtime, owner)


def client_store(conn: Any, runtime: Any, clock: Callable[[], float]) -> Any:
    """The simulated client's store on a run's database (no faults: the client is not under test)."""
    if isinstance(conn, sqlite3.Connection):
        return SqliteStore(":memory:", runtime=runtime, connection=conn, clock=clock, migrate_schema=False)
    from engine._pg_store import PostgresStore

    return PostgresStore(conn.url, runtime=runtime, connection=conn, clock=clock, migrate_schema=False)


class ClientRuntime:
    """A simulated client's runtime: the global clock and counter ids; it never waits (its store injects no
    faults). Shared by the fuzzing world, the scenario runner and the state-machine harness."""

    def __init__(self, clock: VirtualClock) -> None:
        self.random = random.Random(0)
        self._clock = clock
        self._ids = 0

    def now(self) -> float:
        return self._clock.now()

    def new_id(self) -> str:
        self._ids += 1
        return f"client-{self._ids:06d}"

    async def sleep(self, seconds: float) -> None:  # pragma: no cover - the client never waits
        raise SimulationError("the simulated client must not wait")


def run_now(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine that never suspends (client operations) to completion, synchronously."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    coro.close()
    raise SimulationError("a client operation tried to wait")


@attrs.define
class RunResult:
    """What one seed did: violations (empty = pass), the trace, counters and a database dump."""

    seed: int
    profile: str
    violations: list[Violation]
    trace: Trace
    stats: dict[str, Any]
    dump: str

    @property
    def ok(self) -> bool:
        return not self.violations


class World(CallbackReports):
    """One simulated run; build it, call `run()`, read the RunResult."""

    def __init__(
        self, seed: int, profile: Profile, *, choices: ChoiceSource | None = None,
        picker: Callable[[Sequence[Waiter]], int] | None = None,
    ) -> None:
        self.seed = seed
        self.picker = picker
        self.profile = profile
        self.choices = choices if choices is not None else SeededChoices(seed)
        self.clock = VirtualClock()
        self.scheduler = Scheduler(self.choices, self.clock)
        self.conn = fresh_database(profile.database)
        self.faults = FaultConfig.swarm(self.choices) if profile.swarm else profile.faults
        self.enabled_faults = self.faults.enabled()
        self.trace = Trace()
        self.checker = Checker(self.conn)
        self.checker.watch_leases = True  # every fault goes through `fault` (P11)
        # The hand-written workflows are judged too: the model replays them itself (properties.workflows).
        self.oracle = Oracle(self.conn, tuple(library()))
        self._judged = 0  # oracle violations already turned into checker violations
        self._prompt_at = -1.0  # when P12 last looked
        self.fault_counts: dict[str, int] = {}
        self.workflows = reporting(library(), self) + program_workflows(DEFAULT_STEP_TIMEOUT)
        client_runtime = ClientRuntime(self.clock)
        self.client = Engine(store=client_store(self.conn, client_runtime, self.clock.now),
                             workflows=self.workflows, runtime=client_runtime, runner_id="client")
        self.ops: list[Op] = build_workload(self.choices, profile)
        self.instances: list[tuple[str, str]] = []
        self.stores: dict[str, SimStore] = {}
        self.engines: dict[str, Engine] = {}
        self.drained: set[str] = set()  # stopped gracefully; restarted like crashed ones once they exited
        self._held_waits = 0  # actions the next client op has waited for a runner to hold its instance
        self.incarnation: dict[str, int] = {}
        self.crashes = 0
        self.stalled: dict[str, float] = {}
        for i in range(profile.runners):
            self._start_runner(f"r{i + 1}")

    # -- runners ---------------------------------------------------------------------------------

    def _start_runner(self, name: str) -> None:
        n = self.incarnation.get(name, 0) + 1
        self.incarnation[name] = n
        owner = name if n == 1 else f"{name}.{n}"
        runtime = SimRuntime(self.scheduler, name, seed=self.seed)
        store = sim_store(self, runtime, owner)
        self.stores[name] = store
        engine = Engine(store=store, workflows=self.workflows, runtime=runtime, runner_id=owner,
                        lease=self.profile.lease, tracer=lambda a, d, o=owner: self._on_engine(o, a, d))
        self.engines[name] = engine
        self.drained.discard(name)
        token = CURRENT_WORLD.set(self)
        try:
            self.scheduler.spawn(name, engine.run_worker(poll_interval=self.profile.poll,
                                                         max_tasks=self.profile.max_tasks,
                                                         concurrency=self.profile.concurrency))
        finally:
            CURRENT_WORLD.reset(token)
        self.record("runner", "start", owner=owner)

    def alive_runners(self) -> list[str]:
        """Runners that run: neither crashed nor drained (a drained one finishes its step, then exits)."""
        return [name for name in sorted(self.stores) if self.stores[name].alive and name not in self.drained]

    def _down(self) -> list[str]:
        """Runners to restart: crashed, or drained and finished."""
        return [name for name in sorted(self.stores) if not self.stores[name].alive
                or (name in self.drained and not self.scheduler.is_alive(name))]

    def crash(self, name: str) -> None:
        """Crash a runner at its current yield point; it writes nothing more."""
        store = self.stores[name]

        def kill() -> None:
            store.alive = False

        self.scheduler.crash(name, on_crash=kill)
        self.crashes += 1
        self.checker.disrupted = True  # a crash mid-callback may legitimately rerun it (P1's exactness)
        self.fault("crash", name)

    # -- recording -------------------------------------------------------------------------------

    def record(self, runner: str, action: str, **detail: Any) -> None:
        self.trace.add(self.clock.now(), runner, action, detail)

    def fault(self, kind: str, runner: str, **detail: Any) -> None:
        self.fault_counts[kind] = self.fault_counts.get(kind, 0) + 1
        self.record(runner, f"fault:{kind}", **detail)
        self.checker.on_fault(kind, self.clock.now())

    def _on_engine(self, owner: str, action: str, detail: dict[str, Any]) -> None:
        owner = detail.get("runner", owner)  # one of the process's runner loops (concurrency > 1)
        t = self.clock.now()
        self.trace.add(t, owner, action, detail)
        self.checker.on_record(t, owner, action, detail)
        self.oracle.on_engine(owner, action, detail, t)

    def _verdict(self, *, whole: bool = False) -> None:
        """Turn the oracle's new disagreements into violations; with `whole`, compare every table too."""
        if not self.profile.oracle:
            return
        found = self.oracle.violations[self._judged:]
        self._judged += len(found)
        if whole and not found and not self.checker.violations:
            found = self.oracle.disagreements()
        for message in found[:8]:
            self.checker.violations.append(Violation("model", message))

    def _prompt(self) -> None:
        """P12 whenever time has passed: nothing the model says is due waits longer than two polls and a
        lease for a runner (faults excused: the window restarts after each)."""
        now = self.clock.now()
        if not self.profile.oracle or now <= self._prompt_at:
            return
        self._prompt_at = now
        bound = 2 * self.profile.poll + self.profile.lease
        for message in self.oracle.overdue(now, self.checker.disrupted_at, bound)[:1]:
            self.checker.violations.append(Violation("P12 prompt progress", message.split(": ", 1)[1]))

    # -- step callbacks --------------------------------------------------------------------------

    def busy(self, key: str, seconds: float) -> None:
        """Called from inside simulated sync step callbacks: the call blocks its runner for `seconds`."""
        process = self.scheduler.current_process() or "?"
        self.record(process, "busy", key=key, seconds=seconds)
        runtime = self.stores[process].runtime
        assert isinstance(runtime, SimRuntime)
        runtime.busy(seconds)

    async def in_callback(self, key: str, timeout: float) -> None:
        """Called from inside simulated step callbacks: a yield point, and the callback faults."""
        await self.scheduler.park("callback")
        if self.choices.flip("fault", self.faults.step_raise):
            self.fault("step_raise", self.scheduler.current_process() or "?", key=key)
            raise RuntimeError(f"injected failure in {key}")
        if self.choices.flip("fault", self.faults.step_hang):
            self.fault("step_hang", self.scheduler.current_process() or "?", key=key)
            await self.scheduler.park("hang", due=self.clock.now() + timeout * 10)

    # -- the driver ------------------------------------------------------------------------------

    def _apply(self, op: Op) -> Any:
        """One client operation on the engine; the oracle predicts its answer and checks it. Returns the
        engine's answer (an error code when it refused)."""
        if op.kind == "read":
            self.oracle.check_reads(self.client, run_now)
            return None
        expected = self.oracle.predict(op.kind, op.instance_id, workflow=op.workflow, params=op.params,
                                       type=op.event_type or "", payload=op.payload, event_id=op.event_id,
                                       now=self.clock.now())
        try:
            result = run_now(op.apply(self.client))
            got = result if op.kind in ("create", "batch", "restart") else "ok"
        except EngineError as exc:
            self.record("client", "rejected", code=exc.code, op=op.kind)
            got = exc.code
        if expected is not NOT_JUDGED:
            self.oracle.answered(op.kind, op.instance_id, expected, got)
        return got

    def _client(self, op: Op) -> None:
        if op.at_deadline:
            # Events at the deadline count (DESIGN §2: created at or before it): time this one exactly there.
            row = self.conn.execute(
                "SELECT MIN(wake_at) FROM workflow_step WHERE instance_id = ? AND type = 'wait_for_event' "
                "AND status = 'waiting'", (op.instance_id,)).fetchone()
            if row[0] is not None and row[0] > self.clock.now():
                self._advance_to(row[0])
        self.record("client", op.kind, **op.detail())
        self.checker.on_fault(op.kind, self.clock.now())  # pause, terminate and restart may end a lease
        got = self._apply(op)
        if op.kind == "create" and got == op.instance_id:
            self.instances.append((op.workflow, op.instance_id))
        if op.kind == "batch" and isinstance(got, list):
            self.instances += [(op.workflow, iid) for iid in got]
        if op.kind == "event" and self.choices.flip("fault", self.faults.duplicate_event):
            self.fault("duplicate_event", "client", instance=op.instance_id)
            self._apply(op)

    def _due(self, op: Op) -> bool:
        """Whether the next client op may go now: one marked `when_held` waits (a bounded number of actions)
        until a runner holds its instance, so a pause lands mid-run, at whatever suspension point comes."""
        if not op.when_held or self._held_waits >= HELD_WAITS or self.oracle.in_flight(op.instance_id,
                                                                                          self.clock.now()):
            self._held_waits = 0
            return True
        self._held_waits += 1
        return False

    def _lifecycle(self) -> None:
        if not self.instances:
            return
        workflow, iid = self.instances[self.choices.choose("fault", len(self.instances))]
        kind = ("pause", "resume", "terminate", "restart")[self.choices.choose("fault", 4)]
        self.fault("lifecycle", "client", op=kind, instance=iid)
        self._apply(Op(kind=kind, workflow=workflow, instance_id=iid))

    def _action(self) -> bool:
        """One driver action; False when nothing can move any more."""
        c, f = self.choices, self.faults
        alive = self.alive_runners()
        down = self._down()
        if self.ops and (c.flip("input", self.profile.client_rate) or not alive) and self._due(self.ops[0]):
            op = self.ops.pop(0)
            if op.late and c.flip("fault", f.late_event):
                self.fault("late_event", "client", instance=op.instance_id)
                self._advance_to(self.clock.now() + self.profile.late_by)
            self._client(op)
        elif alive and self.crashes < f.max_crashes and c.flip("fault", f.crash):
            self.crash(alive[c.choose("fault", len(alive))])
        elif down and c.flip("fault", f.restart_runner):
            self._start_runner(down[c.choose("fault", len(down))])
        elif c.flip("fault", f.clock_jump):
            jump = self.profile.lease * (1 + c.choose("time", 3))
            self.fault("clock_jump", "world", seconds=jump)
            self._advance_to(self.clock.now() + jump)
        elif alive and c.flip("fault", f.skew):
            name = alive[c.choose("fault", len(alive))]
            offset = (-120.0, -10.0, 10.0, 120.0)[c.choose("fault", 4)]
            self.fault("skew", name, offset=offset)
            self.scheduler_runtime(name).offset = offset
        elif c.flip("fault", f.lifecycle):
            self._lifecycle()
        elif alive and c.flip("fault", f.drain):
            name = alive[c.choose("fault", len(alive))]
            self.fault("drain", name)
            self.drained.add(name)
            run_now(self.engines[name].stop())  # returns at once; the runner finishes its step, then exits
        elif alive and c.flip("fault", f.stall):
            name = alive[c.choose("fault", len(alive))]
            until = self.clock.now() + self.profile.lease * 1.5
            self.stalled[name] = until
            self.fault("stall", name, until=until)
        else:
            self._let_stalls_pass()
            moved = self.scheduler.step(self._pick)
            if moved is None:
                return bool(self.ops or down)
            self.record(moved.process, "move", label=moved.label)
        return True

    def _advance_to(self, t: float) -> None:
        """Move the clock forward as a fault or a client's timing does: leases held meanwhile may lapse (P11)
        and timers that fired meanwhile are owed from now (P12), so the checker restarts its windows at `t`."""
        self.clock.jump(t)
        self.checker.on_fault("clock_jump", t)

    def _let_stalls_pass(self) -> None:
        """When only stalled runners could move now, time passes to the first moment another runner's timer
        is due or a stall ends, whichever is earlier: a stall freezes its own runner, not the others' timers
        (their heartbeats must still fire on time)."""
        while self.stalled:
            now = self.clock.now()
            self.stalled = {n: u for n, u in self.stalled.items() if u > now}
            free = [w for w in self.scheduler.waiters() if w.process not in self.stalled]
            if not self.stalled or any(w.due is None or w.due <= now for w in free):
                return
            self.clock.jump(min([*self.stalled.values(), *(w.due for w in free if w.due is not None)]))

    def _pick(self, waiters: Sequence[Waiter]) -> int:
        """Scheduler pick honouring stalls: a stalled runner does not move until its stall ends. Some other
        waiter is always eligible here: `_let_stalls_pass` ran just before this step."""
        if self.stalled:
            free = [i for i, w in enumerate(waiters) if w.process not in self.stalled]
            if free and len(free) < len(waiters):
                sub = [waiters[i] for i in free]
                index = self.picker(sub) if self.picker else self.choices.choose("sched", len(sub))
                return free[index]
        return self.picker(waiters) if self.picker else self.choices.choose("sched", len(waiters))

    def scheduler_runtime(self, name: str) -> SimRuntime:
        runtime = self.stores[name].runtime
        assert isinstance(runtime, SimRuntime)
        return runtime

    def run(self) -> RunResult:
        """Fault phase, then the liveness phase; stops at the first violation, or when the run exceeds its
        wall-clock budget (an engine that never yields: a "hang" violation instead of a hung campaign)."""
        token = CURRENT_WORLD.set(self)
        try:
            with wall_budget(self.profile.hang_budget), self.scheduler:
                self._phases()
        except Hang as exc:
            self.record("world", "hang", seconds=self.profile.hang_budget)
            self.checker.violations.append(Violation("hang", f"{exc}: the engine or a step callback never "
                                                     "yields to the scheduler"))
        finally:
            CURRENT_WORLD.reset(token)
        result = RunResult(
            seed=self.seed, profile=self.profile.name, violations=list(self.checker.violations),
            trace=self.trace, dump=dump_database(self.conn),
            stats={"faults": dict(sorted(self.fault_counts.items())), "checks": self.checker.checks,
                   "judged": len(self.oracle.model.instances),
                   "virtual_seconds": self.clock.elapsed(), "trace_records": len(self.trace),
                   "enabled_faults": self.enabled_faults},
        )
        release(self.conn)
        return result

    def _phases(self) -> None:
        for _ in range(self.profile.max_actions):
            if (not self.ops and self._settled()) or not self._action():
                break
            self.checker.on_move()
            self._verdict()
            self._prompt()
            if self.checker.violations:
                break
        if not self.checker.violations:
            self._verdict(whole=True)
        if not self.checker.violations:
            self._liveness()
        if not self.checker.violations:
            self.checker.at_end()
        failures = self.scheduler.failures()
        if failures and not self.checker.violations:
            name, exc = sorted(failures.items())[0]
            self.checker.violations.append(Violation(
                "runner crashed", f"runner {name} died with {type(exc).__name__}: {exc}"))

    def _liveness(self) -> None:
        """Faults off, every runner alive, skew gone, outstanding events delivered; then all must end."""
        self.faults = FaultConfig.none()
        self.record("world", "liveness")
        down = self._down()
        for name in sorted(self.stores):
            if name in down:
                self._start_runner(name)
            else:
                self.scheduler_runtime(name).offset = 0.0
        while self.ops:
            self._client(self.ops.pop(0))
            self.checker.on_move()
            self._verdict()
        deadline = self.clock.now() + self.profile.liveness_bound
        for _ in range(self.profile.liveness_steps):
            if self.checker.violations or self._settled() or self.clock.now() > deadline:
                break
            for name in self._down() if self.drained else ():
                self._start_runner(name)  # a runner drained just before this phase has exited by now
            moved = self.scheduler.step()
            if moved is None:
                break
            self.checker.on_move()
            self._verdict()
            self._prompt()
        self.oracle.check_reads(self.client, run_now)  # what a user reads back at the end
        self._verdict(whole=True)
        if not self.checker.violations:
            self.checker.violations.extend(check_liveness(self.conn, self.profile.liveness_bound))
        if not self.checker.violations:
            self.checker.violations.extend(check_replays(self.conn))

    def _settled(self) -> bool:
        row = self.conn.execute(
            "SELECT COUNT(*) FROM workflow_instance WHERE status NOT IN ('complete','errored','terminated','paused')"
        ).fetchone()
        return bool(row[0] == 0)


def run_seed(seed: int, profile: Profile | str = "default") -> RunResult:
    """Run one seed of a profile (by name or object) and return its result."""
    from sim.world.workload import get_profile

    prof = get_profile(profile) if isinstance(profile, str) else profile
    return World(seed, prof).run()
