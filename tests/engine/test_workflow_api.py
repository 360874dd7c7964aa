"""The workflow API: define_workflow, schemas, WorkflowEvent, step keys, replay, sleeps and step limits."""

from __future__ import annotations

import gc
import weakref
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import attrs
import pydantic
import pytest
from fakes import ManualRuntime
from support import T0, at, counts, run_async, shared_database

import engine._step
from engine import (
    Engine,
    EngineError,
    NameTooLong,
    WorkflowDefinition,
    WorkflowEvent,
    WorkflowStep,
    define_workflow,
)


@attrs.frozen
class OrderParams:
    order_id: str
    amount: int = attrs.field(validator=attrs.validators.instance_of(int))


class PydanticParams(pydantic.BaseModel):
    order_id: str
    amount: int


async def _run(rt: ManualRuntime, definition: WorkflowDefinition, params: Any = None) -> Any:
    async with Engine(workflows=[definition], runtime=rt) as eng:
        iid = await eng.create(definition.name, params)
        await eng.run_until_idle()
        return await eng.status(definition.name, iid)


# -- define_workflow -------------------------------------------------------------------------------


def test_define_workflow_as_decorator_and_as_call(rt: ManualRuntime) -> None:
    """The decorator form and the call form build equivalent definitions that run the same function."""

    async def body(event: WorkflowEvent, step: WorkflowStep) -> dict[str, Any]:
        return {"doubled": await step.do("double", lambda: event.payload["n"] * 2)}

    decorated = define_workflow("decorated")(body)
    called = define_workflow("called", body)
    for definition in (decorated, called):
        assert isinstance(definition, WorkflowDefinition) and definition.fn is body
        info = run_async(_run(rt, definition, {"n": 21}))
        assert (info.status, info.output) == ("complete", {"doubled": 42})


def test_define_workflow_rejects_bad_arguments() -> None:
    """Names over 64 chars are NAME_TOO_LONG, empty names, non-callables and non-schemas are INVALID_ARGUMENT."""
    async def body(event: WorkflowEvent, step: WorkflowStep) -> None:
        return None

    assert define_workflow("w" * 64, body).name == "w" * 64
    with pytest.raises(NameTooLong) as info:
        define_workflow("w" * 65, body)
    assert info.value.code == "NAME_TOO_LONG"
    for bad_call in (lambda: define_workflow("", body), lambda: define_workflow("x", 42),  # type: ignore[arg-type]
                     lambda: define_workflow("x", body, params=42)):
        with pytest.raises(EngineError) as err:
            bad_call()
        assert err.value.code == "INVALID_ARGUMENT"


def test_engine_rejects_non_definitions(rt: ManualRuntime) -> None:
    """Engine(workflows=...) only takes define_workflow results, so a bare function is refused."""
    async def body(event: WorkflowEvent, step: WorkflowStep) -> None:
        return None

    with pytest.raises(EngineError) as info:
        Engine(workflows=[body], runtime=rt)  # type: ignore[list-item]
    assert info.value.code == "INVALID_ARGUMENT"


def test_workflow_event_fields_are_stable_on_replay(rt: ManualRuntime) -> None:
    """event.payload, instance_id and timestamp (creation time) are the same on the first run and on replay."""
    seen: list[tuple[Any, str, datetime, str, int]] = []

    @define_workflow("evt")
    async def evt(event: WorkflowEvent, step: WorkflowStep) -> None:
        seen.append((event.payload, event.instance_id, event.timestamp, event.workflow, event.run_number))
        await step.sleep("nap", "1 hour")

    async def main() -> None:
        async with Engine(workflows=[evt], runtime=rt) as eng:
            await eng.create("evt", {"k": 1}, id="i-1")
            await rt.advance(30)
            await eng.run_until_idle()
            await rt.advance(3600)
            await eng.run_until_idle()
            assert (await eng.status("evt", "i-1")).status == "complete"

    run_async(main())
    assert len(seen) == 2
    assert seen[0] == seen[1] == ({"k": 1}, "i-1", at(T0), "evt", 1)


# -- params and output schemas --------------------------------------------------------------------


