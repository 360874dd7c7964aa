"""Semantic mutants: engine bugs that change what a user observes, one per rule of the reference model.

The safety mutants (`sim.zoo.mutants`) break leases, fencing and liveness; these break DESIGN §2's step
semantics — a retry time, which event a wait gets, a key, a StepContext field — and no generic property can
see them. Each is caught only because the model judges every search (property 10: `properties.oracle`), and
the gate (tests/zoo/test_zoo_gate.py) shows each is caught by a seeded search, not by an example test.
"""

from __future__ import annotations

import attrs

import engine._execution as execution
import engine._records as records
import engine._runner as runner
import engine._txn as txn
import engine._step as step
from sim.zoo.patching import Patch, rewrite
from sim.world.workload import Op
from sim.world.workflows import QuoteParams
from sim.zoo.settings import Setting, ZooMutant, mutant_profile

# Every instance runs a random step script (the model judges all of them), with the faults that put callbacks
# and commits in doubt: failures and hangs inside callbacks, crashes, unknown commit outcomes, lifecycle
# calls.
SCRIPTS = Setting(
    attrs.evolve(
        mutant_profile(
            "scripts",
            step_raise=0.05,
            step_hang=0.02,
            crash=0.01,
            commit_unknown=0.01,
            lifecycle=0.1,
            duplicate_event=0.2,
            late_event=0.1,
        ),
        scripts=1.0,
        client_rate=0.3,
    )
)


# Scripts under clock jumps: a callback's end and its timeout timer become ready in the same instant.
JUMPS = Setting(
    attrs.evolve(
        mutant_profile("jumping-scripts", clock_jump=0.2, step_raise=0.05),
        scripts=1.0,
    )
)


def _quotes() -> list[Op]:
    """Instances of the workflow with schemas on both ends: params as dicts and attrs instances, some
    refused; outputs, some over what the output schema allows."""
    ops = []
    for i, (sku, quantity) in enumerate((("nut", 1), ("bolt", 4), ("bolt", 1), ("nut", 0), ("bolt", 4))):
        given = QuoteParams(sku, quantity) if i % 2 and quantity > 0 else {"sku": sku, "quantity": quantity}
        ops.append(Op(kind="create", workflow="quote-workflow", instance_id=f"q{i}", params=given))
    return ops


QUOTES = Setting(mutant_profile("quotes", crash=0.02), _quotes)


# Scripts with no faults at all: any delay in taking up due work is the engine's (P12).
CALM_SCRIPTS = Setting(attrs.evolve(mutant_profile("calm-scripts"), scripts=1.0))


def _linear_backoff(p: Patch) -> None:
    rewrite(
        p,
        records.Retries,
        "delay_after",
        ("return self.delay * attempt", "return self.delay * (attempt + 1)"),
    )


def _exponential_backoff(p: Patch) -> None:
    rewrite(p, records.Retries, "delay_after", ("2 ** (attempt - 1)", "2 ** attempt"))


def _match_any_field(p: Patch) -> None:
    rewrite(p, txn, "_first_event", ("all(payload.get(k) == v", "any(payload.get(k) == v"))


def _match_ignored(p: Patch) -> None:
    rewrite(p, txn, "_first_event", ("if match is None:", "if True:"))


def _deadline_exclusive(p: Patch) -> None:
    rewrite(p, txn, "_first_event", ("created_at <= ?", "created_at < ?"))


def _received_at_delivery(p: Patch) -> None:
    rewrite(p, txn, "wait_event_txn", ('sent = to_datetime(event["created_at"])', "sent = to_datetime(now)"))


def _sleep_until_late(p: Patch) -> None:
    rewrite(p, step.WorkflowStep, "sleep_until", ("lambda now: target", "lambda now: target + 1"))


def _context_attempt(p: Patch) -> None:
    rewrite(
        p, step.WorkflowStep, "do", ("name=name, attempt=attempt,", "name=name, attempt=max(attempts, 1),")
    )


def _context_name(p: Patch) -> None:
    rewrite(p, step.WorkflowStep, "do", ("step_key=key, name=name", "step_key=key, name=key"))


def _key_numbering(p: Patch) -> None:
    rewrite(
        p,
        step.WorkflowStep,
        "_next",
        (
            'key = base if count == 1 else f"{base}#{count}"',
            'key = base if count == 1 else f"{base}#{count + 1}"',
        ),
    )


def _deadline_reset(p: Patch) -> None:
    rewrite(
        p,
        step.WorkflowStep,
        "wait_for_event",
        ('deadline = row["wake_at"] if row is not None else now + seconds', "deadline = now + seconds"),
    )


def _zero_delay_parks(p: Patch) -> None:
    rewrite(p, step.WorkflowStep, "do", ("if retry_at > x.now():", "if retry_at >= x.now():"))


