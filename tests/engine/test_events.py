"""Events: wait_for_event, buffering, deadlines, match filters, idempotent ids and send_event's rejections."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from fakes import ManualRuntime
from support import T0, at, counts, run_async

from engine import (
    Engine,
    EngineError,
    NonRetryableError,
    ReceivedEvent,
    WaitForEventTimeout,
    WorkflowEvent,
    WorkflowStep,
    define_workflow,
)


@define_workflow("approval")
async def approval(event: WorkflowEvent, step: WorkflowStep) -> Any:
    """Wait (timeout from params, default when absent) and report what arrived or that it timed out."""
    kwargs: dict[str, Any] = {"type": "approval"}
    if "timeout" in event.payload:
        kwargs["timeout"] = event.payload["timeout"]
    if "match" in event.payload:
        kwargs["match"] = event.payload["match"]
    try:
        got = await step.wait_for_event("approval", **kwargs)
    except WaitForEventTimeout as exc:
        return {"timeout": isinstance(exc, NonRetryableError)}
    return {"payload": got.payload, "sent": got.timestamp.timestamp(), "type": got.type}


@define_workflow("two-waits")
async def two_waits(event: WorkflowEvent, step: WorkflowStep) -> Any:
    first = await step.wait_for_event("first", type="item", timeout="1 hour")
    second = await step.wait_for_event("second", type="item", timeout="1 hour")
    return [first.payload, second.payload]


@define_workflow("refused-then-wait")
async def refused_then_wait(event: WorkflowEvent, step: WorkflowStep) -> Any:
    """A wait refused for its timeout (caught), then a wait that suspends: the replay must line up."""
    try:
        await step.wait_for_event("bad", type="x", timeout="366 days")
    except EngineError as exc:
        refused = exc.code
    got = await step.wait_for_event("good", type="go", timeout="1 hour")
    return [refused, got.payload]


WORKFLOWS = [approval, two_waits, refused_then_wait]


def run(rt: ManualRuntime, body: Callable[[Engine], Awaitable[None]]) -> None:
    """Run `body` against a fresh in-memory engine over `rt`."""
    async def main() -> None:
        async with Engine(workflows=WORKFLOWS, runtime=rt) as eng:
            await body(eng)

    run_async(main())


async def output(eng: Engine, iid: str, workflow: str = "approval") -> Any:
    info = await eng.status(workflow, iid)
    assert info.status == "complete", info
    return info.output


def test_event_sent_during_the_wait_is_received(rt: ManualRuntime) -> None:
    """A waiting instance is woken by a matching event at once and gets its type, payload and send time."""
    async def body(eng: Engine) -> None:
        iid = await eng.create("approval", {"timeout": "15 min"})
        await eng.run_until_idle()
        assert (await eng.status("approval", iid)).status == "waiting"
        await rt.advance(60)
        await eng.send_event("approval", iid, type="approval", payload={"ok": True})
        assert await eng.run_until_idle() == 1  # no clock move needed: the send made the wake due now
        assert await output(eng, iid) == {"payload": {"ok": True}, "sent": T0 + 60, "type": "approval"}
        history = await eng.history("approval", iid)
        (rec,) = history.steps
        assert (rec.key, rec.type, rec.status) == ("wait_for_event:approval", "wait_for_event", "completed")
        assert rec.result == {"type": "approval", "payload": {"ok": True}, "timestamp": at(T0 + 60).isoformat()}
        (ev,) = history.events
        assert (ev.type, ev.payload, ev.created_at, ev.consumed_by) == (
            "approval", {"ok": True}, at(T0 + 60), "wait_for_event:approval")

    run(rt, body)


def test_received_event_is_identical_on_replay(rt: ManualRuntime) -> None:
    """The ReceivedEvent a replay returns equals the one returned live (aware UTC timestamp included)."""
    received: list[ReceivedEvent] = []

    @define_workflow("replayed")
    async def replayed(event: WorkflowEvent, step: WorkflowStep) -> None:
        received.append(await step.wait_for_event("w", type="go", timeout="1 hour"))
        await step.sleep("after", "10 s")

    async def main() -> None:
        async with Engine(workflows=[replayed], runtime=rt) as eng:
            iid = await eng.create("replayed")
            await eng.run_until_idle()
            await rt.advance(5)
            await eng.send_event("replayed", iid, type="go", payload=[1, 2])
            await eng.run_until_idle()
            await rt.advance(10)
            await eng.run_until_idle()
            assert (await eng.status("replayed", iid)).status == "complete"

    run_async(main())
    assert received == [ReceivedEvent(type="go", payload=[1, 2], timestamp=at(T0 + 5))] * 2


def test_event_sent_before_the_wait_is_buffered(rt: ManualRuntime) -> None:
    """An event sent before the instance ever ran is consumed when the wait is reached."""
    async def body(eng: Engine) -> None:
        iid = await eng.create("approval", {})
        await eng.send_event("approval", iid, type="approval", payload="early")
        await rt.advance(30)
        await eng.run_until_idle()
        assert await output(eng, iid) == {"payload": "early", "sent": T0, "type": "approval"}

    run(rt, body)


def test_event_sent_while_paused_is_consumed_after_resume(rt: ManualRuntime) -> None:
    """An event sent to a paused instance is buffered and consumed once it resumes."""
    async def body(eng: Engine) -> None:
        iid = await eng.create("approval", {})
        await eng.run_until_idle()
        await eng.pause("approval", iid)
        await eng.send_event("approval", iid, type="approval", payload="while paused")
        assert await eng.run_until_idle() == 0
        assert (await eng.status("approval", iid)).status == "paused"
        await eng.resume("approval", iid)
        await eng.run_until_idle()
        assert (await output(eng, iid))["payload"] == "while paused"

    run(rt, body)


def test_same_type_events_are_consumed_in_send_order(rt: ManualRuntime) -> None:
    """Two buffered events of one type go to two waits in the order they were sent, each consumed once."""
    async def body(eng: Engine) -> None:
        iid = await eng.create("two-waits")
        await eng.send_event("two-waits", iid, type="item", payload="one")
        await eng.send_event("two-waits", iid, type="item", payload="two")
        await eng.run_until_idle()
        assert await output(eng, iid, "two-waits") == ["one", "two"]
        events = (await eng.history("two-waits", iid)).events
        assert [(e.payload, e.consumed_by) for e in events] == [
            ("one", "wait_for_event:first"), ("two", "wait_for_event:second")]

    run(rt, body)


def test_match_filters_on_payload_fields(rt: ManualRuntime) -> None:
    """With match=, non-matching events are skipped and stay unconsumed; the first matching one is taken."""
    async def body(eng: Engine) -> None:
        iid = await eng.create("approval", {"match": {"order": "o2"}})
        await eng.send_event("approval", iid, type="approval", payload={"order": "o1"})
        await eng.send_event("approval", iid, type="approval", payload="not a dict")
        await eng.run_until_idle()
        assert (await eng.status("approval", iid)).status == "waiting"
        await eng.send_event("approval", iid, type="approval", payload={"order": "o2", "n": 1})
        await eng.send_event("approval", iid, type="approval", payload={"order": "o2", "n": 2})
        await eng.run_until_idle()
        assert (await output(eng, iid))["payload"] == {"order": "o2", "n": 1}
        events = (await eng.history("approval", iid)).events
        assert [e.consumed_by for e in events] == [None, None, "wait_for_event:approval", None]

    run(rt, body)


def test_other_event_types_do_not_satisfy_the_wait(rt: ManualRuntime) -> None:
    """An event of another type leaves the instance waiting."""
    async def body(eng: Engine) -> None:
        iid = await eng.create("approval", {})
        await eng.send_event("approval", iid, type="rejection")
        await eng.run_until_idle()
        assert (await eng.status("approval", iid)).status == "waiting"

    run(rt, body)


def test_timeout_raises_catchable_wait_for_event_timeout_at_the_deadline(rt: ManualRuntime) -> None:
    """The wait times out exactly at its deadline with a catchable, non-retryable WaitForEventTimeout."""
    async def body(eng: Engine) -> None:
        iid = await eng.create("approval", {"timeout": "10 s"})
        await eng.run_until_idle()
        (rec,) = (await eng.history("approval", iid)).steps
        assert (rec.status, rec.wake_at) == ("waiting", at(T0 + 10))
        await rt.advance(9.5)
        assert await eng.run_until_idle() == 0
        await rt.advance(0.5)
        await eng.run_until_idle()
        assert await output(eng, iid) == {"timeout": True}
        (rec,) = (await eng.history("approval", iid)).steps
        assert rec.status == "errored" and rec.error is not None and rec.error.name == "WaitForEventTimeout"

    run(rt, body)


def test_default_wait_timeout_is_24_hours(rt: ManualRuntime) -> None:
    """Without timeout=, the wait's deadline is 24 h after it began."""
    async def body(eng: Engine) -> None:
        iid = await eng.create("approval", {})
        await eng.run_until_idle()
        assert (await eng.history("approval", iid)).steps[0].wake_at == at(T0 + 86400)

    run(rt, body)


