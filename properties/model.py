"""A reference model of the engine's semantics (DESIGN §2), in plain Python: property 10's oracle.

No SQLite, no asyncio, no tasks or leases: only what a user of the engine can observe. Instances have a
status, a run number, an output or error, and per run a journal of steps (status, attempts, result, retry
and wake times); every instance has a buffer of events in send order, each consumed at most once.

The model runs in lock step with the engine. Client operations (create, send_event, pause, ...) are applied
to both, and the model predicts their outcome. Runner transitions (claim, step call, step commit, hand-back,
finish) happen in whatever order the scheduler chose, so the model does not predict *when* they happen; it
is told each one right after its transaction committed and decides whether that transition was allowed and
what the journal must look like after it. Agreement is then exact at every point, and at quiet points
(`due`) the model also says which instances the engine still owes progress.

The workflows are small generator *programs* yielding Do / Sleep / Wait requests, or ordinary workflow
functions the model runs itself against a step object of its own (`properties.workflows`). The simulator runs
the same workflows on the engine, so the model checks the engine's step semantics, not workflow logic. Timing facts are taken from the engine, each checked against the range the model allows: the wake
time a sleep or wait records on its first execution and a retry time (computed at some instant between the
claim, or the callback's return, and the commit), and whether a runner holds a live lease when `pause` is
called (leases are not modelled). What a callback did is told to the model by the adapter (`Attempt`): a
fault the simulator injects into a callback (a failure, a hang past its timeout) is a legal outcome of that
attempt, and the engine must record exactly it.
"""

from __future__ import annotations

import re
from typing import Any

from properties.programs import (
    MAX_EVENT_TYPE,
    NON_RETRYABLE,
    PROGRAMS,
    Do,
    Failed,
    Program,
    Refused,
    Request,
    Sleep,
    SleepUntil,
    TimedOut,
    Wait,
    call_error,
    received,
)
from properties.records import Attempt, EventState, InstanceState, Pending, StepState
from properties.state import TERMINAL
from properties.workflows import Ended, Unmodelable, WorkflowSpec, model_workflows, stored_form

EPS = 1e-6  # float slack for times computed as `now + seconds` on both sides
ID_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_:-]{0,127}$")  # DESIGN §2: instance and event ids
MAX_BATCH = 100


def _payload_error(value: Any) -> str | None:
    """NOT_JSON_SERIALIZABLE or PAYLOAD_TOO_LARGE for a value the engine would refuse to store, else None."""
    return stored_form(value)[0]


def _timeout_message(key: str, attempt: int, timeout: float) -> str:
    return f"step {key!r} attempt {attempt} timed out after {timeout:g} s"


