"""Instance management: create, create_batch, status, list_instances, history, id validation and limits."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import attrs
import pytest
from fakes import ManualRuntime
from support import T0, at, counts, run_async, tasks

from engine import (
    Engine,
    EngineError,
    History,
    InstanceInfo,
    Page,
    Status,
    WorkflowEvent,
    WorkflowStep,
    define_workflow,
)


def _check_amount(raw: Any) -> Any:
    if not isinstance(raw, dict) or not isinstance(raw.get("amount"), int):
        raise TypeError("amount must be an int")
    return raw


@define_workflow("orders", params=_check_amount)
async def orders(event: WorkflowEvent, step: WorkflowStep) -> Any:
    """Sleep if asked, then double the amount in one step."""
    if event.payload.get("sleep"):
        await step.sleep("nap", event.payload["sleep"])
    return await step.do("total", lambda: event.payload["amount"] * 2)


def run(rt: ManualRuntime, body: Callable[[Engine], Awaitable[None]], *extra: Any) -> None:
    """Run `body` against a fresh in-memory engine with the `orders` workflow."""
    async def main() -> None:
        async with Engine(workflows=[orders, *extra], runtime=rt) as eng:
            await body(eng)

    run_async(main())


# -- create -------------------------------------------------------------------------------------------


def test_create_queues_an_instance_with_a_run_task(rt: ManualRuntime) -> None:
    """create returns the id of a queued instance at run 1 with its params and a due `run` task."""
    async def body(eng: Engine) -> None:
        assert await eng.create("orders", {"amount": 5}, id="order-1") == "order-1"
        info = await eng.status("orders", "order-1")
        assert (info.workflow, info.instance_id, info.status, info.run_number) == ("orders", "order-1", "queued", 1)
        assert (info.params, info.output, info.error, info.current_step) == ({"amount": 5}, None, None, None)
        assert (info.created_at, info.updated_at, info.started_at, info.completed_at) == (at(T0), at(T0), None, None)
        assert [(t["kind"], t["status"], t["run_at"]) for t in tasks(eng)] == [("run", "pending", T0)]

    run(rt, body)


def test_create_is_idempotent_on_an_existing_id(rt: ManualRuntime) -> None:
    """Creating an existing id returns it and leaves the instance, its params and its state unchanged."""
    async def body(eng: Engine) -> None:
        await eng.create("orders", {"amount": 5}, id="dup")
        await eng.run_until_idle()
        before = await eng.status("orders", "dup")
        await rt.advance(10)
        assert await eng.create("orders", {"amount": 99}, id="dup") == "dup"
        assert await eng.status("orders", "dup") == before
        assert counts(eng)["workflow_instance"] == 1 and tasks(eng) == []
        assert before.output == 10

    run(rt, body)


def test_create_without_id_uses_the_runtime_for_it(rt: ManualRuntime, monkeypatch: pytest.MonkeyPatch) -> None:
    """id=None takes its id from runtime.new_id()."""
    async def body(eng: Engine) -> None:
        monkeypatch.setattr(rt, "new_id", lambda: "from-runtime")
        assert await eng.create("orders", {"amount": 1}) == "from-runtime"
        assert (await eng.status("orders", "from-runtime")).params == {"amount": 1}

    run(rt, body)


@pytest.mark.parametrize(
    "bad", ["", " x", "-starts-with-dash", ":colon-first", "has space", "slash/y", "dot.y", "é", "a" * 129, 7],
)
def test_invalid_ids_are_rejected_and_nothing_is_written(rt: ManualRuntime, bad: Any) -> None:
    """Ids outside ^[A-Za-z0-9_][A-Za-z0-9_:-]{0,127}$ raise INVALID_ID on create and write nothing."""
    async def body(eng: Engine) -> None:
        with pytest.raises(EngineError) as info:
            await eng.create("orders", {"amount": 1}, id=bad)
        assert info.value.code == "INVALID_ID"
        assert counts(eng)["workflow_instance"] == 0

    run(rt, body)


@pytest.mark.parametrize("good", ["a", "_", "9", "A-b_c:d", "x" * 128, "tenant:42:order-7"])
def test_valid_ids_are_accepted(rt: ManualRuntime, good: str) -> None:
    """Ids of 1..128 chars from the allowed alphabet (colons and dashes after the first) are accepted."""
    async def body(eng: Engine) -> None:
        assert await eng.create("orders", {"amount": 1}, id=good) == good
        assert (await eng.status("orders", good)).instance_id == good

    run(rt, body)


def test_create_errors_for_unknown_workflow_and_bad_payloads(rt: ManualRuntime) -> None:
    """Unknown workflows, params over 1 MiB and non-JSON params are rejected with their codes, writing nothing."""
    @define_workflow("free")
    async def free(event: WorkflowEvent, step: WorkflowStep) -> None:
        return None

    async def body(eng: Engine) -> None:
        cases: list[tuple[str, Any, str]] = [
            ("nope", {}, "WORKFLOW_NOT_FOUND"),
            ("free", {"blob": "x" * (1024 * 1024)}, "PAYLOAD_TOO_LARGE"),
            ("free", {"when": datetime.now(UTC)}, "NOT_JSON_SERIALIZABLE"),
            ("orders", {"amount": "1"}, "INVALID_PARAMS"),
        ]
        for workflow, params, code in cases:
            with pytest.raises(EngineError) as info:
                await eng.create(workflow, params, id="x")
            assert info.value.code == code, workflow
        assert counts(eng) == dict.fromkeys(counts(eng), 0)
        assert await eng.create("free", {"blob": "x" * (1024 * 1024 - 20)}, id="x") == "x"  # just under 1 MiB

    run(rt, body, free)


# -- create_batch -------------------------------------------------------------------------------------


def test_create_batch_creates_and_skips_existing_ids(rt: ManualRuntime) -> None:
    """create_batch returns only the ids it created, skipping existing ones, with None ids from the runtime."""
    async def body(eng: Engine) -> None:
        await eng.create("orders", {"amount": 1}, id="b")
        created = await eng.create_batch("orders", [
            {"id": "a", "params": {"amount": 2}}, {"id": "b", "params": {"amount": 3}},
            {"id": "c", "params": {"amount": 4}}, {"params": {"amount": 5}},
        ])
        assert created[:2] == ["a", "c"] and len(created) == 3
        assert (await eng.status("orders", "b")).params == {"amount": 1}
        assert (await eng.status("orders", created[2])).params == {"amount": 5}
        assert counts(eng)["workflow_instance"] == 4 and len(tasks(eng)) == 4

    run(rt, body)


def test_create_batch_limit_is_100(rt: ManualRuntime) -> None:
    """A batch of 100 is accepted; 101 items raise BATCH_TOO_LARGE and write nothing."""
    async def body(eng: Engine) -> None:
        items = [{"id": f"i{n}", "params": {"amount": n}} for n in range(101)]
        with pytest.raises(EngineError) as info:
            await eng.create_batch("orders", items)
        assert info.value.code == "BATCH_TOO_LARGE"
        assert counts(eng)["workflow_instance"] == 0
        assert len(await eng.create_batch("orders", items[:100])) == 100

    run(rt, body)


@pytest.mark.parametrize(
    ("bad_item", "code"),
    [({"id": "bad id", "params": {"amount": 1}}, "INVALID_ID"), ({"id": "z", "params": {"amount": "x"}}, "INVALID_PARAMS"),
     ("not a mapping", "INVALID_ARGUMENT")],
)
def test_one_invalid_batch_item_writes_nothing(rt: ManualRuntime, bad_item: Any, code: str) -> None:
    """A batch with one invalid item is rejected whole: no instance of it is written."""
    async def body(eng: Engine) -> None:
        items = [{"id": "ok-1", "params": {"amount": 1}}, bad_item, {"id": "ok-2", "params": {"amount": 2}}]
        with pytest.raises(EngineError) as info:
            await eng.create_batch("orders", items)
        assert info.value.code == code
        assert counts(eng) == dict.fromkeys(counts(eng), 0)

    run(rt, body)


# -- status -------------------------------------------------------------------------------------------


def test_status_is_running_while_a_runner_holds_the_lease(rt: ManualRuntime) -> None:
    """From inside a step callback the instance reads as running, started at claim time."""
    seen: list[InstanceInfo] = []
    holder: dict[str, Engine] = {}

    @define_workflow("look")
    async def look(event: WorkflowEvent, step: WorkflowStep) -> None:
        async def peek() -> None:
            seen.append(await holder["engine"].status("look", event.instance_id))

        await step.do("peek", peek)

    async def body(eng: Engine) -> None:
        holder["engine"] = eng
        iid = await eng.create("look")
        await rt.advance(7)
        await eng.run_until_idle()
        assert [(s.status, s.started_at) for s in seen] == [(Status.RUNNING, at(T0 + 7))]
        assert (await eng.status("look", iid)).status == "complete"

    run(rt, body, look)


def test_status_tracks_waiting_and_completion_with_aware_utc_times(rt: ManualRuntime) -> None:
    """A sleeping instance is waiting at its current step; when done it is complete with output and UTC times."""
    async def body(eng: Engine) -> None:
        iid = await eng.create("orders", {"amount": 21, "sleep": "1 min"})
        await rt.advance(1)
        await eng.run_until_idle()
        info = await eng.status("orders", iid)
        assert (info.status, info.current_step) == ("waiting", "sleep:nap")
        await rt.advance(60)
        await eng.run_until_idle()
        info = await eng.status("orders", iid)
        assert (info.status, info.output, info.current_step) == ("complete", 42, "do:total")
        assert (info.created_at, info.started_at, info.completed_at) == (at(T0), at(T0 + 1), at(T0 + 61))
        for value in (info.created_at, info.started_at, info.completed_at, info.updated_at):
            assert value is not None and value.tzinfo is UTC

    run(rt, body)


def test_status_of_unknown_instance_or_workflow(rt: ManualRuntime) -> None:
    """status raises INSTANCE_NOT_FOUND for a missing id, WORKFLOW_NOT_FOUND for an unknown workflow."""
    async def body(eng: Engine) -> None:
        for workflow, code in (("orders", "INSTANCE_NOT_FOUND"), ("ghosts", "WORKFLOW_NOT_FOUND")):
            with pytest.raises(EngineError) as info:
                await eng.status(workflow, "missing")
            assert info.value.code == code

    run(rt, body)


# -- list_instances -----------------------------------------------------------------------------------


def test_list_instances_pages_with_a_stable_cursor(rt: ManualRuntime) -> None:
    """Pages follow creation order; status changes and new instances between pages neither skip nor repeat."""
    async def body(eng: Engine) -> None:
        ids = [await eng.create("orders", {"amount": n}, id=f"o{n}") for n in range(5)]
        first = await eng.list_instances("orders", limit=2)
        assert isinstance(first, Page) and [i.instance_id for i in first.items] == ids[:2]
        assert first.next_cursor is not None
        await eng.run_until_idle()  # every status changes between the two page reads
        await eng.create("orders", {"amount": 5}, id="o5")
        second = await eng.list_instances("orders", limit=2, cursor=first.next_cursor)
        third = await eng.list_instances("orders", limit=2, cursor=second.next_cursor)
        assert [i.instance_id for i in second.items] == ids[2:4]
        assert [i.instance_id for i in third.items] == ["o4", "o5"]
        assert third.next_cursor is None
        exact = await eng.list_instances("orders", limit=6)
        assert len(exact.items) == 6 and exact.next_cursor is None

    run(rt, body)


def test_list_instances_filters_by_status(rt: ManualRuntime) -> None:
    """A status filter returns only instances in that status, paging within the filter."""
    async def body(eng: Engine) -> None:
        for n in range(4):
            await eng.create("orders", {"amount": n, "sleep": "1 hour" if n % 2 else 0}, id=f"o{n}")
        await eng.run_until_idle()
        waiting = await eng.list_instances("orders", status="waiting")
        complete = await eng.list_instances("orders", status=Status.COMPLETE, limit=1)
        assert [i.instance_id for i in waiting.items] == ["o1", "o3"] and waiting.next_cursor is None
        assert [i.instance_id for i in complete.items] == ["o0"]
        rest = await eng.list_instances("orders", status="complete", cursor=complete.next_cursor)
        assert [i.instance_id for i in rest.items] == ["o2"] and rest.next_cursor is None
        assert (await eng.list_instances("orders", status="paused")).items == ()

    run(rt, body)


def test_list_instances_rejects_bad_arguments(rt: ManualRuntime) -> None:
    """Unknown statuses and out-of-range limits are INVALID_ARGUMENT; malformed cursors are INVALID_CURSOR."""
    async def body(eng: Engine) -> None:
        cases: list[tuple[dict[str, Any], str]] = [
            ({"status": "sleeping"}, "INVALID_ARGUMENT"), ({"limit": 0}, "INVALID_ARGUMENT"),
            ({"limit": 1001}, "INVALID_ARGUMENT"), ({"limit": True}, "INVALID_ARGUMENT"),
            ({"cursor": "abc"}, "INVALID_CURSOR"), ({"cursor": "-1"}, "INVALID_CURSOR"),
        ]
        for kwargs, code in cases:
            with pytest.raises(EngineError) as info:
                await eng.list_instances("orders", **kwargs)
            assert info.value.code == code, kwargs

    run(rt, body)


# -- history and records ------------------------------------------------------------------------------


def _datetimes(record: Any) -> list[datetime]:
    found: list[datetime] = []
    for value in attrs.asdict(record, recurse=False).values():
        if isinstance(value, datetime):
            found.append(value)
        elif attrs.has(type(value)):
            found.extend(_datetimes(value))
        elif isinstance(value, tuple):
            for item in value:
                found.extend(_datetimes(item))
    return found


def test_every_time_in_returned_records_is_aware_utc(rt: ManualRuntime) -> None:
    """InstanceInfo, StepRecord and EventRecord times are aware UTC datetimes equal to the runtime clock."""
    async def body(eng: Engine) -> None:
        iid = await eng.create("orders", {"amount": 1, "sleep": "30 s"})
        await eng.send_event("orders", iid, type="note", payload={"n": 1})
        await eng.run_until_idle()
        info = await eng.status("orders", iid)
        history = await eng.history("orders", iid)
        assert isinstance(history, History)
        stamps = _datetimes(info) + _datetimes(history)
        assert len(stamps) >= 5  # created, updated, started, the sleep's wake_at, the event's created_at
        assert all(s.tzinfo is UTC for s in stamps)
        assert history.steps[0].wake_at == at(T0 + 30) and history.events[0].created_at == at(T0)

    run(rt, body)


def test_history_shows_step_records_and_unconsumed_events(rt: ManualRuntime) -> None:
    """history lists the run's steps in order with their fields, and events with their ids and consumers."""
    async def body(eng: Engine) -> None:
        iid = await eng.create("orders", {"amount": 4})
        await eng.send_event("orders", iid, type="note", payload="hi", event_id="note-1")
        await eng.run_until_idle()
        history = await eng.history("orders", iid)
        (rec,) = history.steps
        assert (rec.key, rec.name, rec.type, rec.status, rec.attempts, rec.max_attempts, rec.result) == (
            "do:total", "total", "do", "completed", 1, 6, 8)
        assert (rec.error, rec.wake_at, rec.next_retry_at) == (None, None, None)
        (ev,) = history.events
        assert (ev.id, ev.type, ev.payload, ev.consumed_by) == ("note-1", "note", "hi", None)

    run(rt, body)