def _due_sleep_parks(p: Patch) -> None:
    rewrite(p, step.WorkflowStep, "_sleep", ("if wake_at <= now:", "if wake_at < now:"))


def _pause_ignored_on_event(p: Patch) -> None:
    rewrite(
        p,
        txn,
        "wait_event_txn",
        (
            "return WaitOutcome(paused=_pause_if(conn, claim, now, requested), event=dict(event))",
            "return WaitOutcome(paused=False, event=dict(event))",
        ),
    )


def _event_id_conflict_lost(p: Patch) -> None:
    rewrite(p, txn, "send_event_txn", ("if existing[0] != instance_id:", "if existing[0] is None:"))


def _terminal_takes_events(p: Patch) -> None:
    rewrite(p, txn, "send_event_txn", ('if inst["status"] in TERMINAL:', "if False:"))


def _suffix_search_spins(p: Patch) -> None:
    rewrite(
        p,
        step.WorkflowStep,
        "_next",
        (
            'key = base if count == 1 else f"{base}#{count}"\n',
            'key = base if count == 1 else f"{base}#{count}"\n'
            '    while count > 2 and key == f"{base}#{count}":  # a free-suffix search that never advances\n'
            "        pass\n",
        ),
    )


# A spinning engine costs its whole budget per seed: one second is plenty for runs that take milliseconds.
HANGS = Setting(attrs.evolve(SCRIPTS.profile, name="mutant-hangs", hang_budget=1.0))


def _refused_wait_keyed(p: Patch) -> None:
    # The shipped bug the model found: the timeout range check ran after the wait took its key and position.
    check = (
        "    if not MIN_EVENT_TIMEOUT <= seconds <= MAX_EVENT_TIMEOUT:\n"
        '        raise InvalidArgument(f"wait_for_event timeout {timeout!r} is outside 1 s .. 365 days")\n'
    )
    keyed = '    key, position, row = self._next("wait_for_event", name)\n'
    rewrite(p, step.WorkflowStep, "wait_for_event", (check + keyed, keyed + check))


def _event_wakes_nobody(p: Patch) -> None:
    rewrite(
        p,
        txn,
        "send_event_txn",
        (
            """        conn.execute(
            "UPDATE workflow_task SET kind = 'wake'""",
            """        (
            "UPDATE workflow_task SET kind = 'wake'""",
        ),
    )


def _bad_result_retried(p: Patch) -> None:
    rewrite(
        p,
        step.WorkflowStep,
        "do",
        ("final = bad_result or is_non_retryable(error)", "final = is_non_retryable(error)"),
    )


def _timeout_ignored(p: Patch) -> None:
    rewrite(p, execution.Execution, "call",
            ("timeout, key, attempt, started)", "timeout * 1000, key, attempt, started)"))


def _late_result_kept(p: Patch) -> None:
    # The shipped bug (found by the model on default seed 1051): the first of callback and timer to be seen
    # wins, so a callback that returned in the same turn as its timer, past its deadline, was committed.
    rewrite(p, execution.Execution, "_guard", ("if work.done() and finished and finished[0] - started <= timeout:",
                                               "if work.done():"))


def _output_unvalidated(p: Patch) -> None:
    rewrite(p, runner.Runner, "_execute", ("encode(definition.validate_output(value),", "encode(value,"))


def _batch_answers_every_id(p: Patch) -> None:
    rewrite(p, txn, "create_instances_txn", ("    return created", "    return [i for i, _ in items]"))


def _history_newest_first(p: Patch) -> None:
    rewrite(p, txn, "history_txn", ('"ORDER BY position",', '"ORDER BY position DESC",'))


def _cursor_inclusive(p: Patch) -> None:
    rewrite(p, txn, "list_instances_txn", ("AND seq > ?", "AND seq >= ?"))


def _duration_uncoded(p: Patch) -> None:
    # The shipped bug: a bad duration at a step call raised a bare ValueError, no code, not a refusal.
    rewrite(p, step, "parse_duration", ("raise InvalidArgument(", "raise ValueError(", 4))


def _semantic(name: str, title: str, models: str, patch: object, budget: int = 60) -> ZooMutant:
    return ZooMutant(
        name=name,
        title=title,
        models=models,
        prop="model",
        setting=SCRIPTS,
        patch=patch,  # type: ignore[arg-type]
        best="random",
        gate_budget=budget,
    )


