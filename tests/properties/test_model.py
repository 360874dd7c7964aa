"""The reference model (properties/model.py) encodes DESIGN §2's semantics on its own, without the engine."""

from __future__ import annotations

from typing import Any

import pytest

from properties.model import Do, Model, StepState
from properties.programs import Wait, received, retry_program, steps_program

T0 = 1_000.0


def row(status: str, attempts: int = 0, result: Any = None, error: str | None = None,
        next_retry_at: float | None = None, wake_at: float | None = None) -> dict[str, Any]:
    """An engine step row as the harness hands it to the model."""
    return {"status": status, "attempts": attempts, "result": result, "error_name": error,
            "next_retry_at": next_retry_at, "wake_at": wake_at}


def claimed(model: Model, iid: str, t: float = T0) -> None:
    model.on_claim(iid, model.instances[iid].run, t)


class TestClientOperations:
    def test_create_is_idempotent(self) -> None:
        """Creating an existing id leaves the first instance alone and reports nothing created."""
        m = Model()
        assert m.create("m-steps", "s0", {"k": 1})
        assert not m.create("m-steps", "s0", {"k": 3})
        assert m.instances["s0"].params == {"k": 1}
        assert m.instances["s0"].status == "queued"

    def test_event_ids_make_resends_no_ops_and_conflict_across_instances(self) -> None:
        """An event id resent to its instance is a duplicate; used for another instance it conflicts."""
        m = Model()
        m.create("m-wait", "w0", {})
        m.create("m-wait", "w1", {})
        assert m.send_event("w0", "go", 1, "e1", T0) == "sent"
        assert m.send_event("w0", "go", 2, "e1", T0) == "duplicate"
        assert m.send_event("w1", "go", 3, "e1", T0) == "EVENT_ID_CONFLICT"
        assert [e.payload for e in m.events] == [1]

    def test_events_to_terminal_instances_are_rejected_but_resends_are_not(self) -> None:
        """A terminal instance rejects new events; resending a known id stays a no-op."""
        m = Model()
        m.create("m-wait", "w0", {})
        m.send_event("w0", "go", 1, "e1", T0)
        m.terminate("w0")
        assert m.send_event("w0", "go", 2, None, T0) == "INSTANCE_TERMINAL"
        assert m.send_event("w0", "go", 2, "e1", T0) == "duplicate"

    def test_pause_is_immediate_unless_a_runner_holds_the_instance(self) -> None:
        """Pause applies at once when nothing is in flight, else it is requested for the next boundary."""
        m = Model()
        m.create("m-steps", "a", {"k": 1})
        m.create("m-steps", "b", {"k": 1})
        m.pause("a", in_flight=False)
        m.pause("b", in_flight=True)
        assert (m.instances["a"].status, m.instances["a"].pause_requested) == ("paused", False)
        assert (m.instances["b"].status, m.instances["b"].pause_requested) == ("queued", True)

    def test_resume_requeues_a_paused_instance_and_cancels_a_request(self) -> None:
        """resume makes a paused instance queued, and cancels a pause still pending."""
        m = Model()
        m.create("m-steps", "a", {"k": 1})
        m.pause("a", in_flight=True)
        m.resume("a")
        assert not m.instances["a"].pause_requested
        m.pause("a", in_flight=False)
        m.resume("a")
        assert m.instances["a"].status == "queued"

    def test_lifecycle_operations_on_terminal_instances_are_refused_except_restart(self) -> None:
        """pause, resume and terminate refuse a terminal instance; restart starts a new run."""
        m = Model()
        m.create("m-steps", "a", {"k": 1})
        assert m.terminate("a") == "ok"
        assert m.pause("a", in_flight=False) == "INSTANCE_TERMINAL"
        assert m.resume("a") == "INSTANCE_TERMINAL"
        assert m.terminate("a") == "INSTANCE_TERMINAL"
        assert m.restart("a") == 2
        assert m.instances["a"].status == "queued"


