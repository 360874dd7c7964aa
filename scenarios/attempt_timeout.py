"""An attempt that outlives its timeout fails and is retried; its async callback is cancelled.

The first attempt of `call` hangs. With `timeout="50 s"` the runner cancels it exactly 50 s after it
started, renewing its 60 s lease once meanwhile (at 40 s, when a third of it is left), records the failure
as `StepTimeoutError` with the retry due 5 s later (constant backoff), and the second attempt succeeds.
"""

import asyncio

from engine import Retries, WorkflowEvent, WorkflowStep, define_workflow
from sim.scenario import (
    Scenario,
    advance,
    create,
    expect,
    expect_calls,
    expect_history,
    expect_output,
    expect_status,
    expect_trace,
    hang,
    run_state,
    run_until_idle,
    tick,
)


async def call(ctx):
    if ctx.attempt == 1:
        try:
            await hang()
        except asyncio.CancelledError:
            run_state()["cancelled"] = ctx.attempt
            raise
    return {"attempt": ctx.attempt}


@define_workflow("slow-call")
async def slow_call(event: WorkflowEvent, step: WorkflowStep):
    return await step.do("call", call, timeout="50 s", retries=Retries(limit=2, delay="5 s", backoff="constant"))


scenario = Scenario("attempt-timeout", [slow_call], runners=["a", "b"], lease="60 s", steps=[
    create(slow_call, id="x"),
    tick("a"),                      # attempt 1 hangs: the tick is still in flight
    expect_status("x", "running"),
    advance("49 s"),
    expect_status("x", "running"),
    expect_history("x", keys=[]),
    advance("1 s"),                 # 50 s after the attempt started: timed out, retry due at 55 s
    expect_status("x", "waiting"),
    expect_history("x", steps={"do:call": {"status": "waiting", "attempts": 1, "error": "StepTimeoutError",
                                           "error_message": "timed out after 50 s", "next_retry_at": 55}}),
    expect(lambda ctx: ctx.state.get("cancelled") == 1, "the hanging first attempt was cancelled"),
    expect_trace(lambda tr: tr.times("renew", runner="a") == [40.0],
                 "runner a renewed its lease once, when a third of it was left"),
    advance("5 s"),
    run_until_idle(),
    expect_output("x", {"attempt": 2}),
    expect_history("x", steps={"do:call": {"status": "completed", "attempts": 2}}),
    expect_calls("call", 2),
    expect_trace(lambda tr: tr.times("step_call", key="do:call") == [0.0, 55.0], "attempts started at 0 s and 55 s"),
], tolerates=["interleaving"])