class Model:
    """Instances and events as the engine's users see them; `violations` lists every disagreement."""

    def __init__(self, workflows: dict[str, WorkflowSpec] | None = None) -> None:
        self.workflows = workflows if workflows is not None else model_workflows()
        self.instances: dict[str, InstanceState] = {}  # instance ids are unique across workflows here
        self.events: list[EventState] = []
        self.violations: list[str] = []
        self.dropped: dict[str, str] = {}  # instance -> why the model cannot follow its workflow
        # Workflows the model knows only in part (an instance let go, created with an id the engine picked, or
        # sharing its id with another workflow): their listings and events to unknown ids are not judged.
        self.partial: set[str] = set()

    def _fail(self, message: str) -> None:
        self.violations.append(message)

    # -- client operations: each returns the outcome the engine must report --------------------------------

    def create(self, workflow: str, instance_id: str, params: Any, now: float = 0.0) -> bool:
        """Create a queued instance; an existing id is left alone (idempotent). True if created."""
        if instance_id in self.instances:
            return False
        self.instances[instance_id] = InstanceState(workflow, instance_id, params, created_at=now)
        return True

    def refuse_create(self, workflow: str, instance_id: Any, params: Any) -> str | None:
        """The code a create of these (of a known workflow) is refused with, checked in the engine's order:
        the id, the params schema, then the encoded size of the params as stored."""
        if not isinstance(instance_id, str) or not ID_PATTERN.match(instance_id):
            return "INVALID_ID"
        spec = self.workflows[workflow]
        if not spec.valid(params):
            return "INVALID_PARAMS"
        return _payload_error(spec.stored(params))

    def create_batch(self, workflow: str, items: list[Any], now: float = 0.0) -> list[str] | str:
        """The ids a batch of (id, params) items creates (existing ids and repeats skipped), or the code of its
        first bad item (anything but a pair is not a mapping: INVALID_ARGUMENT) and nothing created (one
        invalid item rejects the whole batch)."""
        if len(items) > MAX_BATCH:
            return "BATCH_TOO_LARGE"
        for item in items:
            if not isinstance(item, tuple):
                return "INVALID_ARGUMENT"
            code = self.refuse_create(workflow, *item)
            if code is not None:
                return code
        return [iid for iid, params in items if self.create(workflow, iid, params, now)]

    def send_event(self, instance_id: str, type: str, payload: Any, event_id: str | None, now: float,
                   row_id: int | None = None) -> str:
        """'sent', 'duplicate' (same id, same instance: a no-op even once ended) or an error code. `row_id` is
        the id the event's row must get (other workflows may share the table); by default the next one."""
        if not ID_PATTERN.match(instance_id):
            return "INVALID_ID"
        if not isinstance(type, str) or not type:
            return "INVALID_ARGUMENT"
        if len(type) > MAX_EVENT_TYPE:
            return "NAME_TOO_LONG"
        if event_id is not None and not ID_PATTERN.match(event_id):
            return "INVALID_ID"
        code = _payload_error(payload)
        if code is not None:
            return code
        if instance_id not in self.instances:
            return "INSTANCE_NOT_FOUND"
        inst = self.instances[instance_id]
        if event_id is not None:
            for ev in self.events:
                if ev.workflow == inst.workflow and ev.event_id == event_id:
                    return "duplicate" if ev.instance == instance_id else "EVENT_ID_CONFLICT"
        if inst.status in TERMINAL:
            return "INSTANCE_TERMINAL"
        # Stored as the engine stores it (tuples become lists, keys strings): what a wait hands back.
        self.events.append(EventState(row_id if row_id is not None else len(self.events) + 1, inst.workflow,
                                      instance_id, type, stored_form(payload)[1], event_id, now, run=inst.run))
        return "sent"

    def pause(self, instance_id: str, in_flight: bool) -> str:
        """Paused at once, or requested for the next step boundary while a runner holds the instance."""
        inst = self.instances[instance_id]
        if inst.status in TERMINAL:
            return "INSTANCE_TERMINAL"
        if inst.status != "paused":
            if in_flight:
                inst.pause_requested = True
            else:
                inst.status, inst.pause_requested = "paused", False
        return "ok"

    def resume(self, instance_id: str) -> str:
        """Paused -> queued; a pending pause request is cancelled; anything else is a no-op."""
        inst = self.instances[instance_id]
        if inst.status in TERMINAL:
            return "INSTANCE_TERMINAL"
        if inst.status == "paused":
            inst.status = "queued"
        inst.pause_requested = False
        return "ok"

    def terminate(self, instance_id: str) -> str:
        inst = self.instances[instance_id]
        if inst.status in TERMINAL:
            return "INSTANCE_TERMINAL"
        inst.status, inst.pause_requested = "terminated", False
        return "ok"

    def restart(self, instance_id: str) -> int:
        """A new run from any status; older runs' journals stay, and so do their unconsumed events, which the
        new run never receives (DESIGN §2: events belong to the run current when they were sent)."""
        inst = self.instances[instance_id]
        inst.run += 1
        inst.status, inst.output, inst.error, inst.pause_requested = "queued", None, None, False
        return inst.run

    # -- replay ------------------------------------------------------------------------------------------

    def replay(self, inst: InstanceState) -> Pending:
        """Run the program against the current run's journal, as the engine does on every resume. Raises
        Unmodelable for a workflow the model cannot follow (see `follow`)."""
        version = (inst.run, inst.journal_version, len(inst.steps))
        kept = inst.replayed
        if kept is not None and kept[0] == version:
            return kept[1]
        pending = self._replay(inst)
        inst.replayed = (version, pending)
        return pending

    def _replay(self, inst: InstanceState) -> Pending:
        gen = self.workflows[inst.workflow].program(inst.params, inst.instance_id, inst.created_at, inst.run)
        try:
            return self._run(inst, gen)
        finally:
            gen.close()  # now, not whenever the collector gets to it: a workflow's `finally` runs at a fixed point

    def _run(self, inst: InstanceState, gen: Any) -> Pending:
        journal = [key for (run, key) in inst.steps if run == inst.run]  # in position order
        seen: dict[str, int] = {}
        send: Any = None
        throw: BaseException | None = None
        position = 0
        while True:
            try:
                request = gen.throw(throw) if throw is not None else gen.send(send)
            except StopIteration as stop:
                return Pending(output=stop.value)
            except Failed as failed:
                return Pending(error=(failed.error_name, failed.message))
            except TimedOut as timed_out:
                return Pending(error=("WaitForEventTimeout", str(timed_out)))
            except Ended as ended:
                return Pending(error=(ended.name, ended.message))
            refused = call_error(request)
            if refused is not None and not refused[1]:
                send, throw = None, Refused(refused[0])
                continue
            base = f"{request.type}:{request.name}"
            seen[base] = seen.get(base, 0) + 1
            key = base if seen[base] == 1 else f"{base}#{seen[base]}"
            if refused is not None:  # refused after keying: the key is used up, nothing is written
                send, throw = None, Refused(refused[0])
                continue
            if position < len(journal) and journal[position] != key:
                # DESIGN §2: a replay that meets another step than history records at that position.
                return Pending(error=("NondeterminismError", None))
            position += 1
            step = inst.steps.get((inst.run, key))
            send, throw = None, None
            if step is None or step.status == "waiting":
                return Pending(key=key, request=request, step=step)
            if step.status == "completed":
                send = step.result
            elif isinstance(request, Do):
                throw = Failed(step.error or "", step.message or "", step.attempts, key)
            elif isinstance(request, Wait):
                throw = TimedOut(f"no {request.event_type!r} event before the deadline")
            else:  # a sleep never errors
                return Pending(key=key, request=request, step=step)

    def follow(self, inst: InstanceState) -> Pending | None:
        """`replay`, or None once the model has let the instance go because it cannot follow its workflow
        (an `Unmodelable` one): from then on the instance, and its events, are left to the generic
        properties."""
        try:
            return self.replay(inst)
        except Unmodelable as exc:
            # Its events stay (their ids still conflict with later sends) but leave the comparisons.
            self.instances.pop(inst.instance_id, None)
            self.dropped[inst.instance_id] = str(exc)
            self.partial.add(inst.workflow)
            return None

    def acceptable_event(self, inst: InstanceState, request: Wait, deadline: float) -> EventState | None:
        """The oldest unconsumed event this wait accepts (type and every `match` field), sent to the current
        run at or before the deadline (property 5)."""
        for ev in self.events:
            if ev.instance == inst.instance_id and ev.run == inst.run and ev.consumed is None \
                    and ev.created_at <= deadline and request.accepts(ev.type, ev.payload):
                return ev
        return None

    def due(self, instance_id: str, now: float) -> str | None:
        """Why the engine owes this instance progress at `now` (it is not blocked on the future), or None."""
        inst = self.instances[instance_id]
        if inst.status in TERMINAL or inst.status == "paused":
            return None
        p = self.follow(inst)
        if p is None:
            return None
        if p.key is None:
            return "its run can finish"
        step, request = p.step, p.request
        if step is None:
            return f"{p.key} has not started"
        if isinstance(request, Do) and step.next_retry_at is not None and step.next_retry_at <= now:
            return f"{p.key}'s retry was due at {step.next_retry_at}"
        if isinstance(request, (Sleep, SleepUntil)) and step.wake_at is not None and step.wake_at <= now:
            return f"{p.key} was due to wake at {step.wake_at}"
        if isinstance(request, Wait) and step.wake_at is not None:
            if now >= step.wake_at:
                return f"{p.key} timed out at {step.wake_at}"
            ev = self.acceptable_event(inst, request, step.wake_at)
            if ev is not None:
                return f"{p.key} can consume event {ev.id}"
        return None

    # -- runner transitions (told after they committed) ---------------------------------------------------

    def _live(self, instance_id: str, run: int, what: str) -> InstanceState | None:
        inst = self.instances.get(instance_id)
        if inst is None:
            self._fail(f"{what} for unknown instance {instance_id}")
            return None
        if run != inst.run:
            self._fail(f"{what} into run {run} of {instance_id}, whose current run is {inst.run}")
            return None
        if inst.status in TERMINAL or inst.status == "paused":
            self._fail(f"{what} while {instance_id} is {inst.status}")
            return None
        return inst

    def on_claim(self, instance_id: str, run: int, t: float) -> None:
        inst = self.instances.get(instance_id)
        if inst is None or run != inst.run:
            self._fail(f"claimed a task of run {run} of {instance_id}, which is not its current run")
            return
        if inst.status not in TERMINAL and inst.status != "paused":
            inst.status, inst.claimed_at = "running", t

    def on_call(self, instance_id: str, run: int, key: str, attempt: int, t: float) -> None:
        """A step callback is about to run: it must be the pending Do, at the next attempt, not early."""
        inst = self._live(instance_id, run, f"callback of {key}")
        if inst is None:
            return
        p = self.follow(inst)
        if p is None:
            return
        if p.key != key or not isinstance(p.request, Do):
            self._fail(f"callback of {key} ran but {instance_id}'s pending step is {p.key}")
            return
        recorded = p.step.attempts if p.step is not None else 0
        if attempt != recorded + 1:
            self._fail(f"{key} of {instance_id} ran attempt {attempt} after {recorded} recorded attempts")
        if p.step is not None and p.step.next_retry_at is not None and t < p.step.next_retry_at - EPS:
            self._fail(f"{key} of {instance_id} retried at {t}, before its retry time {p.step.next_retry_at}")

    def on_commit(self, instance_id: str, run: int, key: str, row: dict[str, Any], event: int | None,
                  handed_back: bool, paused: bool, t: float, attempt: Attempt | None = None) -> None:
        """A step row was committed at `t`; `row` is the engine's row right after the transaction and
        `attempt` what the callback of a Do did (for the committing runner)."""
        inst = self._live(instance_id, run, f"commit of {key}")
        if inst is None:
            return
        p = self.follow(inst)
        if p is None:
            return
        if p.key != key:
            self._fail(f"{instance_id} committed {key} but its pending step is {p.key or 'none (run is done)'}")
            return
        expected, consumed = self._next_state(inst, p, row, t, attempt)
        if expected is None:
            return
        got = (row["status"], row["attempts"], row["result"], row["error_name"], row["next_retry_at"],
               row["wake_at"])
        want = (expected.status, expected.attempts, expected.result, expected.error, expected.next_retry_at,
                expected.wake_at)
        if got != want:
            self._fail(f"{key} of {instance_id} committed (status, attempts, result, error, retry_at, wake_at) = "
                       f"{got}, the model expects {want}")
        if expected.message is not None and row.get("error_message", expected.message) != expected.message:
            self._fail(f"{key} of {instance_id} recorded error message {row.get('error_message')!r}, the model "
                       f"expects {expected.message!r}")
        if event != (consumed.id if consumed else None):
            self._fail(f"{key} of {instance_id} consumed event {event}, the model expects "
                       f"{consumed.id if consumed else None}")
        inst.steps[(run, key)] = expected
        inst.journal_version += 1
        if consumed is not None:
            consumed.consumed = (run, key)
        # A zero-delay retry goes on at once; every other wait is a hand-back (decided when the runner read its
        # clock for the retry time, which may be before the commit landed).
        goes_on = expected.status != "waiting" or expected.at_once
        if handed_back == goes_on:
            self._fail(f"{key} of {instance_id} is {expected.status} but the task was "
                       f"{'handed back' if handed_back else 'kept'}")
        self._boundary(inst, paused, "waiting" if handed_back else "running")

    def _next_state(self, inst: InstanceState, p: Pending, row: dict[str, Any], t: float,
                    attempt: Attempt | None) -> tuple[StepState | None, EventState | None]:
        request = p.request
        if isinstance(request, Do):
            return self._do_state(inst, p, request, row, t, attempt), None
        assert isinstance(request, (Sleep, SleepUntil, Wait))
        wake = self._wake(inst, p, request, row, t)
        if wake is None:
            return None, None
        # The runner read its clock at some instant in [claimed_at, t]: what was due then is ambiguous
        # only when the wake time falls inside that window.
        due_surely, due_maybe = wake <= inst.claimed_at + EPS, wake <= t + EPS
        if isinstance(request, (Sleep, SleepUntil)):
            if p.step is not None:
                if not due_maybe:
                    self._fail(f"{p.key} of {inst.instance_id} completed at {t}, before its wake time {wake}")
                return StepState(request.type, "completed", wake_at=wake), None
            status = "completed" if due_surely else "waiting" if not due_maybe else row["status"]
            return StepState(request.type, status, wake_at=wake), None
        ev = self.acceptable_event(inst, request, wake)
        if ev is not None:
            return StepState("wait_for_event", "completed", result=received(ev.type, ev.payload, ev.created_at),
                             wake_at=wake), ev
        status = "errored" if due_surely else "waiting" if not due_maybe else row["status"]
        if status == "errored":
            return StepState("wait_for_event", "errored", error="WaitForEventTimeout", wake_at=wake,
                             message=f"no {request.event_type!r} event before the deadline"), None
        return StepState("wait_for_event", "waiting", wake_at=wake), None

    def _wake(self, inst: InstanceState, p: Pending, request: Sleep | SleepUntil | Wait, row: dict[str, Any],
              t: float) -> float | None:
        """The wake time or deadline: the journal's after the first execution; on it, the engine's, checked."""
        if p.step is not None:
            assert p.step.wake_at is not None
            return p.step.wake_at
        wake = row["wake_at"]
        if isinstance(request, SleepUntil):
            low = high = request.at
        else:
            span = request.seconds if isinstance(request, Sleep) else request.timeout
            low, high = inst.claimed_at + span, t + span
        if wake is None or not low - EPS <= wake <= high + EPS:
            self._fail(f"{p.key} of {inst.instance_id} recorded wake time {wake}, outside [{low}, {high}]")
            return None
        return float(wake)

    def _do_state(self, inst: InstanceState, p: Pending, request: Do, row: dict[str, Any], t: float,
                  attempt: Attempt | None) -> StepState | None:
        key = p.key
        assert key is not None
        n = (p.step.attempts if p.step else 0) + 1
        final = False
        if attempt is None and request.opaque:
            # A user's callback nobody reported on (its report was lost with a crash): what it did is only
            # known from the row, which must still follow every other rule.
            ok = row["status"] == "completed"
            value = row["result"] if ok else row.get("error_message")
            error, after = row["error_name"] or "RuntimeError", inst.claimed_at
            final = row["status"] == "errored" and n < request.limit + 1
        elif attempt is None:
            ok, value = request.outcome(n)  # the machine's callbacks are pure: no fault, no timeout
            error, after = "RuntimeError", t
        elif row["error_name"] == "StepTimeoutError" and t >= attempt.start + attempt.timeout - EPS:
            ok, value = False, _timeout_message(key, n, attempt.timeout)
            error, after = "StepTimeoutError", attempt.start + attempt.timeout
        elif attempt.end is None:
            self._fail(f"{key} of {inst.instance_id} committed attempt {n} at {t} though its callback, started "
                       f"at {attempt.start} with a {attempt.timeout:g} s timeout, had not returned")
            return None
        else:
            ok, value, error, after, final = attempt.ok, attempt.value, attempt.error, attempt.end, attempt.final
            if attempt.end > attempt.start + attempt.timeout + EPS:
                # DESIGN §2: an attempt that outlives its timeout fails with StepTimeoutError; its late result
                # is discarded, never committed.
                self._fail(f"{key} of {inst.instance_id} committed attempt {n}'s {'result' if ok else 'error'}, "
                           f"though the callback ran {attempt.end - attempt.start:g} s past a "
                           f"{attempt.timeout:g} s timeout")
                return None
        code, stored = stored_form(value) if ok else (None, None)
        if code is not None:
            # A result that is not JSON or too large fails the step for good: a retry returns the same value.
            error = "NotSerializable" if code == "NOT_JSON_SERIALIZABLE" else "PayloadTooLarge"
            return StepState("do", "errored", n, error=error, message=row.get("error_message"))
        if ok:
            return StepState("do", "completed", n, result=stored)
        if n >= request.limit + 1 or error in NON_RETRYABLE or final:
            return StepState("do", "errored", n, error=error, message=value)
        delay = request.delay_after(n)
        retry_at = row["next_retry_at"]
        # Read from the runner's clock after the callback returned (or timed out), before the commit.
        if retry_at is None or not after + delay - EPS <= retry_at <= t + delay + EPS:
            self._fail(f"{key} of {inst.instance_id} attempt {n} set its retry for {retry_at}, outside "
                       f"[{after + delay}, {t + delay}] ({request.backoff} backoff, delay {request.delay:g} s)")
            return None
        return StepState("do", "waiting", n, error=error, message=value, next_retry_at=retry_at,
                         at_once=delay <= 0)

    def on_suspend(self, instance_id: str, run: int, paused: bool, t: float) -> None:
        """The runner handed the task back without a step write: its pending step was not due yet."""
        inst = self._live(instance_id, run, "hand-back")
        if inst is None:
            return
        p = self.follow(inst)
        if p is None:
            return
        step = p.step
        due_at = None if step is None else (step.next_retry_at if isinstance(p.request, Do) else step.wake_at)
        if step is None or not isinstance(p.request, (Do, Sleep, SleepUntil)) or due_at is None \
                or due_at <= inst.claimed_at:
            self._fail(f"{instance_id} was handed back at {t} though {p.key or 'its end'} was due")
        self._boundary(inst, paused, "waiting")

    def on_release(self, instance_id: str, run: int, paused: bool, t: float) -> None:
        """A draining runner handed the task back at a step boundary, due at once: queued again, or paused
        if a pause was requested."""
        inst = self._live(instance_id, run, "release")
        if inst is not None:
            self._boundary(inst, paused, "queued")

    def _boundary(self, inst: InstanceState, paused: bool, status: str) -> None:
        """A step boundary: a requested pause takes effect here, and only a requested one."""
        if paused != inst.pause_requested:
            self._fail(f"{inst.instance_id} {'paused' if paused else 'did not pause'} at a step boundary, "
                       f"pause requested: {inst.pause_requested}")
        if paused:
            inst.status, inst.pause_requested = "paused", False
        else:
            inst.status = status

    def on_finish(self, instance_id: str, run: int, status: str, output: Any, error: tuple[str, str] | None,
                  t: float) -> None:
        """The run ended: its program must be at its end, with this output or uncaught error."""
        inst = self._live(instance_id, run, f"finish ({status})")
        if inst is None:
            return
        p = self.follow(inst)
        if p is None:
            return
        if p.key is not None:
            self._fail(f"{instance_id} finished {status} at {t} but {p.key} is still pending")
            return
        ending, value = p.error, p.output
        if ending is None:
            ending, value = self.workflows[inst.workflow].output(p.output)
        code, stored = stored_form(value) if ending is None else (None, None)
        if code is not None:  # an output the engine cannot store errors the run (the message is the engine's)
            ending = ("NotSerializable" if code == "NOT_JSON_SERIALIZABLE" else "PayloadTooLarge", None)
        if ending is not None and ending[1] is None:  # only the engine knows the wording
            ending = (ending[0], error[1] if error is not None and error[0] == ending[0] else "")
        want = ("errored", None, ending) if ending is not None else ("complete", stored, None)
        if (status, output, error) != want:
            self._fail(f"{instance_id} finished with (status, output, error) = {(status, output, error)}, "
                       f"the model expects {want}")
        inst.status, inst.output, inst.error = want
        inst.pause_requested = False

    # -- what agreement compares ---------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Statuses, outputs, errors, journals and consumed events, in the shape `Oracle.observe` reads."""
        return {
            "instances": {i.instance_id: (i.workflow, i.status, i.run, i.output, i.error, i.pause_requested)
                          for i in self.instances.values()},
            "steps": {(i.instance_id, run, key): (s.type, s.status, s.attempts, s.result, s.error, s.wake_at,
                                                  s.next_retry_at)
                      for i in self.instances.values() for (run, key), s in i.steps.items()},
            "events": {e.id: (e.instance, e.run, e.type, e.payload, e.consumed) for e in self.events
                       if e.instance in self.instances},
        }


__all__ = ["EPS", "Attempt", "Do", "Failed", "Model", "PROGRAMS", "Pending", "Program", "Refused", "Request",
           "Sleep", "SleepUntil", "StepState", "TimedOut", "Wait"]
