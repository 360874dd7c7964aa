"""Property 10 in every search: the reference model riding along a simulated cluster as its oracle.

An `Oracle` sits beside one simulated database. The simulator hands it everything a user could observe, as
it happens: each client operation with the engine's answer (the model predicts the answer), each runner
transition the engine's tracer reports right after its transaction (claim, step call, commit, hand-back,
finish), and what each step callback saw and did (its `StepContext`, its result or error, a hang). The model
decides whether each was allowed; `disagreements` then compares the whole observable state, table by table,
with the model's, `check_reads` what the client API reads back, and `overdue` whether anything the model
says is due has waited too long for a runner (P12). Only instances of the model's programs
(`properties.programs`) are judged; other workflows in the same database are left to the generic properties.

A write whose commit outcome was unknown to its runner (the simulator's `commit_unknown` fault) reaches no
tracer: `unreported` is told the transaction and its arguments, reads what it wrote from the tables and
judges it the same way, so the model stays in step with what landed.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from typing import Any

from engine import EngineError, WorkflowDefinition
from engine._store import Claim, StepWrite, Suspension
from properties.model import Attempt, Model
from properties.workflows import model_workflows


def _info_shape(info: Any) -> tuple[Any, ...]:
    error = None if info.error is None else (info.error.name, info.error.message)
    return (str(info.status), info.output, error, info.run_number, info.pause_requested)


def _history_shape(history: Any) -> tuple[list[Any], list[Any]]:
    steps = [
        (s.key, s.type, s.status, s.attempts, s.result, None if s.error is None else s.error.name)
        for s in history.steps
    ]
    return steps, [(e.type, e.payload, e.consumed_by) for e in history.events]


async def _pages(client: Any, workflow: str, status: str | None) -> list[str]:
    """Every instance id of a listing, two per page, following the cursor."""
    ids: list[str] = []
    cursor = None
    while True:
        page = await client.list_instances(workflow, status, limit=2, cursor=cursor)
        ids += [i.instance_id for i in page.items]
        if page.next_cursor is None:
            return ids
        cursor = page.next_cursor


NOT_JUDGED = object()  # `predict`'s answer for an operation on an instance the model does not judge


def _decode(text: str | None) -> Any:
    return None if text is None else json.loads(text)


class Oracle:
    """The model plus the bookkeeping that turns tracer records and callback reports into its inputs."""

    def __init__(self, conn: sqlite3.Connection, workflows: tuple[WorkflowDefinition, ...] = ()) -> None:
        """`workflows`: definitions judged besides the model's programs, run by the model itself
        (`properties.workflows`); their callbacks must report their attempts like the programs' do."""
        self.conn = conn
        self.model = Model(model_workflows(workflows))
        self.problems: list[str] = []
        self.task_runs: dict[int, int] = {}  # task id -> run number, from claims (hand-backs omit the run)
        self.task_workflows: dict[int, str] = {}  # task id -> its workflow (the runner's records omit it)
        self.attempts: dict[tuple[str, str, int, str, int], Attempt] = {}  # (owner, instance, run, key, n)
        # (owner, instance) -> (run, key, attempt) of its last step_call
        self.calls: dict[tuple[str, str], tuple[int, str, int]] = {}
        self.touched: dict[str, float] = {}  # instance -> when a runner last reported anything about it
        self.owed: dict[str, tuple[float, str]] = {}  # instance -> since when (and why) progress is owed

    @property
    def violations(self) -> list[str]:
        """Every disagreement so far: the model's and the oracle's own."""
        return self.model.violations + self.problems

    def judged(self, instance_id: str, workflow: str | None = None) -> bool:
        """True for the instances the model judges (of `workflow`, if given: ids are unique per workflow, and
        the model judges the first workflow an id was created in)."""
        inst = self.model.instances.get(instance_id)
        return inst is not None and (workflow is None or inst.workflow == workflow)

    # -- callbacks (reported by the programs' adapter and sim.world.reporting's wrapper) ---------------------

    def attempt_started(self, owner: str, ctx: Any, timeout: float, t: float) -> None:
        """A callback began: its StepContext must describe the step call its runner just reported."""
        if not self.judged(ctx.instance_id, ctx.workflow):
            return
        call = self.calls.get((owner, ctx.instance_id))
        base = ctx.step_key.split("#", 1)[0]
        seen = (ctx.workflow, ctx.run_number, ctx.step_key, ctx.attempt, base)
        want = (
            self.model.instances[ctx.instance_id].workflow,
            *(call or (None, None, None)),
            f"do:{ctx.name}",
        )
        if call is None or seen != want:
            self.problems.append(
                f"property 10 (step context): {owner}'s callback for {ctx.instance_id} saw "
                f"(workflow, run, key, "
                f"attempt, do:name) = {seen}, its step call was {want}"
            )
        self.attempts[(owner, ctx.instance_id, ctx.run_number, ctx.step_key, ctx.attempt)] = Attempt(
            t, timeout
        )

    def attempt_ended(
        self, owner: str, ctx: Any, ok: bool, value: Any, t: float, error: str = "RuntimeError",
        final: bool = False,
    ) -> None:
        """A callback returned `value` (ok) or raised an `error` with message `value` (`final`: one that opts
        out of retries)."""
        attempt = self.attempts.get((owner, ctx.instance_id, ctx.run_number, ctx.step_key, ctx.attempt))
        if attempt is not None and attempt.end is None and self.judged(ctx.instance_id, ctx.workflow):
            attempt.end, attempt.ok, attempt.value, attempt.error = t, ok, value, error
            attempt.final = final

    # -- runner transitions (the engine's tracer) -----------------------------------------------------------

    def on_engine(self, owner: str, action: str, d: dict[str, Any], t: float) -> None:
        """One tracer record, right after the transaction it describes. Never raises: it runs inside the
        engine's tracer, where an exception would be taken for the engine's own and change its course."""
        try:
            self._on_engine(owner, action, d, t)
        except Exception as exc:  # noqa: BLE001 - the oracle's own failure is reported, never hidden
            self.problems.append(f"property 10 (oracle) judging {action} of {d.get('instance')} failed: "
                                 f"{type(exc).__name__}: {exc}")

    def _on_engine(self, owner: str, action: str, d: dict[str, Any], t: float) -> None:
        instance = d.get("instance")
        if instance is None or not self.judged(instance, self._workflow_of(d)):
            return
        self.touched[instance] = t
        m = self.model
        if action == "claim":
            self.task_runs[d["task"]] = d["run"]
            m.on_claim(instance, d["run"], t)
        elif action == "step_call":
            self.calls[(owner, instance)] = (d["run"], d["key"], d["attempt"])
            m.on_call(instance, d["run"], d["key"], d["attempt"], t)
        elif action == "commit":
            self._commit(owner, instance, d["run"], d["key"], d.get("event"), d.get("suspend") is not None,
                         bool(d.get("paused")), t)
        elif action == "suspend":
            m.on_suspend(instance, self.task_runs.get(d["task"], -1), bool(d.get("paused")), t)
        elif action == "release":
            m.on_release(
                instance, self.task_runs.get(d["task"], -1), self._ending(instance)[0] == "paused", t
            )
        elif action == "finish":
            status, output, error = self._ending(instance)
            m.on_finish(instance, d["run"], d["status"], output, error, t)

    def _workflow_of(self, d: dict[str, Any]) -> str | None:
        """The workflow a tracer record is about: named in it, or that of its task."""
        if "workflow" in d:
            return str(d["workflow"])
        task = d.get("task")
        if task is None:
            return None
        if task not in self.task_workflows:
            row = self.conn.execute("SELECT workflow_name FROM workflow_task WHERE id = ?", (task,)).fetchone()
            if row is None:
                return None
            self.task_workflows[task] = row[0]
        return self.task_workflows[task]

    def overdue(self, now: float, quiet_since: float, bound: float) -> list[str]:
        """P12 (prompt progress): instances the model says the engine has owed progress (a retry or wake-up
        due, an event a wait can take, a run that can finish) for more than `bound` seconds, with no runner
        touching them and no fault since (`quiet_since`: the last fault that may delay runners)."""
        out = []
        for iid in list(self.model.instances):  # `due` may let an instance go
            if iid not in self.model.instances:
                continue
            why = None if self.in_flight(iid, now) else self.model.due(iid, now)
            if why is None:
                self.owed.pop(iid, None)
                continue
            since = self.owed.get(iid)
            if since is None or self.touched.get(iid, -1.0) > since[0]:
                self.owed[iid] = (now, why)
                continue
            start = max(since[0], quiet_since)
            if now - start > bound:
                out.append(
                    f"P12 prompt progress: {iid} has been owed progress since {since[0]} ({since[1]}) and "
                    f"no runner took it up within {bound:g} s (now {now})"
                )
        return out

    def unreported(self, owner: str, txn: str, args: tuple[Any, ...], result: Any, t: float) -> None:
        """Transaction `txn(conn, *args)` landed with `result`, but its runner was told it failed (commit
        outcome unknown): judge what it did as if the tracer had reported it."""
        claim = result if isinstance(result, Claim) else next((a for a in args if isinstance(a, Claim)), None)
        if claim is None or not self.judged(claim.instance_id, claim.workflow):
            return
        m, instance, run = self.model, claim.instance_id, claim.run_number
        owner = claim.owner  # the runner loop that wrote it (a store may serve several)
        status, output, error = self._ending(instance)
        if txn == "claim_txn":
            self.task_runs[claim.task_id] = run
            m.on_claim(instance, run, t)
        elif txn in ("commit_step_txn", "wait_event_txn"):
            write = next(a for a in args if isinstance(a, StepWrite))
            consumed = self.conn.execute(
                "SELECT id FROM workflow_event WHERE workflow_name = ? AND instance_id = ? AND consumed_run = ? "
                "AND consumed_by_step_key = ?",
                (claim.workflow, instance, run, write.key),
            ).fetchone()
            # A commit hands the task back with its suspension; a wait whenever it is left waiting (None).
            handed_back = any(isinstance(a, Suspension) for a in args) if txn == "commit_step_txn" else None
            event = None if consumed is None else consumed[0]
            self._commit(owner, instance, run, write.key, event, handed_back, status == "paused", t)
        elif txn == "suspend_txn":
            m.on_suspend(instance, run, status == "paused", t)
        elif txn == "release_txn":
            m.on_release(instance, run, status == "paused", t)
        elif txn == "finish_txn":
            m.on_finish(instance, run, status, output, error, t)

    def _commit(self, owner: str, instance: str, run: int, key: str, event: int | None,
                handed_back: bool | None, paused: bool, t: float) -> None:
        """A committed step row, judged with what its callback (this owner's attempt) did; `handed_back`
        None: the task was handed back if the row is still waiting."""
        row = self._step_row(instance, run, key)
        if handed_back is None:
            handed_back = row["status"] == "waiting"
        attempt = self.attempts.get((owner, instance, run, key, row["attempts"] or 0))
        self.model.on_commit(instance, run, key, row, event, handed_back, paused, t,
                             attempt if row["type"] == "do" else None)

    def _ending(self, instance: str) -> tuple[str, Any, tuple[str, str] | None]:
        row = self.conn.execute(
            "SELECT status, output, error_name, error_message FROM workflow_instance WHERE workflow_name = ? "
            "AND instance_id = ?",
            (self.model.instances[instance].workflow, instance),
        ).fetchone()
        error = None if row["error_name"] is None else (row["error_name"], row["error_message"])
        return row["status"], _decode(row["output"]), error

    def _step_row(self, instance: str, run: int, key: str) -> dict[str, Any]:
        workflow = self.model.instances[instance].workflow
        row = self.conn.execute(
            "SELECT type, status, attempts, result, error_name, error_message, next_retry_at, wake_at "
            "FROM workflow_step WHERE workflow_name = ? AND instance_id = ? AND run_number = ? "
            "AND step_key = ?",
            (workflow, instance, run, key),
        ).fetchone()
        if row is None:
            return {
                "type": None,
                "status": None,
                "attempts": None,
                "result": None,
                "error_name": None,
                "error_message": None,
                "next_retry_at": None,
                "wake_at": None,
            }
        out = dict(row)
        out["result"] = _decode(row["result"])
        return out

    # -- client operations: the engine's answer must be the model's ------------------------------------------

    def predict(
        self,
        kind: str,
        instance: str,
        *,
        workflow: str = "",
        params: Any = None,
        type: str = "",
        payload: Any = None,
        event_id: str | None = None,
        now: float = 0.0,
    ) -> Any:
        """The answer the engine must give to a client operation, applied to the model; NOT_JUDGED outside
        the workflows the model knows, and for instances it does not follow. Answers: the id (create), the created ids (batch: `params` holds the items as
        (id, params) pairs), the run number (restart), "ok" or an error code. Workflow names starting with
        "m-" that are no program stand for a workflow the engine does not know."""
        m = self.model
        if workflow not in m.workflows:
            return "WORKFLOW_NOT_FOUND" if workflow.startswith("m-") else NOT_JUDGED
        if instance in m.dropped or (instance in m.instances and m.instances[instance].workflow != workflow):
            m.partial.add(workflow)
            return NOT_JUDGED  # a workflow the model cannot follow, or an id it already judges in another one
        if kind == "event" and instance not in m.instances and workflow in m.partial:
            return NOT_JUDGED  # perhaps an instance the model never saw created
        if kind == "create":
            code = m.refuse_create(workflow, instance, params)
            if code is not None:
                return code
            m.create(workflow, instance, params, now)
            return instance
        if kind == "batch":
            items = list(params)
            if any(isinstance(i, tuple) and (i[0] in m.dropped or i[0] in m.instances and
                                             m.instances[i[0]].workflow != workflow) for i in items):
                m.partial.add(workflow)
                return NOT_JUDGED
            return m.create_batch(workflow, items, now)
        if kind == "event":
            # Rows are numbered max + 1 and never deleted: the id a new event must get.
            last = self.conn.execute("SELECT MAX(id) FROM workflow_event").fetchone()[0]
            outcome = m.send_event(instance, type, payload, event_id, now, row_id=(last or 0) + 1)
            return "ok" if outcome in ("sent", "duplicate") else outcome
        if not self.judged(instance):
            return NOT_JUDGED
        if kind == "pause":
            return m.pause(instance, self.in_flight(instance, now))
        if kind == "restart":
            return m.restart(instance)
        return getattr(m, kind)(instance)

    def answered(self, kind: str, instance: str, expected: Any, got: Any) -> None:
        """The engine's answer to an operation `predict` was asked about."""
        if expected is not NOT_JUDGED and got != expected:
            self.problems.append(
                f"property 10 (client) {kind} {instance}: the engine answered {got!r}, "
                f"the model expects {expected!r}"
            )

    def check_reads(self, client: Any, run: Callable[[Any], Any]) -> None:
        """Every read of the client API against the model: each judged instance's status and every run's
        history (steps in order, events with who consumed them), listings paged two at a time with and
        without a status filter, and the codes of bad reads. `run` drives one client coroutine."""

        def read(what: str, coro: Any, want: Any, shape: Callable[[Any], Any] = lambda r: r) -> None:
            try:
                got = shape(run(coro))
            except EngineError as exc:
                got = exc.code
            if got != want:
                self.problems.append(
                    f"property 10 (reads) {what}: the engine answered {got!r}, the model expects {want!r}"
                )

        m = self.model
        for inst in m.instances.values():
            wf, iid = inst.workflow, inst.instance_id
            read(
                f"status {iid}",
                client.status(wf, iid),
                (inst.status, inst.output, inst.error, inst.run, inst.pause_requested),
                _info_shape,
            )
            for run_number in range(1, inst.run + 1):
                steps = [
                    (key, s.type, s.status, s.attempts, s.result, s.error)
                    for (r, key), s in inst.steps.items()
                    if r == run_number
                ]
                events = [
                    (e.type, e.payload, e.consumed[1] if e.consumed else None)
                    for e in m.events
                    if e.instance == iid and e.run == run_number
                ]
                read(
                    f"history {iid} run {run_number}",
                    client.history(wf, iid, run_number),
                    (steps, events),
                    _history_shape,
                )
            read(
                f"history {iid} run {inst.run + 1}", client.history(wf, iid, inst.run + 1), "INVALID_ARGUMENT"
            )
        for wf in sorted({i.workflow for i in m.instances.values()}):
            mine = [i for i in m.instances.values() if i.workflow == wf]
            if wf not in m.partial:  # else the model knows only some of its instances
                for status in (None, *sorted({i.status for i in mine})):
                    want = [i.instance_id for i in mine if status is None or i.status == status]
                    read(f"list {wf} status={status}", _pages(client, wf, status), want)
            read(f"list {wf} with a bad cursor", client.list_instances(wf, cursor="x"), "INVALID_CURSOR")
            read(f"list {wf} with limit 0", client.list_instances(wf, limit=0), "INVALID_ARGUMENT")
            read(f"list {wf} status=bogus", client.list_instances(wf, status="bogus"), "INVALID_ARGUMENT")
            read(f"status of a missing {wf}", client.status(wf, "missing-1"), "INSTANCE_NOT_FOUND")
        read("status in an unknown workflow", client.status("m-missing", "missing-1"), "WORKFLOW_NOT_FOUND")

    def in_flight(self, instance: str, now: float) -> bool:
        """Whether a runner holds a live lease on the instance: timing the model does not track."""
        inst = self.model.instances.get(instance)
        return inst is not None and (
            self.conn.execute(
                "SELECT 1 FROM workflow_task WHERE workflow_name = ? AND instance_id = ? "
                "AND status = 'processing' AND locked_until >= ?",
                (inst.workflow, instance, now),
            ).fetchone()
            is not None
        )

    # -- the whole observable state -----------------------------------------------------------------------

    def observe(self) -> dict[str, Any]:
        """The engine's state of the judged instances, in the shape of `Model.snapshot()`."""
        conn = self.conn
        judged = {(i.workflow, i.instance_id) for i in self.model.instances.values()}
        return {
            "instances": {
                r[0]: (r[1], r[2], r[3], _decode(r[4]), None if r[5] is None else (r[5], r[6]), bool(r[7]))
                for r in conn.execute(
                    "SELECT instance_id, workflow_name, status, run_number, output, error_name, "
                    "error_message, pause_requested FROM workflow_instance"
                )
                if (r[1], r[0]) in judged
            },
            "steps": {
                (r[0], r[1], r[2]): (r[3], r[4], r[5], _decode(r[6]), r[7], r[8], r[9])
                for r in conn.execute(
                    "SELECT instance_id, run_number, step_key, type, status, attempts, result, "
                    "error_name, wake_at, next_retry_at, workflow_name FROM workflow_step"
                )
                if (r[10], r[0]) in judged
            },
            "events": {
                r[0]: (r[1], r[2], r[3], _decode(r[4]), None if r[5] is None else (r[5], r[6]))
                for r in conn.execute(
                    "SELECT id, instance_id, run_number, type, payload, consumed_run, "
                    "consumed_by_step_key, workflow_name FROM workflow_event"
                )
                if (r[7], r[1]) in judged
            },
        }

    def disagreements(self, observed: dict[str, Any] | None = None) -> list[str]:
        """Where the engine's observable state differs from the model's (at most 8 lines)."""
        engine = observed if observed is not None else self.observe()
        out = []
        for table, want in self.model.snapshot().items():
            got = engine[table]
            for key in sorted(set(want) | set(got), key=repr):
                if want.get(key) != got.get(key):
                    out.append(
                        f"property 10 ({table}) {key}: engine {got.get(key)!r}, model {want.get(key)!r}"
                    )
        return out[:8]


__all__ = ["NOT_JUDGED", "Oracle"]