def test_uncaught_timeout_errors_the_instance(rt: ManualRuntime) -> None:
    """A WaitForEventTimeout the workflow does not catch makes the instance errored with that name."""
    async def body(eng: Engine) -> None:
        iid = await eng.create("two-waits")
        await eng.run_until_idle()
        await rt.advance(3600)
        await eng.run_until_idle()
        info = await eng.status("two-waits", iid)
        assert info.status == "errored" and info.error is not None and info.error.name == "WaitForEventTimeout"

    run(rt, body)


@pytest.mark.parametrize("timeout", ["0.5 s", "366 days"])
def test_wait_timeout_outside_the_allowed_range_errors_the_instance(rt: ManualRuntime, timeout: str) -> None:
    """A wait timeout below 1 s or above 365 days errors the instance when the wait is reached."""
    async def body(eng: Engine) -> None:
        iid = await eng.create("approval", {"timeout": timeout})
        await eng.run_until_idle()
        info = await eng.status("approval", iid)
        assert info.status == "errored" and info.error is not None and "1 s .. 365 days" in info.error.message

    run(rt, body)


def test_a_refused_wait_takes_no_position_so_the_replay_lines_up(rt: ManualRuntime) -> None:
    """A wait refused at the call (timeout out of range) writes nothing and uses no key or position: after the
    next wait suspends, the resumed run replays onto the same history instead of a NondeterminismError."""
    async def body(eng: Engine) -> None:
        iid = await eng.create("refused-then-wait", {})
        await eng.run_until_idle()
        assert (await eng.status("refused-then-wait", iid)).status == "waiting"
        assert [s.key for s in (await eng.history("refused-then-wait", iid)).steps] == ["wait_for_event:good"]
        await eng.send_event("refused-then-wait", iid, type="go", payload=7)
        await eng.run_until_idle()
        assert await output(eng, iid, "refused-then-wait") == ["INVALID_ARGUMENT", 7]

    run(rt, body)