@pytest.mark.parametrize("schema", [OrderParams, PydanticParams], ids=["attrs", "pydantic"])
def test_valid_params_reach_the_workflow_as_schema_instances(rt: ManualRuntime, schema: type) -> None:
    """With an attrs or pydantic params schema, event.payload is an instance of that class."""
    payloads: list[Any] = []

    @define_workflow("typed", params=schema)
    async def typed(event: WorkflowEvent, step: WorkflowStep) -> int:
        payloads.append(event.payload)
        return int(event.payload.amount)

    info = run_async(_run(rt, typed, {"order_id": "o1", "amount": 125}))
    assert info.output == 125 and info.params == {"order_id": "o1", "amount": 125}
    assert isinstance(payloads[0], schema) and payloads[0].order_id == "o1"


def test_callable_params_schema_returns_the_validated_value(rt: ManualRuntime) -> None:
    """A callable schema's return value is what the workflow receives as event.payload."""
    @define_workflow("norm", params=lambda raw: {"name": raw["name"].strip().lower()})
    async def norm(event: WorkflowEvent, step: WorkflowStep) -> Any:
        return event.payload

    assert run_async(_run(rt, norm, {"name": "  ADA "})).output == {"name": "ada"}


def _amount_positive(raw: Any) -> Any:
    if raw.get("amount", 0) <= 0:
        raise ValueError("amount must be positive")
    return raw


@pytest.mark.parametrize(
    ("schema", "params", "expected"),
    [
        (OrderParams, {"order_id": "o1", "amount": "lots"}, "'amount' must be <class 'int'>"),
        (OrderParams, {"order_id": "o1"}, "amount"),
        (OrderParams, ["not", "a", "dict"], "expected an object"),
        (PydanticParams, {"order_id": "o1", "amount": "lots"}, "amount: Input should be a valid integer"),
        (_amount_positive, {"amount": -3}, "amount must be positive"),
    ],
    ids=["attrs-type", "attrs-missing", "attrs-not-object", "pydantic", "callable"],
)
def test_invalid_params_are_rejected_and_nothing_is_written(
    rt: ManualRuntime, schema: Any, params: Any, expected: str
) -> None:
    """Invalid params raise INVALID_PARAMS carrying the validator's message in details and str(), writing no rows."""
    @define_workflow("checked", params=schema)
    async def checked(event: WorkflowEvent, step: WorkflowStep) -> None:
        return None

    async def main() -> None:
        async with Engine(workflows=[checked], runtime=rt) as eng:
            with pytest.raises(EngineError) as info:
                await eng.create("checked", params, id="bad")
            err = info.value
            assert err.code == "INVALID_PARAMS"
            assert any(expected in m for m in err.details), err.details
            assert expected in str(err)
            assert counts(eng) == dict.fromkeys(counts(eng), 0)

    run_async(main())


@pytest.mark.parametrize(
    ("schema", "value", "stored"),
    [
        (OrderParams, {"order_id": "o1", "amount": 3}, {"order_id": "o1", "amount": 3}),
        (PydanticParams, {"order_id": "o1", "amount": "3"}, {"order_id": "o1", "amount": 3}),
        (lambda v: v * 2, 21, 42),
    ],
    ids=["attrs", "pydantic", "callable"],
)
def test_valid_output_is_stored_in_its_validated_json_form(
    rt: ManualRuntime, schema: Any, value: Any, stored: Any
) -> None:
    """The output schema's validated value (as plain JSON) becomes the instance output."""
    @define_workflow("out", output=schema)
    async def out(event: WorkflowEvent, step: WorkflowStep) -> Any:
        return value

    info = run_async(_run(rt, out))
    assert (info.status, info.output) == ("complete", stored)


def test_invalid_output_errors_the_instance(rt: ManualRuntime) -> None:
    """Output failing its schema makes the instance errored with OutputValidationError and the validator's text."""
    @define_workflow("badout", output=PydanticParams)
    async def badout(event: WorkflowEvent, step: WorkflowStep) -> Any:
        return {"order_id": "o1", "amount": "many"}

    info = run_async(_run(rt, badout))
    assert info.status == "errored" and info.output is None
    assert info.error is not None and info.error.name == "OutputValidationError"
    assert "amount" in info.error.message and "valid integer" in info.error.message


def test_non_json_output_errors_the_instance(rt: ManualRuntime) -> None:
    """A workflow returning a non-JSON value errors with a message that says JSON."""
    @define_workflow("setout")
    async def setout(event: WorkflowEvent, step: WorkflowStep) -> Any:
        return {1, 2}

    info = run_async(_run(rt, setout))
    assert info.status == "errored" and info.error is not None and "JSON" in info.error.message