class TestReplay:
    def test_repeated_names_get_numbered_keys(self) -> None:
        """The second and third `do("s")` of a run are keyed do:s#2 and do:s#3."""
        m = Model()
        m.create("m-steps", "s0", {"k": 3})
        keys = []
        for _ in range(3):
            p = m.replay(m.instances["s0"])
            keys.append(p.key)
            m.instances["s0"].steps[(1, p.key or "")] = StepState("do", "completed", 1, result=["s", 1])
        assert keys == ["do:s", "do:s#2", "do:s#3"]
        assert m.replay(m.instances["s0"]).output == [["s", 1]] * 3

    def test_programs_are_generators_of_requests(self) -> None:
        """Programs yield Do/Sleep/Wait requests and take results back, as workflow code awaits steps."""
        gen = steps_program({"k": 1})
        assert next(gen) == Do("s")
        gen = retry_program({"fail": 1, "catch": True, "backoff": "linear"})
        assert next(gen) == Do("charge", fail=1, backoff="linear")

    def test_backoff_formulas(self) -> None:
        """Constant d, linear d*n, exponential d*2**(n-1) (DESIGN §2)."""
        assert [Do("x", delay=5.0).delay_after(n) for n in (1, 2, 3)] == [5.0, 5.0, 5.0]
        assert [Do("x", delay=5.0, backoff="linear").delay_after(n) for n in (1, 2, 3)] == [5.0, 10.0, 15.0]
        assert [Do("x", delay=5.0, backoff="exponential").delay_after(n) for n in (1, 2, 3)] == [5.0, 10.0, 20.0]