@pytest.mark.parametrize("timeout", ["1 s", "365 days"])
def test_wait_timeout_bounds_are_inclusive(rt: ManualRuntime, timeout: str) -> None:
    """Exactly 1 s and exactly 365 days are allowed wait timeouts."""
    async def body(eng: Engine) -> None:
        iid = await eng.create("approval", {"timeout": timeout})
        await eng.run_until_idle()
        assert (await eng.status("approval", iid)).status == "waiting"

    run(rt, body)


@pytest.mark.parametrize(
    ("send_at", "accepted"), [(9.0, True), (10.0, True), (10.5, False)],
    ids=["before", "exactly-at", "after"],
)
def test_deadline_decides_by_event_creation_time_not_processing_time(
    rt: ManualRuntime, send_at: float, accepted: bool
) -> None:
    """An event created at or before the deadline is accepted even if processed late; one after it never is."""
    async def body(eng: Engine) -> None:
        iid = await eng.create("approval", {"timeout": "10 s"})
        await eng.run_until_idle()
        await rt.advance(send_at)
        await eng.send_event("approval", iid, type="approval", payload="late?")
        await rt.advance(100)  # nothing ran in between: the runner processes everything late
        await eng.run_until_idle()
        result = await output(eng, iid)
        assert result == ({"payload": "late?", "sent": T0 + send_at, "type": "approval"} if accepted
                          else {"timeout": True})

    run(rt, body)


def test_event_id_makes_resends_idempotent_even_after_the_instance_ended(rt: ManualRuntime) -> None:
    """Resending an event_id to the same instance is a no-op, also once the instance is complete."""
    async def body(eng: Engine) -> None:
        iid = await eng.create("two-waits")
        await eng.send_event("two-waits", iid, type="item", payload="one", event_id="evt-1")
        await eng.send_event("two-waits", iid, type="item", payload="one again", event_id="evt-1")
        await eng.run_until_idle()
        assert (await eng.status("two-waits", iid)).status == "waiting"
        await eng.send_event("two-waits", iid, type="item", payload="two", event_id="evt-2")
        await eng.run_until_idle()
        assert await output(eng, iid, "two-waits") == ["one", "two"]
        await eng.send_event("two-waits", iid, type="item", payload="resend", event_id="evt-2")
        assert [e.id for e in (await eng.history("two-waits", iid)).events] == ["evt-1", "evt-2"]

    run(rt, body)


def test_event_id_reused_for_another_instance_conflicts(rt: ManualRuntime) -> None:
    """Using an event_id already sent to another instance raises EVENT_ID_CONFLICT and writes nothing."""
    async def body(eng: Engine) -> None:
        a = await eng.create("approval", {})
        b = await eng.create("approval", {})
        await eng.send_event("approval", a, type="approval", event_id="shared")
        with pytest.raises(EngineError) as info:
            await eng.send_event("approval", b, type="approval", event_id="shared")
        assert info.value.code == "EVENT_ID_CONFLICT"
        assert (await eng.history("approval", b)).events == ()

    run(rt, body)


