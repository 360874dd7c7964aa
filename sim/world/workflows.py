"""Built-in workflows: the design's approval flow plus the shapes the workload generator mixes."""

from __future__ import annotations

from typing import Any

import attrs

from engine import (
    InvalidStepName,
    Retries,
    StepFailed,
    WaitForEventTimeout,
    WorkflowEvent,
    WorkflowStep,
    define_workflow,
)


@attrs.frozen
class ApprovalParams:
    request_id: str
    amount: int = attrs.field()

    @amount.validator
    def _positive(self, _: object, value: int) -> None:
        if not isinstance(value, int) or value <= 0:
            raise ValueError(f"amount must be a positive int, got {value!r}")


@define_workflow("approval-workflow", params=ApprovalParams)
async def approval(event: WorkflowEvent, step: WorkflowStep) -> dict[str, Any]:
    """Wait for approval, cool down 2 s, wait for fulfilment, then complete (DESIGN §7)."""
    decision = await step.wait_for_event("approval", type="approval", timeout="15 min")
    if not decision.payload.get("approved"):
        return {"request_id": event.payload.request_id, "approved": False}
    await step.sleep("cooldown", "2 s")
    fulfilment = await step.wait_for_event("fulfilment", type="fulfillment", timeout="1 hour")
    return {"request_id": event.payload.request_id, "approved": True,
            "confirmation_id": fulfilment.payload.get("confirmation_id")}


@attrs.frozen
class QuoteParams:
    sku: str
    quantity: int = attrs.field()

    @quantity.validator
    def _positive(self, _: object, value: int) -> None:
        if not isinstance(value, int) or value <= 0:
            raise ValueError(f"quantity must be a positive int, got {value!r}")


@attrs.frozen
class Quote:
    sku: str
    total: int = attrs.field()

    @total.validator
    def _capped(self, _: object, value: int) -> None:
        if value > 1000:
            raise ValueError(f"a quote over 1000 needs a human, got {value}")


@define_workflow("quote-workflow", params=QuoteParams, output=Quote)
async def quote(event: WorkflowEvent, step: WorkflowStep) -> dict[str, Any]:
    """Schemas on both ends: attrs params (given as an instance or a dict) and an attrs output whose
    validator refuses big totals (the run errors with OutputValidationError)."""
    price = await step.do("price", lambda: 7 if event.payload.sku == "nut" else 300)
    return {"sku": event.payload.sku, "total": price * event.payload.quantity}


@define_workflow("charge-workflow")
async def charge(event: WorkflowEvent, step: WorkflowStep) -> dict[str, Any]:
    """A charge that fails its first `fail_times` attempts, retried with the given backoff."""
    fail_times = int(event.payload.get("fail_times", 0))
    backoff = event.payload.get("backoff", "exponential")

    def attempt(ctx: Any) -> dict[str, Any]:
        if ctx.attempt <= fail_times:
            raise RuntimeError(f"card declined (attempt {ctx.attempt})")
        return {"charged": event.payload.get("amount", 1), "attempt": ctx.attempt}

    try:
        result = await step.do("charge", attempt, retries=Retries(limit=3, delay="5 s", backoff=backoff))
    except StepFailed as failed:
        return {"charged": 0, "error": failed.error_name, "attempts": failed.attempts}
    return dict(result)


@define_workflow("sleepy-workflow")
async def sleepy(event: WorkflowEvent, step: WorkflowStep) -> int:
    """Long sleeps between small steps: hours of virtual time per instance."""
    total = 0
    for i in range(int(event.payload.get("naps", 3))):
        await step.sleep(f"nap-{i}", event.payload.get("nap", "6 hours"))
        total += await step.do(f"work-{i}", lambda i=i: i + 1)
    return total


@define_workflow("loop-workflow")
async def loop(event: WorkflowEvent, step: WorkflowStep) -> int:
    """Many small steps with a repeated name (keys do:add, do:add#2, ...)."""
    total = 0
    for i in range(int(event.payload.get("steps", 5))):
        total = await step.do("add", lambda total=total, i=i: total + i)
    return total


@define_workflow("chain-workflow")
async def chain(event: WorkflowEvent, step: WorkflowStep) -> list[Any]:
    """An event-driven chain: each stage waits for its own event type."""
    seen = []
    for i in range(int(event.payload.get("stages", 2))):
        received = await step.wait_for_event(f"stage-{i}", type=f"stage-{i}", timeout="1 hour")
        seen.append(received.payload)
    return seen


@define_workflow("timeout-workflow")
async def catch_timeout(event: WorkflowEvent, step: WorkflowStep) -> str:
    """Catch-and-continue on a wait timeout."""
    try:
        await step.wait_for_event("reply", type="reply", timeout=event.payload.get("timeout", "10 min"))
    except WaitForEventTimeout:
        await step.do("escalate", lambda: "escalated")
        return "timed-out"
    return "replied"


@define_workflow("pair-workflow")
async def pair(event: WorkflowEvent, step: WorkflowStep) -> list[Any]:
    """Two waits for the same event type in one run: each must get its own event, in send order."""
    first = await step.wait_for_event("first", type="item", timeout="1 hour")
    second = await step.wait_for_event("second", type="item", timeout="1 hour")
    return [first.payload, second.payload]


@define_workflow("names-workflow")
async def names(event: WorkflowEvent, step: WorkflowStep) -> list[Any]:
    """A step name with `#` is refused at the call, so the repeated name after it keys as `do:x#2`."""
    first = await step.do("x", lambda: 1)
    try:
        await step.do("x#2", lambda: 2)
        verdict = "accepted"
    except InvalidStepName:
        verdict = "refused"
    await step.sleep("nap", "1 s")
    return [first, verdict, await step.do("x", lambda: 3)]


@define_workflow("nested-workflow")
async def nested(event: WorkflowEvent, step: WorkflowStep) -> list[Any]:
    """A step callback that calls a step: refused with NestedStepError, caught, and the run goes on."""
    async def outer() -> Any:
        return await step.do("inner", lambda: "inner")

    try:
        got = await step.do("outer", outer, retries=Retries(limit=1, delay="1 s"))
    except StepFailed as failed:
        got = failed.error_name
    await step.sleep("nap", "1 s")
    return [got, await step.do("after", lambda: "after")]


ALL_WORKFLOWS = (approval, charge, sleepy, loop, chain, catch_timeout, pair, names, nested, quote)