# -- step keys and replay ---------------------------------------------------------------------------


def test_step_keys_number_repeats_and_separate_types(rt: ManualRuntime) -> None:
    """Repeated names get #2, #3 and the same name under another step type is its own key."""
    @define_workflow("keys")
    async def keys(event: WorkflowEvent, step: WorkflowStep) -> None:
        for _ in range(3):
            await step.do("x", lambda: 1)
        await step.sleep("x", 0)
        await step.sleep_until("x", 0)
        await step.do("y", lambda: 2)

    async def main() -> None:
        async with Engine(workflows=[keys], runtime=rt) as eng:
            iid = await eng.create("keys")
            await eng.run_until_idle()
            history = await eng.history("keys", iid)
            assert [s.key for s in history.steps] == ["do:x", "do:x#2", "do:x#3", "sleep:x", "sleep_until:x",
                                                      "do:y"]
            assert [s.type for s in history.steps] == ["do", "do", "do", "sleep", "sleep_until", "do"]
            assert {s.name for s in history.steps} == {"x", "y"}
            assert all(s.status == "completed" for s in history.steps)

    run_async(main())


def test_completed_steps_are_not_called_again_on_replay(rt: ManualRuntime) -> None:
    """Replay returns stored results without calling callbacks, and the JSON form is returned live and replayed."""
    calls: list[str] = []
    results: list[Any] = []

    @define_workflow("replay")
    async def replay(event: WorkflowEvent, step: WorkflowStep) -> Any:
        first = await step.do("a", lambda: calls.append("a") or (1, "two"))
        results.append(first)
        await step.sleep("nap", "10 s")
        second = await step.do("b", lambda: calls.append("b") or len(calls))
        return [first, second]

    async def main() -> None:
        async with Engine(workflows=[replay], runtime=rt) as eng:
            iid = await eng.create("replay")
            await eng.run_until_idle()
            await rt.advance(10)
            await eng.run_until_idle()
            info = await eng.status("replay", iid)
            assert info.output == [[1, "two"], 2]

    run_async(main())
    assert calls == ["a", "b"]
    assert results == [[1, "two"], [1, "two"]]  # live and replayed values agree (tuple stored as a list)


def _branchy(flag: dict[str, bool]) -> WorkflowDefinition:
    @define_workflow("branchy")
    async def branchy(event: WorkflowEvent, step: WorkflowStep) -> str:
        await step.do("b" if flag["swap"] else "a", lambda: 1)
        await step.sleep("nap", "10 s")
        return "done"

    return branchy


def test_replay_meeting_a_different_step_errors_with_nondeterminism(rt: ManualRuntime) -> None:
    """A replay whose step order differs from history errors the instance, naming expected and found keys."""
    flag = {"swap": False}

    async def main() -> None:
        async with Engine(workflows=[_branchy(flag)], runtime=rt) as eng:
            iid = await eng.create("branchy")
            await eng.run_until_idle()
            flag["swap"] = True
            await rt.advance(10)
            await eng.run_until_idle()
            info = await eng.status("branchy", iid)
            assert info.status == "errored" and info.error is not None
            assert info.error.name == "NondeterminismError"
            assert "'do:a'" in info.error.message and "'do:b'" in info.error.message

    run_async(main())


def test_nondeterminism_across_engines_sharing_a_file(rt: ManualRuntime, tmp_path: Path) -> None:
    """An engine with a changed workflow function, replaying another engine's history, reports nondeterminism."""
    @define_workflow("deploy")
    async def v1(event: WorkflowEvent, step: WorkflowStep) -> None:
        await step.do("build", lambda: 1)
        await step.sleep("wait", "1 min")

    @define_workflow("deploy")
    async def v2(event: WorkflowEvent, step: WorkflowStep) -> None:
        await step.sleep("wait", "1 min")
        await step.do("build", lambda: 1)

    db = shared_database(tmp_path)

    async def main() -> None:
        async with Engine(db, workflows=[v1], runtime=rt, runner_id="old") as old:
            iid = await old.create("deploy")
            await old.run_until_idle()
        await rt.advance(60)
        async with Engine(db, workflows=[v2], runtime=rt, runner_id="new") as new:
            await new.run_until_idle()
            info = await new.status("deploy", iid)
            assert info.error is not None and info.error.name == "NondeterminismError"
            assert "'do:build'" in info.error.message and "'sleep:wait'" in info.error.message

    run_async(main())


