"""The reference model judges every scenario run: the scenario's own workflows, replayed by the model itself.

A scenario that expects nothing about retry times, batch answers or event payloads still fails when the
engine gets them wrong, because the model (`properties.workflows`) runs the workflow function against its own
journal and the callbacks report each attempt. Each test shows a semantic zoo mutant caught this way and only
this way (`oracle=False`: the expectations alone pass).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from engine import NonRetryableError, Retries, StepFailed, WorkflowEvent, WorkflowStep, define_workflow
from properties.model import Model
from properties.programs import Do
from properties.workflows import Ended, Unmodelable, WorkflowSpec
from sim.scenario.dsl import (
    Scenario,
    advance,
    create,
    create_batch,
    event,
    expect,
    expect_status,
    run_state,
    run_until_idle,
)
from sim.scenario.files import load
from sim.zoo.mutants import apply

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


def flaky(ctx):  # type: ignore[no-untyped-def]
    run_state()[ctx.attempt] = True  # callbacks may use the ledger; only a workflow body may not
    if ctx.attempt < 3:
        raise RuntimeError(f"try {ctx.attempt}")
    return {"ok": ctx.attempt}


@define_workflow("retrying")
async def retrying(event: WorkflowEvent, step: WorkflowStep):  # type: ignore[no-untyped-def]
    got = await step.do("charge", flaky, retries=Retries(limit=4, delay="10 s", backoff="exponential"))
    approval = await step.wait_for_event("approve", type="approve", timeout="1 hour", match={"ok": True})
    return {"charge": got, "approval": approval}


RETRY_FLOW = Scenario("retry-flow", [retrying], runners=["a", "b"], steps=[
    create(retrying, id="r"),
    run_until_idle(),
    advance("25 s"),
    run_until_idle(),
    advance("45 s"),
    run_until_idle(),
    event("r", "approve", {"ok": False, "n": 1}),
    event("r", "approve", {"ok": True, "n": 2}),
    run_until_idle(),
], tolerates=["interleaving", "crash"])


def test_the_model_catches_a_wrong_retry_time_the_expectations_never_mention() -> None:
    assert RETRY_FLOW.run().ok
    assert all(RETRY_FLOW.run(seed).ok for seed in range(6))
    with apply("exponential-backoff-off-by-one"):
        assert RETRY_FLOW.run(oracle=False).ok  # the scenario itself expects nothing about times
        report = RETRY_FLOW.run().report
    assert report is not None and "model:" in report and "retry" in report


def test_the_model_catches_a_wait_that_ignores_its_match() -> None:
    with apply("match-ignored"):
        assert RETRY_FLOW.run(oracle=False).ok
        report = RETRY_FLOW.run().report
    assert report is not None and "model:" in report


@define_workflow("one-step")
async def one_step(event: WorkflowEvent, step: WorkflowStep):  # type: ignore[no-untyped-def]
    return await step.do("only", lambda: event.payload)


def test_the_model_predicts_client_answers_in_scenarios() -> None:
    batch = Scenario("batch", [one_step], runners=["a"], steps=[
        create(one_step, {"n": 0}, id="b0"),
        create_batch(one_step, [{"id": "b0", "params": {"n": 0}}, {"id": "b1", "params": {"n": 1}}]),
        run_until_idle(),
        expect_status("b1", "complete"),
    ])
    assert batch.run().ok
    with apply("batch-answers-every-id"):
        assert batch.run(oracle=False).ok
        report = batch.run().report
    assert report is not None and "property 10 (client) batch" in report


def test_a_workflow_body_reading_ambient_state_is_left_to_the_generic_properties() -> None:
    # Its first step depends on run_state(), which its own callback changes: the model could not replay it
    # and would blame the engine; it lets the instance go instead, and the engine's NondeterminismError is
    # checked by the scenario's own expectations.
    scenario = load(SCENARIOS / "nondeterminism_detection.py")
    assert scenario.run().ok
    assert all(scenario.run(seed).ok for seed in range(4))


# -- the model running a workflow function itself ------------------------------------------------------------


@define_workflow("caught")
async def caught(event: WorkflowEvent, step: WorkflowStep):  # type: ignore[no-untyped-def]
    try:
        await step.do("bad#name", lambda: 1)
    except Exception as exc:  # noqa: BLE001 - InvalidStepName, raised into the workflow at the call
        refused = type(exc).__name__
    try:
        await step.do("pay", lambda: 1)
    except StepFailed as failed:
        return [refused, failed.error_name, failed.attempts, event.payload["n"], event.instance_id]
    return "paid"


def test_a_workflow_function_runs_as_a_program_of_requests() -> None:
    spec = WorkflowSpec.of(caught)
    gen = spec.program({"n": 7}, "c1", 0.0, 1)
    request = gen.send(None)  # "bad#name" reaches the model as a request; the model refuses it
    assert request.name == "bad#name"
    from properties.programs import Failed, Refused

    pay = gen.throw(Refused("INVALID_STEP_NAME"))
    assert isinstance(pay, Do) and pay.name == "pay" and pay.opaque and pay.limit == 5 and pay.timeout == 600
    with pytest.raises(StopIteration) as done:
        gen.throw(Failed("ValueError", "no", 6, "do:pay"))
    assert done.value.value == ["InvalidStepName", "ValueError", 6, 7, "c1"]


@define_workflow("gathering")
async def gathering(event: WorkflowEvent, step: WorkflowStep):  # type: ignore[no-untyped-def]
    return await asyncio.gather(step.do("a", lambda: 1), step.do("b", lambda: 2))


class Fatal(Exception):
    non_retryable = True  # DESIGN §2: a class may opt out of retries


def fatal() -> None:
    raise Fatal("card stolen")


@define_workflow("opting-out")
async def opting_out(event: WorkflowEvent, step: WorkflowStep):  # type: ignore[no-untyped-def]
    try:
        await step.do("charge", fatal, retries=Retries(limit=3, delay="1 s"))
    except StepFailed as failed:
        return failed.attempts
    return 0


def test_the_model_learns_from_the_callback_report_that_an_error_opts_out_of_retries() -> None:
    scenario = Scenario("opting-out", [opting_out], runners=["a"], steps=[
        create(opting_out, id="o"),
        run_until_idle(),
        expect_status("o", "complete"),
    ])
    assert scenario.run().ok  # one attempt, no retry: the model agrees only if it saw `non_retryable`


@define_workflow("uncaught")
async def uncaught(event: WorkflowEvent, step: WorkflowStep):  # type: ignore[no-untyped-def]
    await step.sleep("nap", "5 s")
    raise NonRetryableError("gave up")


def test_what_the_model_cannot_follow_it_lets_go_and_uncaught_errors_end_the_run() -> None:
    with pytest.raises(Unmodelable):
        next(WorkflowSpec.of(gathering).program(None, "g", 0.0, 1))
    gen = WorkflowSpec.of(uncaught).program(None, "u", 0.0, 1)
    next(gen)
    with pytest.raises(Ended) as ended:
        gen.send(None)
    assert (ended.value.name, ended.value.message) == ("NonRetryableError", "gave up")

    # On the engine, gather works; in a scenario the model lets the instance go without touching the loop.
    together = Scenario("gathering", [gathering], runners=["a"], steps=[
        create(gathering, id="g"),
        run_until_idle(),
        expect_status("g", "complete"),
    ])
    assert together.run().ok

    model = Model({"gathering": WorkflowSpec.of(gathering)})
    model.create("gathering", "g", None)
    assert model.due("g", 0.0) is None and "g" not in model.instances and "g" in model.dropped


# -- what a workflow body may do that the model must not misread ---------------------------------------------


async def _inner() -> str:
    return "inner"


async def _returns_a_coroutine():  # type: ignore[no-untyped-def]
    return _inner()  # the engine awaits what an async callback returns once more


@define_workflow("awkward")
async def awkward(event: WorkflowEvent, step: WorkflowStep):  # type: ignore[no-untyped-def]
    if event.payload.get("gather"):
        return await asyncio.gather(step.do("a", lambda: 1), step.do("b", lambda: 2))
    items = await step.do("list", lambda: [1, 2])
    items.append(3)  # the body's own copy: the stored result stays [1, 2]
    try:
        got = await step.wait_for_event("e", type="e", timeout="1 hour")
    finally:
        run_state()["finally"] = run_state().get("finally", 0) + 1
    return {"items": items, "payload": got.payload, "inner": await step.do("c", _returns_a_coroutine)}


def test_bodies_that_mutate_results_run_finally_blocks_or_get_tuples_are_judged_right() -> None:
    # Each was a false violation once: a result mutated in the model's journal, a tuple payload kept as a
    # tuple, a coroutine reported as a callback's result, `finally` blocks run when the collector closed the
    # model's replays, and a workflow listing with an instance the model let go.
    scenario = Scenario("awkward", [awkward], runners=["a", "b"], steps=[
        create(awkward, {"gather": True}, id="g"),
        create(awkward, {}, id="w"),
        run_until_idle(),
        event("w", "e", {"items": (1, 2), "n": 1}),
        run_until_idle(),
        expect_status("g", "complete"),
        expect_status("w", "complete"),
        expect(lambda ctx: ctx.status("w").output["items"] == [1, 2, 3], "the body's copy was extended"),
        expect(lambda ctx: ctx.state["finally"] == 2, "the finally block ran once per engine execution"),
    ], tolerates=["interleaving"])
    assert scenario.run().ok, scenario.run().report
    assert all(scenario.run(seed).ok for seed in range(5))
