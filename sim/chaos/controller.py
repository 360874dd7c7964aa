"""The chaos controller: starts real worker processes and a client on one database, disrupts them, heals
everything, then checks the history and writes the report.

Phases: a calm batch (throughput without faults), a chaos batch under SIGKILL/SIGSTOP of workers, killed
client processes and (PostgreSQL) terminated backend connections, then healing (every worker back, every
operation acknowledged) until every instance is terminal. Bounded by `max_seconds`; every child process is
killed on the way out, whatever happens. Fault choices come from `seed`; timings are real, so a run is
reported, not replayed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import select
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import attrs

from engine import Engine, EngineError
from properties.state import TerminalWatch, instances
from sim.chaos.history import (
    Fault,
    check_events,
    check_final_state,
    check_outputs,
    check_steps,
    load_effects,
    recovery_latencies,
)
from sim.chaos.workflows import EFFECT_DDL, LATE_EVERY, EffectLog, chaos_workflows
from sim.world.databases import create_schema, drop_orphans, drop_schema, is_postgres, worker_schema

WORKFLOW = "chaos-order"


@attrs.frozen(kw_only=True)
class ChaosConfig:
    """What a chaos run does; the defaults are the issue's acceptance run."""

    database: str  # a postgresql:// URL (a scratch schema is made in it) or a SQLite file path
    workers: int = 4
    workflows: int = 1000
    kills: int = 50  # SIGKILLs of workers and of the client, at least; more faults of other kinds ride along
    concurrency: int = 2
    lease: float = 3.0
    calm_share: float = 0.2
    fault_interval: float = 0.3
    max_seconds: float = 900.0
    heal_seconds: float = 180.0
    seed: int = 0
    keep: bool = False  # keep the scratch schema or file for inspection
    mutant: str | None = None  # workers serve this zoo mutant (to show the check catching a planted bug)


@attrs.define
class ChaosReport:
    """What a run saw; `markdown()` is the report."""

    config: ChaosConfig
    backend: str
    calm: tuple[int, float] = (0, 0.0)  # (workflows, seconds)
    chaos: tuple[int, float] = (0, 0.0)
    faults: Counter[str] = attrs.Factory(Counter)
    fault_log: list[Fault] = attrs.Factory(list)  # every fault with its time, target and pid (evidence)
    recovery: list[float] = attrs.Factory(list)
    violations: list[Any] = attrs.Factory(list)
    statuses: Counter[str] = attrs.Factory(Counter)
    executions: int = 0
    duplicates: int = 0
    timed_out: bool = False
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.violations and not self.timed_out

    def markdown(self) -> str:
        """The report as Markdown."""
        c = self.config
        calm_rate = self.calm[0] / self.calm[1] if self.calm[1] else 0.0
        chaos_rate = self.chaos[0] / self.chaos[1] if self.chaos[1] else 0.0
        lines = [
            f"# stepsim chaos on {self.backend}",
            "",
            (f"{c.workers} worker processes x {c.concurrency} runner loops, lease {c.lease:g} s, "
            f"{c.workflows} workflows, seed {c.seed}, {self.seconds:.0f} s in all. "
            f"Verdict: **{'PASS' if self.ok else 'FAIL'}** ({len(self.violations)} violations"
            f"{', run timed out' if self.timed_out else ''})."),
            "",
            "| phase | workflows | seconds | workflows/s |",
            "|---|---:|---:|---:|",
            f"| calm (no faults) | {self.calm[0]} | {self.calm[1]:.1f} | {calm_rate:.1f} |",
            f"| chaos | {self.chaos[0]} | {self.chaos[1]:.1f} | {chaos_rate:.1f} |",
            "",
            f"Throughput under chaos: {chaos_rate / calm_rate:.2f} of calm." if calm_rate else "",
            "",
            "Faults injected: " + (", ".join(f"{k} {v}" for k, v in sorted(self.faults.items())) or "none") + ".",
            (f"Callback executions: {self.executions}, of which {self.duplicates} re-ran an attempt another "
            "execution had started (each must be explained by a fault of the first one's worker, or by a stop of "
            "a process that may have held a lock it needed)."),
            "Final statuses: " + ", ".join(f"{k} {v}" for k, v in sorted(self.statuses.items())) + ".",
            "",
        ]
        if self.recovery:
            ordered = sorted(self.recovery)
            lines.append(f"Recovery latency (kill or stop of a worker mid-step, until another worker ran that "
                         f"step again): p50 {_pct(ordered, 50):.2f} s, p99 {_pct(ordered, 99):.2f} s, "
                         f"max {ordered[-1]:.2f} s over {len(ordered)} interrupted steps (lease {c.lease:g} s).")
        else:
            lines.append("Recovery latency: no kill caught a step in flight.")
        lines += ["", "## Violations", ""]
        lines += [f"- **{v.prop}**: {v.message}" for v in self.violations[:50]] or ["None."]
        if len(self.violations) > 50:
            lines.append(f"- … and {len(self.violations) - 50} more")
        return "\n".join(lines) + "\n"


