"""Scenario expectations: status, output, error, history, step call counts, trace predicates (DESIGN §7).

Each raises `Mismatch(expected, found)` when it does not hold; the scenario runner turns that into a report
naming the scenario line. Times are seconds since the scenario started, like `advance_to`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from engine import History, StepRecord
from sim.scenario.errors import Mismatch
from sim.scenario.run import ScenarioRun
from sim.scenario.steps import Step, client_step, instance_id, label, resolve, where, workflow_name
from sim.scenario.trace import TraceView

__all__ = [
    "expect", "expect_calls", "expect_error", "expect_history", "expect_instances", "expect_output",
    "expect_status", "expect_trace", "expect_value",
]

_DISRUPTIVE = ("crash", "lease_expiry")


def _expectation(text: str, at: str, check: Callable[[ScenarioRun], None]) -> Step:
    # Inside concurrent() an expectation is one move of its branch, checked when the schedule reaches it.
    return client_step(text, at, check)


def _status_line(ctx: ScenarioRun, iid: str, workflow: str | None) -> str:
    info = ctx.status(iid, workflow=workflow)
    text = f"{info.status.value} (run {info.run_number}"
    if info.current_step:
        text += f", last step {info.current_step}"
    if info.pause_requested:
        text += ", pause requested"
    if info.error is not None:
        text += f", error {info.error.name}: {info.error.message}"
    return text + ")"


def expect_status(instance: Any, status: Any, *, workflow: str | None = None) -> Step:
    """The instance's status is `status` ("waiting", "complete", ...)."""

    def check(ctx: ScenarioRun) -> None:
        iid = instance_id(ctx, instance)
        want = str(resolve(ctx, status))
        info = ctx.status(iid, workflow=workflow)
        if info.status.value != want:
            raise Mismatch(f"{iid} to be {want}", _status_line(ctx, iid, workflow))

    return _expectation(label("expect_status", instance, status), where(), check)


def expect_output(instance: Any, output: Any, *, workflow: str | None = None) -> Step:
    """The instance completed with exactly this output."""

    def check(ctx: ScenarioRun) -> None:
        iid = instance_id(ctx, instance)
        want = resolve(ctx, output)
        info = ctx.status(iid, workflow=workflow)
        if info.status.value != "complete" or info.output != want:
            raise Mismatch(f"{iid} complete with output {want!r}",
                           f"{_status_line(ctx, iid, workflow)} with output {info.output!r}")

    return _expectation(label("expect_output", instance, output), where(), check)


def expect_error(instance: Any, name: str, message: str | None = None, *, workflow: str | None = None) -> Step:
    """The instance is errored with this error name (and a message containing `message`, if given)."""

    def check(ctx: ScenarioRun) -> None:
        iid = instance_id(ctx, instance)
        info = ctx.status(iid, workflow=workflow)
        err = info.error
        ok = info.status.value == "errored" and err is not None and err.name == name and (
            message is None or message in err.message)
        if not ok:
            want = f"{iid} errored with {name}" + (f" mentioning {message!r}" if message else "")
            raise Mismatch(want, _status_line(ctx, iid, workflow))

    return _expectation(label("expect_error", instance, name, message), where(), check)


def _step_field(ctx: ScenarioRun, step: StepRecord, field: str) -> Any:
    if field in ("wake_at", "next_retry_at"):
        value = getattr(step, field)
        return None if value is None else round(value.timestamp() - ctx.t0, 6)
    if field == "error":
        return None if step.error is None else step.error.name
    if field == "error_message":
        return None if step.error is None else step.error.message
    if not hasattr(step, field):
        raise Mismatch(f"a StepRecord field {field!r}", "no such field")
    return getattr(step, field)


def _show_steps(ctx: ScenarioRun, history: History) -> str:
    if not history.steps:
        return "no steps"
    rows = []
    for s in history.steps:
        text = f"{s.key} {s.status} attempts={s.attempts}"
        if s.next_retry_at is not None:
            text += f" next_retry_at={_step_field(ctx, s, 'next_retry_at'):g}"
        if s.wake_at is not None:
            text += f" wake_at={_step_field(ctx, s, 'wake_at'):g}"
        if s.error is not None:
            text += f" error={s.error.name}"
        if s.result is not None:
            text += f" result={s.result!r}"
        rows.append(text)
    return "\n              ".join(rows)