SEMANTIC = (
    _semantic(
        "linear-backoff-off-by-one",
        "linear backoff one step ahead",
        "retry delay d*(n+1) for d*n",
        _linear_backoff,
    ),
    _semantic(
        "exponential-backoff-off-by-one",
        "exponential backoff doubled",
        "retry delay d*2**n for d*2**(n-1)",
        _exponential_backoff,
    ),
    _semantic(
        "match-any-field",
        "match accepts a partial match",
        "a filter testing any field instead of all",
        _match_any_field,
    ),
    _semantic(
        "match-ignored",
        "match filter ignored",
        "the first event of the type, whatever its payload",
        _match_ignored,
    ),
    _semantic(
        "deadline-exclusive",
        "event at the deadline ignored",
        "created_at < deadline for <=",
        _deadline_exclusive,
    ),
    _semantic(
        "received-at-delivery",
        "received timestamp is the delivery time",
        "ReceivedEvent.timestamp from the consuming transaction, not the send",
        _received_at_delivery,
    ),
    _semantic(
        "sleep-until-late",
        "sleep_until wakes a second late",
        "an off-by-one in an absolute wake time",
        _sleep_until_late,
    ),
    _semantic(
        "context-attempt",
        "StepContext.attempt counts from 0",
        "the previous attempt's number handed in",
        _context_attempt,
    ),
    _semantic(
        "context-name",
        "StepContext.name is the key",
        "the step key (do:x#2) where the name belongs",
        _context_name,
    ),
    _semantic(
        "key-numbering", "repeated keys skip #2", "a repeat counter starting one too high", _key_numbering
    ),
    _semantic(
        "deadline-reset",
        "wait deadline restarts on replay",
        "the deadline recomputed instead of read back",
        _deadline_reset,
    ),
    _semantic(
        "zero-delay-parks",
        "zero-delay retry hands the task back",
        "a retry due now treated as later",
        _zero_delay_parks,
    ),
    _semantic(
        "due-sleep-parks", "a sleep already due hands the task back", "wake_at < now for <=", _due_sleep_parks
    ),
    _semantic(
        "pause-ignored-on-event",
        "pause request ignored when a wait gets its event",
        "one parking point that forgets the requested pause",
        _pause_ignored_on_event,
        budget=150,
    ),
    _semantic(
        "event-id-conflict-lost",
        "an event id reused on another instance is a duplicate",
        "idempotency keyed without the instance",
        _event_id_conflict_lost,
    ),
    ZooMutant(
        name="suffix-search-spins",
        title="key suffix search spins without yielding",
        prop="hang",
        setting=HANGS,
        models="a loop looking for a free #n that never advances (CPU at 100%, no progress)",
        patch=_suffix_search_spins,
        best="random",
        gate_budget=80,
    ),
    _semantic(
        "refused-wait-keyed",
        "a refused wait takes a position",
        "validation after the key was taken: the replay finds a hole and errors as nondeterministic",
        _refused_wait_keyed,
        budget=150,
    ),
    ZooMutant(
        name="event-wakes-nobody",
        title="an event does not wake its waiting instance",
        prop="P12",
        setting=CALM_SCRIPTS,
        models="a signal stored but the sleeper not rescheduled: it wakes at its deadline",
        patch=_event_wakes_nobody,
        best="random",
        gate_budget=30,
    ),
    _semantic(
        "bad-result-retried",
        "a non-JSON result is retried",
        "a result that cannot be stored treated as a transient failure (the retry returns the same value)",
        _bad_result_retried,
        budget=150,
    ),
    _semantic(
        "timeout-ignored",
        "the attempt timeout is not applied",
        "a timeout passed in the wrong unit (ms for s): a hung callback's late result is committed",
        _timeout_ignored,
    ),
    attrs.evolve(
        _semantic(
            "late-result-kept",
            "a result past its deadline kept",
            "callback and timer ready in one turn: the callback's late outcome wins the race",
            _late_result_kept,
            budget=300,
        ),
        setting=JUMPS,
    ),
    attrs.evolve(
        _semantic(
            "output-unvalidated",
            "output schema skipped",
            "the run's output stored as returned, its schema never asked",
            _output_unvalidated,
            budget=20,
        ),
        setting=QUOTES,
    ),
    _semantic(
        "batch-answers-every-id",
        "create_batch answers every id, not the created ones",
        "idempotent inserts reported as created",
        _batch_answers_every_id,
    ),
    _semantic(
        "history-newest-first",
        "history lists steps newest first",
        "an ORDER BY turned around",
        _history_newest_first,
    ),
    _semantic(
        "cursor-inclusive",
        "a listing cursor repeats the last item",
        "seq >= cursor for seq > cursor",
        _cursor_inclusive,
    ),
    _semantic(
        "duration-uncoded",
        "a bad duration at a step call has no error code",
        "a parser raising a bare ValueError where the API promises INVALID_ARGUMENT",
        _duration_uncoded,
    ),
    _semantic(
        "terminal-takes-events",
        "an ended instance accepts events",
        "the terminal check dropped",
        _terminal_takes_events,
    ),
)

__all__ = ["SCRIPTS", "SEMANTIC"]