def _pct(ordered: list[float], p: float) -> float:
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def plan(ids: list[tuple[str, int]], *, block: int = 20) -> list[dict[str, Any]]:
    """The client's operations for these (id, n) orders: per block, the creates, then the payments (not for
    the orders paid late on purpose), then two `item` events each, in send order."""
    ops: list[dict[str, Any]] = []
    for start in range(0, len(ids), block):
        chunk = ids[start:start + block]
        ops += [{"op": "create", "workflow": WORKFLOW, "id": iid, "params": {"n": n}} for iid, n in chunk]
        ops += [{"op": "event", "workflow": WORKFLOW, "id": iid, "type": "pay", "payload": {"amount": n},
                 "event_id": f"{iid}-pay"} for iid, n in chunk if n % LATE_EVERY != 0]
        for seq in (1, 2):
            ops += [{"op": "event", "workflow": WORKFLOW, "id": iid, "type": "item", "payload": {"seq": seq},
                     "event_id": f"{iid}-item{seq}"} for iid, n in chunk if n % LATE_EVERY != 0]
    return ops


class Controller:
    """One chaos run: processes, faults, healing, checks."""

    def __init__(self, config: ChaosConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.backend = "PostgreSQL" if is_postgres(config.database) else "SQLite"
        self.workdir = Path(tempfile.mkdtemp(prefix="stepsim-chaos-"))
        self.schema = worker_schema("chaos") if is_postgres(config.database) else None
        self.url = config.database
        self.workers: dict[str, subprocess.Popen[str]] = {}
        self.stopped: dict[str, float] = {}  # worker -> when to SIGCONT
        self.dead: dict[str, float] = {}  # worker -> when to restart
        self.client: subprocess.Popen[str] | None = None
        self.faults: list[Fault] = []
        self.watch = TerminalWatch()
        self.violations: list[Any] = []
        self.planned: dict[str, tuple[str, str]] = {}
        self.phase_name = "setup"
        self.ack_path = self.workdir / "acks"
        self.plan_ops: list[dict[str, Any]] = []
        self.late_sent: set[str] = set()

    # -- database ------------------------------------------------------------------------------------

    def prepare(self) -> None:
        """A fresh database: a scratch schema (PostgreSQL) or a new file (SQLite), with the effect table."""
        if self.schema is not None:
            drop_orphans(self.config.database, "chaos")  # schemas of earlier runs that died before cleanup
            self.url = create_schema(self.config.database, self.schema)
        else:
            for suffix in ("", "-wal", "-shm"):
                Path(self.config.database + suffix).unlink(missing_ok=True)
        engine = Engine(self.url, chaos_workflows(EffectLog(self.url, "setup")))
        engine.store.close()
        with self.connect() as conn:
            conn.execute(EFFECT_DDL)

    def connect(self) -> Any:
        """The controller's own connection, sqlite3-shaped on both backends."""
        if self.schema is not None:
            import psycopg

            from engine._pg_conn import PgConnection

            return _Closing(PgConnection(psycopg.connect(self.url, autocommit=True,
                                                         application_name="chaos-controller")))
        conn = sqlite3.connect(self.url, isolation_level=None, timeout=30.0)
        conn.row_factory = sqlite3.Row
        return _Closing(conn)

    # -- processes -----------------------------------------------------------------------------------

    def _worker_url(self, name: str) -> str:
        if self.schema is None:
            return self.url
        return self.url + f"&application_name=chaos-{name}"

    def start_worker(self, name: str) -> None:
        """Start (or restart) worker `name` and wait for it to open its engine."""
        old = self.workers.get(name)
        if old is not None and old.stdout is not None:
            old.stdout.close()
        with (self.workdir / f"{name}.err").open("a") as err:
            proc = subprocess.Popen(
                [sys.executable, "-m", "sim.chaos.worker", self._worker_url(name), name,
                 "--concurrency", str(self.config.concurrency), "--lease", str(self.config.lease),
                 *(["--mutant", self.config.mutant] if self.config.mutant else [])],
                stdout=subprocess.PIPE, stderr=err, text=True)
        assert proc.stdout is not None
        # "ready" (or EOF if it died at start: noticed by check_alive); bounded, so a worker that hangs while
        # opening its engine cannot stall the controller past max_seconds.
        if select.select([proc.stdout], [], [], 30.0)[0]:
            proc.stdout.readline()
        self.workers[name] = proc

    def start_client(self) -> None:
        """Start the client on the phase's plan; it resumes after the last acknowledged operation."""
        previous = self.client
        if previous is not None and previous.poll() is None:
            try:  # the last phase's client, finishing its last acknowledgements
                previous.wait(timeout=30)
            except subprocess.TimeoutExpired:
                previous.kill()
                previous.wait()
        plan_path = self.workdir / f"plan-{self.phase_name}.json"
        if not plan_path.exists():
            plan_path.write_text(json.dumps(self.plan_ops))
        url = self.url if self.schema is None else self.url + "&application_name=chaos-client"
        with (self.workdir / "client.err").open("a") as err:
            self.client = subprocess.Popen(
                [sys.executable, "-m", "sim.chaos.client", url, str(plan_path), str(self.ack_path)],
                stdout=subprocess.DEVNULL, stderr=err, text=True)

    def check_alive(self) -> None:
        """A worker that exited without being killed is a failure of the engine (or of its process)."""
        for name, proc in self.workers.items():
            if proc.poll() is not None and name not in self.dead:
                err = (self.workdir / f"{name}.err").read_text()[-2000:]
                self.violations.append(_violation("chaos: worker died", f"worker {name} (pid {proc.pid}) exited "
                                                  f"with {proc.returncode} on its own: {err}"))
                self.dead[name] = time.time()

    def kill_everything(self) -> None:
        """Every child process goes, stopped ones included (they cannot handle SIGTERM while stopped)."""
        procs = list(self.workers.values()) + ([self.client] if self.client else [])
        for proc in procs:
            if proc.poll() is None:
                with _quiet():
                    os.kill(proc.pid, signal.SIGCONT)
                    proc.terminate()
        deadline = time.time() + 10
        for proc in procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()

    # -- faults --------------------------------------------------------------------------------------

    def inject(self) -> None:
        """One fault, chosen by the seed among those that make sense right now."""
        now = time.time()
        running = [n for n, p in self.workers.items() if p.poll() is None and n not in self.stopped]
        kinds = ["kill", "kill", "stop", "client_kill"]
        if self.schema is not None:
            kinds.append("conn_kill")
        kind = self.rng.choice(kinds)
        if kind == "client_kill":
            if self.client is not None and self.client.poll() is None:
                self.client.kill()
                self.client.wait()
                self.faults.append(Fault(now, "client_kill", "client", self.client.pid))
                self.start_client()
            return
        if len(running) < 2:
            return  # keep one worker making progress
        name = self.rng.choice(sorted(running))
        proc = self.workers[name]
        if kind == "kill":
            proc.kill()
            proc.wait()
            self.dead[name] = now + self.rng.uniform(0.2, 1.5)
        elif kind == "stop":
            os.kill(proc.pid, signal.SIGSTOP)
            self.stopped[name] = now + self.rng.uniform(0.3, 2.0) * self.config.lease
        else:
            with self.connect() as conn:
                conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = ?",
                             (f"chaos-{name}",))
        self.faults.append(Fault(now, kind, name, proc.pid))

    def heal_due(self, *, everything: bool = False) -> None:
        """Resume stopped workers and restart killed ones whose time has come (all of them if asked)."""
        now = time.time()
        for name, at in list(self.stopped.items()):
            if everything or at <= now:
                with _quiet():
                    os.kill(self.workers[name].pid, signal.SIGCONT)
                self.faults.append(Fault(now, "cont", name, self.workers[name].pid))
                del self.stopped[name]
        for name, at in list(self.dead.items()):
            if everything or at <= now:
                del self.dead[name]
                self.start_worker(name)
        if everything and self.client is not None and self.client.poll() not in (None, 0):
            self.start_client()

    # -- the run -------------------------------------------------------------------------------------

    def terminal_counts(self, ids: set[str]) -> int:
        """How many of `ids` are terminal; also feeds the terminal-is-final watch."""
        with self.connect() as conn:
            insts = instances(conn)
        self.violations.extend(self.watch.check(insts))
        return sum(1 for (_, iid), row in insts.items() if iid in ids and row["status"] in
                   ("complete", "errored", "terminated"))

    async def pay_late(self, late: list[str]) -> None:
        """Send each late order's payment just after its wait's deadline passed (it must never be consumed)."""
        pending = set(late)
        engine = Engine(self.url, chaos_workflows(EffectLog(self.url, "late")))
        try:
            while pending:
                with self.connect() as conn:
                    rows = conn.execute(
                        "SELECT instance_id, wake_at FROM workflow_step WHERE step_key = 'wait_for_event:pay' "
                        "AND status = 'waiting'").fetchall()
                now = engine.store.now()
                for iid, deadline in rows:
                    if iid in pending and now > float(deadline) + 0.05:
                        pending.discard(iid)
                        self.planned[f"{iid}-late"] = (iid, "pay")
                        try:
                            await engine.send_event(WORKFLOW, iid, type="pay", payload={"amount": -1},
                                                    event_id=f"{iid}-late")
                            self.late_sent.add(f"{iid}-late")
                        except EngineError:
                            pass  # the wait already timed out and the order ended: refused, as it should be
                done = {r[0] for r in rows}
                with self.connect() as conn:
                    ended = {r[0] for r in conn.execute(
                        "SELECT instance_id FROM workflow_instance WHERE status IN "
                        "('complete', 'errored', 'terminated')")}
                pending -= ended - done
                await asyncio.sleep(0.1)
        finally:
            await engine.close()

    async def phase(self, name: str, orders: list[tuple[str, int]], *, chaos: bool,
                    deadline: float) -> tuple[int, float]:
        """Create and drive one batch; returns (orders counted, seconds until those were all terminal)."""
        self.phase_name = name
        self.plan_ops = plan(orders)
        self.ack_path = self.workdir / f"acks-{name}"
        for op in self.plan_ops:
            if op["op"] == "event":
                self.planned[op["event_id"]] = (op["id"], op["type"])
        counted = {iid for iid, n in orders if n % LATE_EVERY != 0}
        late = [iid for iid, n in orders if n % LATE_EVERY == 0]
        started = time.time()
        self.start_client()
        late_task = asyncio.ensure_future(self.pay_late(late))
        finished_at: float | None = None
        kills = 0
        try:
            while time.time() < deadline:
                self.check_alive()
                if chaos and (kills < self.config.kills or finished_at is None):
                    self.inject()
                    kills = sum(1 for f in self.faults if f.kind in ("kill", "client_kill"))
                self.heal_due()
                if finished_at is None and self.terminal_counts(counted) == len(counted):
                    finished_at = time.time()
                if finished_at is not None and (not chaos or kills >= self.config.kills):
                    break
                await asyncio.sleep(self.config.fault_interval if chaos else 0.2)
        finally:
            late_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await late_task
        return len(counted), (finished_at or time.time()) - started

    async def heal(self, ids: set[str], deadline: float) -> bool:
        """Every worker back, the client done, every instance terminal; False if the deadline came first."""
        self.heal_due(everything=True)
        while time.time() < deadline:
            self.check_alive()
            client_done = self.client is None or self.client.poll() == 0
            if self.client is not None and self.client.poll() not in (None, 0):
                self.start_client()
            if client_done and self.terminal_counts(ids) == len(ids):
                return True
            await asyncio.sleep(0.2)
        return False

    async def run(self) -> ChaosReport:
        """The whole run; children, the scratch schema (or file) and the work folder are cleaned up whatever
        happens (unless `keep`)."""
        try:
            return await self._run()
        finally:
            if not self.config.keep:
                self.cleanup()

    async def _run(self) -> ChaosReport:
        c = self.config
        report = ChaosReport(config=c, backend=self.backend)
        begun = time.time()
        deadline = begun + c.max_seconds
        try:
            self.prepare()
            for i in range(c.workers):
                self.start_worker(f"w{i + 1}")
            calm_n = max(1, int(c.workflows * c.calm_share))
            calm = [(f"calm{n:05d}", n) for n in range(calm_n)]
            stormy = [(f"chaos{n:05d}", n) for n in range(calm_n, c.workflows)]
            report.calm = await self.phase("calm", calm, chaos=False, deadline=deadline)
            report.chaos = await self.phase("chaos", stormy, chaos=True, deadline=deadline)
            everyone = {iid for iid, _ in calm + stormy}
            healed = await self.heal(everyone, min(deadline, time.time() + c.heal_seconds))
            report.timed_out = not healed
        finally:
            self.kill_everything()
        report.faults = Counter(f.kind for f in self.faults if f.kind != "cont")
        report.fault_log = list(self.faults)
        report.violations = self.violations + self.check_history()
        with self.connect() as conn:
            report.statuses = Counter(r[0] for r in conn.execute("SELECT status FROM workflow_instance"))
            effects = load_effects(conn)
        report.executions = len(effects)
        report.duplicates = len(effects) - len({(e.instance_id, e.run_number, e.step_key, e.attempt)
                                                for e in effects})
        report.recovery = recovery_latencies(effects, self.faults)
        report.seconds = time.time() - begun
        return report

    def check_history(self) -> list[Any]:
        """Every history rule over what the run left (sim/chaos/history.py)."""
        with self.connect() as conn:
            effects = load_effects(conn)
            acked_ids = self._acked_event_ids() | self.late_sent
            out = check_steps(conn, effects, self.faults, shared_lock=True)
            out += check_events(conn, self.planned, acked_ids)
            out += check_outputs(conn, LATE_EVERY) + check_final_state(conn)
            if self.schema is None:
                verdict = conn.execute("PRAGMA integrity_check").fetchone()[0]
                if verdict != "ok":
                    out.append(_violation("chaos: integrity_check", f"SQLite integrity_check says {verdict}"))
        return out

    def _acked_event_ids(self) -> set[str]:
        ids: set[str] = set()
        for name in ("calm", "chaos"):
            path = self.workdir / f"acks-{name}"
            plan_ops = json.loads((self.workdir / f"plan-{name}.json").read_text()) if (
                self.workdir / f"plan-{name}.json").exists() else None
            if plan_ops is None or not path.exists():
                continue
            for line in path.read_text().splitlines():
                index, _, outcome = line.partition(" ")
                if index.isdigit() and outcome == "ok" and plan_ops[int(index)]["op"] == "event":
                    ids.add(plan_ops[int(index)]["event_id"])
        return ids

    def cleanup(self) -> None:
        """Drop the scratch schema (or delete the file) and the work directory."""
        if self.schema is not None:
            with contextlib.suppress(Exception):  # cleanup must not hide the report
                drop_schema(self.config.database, self.schema)
        else:
            for suffix in ("", "-wal", "-shm"):
                Path(self.config.database + suffix).unlink(missing_ok=True)
        shutil.rmtree(self.workdir, ignore_errors=True)


class _Closing:
    """A connection usable in `with`, closed at the end (sqlite3's own `with` only commits)."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def __enter__(self) -> Any:
        return self.conn

    def __exit__(self, *exc: object) -> None:
        self.conn.close()


def _quiet() -> contextlib.AbstractContextManager[None]:
    """Suppress the errors of signalling a process that has already gone (or dropping what is gone)."""
    return contextlib.suppress(ProcessLookupError, OSError)


def _violation(prop: str, message: str) -> Any:
    from properties import Violation

    return Violation(prop, message)


def run_chaos(config: ChaosConfig) -> ChaosReport:
    """Run one chaos campaign to its report (blocking)."""
    return asyncio.run(Controller(config).run())