# -- step.do results and callbacks ------------------------------------------------------------------


def test_callbacks_sync_async_with_and_without_context(rt: ManualRuntime) -> None:
    """step.do awaits async callbacks and passes a StepContext only to callbacks that take one argument."""
    @define_workflow("cbs")
    async def cbs(event: WorkflowEvent, step: WorkflowStep) -> list[Any]:
        async def async_ctx(ctx: Any) -> str:
            return ctx.step_key

        async def async_plain() -> str:
            return "async"

        return [await step.do("a", lambda: "sync"), await step.do("b", lambda ctx: ctx.name),
                await step.do("c", async_plain), await step.do("d", async_ctx)]

    assert run_async(_run(rt, cbs)).output == ["sync", "b", "async", "do:d"]


def test_non_json_step_result_errors_the_step_and_the_runner_survives(rt: ManualRuntime) -> None:
    """A non-JSON step result fails that step for good (message says JSON) and the runner goes on to others."""
    calls: list[int] = []

    @define_workflow("nonjson")
    async def nonjson(event: WorkflowEvent, step: WorkflowStep) -> Any:
        if event.payload["bad"]:
            return await step.do("x", lambda: calls.append(1) or object())
        return await step.do("x", lambda: "fine")

    async def main() -> None:
        async with Engine(workflows=[nonjson], runtime=rt) as eng:
            bad = await eng.create("nonjson", {"bad": True})
            good = await eng.create("nonjson", {"bad": False})
            assert await eng.run_until_idle() == 2
            step = (await eng.history("nonjson", bad)).steps[0]
            assert (step.status, step.attempts) == ("errored", 1)
            assert step.error is not None and "JSON" in step.error.message
            info = await eng.status("nonjson", bad)
            assert info.status == "errored" and info.error is not None and "JSON" in info.error.message
            assert (await eng.status("nonjson", good)).output == "fine"

    run_async(main())
    assert calls == [1]  # not retried: the same callback would produce the same non-JSON value again


def test_oversized_step_result_fails_with_payload_too_large(rt: ManualRuntime) -> None:
    """A step result over 1 MiB of JSON fails the step at once with PayloadTooLarge."""
    @define_workflow("huge")
    async def huge(event: WorkflowEvent, step: WorkflowStep) -> Any:
        return await step.do("big", lambda: "x" * (1024 * 1024))

    info = run_async(_run(rt, huge))
    assert info.status == "errored" and info.error is not None and info.error.name == "PayloadTooLarge"


def test_step_callbacks_are_not_kept_alive_after_the_step(rt: ManualRuntime) -> None:
    """The engine keeps no reference to a finished step's callback, so closures (and what they hold) are freed."""
    refs: list[weakref.ref[Any]] = []

    @define_workflow("leak")
    async def leak(event: WorkflowEvent, step: WorkflowStep) -> int:
        blob = bytearray(1000)

        def callback() -> int:
            return len(blob)

        refs.append(weakref.ref(callback))
        return await step.do("x", callback)

    async def main() -> None:
        async with Engine(workflows=[leak], runtime=rt) as eng:
            for _ in range(3):
                await eng.create("leak")
            await eng.run_until_idle()

    run_async(main())
    gc.collect()
    assert len(refs) == 3 and all(r() is None for r in refs)


# -- sleep and sleep_until --------------------------------------------------------------------------


@pytest.mark.parametrize("duration", ["90 s", "1.5 min", 90, 90.0, timedelta(seconds=90)])
def test_sleep_persists_wake_time_and_completes_exactly_then(rt: ManualRuntime, duration: Any) -> None:
    """A sleep in any duration form records wake_at, leaves the instance waiting, and ends at that exact time."""
    @define_workflow("nap")
    async def nap(event: WorkflowEvent, step: WorkflowStep) -> str:
        await step.sleep("nap", duration)
        return "awake"

    async def main() -> None:
        async with Engine(workflows=[nap], runtime=rt) as eng:
            iid = await eng.create("nap")
            await eng.run_until_idle()
            (rec,) = (await eng.history("nap", iid)).steps
            assert (rec.key, rec.status, rec.wake_at) == ("sleep:nap", "waiting", at(T0 + 90))
            assert (await eng.status("nap", iid)).status == "waiting"
            await rt.advance(89)
            assert await eng.run_until_idle() == 0
            await rt.advance(1)
            assert await eng.run_until_idle() == 1
            assert (await eng.status("nap", iid)).output == "awake"
            assert (await eng.history("nap", iid)).steps[0].status == "completed"

    run_async(main())


