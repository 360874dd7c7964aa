"""The machine's harness: a small simulated cluster over the real engine, wired to the checker and the model.

Two runner `Engine`s, each a simulated process (`SimRuntime`) with a `SimStore` over one shared in-memory
SQLite database, a client `Engine` for instance management, one virtual clock, the safety `Checker`
(DESIGN §6) and the reference `Model` (property 10). Runner transitions reach the checker and the model
through the engines' tracer, synchronously, right after each transaction.

The machine's workflows are the model's programs run through an adapter, so both sides execute the same
workflow logic and any disagreement is about the engine's step semantics.

Only rules move the clock: driving the scheduler never jumps it to the next timer (a sleeping runner wakes
when a rule advances time), and scheduling decisions come from `choices` (Hypothesis data in the machine).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine, Iterable, Sequence
from typing import Any

from engine import Engine, EngineError, SqliteStore
from properties import strategies as s
from properties.checker import Checker
from properties.oracle import Oracle
from sim.core.choices import HypothesisChoices
from sim.core.clock import VirtualClock
from sim.world.faults import FaultConfig
from sim.core.runtime import SimRuntime
from sim.core.scheduler import Scheduler, Waiter
from sim.core.watchdog import Hang, wall_budget
from sim.world.current import CURRENT_WORLD
from sim.world.programs import CallbackReports, program_workflows
from sim.world.databases import fresh_database, release
from sim.world.simulation import ClientRuntime, SimStore, run_now

# When other runners are in flight, a tick lets one of them cut in after 1..CUT_IN-1 of its own moves
# (0: never); the point is drawn from the data, so shrinking removes cut-ins the failure does not need.
CUT_IN = 8
MAX_MOVES = 400  # a tick that has not ended after this many scheduler moves is livelocked
HANG_BUDGET = 30.0  # wall seconds one rule's driving may take; milliseconds unless the engine spins
MAX_ROUNDS = 30  # settle gives up (and fails) after this many rounds that still processed work
CALLBACK_TIMEOUT = 7 * 86400.0  # never reached: parked callbacks must not time out under clock jumps


class Harness(CallbackReports):
    """Runners, client, clock, checker and model over one database; what `SimStore` calls its world."""

    def __init__(self, *, runners: Iterable[str] = s.RUNNERS, lease: float = s.LEASE, max_tasks: int = 2) -> None:
        self.clock = VirtualClock()
        self.choices = HypothesisChoices(data=None)  # type: ignore[arg-type]  # each rule hands in its data
        self.scheduler = Scheduler(self.choices, self.clock)
        self.conn = fresh_database()
        self.faults = FaultConfig.none()  # every fault is a rule here; flips with p=0 draw nothing
        self.checker = Checker(self.conn)
        self.oracle = Oracle(self.conn)
        self.model = self.oracle.model
        self.problems: list[str] = []
        self.fault_counts: dict[str, int] = {}
        self.lease = lease
        self.max_tasks = max_tasks
        self.workflows = program_workflows(CALLBACK_TIMEOUT)
        client_runtime = ClientRuntime(self.clock)
        self.client = Engine(store=SqliteStore(":memory:", runtime=client_runtime, connection=self.conn,
                                               clock=self.clock.now, migrate_schema=False),
                             workflows=self.workflows, runtime=client_runtime, runner_id="client")
        self.stores: dict[str, SimStore] = {}
        self.engines: dict[str, Engine] = {}
        self.incarnation: dict[str, int] = {}
        self._reaped: set[int] = set()
        self._checked_at = -1  # conn.total_changes when the tables were last checked and observed
        self._observed: dict[str, Any] = {}
        for name in runners:
            self.start_runner(name)

    def close(self) -> None:
        self.scheduler.close()
        release(self.conn)

    # -- what SimStore needs from a world -----------------------------------------------------------------

    def fault(self, kind: str, runner: str, **detail: Any) -> None:  # pragma: no cover - faults are off
        self.fault_counts[kind] = self.fault_counts.get(kind, 0) + 1

    # -- runners --------------------------------------------------------------------------------------

    def start_runner(self, name: str) -> None:
        n = self.incarnation.get(name, 0) + 1
        self.incarnation[name] = n
        owner = name if n == 1 else f"{name}.{n}"
        runtime = SimRuntime(self.scheduler, name, seed=0)
        store = SimStore(self, runtime, owner)  # a duck-typed world
        self.stores[name] = store
        self.engines[name] = Engine(store=store, workflows=self.workflows, runtime=runtime, runner_id=owner,
                                    lease=self.lease, tracer=functools.partial(self._on_engine, owner))

    def alive(self, name: str) -> bool:
        return self.stores[name].alive

    def crash(self, name: str) -> None:
        """Stop the runner where it is; a crashed process writes nothing more."""
        store = self.stores[name]

        def kill() -> None:
            store.alive = False

        if self.scheduler.is_alive(name):
            self.scheduler.crash(name, on_crash=kill)
        else:
            kill()
        self.checker.disrupted = True  # a callback cut short may legitimately run again (property 1)

    # -- what the program adapter needs from a world --------------------------------------------------------

    async def in_callback(self, key: str, timeout: float) -> None:
        """A yield point inside a parked callback: other runners, crashes and clock moves fit here."""
        await self.scheduler.park("callback")

    def busy(self, key: str, seconds: float) -> None:  # pragma: no cover - the machine's programs never block
        raise AssertionError("the machine's programs have no sync callbacks that block")

    def _runnable(self) -> bool:
        now = self.clock.now()
        return any(w.due is None or w.due <= now for w in self.scheduler.waiters())

    def _start_tick(self, name: str) -> None:
        if self.alive(name) and not self.scheduler.is_alive(name):
            token = CURRENT_WORLD.set(self)  # the tick's tasks inherit it: callbacks report to this harness
            try:
                self.scheduler.spawn(name, self.engines[name].tick(self.max_tasks))
            finally:
                CURRENT_WORLD.reset(token)

    def _drive(self, done: Callable[[], bool], pick: Callable[[Sequence[Waiter]], int]) -> None:
        """Scheduler moves (`pick` chooses each) until `done()`; never jumps the clock (only rules move it)."""
        moves = 0
        try:
            with wall_budget(HANG_BUDGET):
                self.scheduler.run_until_quiescent()
                while not done() and moves < MAX_MOVES and self._runnable():
                    self.scheduler.step(pick=pick)
                    moves += 1
        except Hang as hang:
            self.problems.append(f"hang: {hang}: the engine never yields to the scheduler")
            return
        if not done() and moves >= MAX_MOVES:
            self.problems.append(f"ticks did not end within {MAX_MOVES} scheduler moves (livelock?)")
        for name, exc in sorted(self.scheduler.failures().items()):
            if id(exc) not in self._reaped:
                self._reaped.add(id(exc))
                self.problems.append(f"runner {name} died with {type(exc).__name__}: {exc}")

    def tick(self, name: str, stop_at: str | None) -> None:
        """Start a tick on `name` (if idle) and move it until the tick ends, or until it has moved and is
        parked at checkpoint `stop_at` (e.g. "finish": its run is done but not yet committed).

        Two decisions come from the data, each shrinking towards "nothing happens": whether another
        runner holding a lease has stalled past it for this tick (a two-way choice), and (when other runners are in
        flight) after how many moves of this runner one of them cuts in for one move. One cut-in per
        tick, not a coin per move: a few choices per tick keep shrinking short (Hypothesis stops after
        500 successful shrinks), and sequences of ticks compose longer interleavings.
        """
        if not self.alive(name):
            return
        for other in sorted(self.stores):
            # A GC pause or a slow disk: its lease lapses, so this runner may take its task over (P3).
            if other != name and self._holds(other) and self.choices.choose(f"stall {other}", 2):
                self.expire_lease(other)
        self._start_tick(name)
        self.scheduler.run_until_quiescent()
        others_in_flight = any(w.process != name for w in self.scheduler.waiters())
        # 0: no cut-in; k: another runner moves once, after k moves of this one.
        cut_in = [self.choices.choose("cut in after", CUT_IN) if others_in_flight else 0]
        own_moves = [0]

        def pick(waiters: Sequence[Waiter]) -> int:
            mine = [i for i, w in enumerate(waiters) if w.process == name]
            others = [i for i, w in enumerate(waiters) if w.process != name]
            if others and (not mine or own_moves[0] == cut_in[0]):
                cut_in[0] = 0
                return others[self.choices.choose("sched", len(others))]
            own_moves[0] += 1
            return mine[self.choices.choose("sched", len(mine))]

        def done() -> bool:
            if not self.scheduler.is_alive(name):
                return True
            return own_moves[0] > 0 and stop_at is not None and any(
                w.process == name and w.label == stop_at for w in self.scheduler.waiters())

        self._drive(done, pick)

    def settle(self) -> None:
        """Tick every live runner until a round processes nothing; then the model says what is still owed.

        Moves are taken in parking order without drawing: `settle` only quiesces the cluster (interleavings
        are explored by `tick`), and draws here would cost more Hypothesis choices than all other rules.
        """
        live = [n for n in sorted(self.stores) if self.alive(n)]
        if not live:
            return

        def idle() -> bool:
            return not any(self.scheduler.is_alive(n) for n in live)

        # Finish ticks already in flight first: what they found may predate the last client operation.
        self._drive(idle, _first)
        for _ in range(MAX_ROUNDS):
            for name in live:
                self._start_tick(name)
            self._drive(idle, _first)
            if self.problems:
                return
            if not any(self.scheduler.result(n) for n in live if self.scheduler.is_done(n)):
                break
        else:
            self.problems.append(f"runners still found work after {MAX_ROUNDS} rounds")
            return
        now = self.clock.now()
        held = {r[0] for r in self.conn.execute(
            "SELECT instance_id FROM workflow_task WHERE status = 'processing' AND locked_until >= ?", (now,))}
        for iid in list(self.model.instances):  # `due` may let an instance go
            why = None if iid in held or iid not in self.model.instances else self.model.due(iid, now)
            if why is not None:
                self.problems.append(f"runners are idle at {now} but {iid} is owed progress: {why}")
        self.oracle.check_reads(self.client, run_now)  # what a user reads back agrees with the model too
        self.checker.at_end()  # property 1's exactness, unless a crash or lease loss happened

    def _holds(self, name: str) -> bool:
        return self.conn.execute(
            "SELECT 1 FROM workflow_task WHERE status = 'processing' AND locked_until >= ? "
            "AND (lock_owner = ? OR lock_owner LIKE ?)", (self.clock.now(), name, f"{name}.%")).fetchone() is not None

    def live_leases(self) -> int:
        """Tasks some runner holds with a lease that has not run out."""
        return int(self.conn.execute("SELECT COUNT(*) FROM workflow_task WHERE status = 'processing' "
                                     "AND locked_until >= ?", (self.clock.now(),)).fetchone()[0])

    def expire_lease(self, name: str) -> None:
        """The runner stalled past its lease (a GC pause, a slow disk): its leases lapse, the clock stays."""
        now = self.clock.now()
        self.conn.execute(
            "UPDATE workflow_task SET locked_until = ? WHERE status = 'processing' AND locked_until >= ? "
            "AND (lock_owner = ? OR lock_owner LIKE ?)", (now - 1.0, now, name, f"{name}.%"))
        self.checker.resync_leases()

    # -- the tracer: runner transitions reach the checker and the model ------------------------------------

    def _on_engine(self, owner: str, action: str, d: dict[str, Any]) -> None:
        t = self.clock.now()
        self.checker.on_record(t, owner, action, d)
        self.oracle.on_engine(owner, action, d, t)

    # -- client operations: the engine's outcome must be the model's ----------------------------------------

    def _op(self, kind: str, iid: str, coro: Coroutine[Any, Any, Any], **fields: Any) -> None:
        if "workflow" not in fields:
            fields["workflow"] = self._workflow(iid)
        expected = self.oracle.predict(kind, iid, now=self.clock.now(), **fields)
        try:
            result = run_now(coro)
            got = result if kind in ("create", "batch", "restart") else "ok"
        except EngineError as exc:
            got = exc.code
        self.oracle.answered(kind, iid, expected, got)

    def create(self, workflow: str, iid: str, params: Any) -> str:
        self._op("create", iid, self.client.create(workflow, params, id=iid), workflow=workflow, params=params)
        return iid

    def create_batch(self, workflow: str, items: list[tuple[str, Any]]) -> list[str]:
        self._op("batch", str([i for i, _ in items]), self.client.create_batch(
            workflow, [{"id": i, "params": p} for i, p in items]), workflow=workflow, params=items)
        return list(dict.fromkeys(iid for iid, _ in items))

    def _workflow(self, iid: str) -> str:
        return self.model.instances[iid].workflow

    def send_event(self, iid: str, type: str, payload: Any, event_id: str | None) -> None:
        self._op("event", iid, self.client.send_event(self._workflow(iid), iid, type=type, payload=payload,
                                                      event_id=event_id),
                 type=type, payload=payload, event_id=event_id)

    def pause(self, iid: str) -> None:
        self._op("pause", iid, self.client.pause(self._workflow(iid), iid))

    def resume(self, iid: str) -> None:
        self._op("resume", iid, self.client.resume(self._workflow(iid), iid))

    def terminate(self, iid: str) -> None:
        self._op("terminate", iid, self.client.terminate(self._workflow(iid), iid))

    def restart(self, iid: str) -> None:
        self._op("restart", iid, self.client.restart(self._workflow(iid), iid))

    # -- checks after every rule ---------------------------------------------------------------------------

    def check(self) -> list[str]:
        """Every violated property and disagreement, empty when all is well."""
        changes = self.conn.total_changes
        if changes != self._checked_at:
            # State invariants are functions of the tables: an unchanged database cannot break them anew.
            self.checker.on_move()
            self._observed = self.oracle.observe()
            self._checked_at = changes
        problems = [v.render() for v in self.checker.violations] + self.oracle.violations + self.problems
        if self.scheduler.unhandled:
            problems.append(f"unhandled errors in the simulated loop: {self.scheduler.unhandled[:3]}")
        if not problems:
            problems = self.oracle.disagreements(self._observed)
        return problems


def _first(waiters: Sequence[Waiter]) -> int:
    return 0


__all__ = ["Harness"]
