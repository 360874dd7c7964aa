"""Retries, timeouts, StepContext and how step failures reach the workflow (DESIGN §2 Retries/Timeouts)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fakes import ManualRuntime
from support import T0, at, finished, run_async, settle

from engine import (
    Engine,
    NonRetryableError,
    Retries,
    StepContext,
    StepFailed,
    WorkflowEvent,
    WorkflowStep,
    define_workflow,
)


class Declined(Exception):
    """A retryable failure with a recognisable class name."""


class Fraud(NonRetryableError):
    """A non-retryable failure via the base class."""


class Gone(Exception):
    """A non-retryable failure via the class attribute opt-out."""

    non_retryable = True


# -- the policy value ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("backoff", "delays"),
    [("constant", [10, 10, 10, 10]), ("linear", [10, 20, 30, 40]), ("exponential", [10, 20, 40, 80])],
)
def test_delay_after_follows_the_backoff_formula(backoff: str, delays: list[float]) -> None:
    """Failed attempt n waits d, d*n or d*2**(n-1) for constant, linear and exponential backoff."""
    policy = Retries(limit=4, delay="10 s", backoff=backoff)
    assert [policy.delay_after(n) for n in (1, 2, 3, 4)] == delays
    assert policy.max_attempts == 5


@pytest.mark.parametrize(
    "kwargs", [{"limit": -1, "delay": 1}, {"limit": True, "delay": 1}, {"limit": 1.5, "delay": 1},
               {"limit": 1, "delay": 1, "backoff": "fibonacci"}, {"limit": 1, "delay": "soon"}],
)
def test_invalid_policies_are_rejected(kwargs: dict[str, Any]) -> None:
    """Negative or non-int limits, unknown backoffs and unparseable delays raise ValueError."""
    with pytest.raises(ValueError):
        Retries(**kwargs)


def test_exponential_is_the_default_backoff() -> None:
    """Retries(limit, delay) defaults to exponential backoff."""
    assert Retries(limit=2, delay=1).backoff == "exponential"


# -- retries in the engine ---------------------------------------------------------------------------


def _flaky(fail_times: int, retries: Retries | None, calls: list[float], rt: ManualRuntime) -> Any:
    @define_workflow("flaky")
    async def flaky(event: WorkflowEvent, step: WorkflowStep) -> Any:
        def charge(ctx: StepContext) -> int:
            calls.append(rt.now())
            if ctx.attempt <= fail_times:
                raise Declined(f"declined on attempt {ctx.attempt}")
            return ctx.attempt

        return await step.do("charge", charge, retries=retries) if retries else await step.do("charge", charge)

    return flaky


@pytest.mark.parametrize(
    ("backoff", "gaps"), [("constant", [10, 10, 10]), ("linear", [10, 20, 30]), ("exponential", [10, 20, 40])]
)
def test_retry_runs_exactly_when_next_retry_at_is_reached(
    rt: ManualRuntime, backoff: str, gaps: list[float]
) -> None:
    """Each retry is recorded at failure time + backoff and runs only once the clock reaches that instant."""
    calls: list[float] = []
    flaky = _flaky(3, Retries(limit=3, delay="10 s", backoff=backoff), calls, rt)

    async def main() -> None:
        async with Engine(workflows=[flaky], runtime=rt) as eng:
            iid = await eng.create("flaky")
            await eng.run_until_idle()
            expected_time = T0
            for attempt, gap in enumerate(gaps, start=1):
                (rec,) = (await eng.history("flaky", iid)).steps
                expected_time += gap
                assert (rec.status, rec.attempts, rec.max_attempts) == ("waiting", attempt, 4)
                assert rec.next_retry_at == at(expected_time)
                assert rec.error is not None and rec.error.name == "Declined"
                assert (await eng.status("flaky", iid)).status == "waiting"
                await rt.advance(gap - 1)
                assert await eng.run_until_idle() == 0
                await rt.advance(1)
                assert await eng.run_until_idle() == 1
            info = await eng.status("flaky", iid)
            assert (info.status, info.output) == ("complete", 4)

    run_async(main())
    assert [c - T0 for c in calls] == [0, *[sum(gaps[:i]) for i in range(1, 4)]]


def test_cloudflare_defaults_apply_when_retries_are_omitted(rt: ManualRuntime) -> None:
    """Without retries=, a step gets 6 attempts with 10 s exponential backoff, then fails the instance."""
    calls: list[float] = []
    flaky = _flaky(99, None, calls, rt)

    async def main() -> None:
        async with Engine(workflows=[flaky], runtime=rt) as eng:
            iid = await eng.create("flaky")
            await eng.run_until_idle()
            (rec,) = (await eng.history("flaky", iid)).steps
            assert (rec.max_attempts, rec.next_retry_at) == (6, at(T0 + 10))
            for gap in (10, 20, 40, 80, 160):
                await rt.advance(gap)
                await eng.run_until_idle()
            (rec,) = (await eng.history("flaky", iid)).steps
            assert (rec.status, rec.attempts, rec.next_retry_at) == ("errored", 6, None)
            info = await eng.status("flaky", iid)
            assert info.status == "errored" and info.error is not None
            assert (info.error.name, info.error.message) == ("Declined", "declined on attempt 6")
            await rt.advance(10_000)
            assert await eng.run_until_idle() == 0

    run_async(main())
    assert [c - T0 for c in calls] == [0, 10, 30, 70, 150, 310]


def test_replay_before_the_retry_time_does_not_run_the_retry_early(rt: ManualRuntime) -> None:
    """An instance woken inside its retry window (pause then resume) waits for next_retry_at before retrying."""
    calls: list[float] = []
    flaky = _flaky(1, Retries(limit=1, delay="10 s", backoff="constant"), calls, rt)

    async def main() -> None:
        async with Engine(workflows=[flaky], runtime=rt) as eng:
            iid = await eng.create("flaky")
            await eng.run_until_idle()
            await rt.advance(2)
            await eng.pause("flaky", iid)
            await eng.resume("flaky", iid)
            assert await eng.run_until_idle() == 1  # the resume replays, finds the retry not yet due
            assert len(calls) == 1 and (await eng.status("flaky", iid)).status == "waiting"
            await rt.advance(7.5)
            assert await eng.run_until_idle() == 0
            await rt.advance(0.5)
            await eng.run_until_idle()
            assert (await eng.status("flaky", iid)).output == 2

    run_async(main())
    assert [c - T0 for c in calls] == [0, 10]


def test_zero_delay_retries_within_one_claim(rt: ManualRuntime) -> None:
    """With a 0 s delay the retries run at once in the same claim and the attempts never exceed the maximum."""
    calls: list[float] = []
    flaky = _flaky(99, Retries(limit=2, delay=0), calls, rt)

    async def main() -> None:
        async with Engine(workflows=[flaky], runtime=rt) as eng:
            iid = await eng.create("flaky")
            assert await eng.run_until_idle() == 1
            (rec,) = (await eng.history("flaky", iid)).steps
            assert (rec.status, rec.attempts, rec.max_attempts) == ("errored", 3, 3)

    run_async(main())
    assert len(calls) == 3


@pytest.mark.parametrize("exc_class", [Fraud, Gone], ids=["NonRetryableError", "non_retryable-attribute"])
def test_non_retryable_errors_stop_at_once(rt: ManualRuntime, exc_class: type[Exception]) -> None:
    """A NonRetryableError (or a class with non_retryable = True) fails the step after one attempt."""
    calls: list[int] = []

    @define_workflow("strict")
    async def strict(event: WorkflowEvent, step: WorkflowStep) -> None:
        def charge() -> None:
            calls.append(1)
            raise exc_class("card reported stolen")

        await step.do("charge", charge, retries=Retries(limit=5, delay="1 s"))

    async def main() -> None:
        async with Engine(workflows=[strict], runtime=rt) as eng:
            iid = await eng.create("strict")
            await eng.run_until_idle()
            (rec,) = (await eng.history("strict", iid)).steps
            assert (rec.status, rec.attempts, rec.max_attempts) == ("errored", 1, 6)
            info = await eng.status("strict", iid)
            assert info.error is not None
            assert (info.error.name, info.error.message) == (exc_class.__name__, "card reported stolen")

    run_async(main())
    assert calls == [1]


def test_limit_zero_means_a_single_attempt(rt: ManualRuntime) -> None:
    """Retries(limit=0) gives exactly one attempt."""
    calls: list[float] = []
    flaky = _flaky(1, Retries(limit=0, delay="1 s"), calls, rt)
    info = run_async(_status_after_run(rt, flaky))
    assert info.status == "errored" and len(calls) == 1


async def _status_after_run(rt: ManualRuntime, definition: Any) -> Any:
    async with Engine(workflows=[definition], runtime=rt) as eng:
        iid = await eng.create(definition.name)
        await eng.run_until_idle()
        return await eng.status(definition.name, iid)


# -- failures reaching the workflow -------------------------------------------------------------------


def test_step_failed_is_catchable_and_identical_on_replay(rt: ManualRuntime) -> None:
    """A step that fails for good raises StepFailed with name, message, attempts, the same live and on replay."""
    seen: list[tuple[str, str, str, int, str]] = []

    @define_workflow("catcher")
    async def catcher(event: WorkflowEvent, step: WorkflowStep) -> Any:
        def charge() -> None:
            raise Declined("insufficient funds")

        try:
            await step.do("charge", charge, retries=Retries(limit=1, delay=0))
        except StepFailed as failed:
            seen.append((type(failed).__name__, failed.error_name, failed.message, failed.attempts, str(failed)))
            outcome = "refund"
        else:
            outcome = "charged"
        await step.sleep("settle", "5 s")
        return outcome

    async def main() -> None:
        async with Engine(workflows=[catcher], runtime=rt) as eng:
            iid = await eng.create("catcher")
            await eng.run_until_idle()
            await rt.advance(5)
            await eng.run_until_idle()
            assert (await eng.status("catcher", iid)).output == "refund"

    run_async(main())
    expected = ("StepFailed", "Declined", "insufficient funds", 2, "insufficient funds")
    assert seen == [expected, expected]


def test_uncaught_step_failure_errors_the_instance_with_the_original_error(rt: ManualRuntime) -> None:
    """An uncaught final step failure makes the instance errored with the original class name and message."""
    @define_workflow("uncaught")
    async def uncaught(event: WorkflowEvent, step: WorkflowStep) -> None:
        def boom() -> None:
            raise KeyError("sku-42")

        await step.do("lookup", boom, retries=Retries(limit=0, delay=0))

    info = run_async(_status_after_run(rt, uncaught))
    assert info.status == "errored" and info.error is not None
    assert (info.error.name, info.error.message) == ("KeyError", "'sku-42'")


def test_step_context_fields_and_idempotency_key(rt: ManualRuntime) -> None:
    """StepContext carries workflow, instance, run, key, name, a 1-based attempt and a stable idempotency key."""
    contexts: list[StepContext] = []

    @define_workflow("ctx")
    async def ctx_wf(event: WorkflowEvent, step: WorkflowStep) -> None:
        await step.do("pay", lambda: None)

        def charge(ctx: StepContext) -> None:
            contexts.append(ctx)
            if ctx.attempt == 1:
                raise Declined("try again")

        await step.do("pay", charge, retries=Retries(limit=1, delay="3 s"))

    async def main() -> None:
        async with Engine(workflows=[ctx_wf], runtime=rt) as eng:
            await eng.create("ctx", id="inv-7")
            await eng.run_until_idle()
            await rt.advance(3)
            await eng.run_until_idle()
            await eng.restart("ctx", "inv-7")
            await eng.run_until_idle()
            await rt.advance(3)
            await eng.run_until_idle()

    run_async(main())
    assert [(c.workflow, c.instance_id, c.run_number, c.step_key, c.name, c.attempt) for c in contexts] == [
        ("ctx", "inv-7", 1, "do:pay#2", "pay", 1),
        ("ctx", "inv-7", 1, "do:pay#2", "pay", 2),
        ("ctx", "inv-7", 2, "do:pay#2", "pay", 1),
        ("ctx", "inv-7", 2, "do:pay#2", "pay", 2),
    ]
    assert [c.idempotency_key for c in contexts] == ["ctx:inv-7:1:do:pay#2"] * 2 + ["ctx:inv-7:2:do:pay#2"] * 2


# -- timeouts -----------------------------------------------------------------------------------------


def test_attempt_timeout_cancels_the_async_callback_and_retries(rt: ManualRuntime) -> None:
    """An async attempt outliving its timeout is cancelled, fails with StepTimeoutError and is retried."""
    cancelled: list[int] = []
    never = asyncio.Event

    @define_workflow("slow")
    async def slow(event: WorkflowEvent, step: WorkflowStep) -> Any:
        async def call(ctx: StepContext) -> str:
            if ctx.attempt == 1:
                try:
                    await never().wait()
                except asyncio.CancelledError:
                    cancelled.append(ctx.attempt)
                    raise
            return f"attempt {ctx.attempt}"

        return await step.do("call", call, retries=Retries(limit=2, delay="10 s", backoff="constant"),
                             timeout="5 s")

    async def main() -> None:
        async with Engine(workflows=[slow], runtime=rt) as eng:
            iid = await eng.create("slow")
            running = asyncio.ensure_future(eng.tick())
            await settle()
            await rt.advance(4.9)
            await settle()
            assert not running.done() and cancelled == []
            await rt.advance(0.1)
            assert await finished(running) == 1
            assert cancelled == [1]
            (rec,) = (await eng.history("slow", iid)).steps
            assert (rec.status, rec.attempts, rec.next_retry_at) == ("waiting", 1, at(T0 + 15))
            assert rec.error is not None and rec.error.name == "StepTimeoutError"
            assert "timed out after 5 s" in rec.error.message
            await rt.advance(10)
            await eng.run_until_idle()
            assert (await eng.status("slow", iid)).output == "attempt 2"

    run_async(main())


def test_a_result_that_lands_with_its_timer_but_past_the_deadline_is_discarded(rt: ManualRuntime) -> None:
    """The callback and its timer become ready in one turn of the loop (here a clock jump; in production a
    loop blocked by other code): the attempt outlived its timeout, so its result is never committed.
    Found by the reference model on a fuzz seed with a clock-jump fault."""
    gate = asyncio.Event()

    @define_workflow("jumped")
    async def jumped(event: WorkflowEvent, step: WorkflowStep) -> Any:
        async def call(ctx: StepContext) -> str:
            if ctx.attempt == 1:
                await gate.wait()
            return f"attempt {ctx.attempt}"

        return await step.do("call", call, retries=Retries(limit=1, delay="1 s", backoff="constant"),
                             timeout="10 s")

    async def main() -> None:
        async with Engine(workflows=[jumped], runtime=rt) as eng:
            iid = await eng.create("jumped")
            running = asyncio.ensure_future(eng.tick())
            await settle()
            rt.t += 30  # the clock jumps past the deadline before the timer fires
            gate.set()
            await rt.advance(0)
            await finished(running)
            (rec,) = (await eng.history("jumped", iid)).steps
            assert (rec.status, rec.attempts) == ("waiting", 1)
            assert rec.error is not None and rec.error.name == "StepTimeoutError"
            await rt.advance(1)
            await eng.run_until_idle()
            assert (await eng.status("jumped", iid)).output == "attempt 2"

    run_async(main())


def test_default_timeout_is_ten_minutes(rt: ManualRuntime) -> None:
    """Without timeout=, an async attempt is cut off after exactly 600 s (its lease renewed meanwhile)."""
    @define_workflow("slowdefault")
    async def slowdefault(event: WorkflowEvent, step: WorkflowStep) -> None:
        async def hang() -> None:
            await asyncio.Event().wait()

        await step.do("hang", hang, retries=Retries(limit=0, delay=0))

    async def main() -> None:
        async with Engine(workflows=[slowdefault], runtime=rt, lease="60 s") as eng:
            iid = await eng.create("slowdefault")
            running = asyncio.ensure_future(eng.tick())
            await settle()
            for _ in range(29):
                await rt.advance(20)
                await settle()
            assert not running.done()
            await rt.advance(20)
            await finished(running)
            info = await eng.status("slowdefault", iid)
            assert info.error is not None and info.error.name == "StepTimeoutError"
            assert "600 s" in info.error.message

    run_async(main())