class TestRunnerTransitions:
    def test_a_failing_step_waits_for_its_retry_then_errors_at_the_limit(self) -> None:
        """Attempts below the maximum retry at now + backoff; the last one errors; uncaught it ends the run."""
        m = Model()
        m.create("m-retry", "r0", {"fail": 3, "catch": False, "backoff": "constant"})
        claimed(m, "r0")
        m.on_call("r0", 1, "do:charge", 1, T0)
        m.on_commit("r0", 1, "do:charge", row("waiting", 1, error="RuntimeError", next_retry_at=T0 + 5), None,
                    True, False, T0)
        assert m.instances["r0"].status == "waiting"
        assert m.due("r0", T0 + 4) is None and m.due("r0", T0 + 5) is not None
        for attempt, t in ((2, T0 + 5), (3, T0 + 10)):
            claimed(m, "r0", t)
            m.on_call("r0", 1, "do:charge", attempt, t)
            status = "waiting" if attempt < 3 else "errored"
            m.on_commit("r0", 1, "do:charge", row(status, attempt, error="RuntimeError",
                                                   next_retry_at=t + 5 if attempt < 3 else None),
                        None, attempt < 3, False, t)
        m.on_finish("r0", 1, "errored", None, ("RuntimeError", "charge failed attempt 3"), T0 + 10)
        assert m.violations == []
        assert m.instances["r0"].status == "errored"

    def test_retrying_past_the_limit_is_a_violation(self) -> None:
        """A third failed attempt under limit 2 must error, not wait for a fourth (property 7)."""
        m = Model()
        m.create("m-retry", "r0", {"fail": 3, "catch": True, "backoff": "constant"})
        m.instances["r0"].steps[(1, "do:charge")] = StepState("do", "waiting", 2, error="RuntimeError",
                                                               next_retry_at=T0)
        claimed(m, "r0")
        m.on_commit("r0", 1, "do:charge", row("waiting", 3, error="RuntimeError", next_retry_at=T0 + 5), None,
                    True, False, T0)
        assert any("model expects ('errored'" in v for v in m.violations)

    def test_an_early_retry_is_a_violation(self) -> None:
        """A callback may not run before its step's retry time."""
        m = Model()
        m.create("m-retry", "r0", {"fail": 3, "catch": True, "backoff": "constant"})
        m.instances["r0"].steps[(1, "do:charge")] = StepState("do", "waiting", 1, error="RuntimeError",
                                                               next_retry_at=T0 + 5)
        claimed(m, "r0")
        m.on_call("r0", 1, "do:charge", 2, T0 + 1)
        assert any("before its retry time" in v for v in m.violations)

    def test_a_wait_consumes_the_oldest_event_sent_before_its_deadline(self) -> None:
        """Same-type events are consumed in send order; each at most once (property 5)."""
        m = Model()
        m.create("m-wait", "w0", {"waits": 2, "timeout": 20.0})
        m.send_event("w0", "go", "first", None, T0)
        m.send_event("w0", "go", "second", None, T0)
        claimed(m, "w0")
        m.on_commit("w0", 1, "wait_for_event:w", row("completed", result=received("go", "first", T0), wake_at=T0 + 20), 1,
                    False, False, T0)
        m.on_commit("w0", 1, "wait_for_event:w#2", row("completed", result=received("go", "second", T0), wake_at=T0 + 20), 2,
                    False, False, T0)
        assert m.violations == []
        assert [e.consumed for e in m.events] == [(1, "wait_for_event:w"), (1, "wait_for_event:w#2")]

    def test_consuming_an_event_twice_is_a_violation(self) -> None:
        """A second wait that takes an already consumed event disagrees with the model."""
        m = Model()
        m.create("m-wait", "w0", {"waits": 2, "timeout": 20.0})
        m.send_event("w0", "go", "only", None, T0)
        claimed(m, "w0")
        m.on_commit("w0", 1, "wait_for_event:w", row("completed", result=received("go", "only", T0), wake_at=T0 + 20), 1,
                    False, False, T0)
        m.on_commit("w0", 1, "wait_for_event:w#2", row("completed", result=received("go", "only", T0), wake_at=T0 + 20), 1,
                    False, False, T0)
        assert any("consumed event 1" in v for v in m.violations)

    def test_an_event_sent_after_the_deadline_is_never_accepted(self) -> None:
        """A wait times out at its deadline even if a late event is buffered by then."""
        m = Model()
        m.create("m-wait", "w0", {"waits": 1, "timeout": 20.0})
        claimed(m, "w0")
        m.on_commit("w0", 1, "wait_for_event:w", row("waiting", wake_at=T0 + 20), None, True, False, T0)
        m.send_event("w0", "go", "late", None, T0 + 21)
        assert m.due("w0", T0 + 19) is None
        assert m.acceptable_event(m.instances["w0"], Wait("w", "go", 20.0), T0 + 20) is None
        claimed(m, "w0", T0 + 21)
        m.on_commit("w0", 1, "wait_for_event:w", row("errored", error="WaitForEventTimeout", wake_at=T0 + 20),
                    None, False, False, T0 + 21)
        assert m.violations == []
        m.on_finish("w0", 1, "complete", ["timeout"], None, T0 + 21)
        assert m.violations == []

    def test_a_sleep_completes_only_at_its_wake_time(self) -> None:
        """Completing a sleep before its wake time is a violation (property 6)."""
        m = Model()
        m.create("m-sleep", "z0", {"seconds": 10.0})
        claimed(m, "z0")
        m.on_commit("z0", 1, "sleep:nap", row("waiting", wake_at=T0 + 10), None, True, False, T0)
        claimed(m, "z0", T0 + 5)
        m.on_commit("z0", 1, "sleep:nap", row("completed", wake_at=T0 + 10), None, False, False, T0 + 5)
        assert any("before its wake time" in v for v in m.violations)

    def test_a_wake_time_outside_claim_to_commit_is_a_violation(self) -> None:
        """The recorded wake time must be `now + seconds` for a `now` between the claim and the commit."""
        m = Model()
        m.create("m-sleep", "z0", {"seconds": 10.0})
        claimed(m, "z0")
        m.on_commit("z0", 1, "sleep:nap", row("waiting", wake_at=T0 + 1000), None, True, False, T0)
        assert any("outside" in v for v in m.violations)

    def test_a_requested_pause_takes_effect_at_the_next_boundary(self) -> None:
        """A step commit under a pause request leaves the instance paused; without one it may not pause."""
        m = Model()
        m.create("m-steps", "s0", {"k": 2})
        claimed(m, "s0")
        m.pause("s0", in_flight=True)
        m.on_commit("s0", 1, "do:s", row("completed", 1, result=["s", 1]), None, False, True, T0)
        assert m.instances["s0"].status == "paused"
        m.resume("s0")
        claimed(m, "s0")
        m.on_commit("s0", 1, "do:s#2", row("completed", 1, result=["s", 1]), None, False, True, T0)
        assert any("pause requested: False" in v for v in m.violations)

    def test_terminated_instances_accept_no_more_transitions(self) -> None:
        """A commit or finish after terminate is a violation: terminate beats a late completion (property 4)."""
        m = Model()
        m.create("m-steps", "s0", {"k": 1})
        claimed(m, "s0")
        m.on_commit("s0", 1, "do:s", row("completed", 1, result=["s", 1]), None, False, False, T0)
        m.terminate("s0")
        m.on_finish("s0", 1, "complete", [["s", 1]], None, T0)
        assert any("while s0 is terminated" in v for v in m.violations)
        assert m.instances["s0"].status == "terminated"

    def test_restart_fences_the_old_run_and_keeps_its_journal(self) -> None:
        """After restart a commit into the old run is a violation; the old run's steps stay as they were."""
        m = Model()
        m.create("m-steps", "s0", {"k": 1})
        claimed(m, "s0")
        m.on_commit("s0", 1, "do:s", row("completed", 1, result=["s", 1]), None, False, False, T0)
        m.restart("s0")
        m.on_finish("s0", 1, "complete", [["s", 1]], None, T0)
        assert any("into run 1 of s0" in v for v in m.violations)
        assert (1, "do:s") in m.instances["s0"].steps
        assert m.replay(m.instances["s0"]).key == "do:s"

    def test_events_belong_to_the_run_they_were_sent_to(self) -> None:
        """An event the old run did not consume is never the new run's; one sent after the restart is."""
        m = Model()
        m.create("m-wait", "w0", {"waits": 1, "timeout": 20.0})
        m.send_event("w0", "go", 7, None, T0)
        m.restart("w0")
        assert m.due("w0", T0) == "wait_for_event:w has not started"
        claimed(m, "w0")
        m.on_commit("w0", 2, "wait_for_event:w", row("completed", result=7, wake_at=T0 + 20), 1, False, False, T0)
        assert m.violations != []
        m = Model()
        m.create("m-wait", "w0", {"waits": 1, "timeout": 20.0})
        m.send_event("w0", "go", 7, None, T0)
        m.restart("w0")
        m.send_event("w0", "go", 8, None, T0)
        claimed(m, "w0")
        m.on_commit("w0", 2, "wait_for_event:w", row("completed", result=received("go", 8, T0), wake_at=T0 + 20), 2, False, False, T0)
        assert m.violations == []

    def test_finishing_with_a_step_pending_is_a_violation(self) -> None:
        """A run may only finish when its program is at its end."""
        m = Model()
        m.create("m-steps", "s0", {"k": 1})
        claimed(m, "s0")
        m.on_finish("s0", 1, "complete", [], None, T0)
        assert any("do:s is still pending" in v for v in m.violations)


@pytest.mark.parametrize(("status", "expected"), [("paused", None), ("terminated", None),
                                                  ("queued", "do:s has not started")])
def test_due_reports_only_instances_the_engine_owes_progress(status: str, expected: str | None) -> None:
    """Paused and terminal instances are owed nothing; a queued one is owed its first step."""
    m = Model()
    m.create("m-steps", "s0", {"k": 1})
    m.instances["s0"].status = status
    assert m.due("s0", T0) == expected


def test_a_hash_step_name_is_refused_without_using_a_key() -> None:
    """The model throws Refused at a `#` name and the next repeat of `s` still keys as do:s#2... after do:s."""
    m = Model()
    m.create("m-steps", "s0", {"k": 2, "park": False, "hash": True})
    assert m.due("s0", T0) == "do:s has not started"