@pytest.mark.parametrize(
    "when", [T0 + 300, at(T0 + 300), at(T0 + 300).astimezone(timezone(timedelta(hours=5)))],
    ids=["epoch", "utc", "other-zone"],
)
def test_sleep_until_accepts_epoch_and_aware_datetimes(rt: ManualRuntime, when: Any) -> None:
    """sleep_until wakes at the given instant whether given as epoch seconds or an aware datetime in any zone."""
    @define_workflow("until")
    async def until(event: WorkflowEvent, step: WorkflowStep) -> None:
        await step.sleep_until("deadline", when)

    async def main() -> None:
        async with Engine(workflows=[until], runtime=rt) as eng:
            iid = await eng.create("until")
            await eng.run_until_idle()
            assert (await eng.history("until", iid)).steps[0].wake_at == at(T0 + 300)
            await rt.advance(299)
            await eng.run_until_idle()
            assert (await eng.status("until", iid)).status == "waiting"
            await rt.advance(1)
            await eng.run_until_idle()
            assert (await eng.status("until", iid)).status == "complete"

    run_async(main())


def test_sleep_until_in_the_past_completes_at_once_and_naive_errors(rt: ManualRuntime) -> None:
    """A past sleep_until completes in the same pass; a naive datetime errors the instance with INVALID_ARGUMENT."""
    @define_workflow("past")
    async def past(event: WorkflowEvent, step: WorkflowStep) -> str:
        await step.sleep_until("then", T0 - 5)
        if event.payload["naive"]:
            await step.sleep_until("naive", datetime(2030, 1, 1))
        return "ok"

    async def main() -> None:
        async with Engine(workflows=[past], runtime=rt) as eng:
            ok = await eng.create("past", {"naive": False})
            bad = await eng.create("past", {"naive": True})
            await eng.run_until_idle()
            assert (await eng.status("past", ok)).output == "ok"
            info = await eng.status("past", bad)
            assert info.error is not None and info.error.name == "InvalidArgument" and "naive" in info.error.message

    run_async(main())


# -- limits -----------------------------------------------------------------------------------------


def test_step_name_limit(rt: ManualRuntime) -> None:
    """Step names up to 256 chars work; a longer one errors the instance with NameTooLong."""
    @define_workflow("names")
    async def names(event: WorkflowEvent, step: WorkflowStep) -> int:
        return int(await step.do("n" * event.payload, lambda: 1))

    async def main() -> None:
        async with Engine(workflows=[names], runtime=rt) as eng:
            ok = await eng.create("names", 256)
            bad = await eng.create("names", 257)
            await eng.run_until_idle()
            assert (await eng.status("names", ok)).output == 1
            info = await eng.status("names", bad)
            assert info.error is not None and info.error.name == "NameTooLong"

    run_async(main())


def test_too_many_steps(rt: ManualRuntime, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run may have MAX_STEPS_PER_RUN steps; the next one errors the instance with TooManySteps."""
    monkeypatch.setattr(engine._step, "MAX_STEPS_PER_RUN", 5)

    @define_workflow("many")
    async def many(event: WorkflowEvent, step: WorkflowStep) -> int:
        for i in range(event.payload):
            await step.do(f"s{i}", lambda: 0)
        return int(event.payload)

    async def main() -> None:
        async with Engine(workflows=[many], runtime=rt) as eng:
            ok = await eng.create("many", 5)
            bad = await eng.create("many", 6)
            await eng.run_until_idle()
            assert (await eng.status("many", ok)).output == 5
            info = await eng.status("many", bad)
            assert info.status == "errored" and info.error is not None and info.error.name == "TooManySteps"
            assert len((await eng.history("many", bad)).steps) == 5

    run_async(main())


def test_default_step_limit_is_ten_thousand() -> None:
    """The limit the step methods enforce is DESIGN's 10,000 steps per run."""
    assert engine._step.MAX_STEPS_PER_RUN == 10_000