def test_events_to_terminal_instances_are_rejected(rt: ManualRuntime) -> None:
    """send_event to a complete or terminated instance raises INSTANCE_TERMINAL and stores nothing."""
    async def body(eng: Engine) -> None:
        done = await eng.create("approval", {})
        await eng.send_event("approval", done, type="approval")
        await eng.run_until_idle()
        stopped = await eng.create("approval", {})
        await eng.terminate("approval", stopped)
        for iid in (done, stopped):
            with pytest.raises(EngineError) as info:
                await eng.send_event("approval", iid, type="approval", payload="too late")
            assert info.value.code == "INSTANCE_TERMINAL"
        assert counts(eng)["workflow_event"] == 1

    run(rt, body)


def test_send_event_never_creates_instances(rt: ManualRuntime) -> None:
    """send_event to an unknown instance is INSTANCE_NOT_FOUND (unknown workflow WORKFLOW_NOT_FOUND); no rows."""
    async def body(eng: Engine) -> None:
        with pytest.raises(EngineError) as info:
            await eng.send_event("approval", "ghost", type="approval")
        assert info.value.code == "INSTANCE_NOT_FOUND"
        with pytest.raises(EngineError) as info:
            await eng.send_event("no-such-workflow", "ghost", type="approval")
        assert info.value.code == "WORKFLOW_NOT_FOUND"
        assert counts(eng) == dict.fromkeys(counts(eng), 0)

    run(rt, body)


def test_send_event_limits_and_validation(rt: ManualRuntime) -> None:
    """Event types over 128 chars are NAME_TOO_LONG, payloads over 1 MiB PAYLOAD_TOO_LARGE, bad ids INVALID_ID."""
    async def body(eng: Engine) -> None:
        iid = await eng.create("approval", {})
        await eng.send_event("approval", iid, type="t" * 128)
        cases: list[tuple[dict[str, Any], str]] = [
            ({"type": "t" * 129}, "NAME_TOO_LONG"),
            ({"type": "x", "payload": "p" * (1024 * 1024)}, "PAYLOAD_TOO_LARGE"),
            ({"type": "x", "payload": {1, 2}}, "NOT_JSON_SERIALIZABLE"),
            ({"type": "x", "event_id": "has space"}, "INVALID_ID"),
            ({"type": ""}, "INVALID_ARGUMENT"),
        ]
        for kwargs, code in cases:
            with pytest.raises(EngineError) as info:
                await eng.send_event("approval", iid, **kwargs)
            assert info.value.code == code
        assert counts(eng)["workflow_event"] == 1

    run(rt, body)


def test_wait_for_event_type_too_long_errors_the_instance(rt: ManualRuntime) -> None:
    """A wait_for_event type over 128 characters errors the instance with NameTooLong."""
    @define_workflow("longtype")
    async def longtype(event: WorkflowEvent, step: WorkflowStep) -> None:
        await step.wait_for_event("w", type="t" * 129)

    async def main() -> None:
        async with Engine(workflows=[longtype], runtime=rt) as eng:
            iid = await eng.create("longtype")
            await eng.run_until_idle()
            info = await eng.status("longtype", iid)
            assert info.error is not None and info.error.name == "NameTooLong"

    run_async(main())


def test_a_received_event_in_an_output_or_step_result_is_stored_as_json(rt: ManualRuntime) -> None:
    """`return {"approval": await step.wait_for_event(...)}` completes (issue 10): a ReceivedEvent is stored as
    {"type", "payload", "timestamp": ISO-8601 UTC}, and a step returning one gives that dict live and on replay."""
    from_step: list[Any] = []

    @define_workflow("keeps-event")
    async def keeps_event(event: WorkflowEvent, step: WorkflowStep) -> Any:
        got = await step.wait_for_event("approval", type="approval", timeout="1 hour")
        from_step.append(await step.do("copy", lambda: got))
        await step.sleep("after", "10 s")
        return {"approval": got}

    stored = {"type": "approval", "payload": {"ok": True}, "timestamp": at(T0 + 5).isoformat()}

    async def main() -> None:
        async with Engine(workflows=[keeps_event], runtime=rt) as eng:
            iid = await eng.create("keeps-event")
            await eng.run_until_idle()
            await rt.advance(5)
            await eng.send_event("keeps-event", iid, type="approval", payload={"ok": True})
            await eng.run_until_idle()
            await rt.advance(10)
            await eng.run_until_idle()
            info = await eng.status("keeps-event", iid)
            assert (info.status, info.output) == ("complete", {"approval": stored})
            steps = {s.key: s for s in (await eng.history("keeps-event", iid)).steps}
            assert steps["do:copy"].result == stored

    run_async(main())
    assert from_step == [stored, stored]