def expect_history(instance: Any, *, keys: Sequence[str] | None = None,
                   steps: Mapping[str, Mapping[str, Any] | None] | None = None,
                   events: Sequence[Mapping[str, Any]] | None = None, run: int | None = None,
                   workflow: str | None = None) -> Step:
    """The instance's history (current run, or run number `run`) is as described.

    `keys`: the exact step keys in execution order. `steps`: per key, fields that must match (`status`,
    `type`, `attempts`, `max_attempts`, `result`, `error` (name), `error_message` (substring), `wake_at`,
    `next_retry_at` (scenario times)); `None` instead of a dict means "no such step". `events`: the
    instance's events in send order, each a dict of fields to match (`type`, `payload`, `consumed_by`, `id`).
    """

    def check(ctx: ScenarioRun) -> None:
        iid = instance_id(ctx, instance)
        history = ctx.history(iid, run=run, workflow=workflow)
        run_text = f"run {history.run_number} of {iid}"
        if keys is not None and [s.key for s in history.steps] != list(keys):
            raise Mismatch(f"{run_text} to have steps {list(keys)}", _show_steps(ctx, history))
        by_key = {s.key: s for s in history.steps}
        for key, fields in (steps or {}).items():
            record = by_key.get(key)
            if fields is None:
                if record is not None:
                    raise Mismatch(f"{run_text} to have no step {key}", _show_steps(ctx, history))
                continue
            if record is None:
                raise Mismatch(f"{run_text} to have a step {key}", _show_steps(ctx, history))
            for field, want in fields.items():
                got = _step_field(ctx, record, field)
                want = resolve(ctx, want)
                ok = (want in (got or "")) if field == "error_message" else got == want
                if not ok:
                    raise Mismatch(f"{key}.{field} == {want!r}", f"{got!r}; the run's steps:\n              "
                                   + _show_steps(ctx, history))
        if events is not None:
            found = [{"id": e.id, "type": e.type, "payload": e.payload, "consumed_by": e.consumed_by}
                     for e in history.events]
            wanted = [dict(resolve(ctx, dict(e))) for e in events]
            ok = len(found) == len(wanted) and all(
                all(f.get(k) == v for k, v in w.items()) for f, w in zip(found, wanted, strict=True))
            if not ok:
                raise Mismatch(f"events of {iid} to be {wanted}", repr(found))

    return _expectation(label("expect_history", instance, keys=keys, steps=steps, events=events, run=run),
                        where(), check)


def expect_calls(step: str, times: int, *, instance: Any = None, run: int | None = None) -> Step:
    """A step's callback ran exactly `times` times (counted from the trace; `step` is a key or a `do` name).

    Under an injected crash or lease expiry (`--seeds` with `tolerates=["crash", ...]`) a callback may
    legitimately run again (DESIGN §6 P1), so there the count must be at least `times`.
    """
    key = step if ":" in step else f"do:{step}"

    def check(ctx: ScenarioRun) -> None:
        filters: dict[str, Any] = {"key": key}
        if instance is not None:
            filters["instance"] = instance_id(ctx, instance)
        if run is not None:
            filters["run"] = run
        calls = ctx.trace.count("step_call", **filters)
        relaxed = any(f.split()[0] in _DISRUPTIVE for f in ctx.injected)
        if calls != times and not (relaxed and calls >= times):
            where_text = "" if instance is None else f" for {filters['instance']}"
            want = f"{key}{where_text} to be called {'at least ' if relaxed else ''}{times} time(s)"
            raise Mismatch(want, f"{calls} call(s)")

    return _expectation(label("expect_calls", step, times, instance=instance, run=run), where(), check)


def expect_trace(predicate: Callable[[TraceView], Any], description: str) -> Step:
    """A predicate over the trace so far holds, e.g. "runner b claimed after runner a's lease expired"."""

    def check(ctx: ScenarioRun) -> None:
        try:
            ok = predicate(ctx.trace)
        except (KeyError, AttributeError, TypeError, IndexError) as exc:
            raise Mismatch(description, f"the predicate failed: {type(exc).__name__}: {exc}") from None
        if not ok:
            raise Mismatch(description, f"the trace does not show it (predicate returned {ok!r})")

    return _expectation(f"expect_trace({description!r})", where(), check)


def expect_value(name: str, value: Any) -> Step:
    """The value saved as `name` equals `value`."""

    def check(ctx: ScenarioRun) -> None:
        want = resolve(ctx, value)
        if ctx[name] != want:
            raise Mismatch(f"{name} == {want!r}", repr(ctx[name]))

    return _expectation(label("expect_value", name, value), where(), check)


def expect_instances(workflow: Any, ids: Sequence[str]) -> Step:
    """Exactly these instances of the workflow exist, in creation order."""
    wf = workflow_name(workflow)

    def check(ctx: ScenarioRun) -> None:
        page = ctx.conn.execute("SELECT instance_id FROM workflow_instance WHERE workflow_name = ? ORDER BY seq",
                                (wf,)).fetchall()
        found = [r[0] for r in page]
        if found != list(resolve(ctx, list(ids))):
            raise Mismatch(f"instances of {wf} to be {list(ids)}", repr(found))

    return _expectation(label("expect_instances", wf, ids), where(), check)


def expect(predicate: Callable[[ScenarioRun], Any], description: str) -> Step:
    """Any other check, as a predicate of the context (an AssertionError inside counts as a mismatch)."""

    def check(ctx: ScenarioRun) -> None:
        try:
            ok = predicate(ctx)
        except AssertionError as exc:
            raise Mismatch(description, f"assertion failed: {exc}") from None
        if not ok:
            raise Mismatch(description, f"predicate returned {ok!r}")

    return _expectation(f"expect({description!r})", where(), check)
