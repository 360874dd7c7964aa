"""Exhaustive interleaving explorer: depth-first over every choice sequence of a small configuration.

Coroutines cannot be snapshotted, so each path re-executes from the start, replaying a prefix of choices and
then taking the first option of every new choice point (stateless model checking). The space is kept finite
by a preemption bound, a crash bound, a lease-expiry bound and a depth bound; revisits are pruned at
quiescent points (no runner mid-tick), where the whole state is the database, the clock, the parked
runners and the remaining budgets, fingerprinted with blake2b-128.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs

from properties import Violation
from sim.core.choices import Choice
from sim.core.scheduler import Waiter
from sim.core.watchdog import Hang, wall_budget
from sim.search.campaign import SeedOutcome
from sim.world.databases import release
from sim.world.dump import digest_rows, dump_database, state_rows
from sim.world.faults import FaultConfig
from sim.world.simulation import RunResult, World
from sim.world.workload import Op, Profile

QUIET_LABELS = frozenset({"tick:find", "sleep", "start"})


@attrs.frozen(kw_only=True)
class ExploreConfig:
    """A small configuration to explore exhaustively."""

    name: str
    workload: str
    runners: int = 2
    max_crashes: int = 0
    max_lease_expiries: int = 0
    preemption_bound: int = 2
    client_deferrals: int = 0  # times an idle client may let the next timer fire before acting
    max_depth: int = 400
    lease: float = 30.0
    poll: float = 60.0


CONFIGS: dict[str, ExploreConfig] = {
    "steps3": ExploreConfig(name="steps3", workload="steps3"),
    "steps3-faults": ExploreConfig(name="steps3-faults", workload="steps3", max_crashes=2, max_lease_expiries=1,
                                   max_depth=200),
    "race-pause": ExploreConfig(name="race-pause", workload="race", max_depth=200, poll=120.0, client_deferrals=2),
}


def _queues(config: ExploreConfig) -> tuple[list[Op], list[list[Op]]]:
    """Ops applied before exploring, and client op queues whose timing the explorer chooses."""
    # The model's programs, so the reference model judges every explored path (property 10).
    if config.workload == "steps3":
        return [Op(kind="create", workflow="m-steps", instance_id="w", params={"k": 3})], []
    if config.workload == "race":
        script = [{"op": "sleep", "name": "nap", "seconds": 10.0},
                  {"op": "wait", "name": "go", "type": "go", "timeout": 300.0},
                  {"op": "do", "name": "done"}]
        create = Op(kind="create", workflow="m-script", instance_id="w", params={"script": script})
        event = Op(kind="event", workflow="m-script", instance_id="w", event_type="go", payload=1)
        pause = Op(kind="pause", workflow="m-script", instance_id="w")
        resume = Op(kind="resume", workflow="m-script", instance_id="w")
        return [create], [[event], [pause, resume]]
    raise KeyError(f"unknown explore workload {config.workload!r}")


class Enumerator:
    """A ChoiceSource replaying `prefix`, then taking option 0 of each new choice, recording everything."""

    def __init__(self, prefix: Sequence[int]) -> None:
        self.prefix = list(prefix)
        self.tape: list[Choice] = []

    @property
    def fresh(self) -> bool:
        """True once past the replayed prefix: states seen from here on are new on this path."""
        return len(self.tape) >= len(self.prefix)

    def choose(self, kind: str, n: int) -> int:
        if n <= 1:
            return 0
        i = len(self.tape)
        value = self.prefix[i] if i < len(self.prefix) else 0
        if value >= n:  # a replayed prefix must fit: the search is deterministic
            raise RuntimeError(f"choice {i} ({kind}) replays {value} but only {n} options exist")
        self.tape.append(Choice(kind, n, value))
        return value

    def flip(self, kind: str, p: float) -> bool:
        if p <= 0:
            return False
        if p >= 1:
            return True
        return self.choose(kind, 2) == 1


class ExploreWorld(World):
    """A World driven by explicit options (moves, faults, client ops) instead of probabilities."""

    def __init__(self, config: ExploreConfig, choices: Enumerator | Any, *, keep_trace: bool = True) -> None:
        self.keep_trace = keep_trace
        profile = Profile(name=f"explore-{config.name}", workload="none", runners=config.runners, instances=0,
                          lease=config.lease, poll=config.poll, max_tasks=1, faults=FaultConfig.none())
        super().__init__(0, profile, choices=choices)
        self.config = config
        before, self.queues = _queues(config)
        for op in before:
            self._client(op)
        self.crashes_left = config.max_crashes
        self.expiries_left = config.max_lease_expiries
        self.preemptions_left = config.preemption_bound
        self.deferrals_left = config.client_deferrals
        self.last: str | None = None

    def _on_engine(self, owner: str, action: str, detail: dict[str, Any]) -> None:
        # While searching, only the checker and the oracle need engine actions; the tape is the replayable
        # record, and building trace records for thousands of paths is a measurable share of the search.
        if self.keep_trace:
            super()._on_engine(owner, action, detail)
        else:
            t = self.clock.now()
            self.checker.on_record(t, owner, action, detail)
            self.oracle.on_engine(owner, action, detail, t)

    def record(self, runner: str, action: str, **detail: Any) -> None:
        if self.keep_trace:
            super().record(runner, action, **detail)

    def _choose_waiter(self, waiters: Sequence[Waiter]) -> Waiter:
        # Preemption bound: leaving a process that could still run costs one preemption.
        mine = [w for w in waiters if w.process == self.last]
        options = list(waiters) if (not mine or self.preemptions_left > 0) else mine
        chosen = options[self.choices.choose("sched", len(options))]
        if mine and chosen.process != self.last:
            self.preemptions_left -= 1
        self.last = chosen.process
        return chosen

    def quiescent(self) -> bool:
        """No runner mid-tick: each live runner has one waiter, parked between ticks."""
        waiters = self.scheduler.waiters()
        alive = self.alive_runners()
        return len(waiters) == len(alive) and all(w.label in QUIET_LABELS for w in waiters)

    def fingerprint(self) -> str:
        """The whole state at a quiescent point: database, clock, parked runners, budgets.

        Symmetry reduction: runners run the same code, so two states that differ only by which runner is
        which are one state. The fingerprint is the least digest over every renaming of the runners (their
        names in task leases, parked waiters, the alive set and the last mover), so a path that is a
        relabelled copy of an explored one is pruned.
        """
        now = self.clock.now()
        rows = state_rows(self.conn)
        waiters = self.scheduler.waiters()
        alive = self.alive_runners()
        names = sorted(self.stores)
        best = ""
        for order in itertools.permutations(range(len(names))):
            canon = {name: f"#{order[i]}" for i, name in enumerate(names)}

            def rename(value: object, canon: dict[str, str] = canon) -> object:
                if not isinstance(value, str):
                    return value
                base, dot, incarnation = value.partition(".")
                return canon[base] + dot + incarnation if base in canon else value

            parked = sorted((str(rename(w.process)), w.label, None if w.due is None else round(w.due - now, 6))
                            for w in waiters)
            extra = json.dumps([now, parked, sorted(str(rename(a)) for a in alive), self.crashes_left,
                                self.expiries_left, self.preemptions_left, self.deferrals_left,
                                rename(self.last), [len(q) for q in self.queues]])
            renamed = [(table, tuple(rename(v) for v in row) if table == "workflow_task" else row)
                       for table, row in rows]
            mark = digest_rows(renamed, extra)
            best = mark if not best or mark < best else best
        return best

    def _work_due(self) -> bool:
        row = self.conn.execute(
            "SELECT 1 FROM workflow_task WHERE status = 'processing' OR run_at <= ? LIMIT 1", (self.clock.now(),)
        ).fetchone()
        return row is not None

    def _lease_held(self) -> bool:
        row = self.conn.execute("SELECT 1 FROM workflow_task WHERE status = 'processing' LIMIT 1").fetchone()
        return row is not None

    def act(self) -> bool:
        """One explored action, with the reductions that keep the space finite and small.

        - A crash is offered only for the runner about to move, and only mid-tick: crashing an idle runner
          leaves the same state wherever it happens, and crashing one that did not move since is a revisit.
        - A lease expiry (clock jump) is offered only while some runner holds a lease.
        - A crashed runner restarts at the next quiescent point (restart timing matters for liveness,
          which the liveness phase covers, not for safety).
        - A client operation while a runner is mid-tick costs one preemption, like a context switch.
        """
        quiet = self.quiescent()
        if quiet:
            for name in sorted(self.stores):
                if not self.stores[name].alive:
                    self._start_runner(name)
                    return True
        ops = [i for i, q in enumerate(self.queues) if q]
        if ops and quiet and not self._work_due():
            # Nothing to do but idle polls: delaying the client only matters if a timer fires first, so the
            # client either acts now or, within a bounded number of deferrals, lets the next timer fire.
            defer = 1 if self.deferrals_left > 0 else 0
            pick = self.choices.choose("input", len(ops) + defer)
            if pick < len(ops):
                self._client(self.queues[ops[pick]].pop(0))
                return True
            self.deferrals_left -= 1
            moved = self.scheduler.step(lambda ws: 0)
            if moved is not None:
                self.last = moved.process
            return moved is not None
        if quiet or self.preemptions_left > 0:
            if ops:
                pick = self.choices.choose("input", 1 + len(ops))
                if pick:
                    if not quiet:
                        self.preemptions_left -= 1
                    self._client(self.queues[ops[pick - 1]].pop(0))
                    return True
        now = self.clock.now()
        eligible = [w for w in self.scheduler.waiters() if w.due is None or w.due <= now]
        if not eligible:
            moved = self.scheduler.step(lambda ws: 0)  # every runner blocked: the clock jumps to the next timer
            if moved is None:
                return bool(any(self.queues))
            self.last = moved.process
            return True
        chosen = self._choose_waiter(eligible)
        faults = ["move"]
        if self.crashes_left and chosen.label not in QUIET_LABELS:
            faults.append("crash")
        if self.expiries_left and self._lease_held():
            faults.append("expire")
        fault = faults[self.choices.choose("fault", len(faults))]
        if fault == "crash":
            self.crashes_left -= 1
            self.crash(chosen.process)
            return True
        if fault == "expire":
            self.expiries_left -= 1
            self.fault("clock_jump", "world", seconds=self.config.lease + 1)
            self.clock.advance(self.config.lease + 1)
        moved = self.scheduler.step(lambda ws: next(i for i, w in enumerate(ws) if w.seq == chosen.seq))
        assert moved is not None
        # Moves are not recorded here: the choice tape is the replayable record of an explored path.
        return True


@attrs.define
class ExploreStats:
    """What an exploration did."""

    config: str
    executions: int = 0
    distinct_states: int = 0
    pruned: int = 0
    depth_bound_hits: int = 0
    exhausted: bool = False
    seconds: float = 0.0
    violation: str | None = None
    violating_tape: list[Choice] | None = None

    def render(self) -> str:
        status = "bound exhausted" if self.exhausted else "stopped early"
        out = (f"config {self.config}: {self.executions} executions, {self.distinct_states} distinct states, "
               f"{self.pruned} pruned, {self.depth_bound_hits} hit the depth bound, {status}, "
               f"{self.seconds:.2f} s")
        if self.violation:
            out += f"\nVIOLATION:\n{self.violation}"
        return out


def _walk(config: ExploreConfig, world: ExploreWorld, choices: Any, visited: set[str] | None) -> str:
    """Act until the path ends; returns how: done, pruned, depth or violation."""
    for _ in range(config.max_depth):
        if not any(world.queues) and world._settled():
            world._verdict(whole=True)
            return "violation" if world.checker.violations else "done"
        if visited is not None and getattr(choices, "fresh", False) and world.quiescent():
            mark = world.fingerprint()
            if mark in visited:
                return "pruned"
            visited.add(mark)
        if not world.act():
            return "done"
        if getattr(choices, "fresh", True):
            world.checker.on_move()
        else:  # deterministic replay of a prefix: these states were checked on an earlier path
            world.checker.snapshot()
        world._verdict()
        if world.checker.violations:
            return "violation"
    return "depth"


def _execute(
    config: ExploreConfig, choices: Any, visited: set[str] | None, *, keep_trace: bool = True
) -> tuple[RunResult, str]:
    """One path; returns its result and how it ended: done, pruned, depth or violation."""
    world = ExploreWorld(config, choices, keep_trace=keep_trace)
    try:
        with wall_budget(world.profile.hang_budget), world.scheduler:
            ending = _walk(config, world, choices, visited)
    except Hang as exc:
        world.checker.violations.append(Violation("hang", f"{exc}: the engine never yields to the scheduler"))
        ending = "violation"
    result = RunResult(seed=0, profile=world.profile.name, violations=list(world.checker.violations),
                       trace=world.trace, stats={"faults": world.fault_counts, "checks": world.checker.checks},
                       dump=dump_database(world.conn) if world.checker.violations else "")
    release(world.conn)
    return result, ending


def explore(config: ExploreConfig, *, max_executions: int = 1_000_000, stop_on_violation: bool = True,
            prune: bool = True) -> ExploreStats:
    """Depth-first search over every choice sequence of `config` within its bounds."""
    stats = ExploreStats(config=config.name)
    visited: set[str] = set()
    prefix: list[int] = []
    started = time.perf_counter()
    while stats.executions < max_executions:
        enum = Enumerator(prefix)
        result, ending = _execute(config, enum, visited if prune else None, keep_trace=False)
        stats.executions += 1
        stats.pruned += ending == "pruned"
        stats.depth_bound_hits += ending == "depth"
        if ending == "violation" and stats.violation is None:
            stats.violation = result.violations[0].render()
            stats.violating_tape = list(enum.tape)
            if stop_on_violation:
                break
        tape = list(enum.tape)
        while tape and tape[-1].value + 1 >= tape[-1].n:
            tape.pop()
        if not tape:
            stats.exhausted = True
            break
        prefix = [c.value for c in tape[:-1]] + [tape[-1].value + 1]
    stats.distinct_states = len(visited)
    stats.seconds = time.perf_counter() - started
    return stats


def write_tape(path: Path, config: ExploreConfig, tape: Sequence[Choice]) -> None:
    """A replayable tape file: a header line naming the configuration, then one choice per line."""
    lines = [json.dumps({"stepsim_tape": 1, "mode": "explore", "config": config.name})]
    lines += [json.dumps([c.kind, c.n, c.value]) for c in tape]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def replay_tape(path: str | Path) -> tuple[SeedOutcome, RunResult]:
    """Re-run the path a tape file records (for `stepsim replay --tape`)."""
    lines = Path(path).read_text().splitlines()
    header = json.loads(lines[0])
    config = CONFIGS[header["config"]]
    prefix = [json.loads(line)[2] for line in lines[1:] if line.strip()]
    result, _ = _execute(config, Enumerator(prefix), None)
    outcome = SeedOutcome(seed=0, ok=result.ok, violation=result.violations[0].render() if result.violations
                          else None, faults=result.stats["faults"], checks=result.stats["checks"],
                          digest=result.trace.digest())
    return outcome, result
