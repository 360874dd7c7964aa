"""Time keeps running for paused instances: deadlines, retries and events are judged by when things
happened, not by when the instance was resumed.

Four instances are paused at 5 min. `ev` gets its reply at 6 min, while paused and before its 10 min
deadline: accepted after resume. `to` gets its reply at 20 min, after its deadline: it times out. `rt`'s
retry fell due at 10 min while paused and runs right after resume. `rt2` is resumed at 6 min, before its
retry is due, and keeps waiting for it until 10 min.
"""

from engine import Retries, WaitForEventTimeout, WorkflowEvent, WorkflowStep, define_workflow
from sim.scenario import (
    Scenario,
    advance,
    create,
    event,
    expect_history,
    expect_output,
    expect_status,
    pause,
    resume,
    run_until_idle,
)


@define_workflow("reply-or-timeout")
async def reply(event: WorkflowEvent, step: WorkflowStep):
    try:
        got = await step.wait_for_event("reply", type="reply", timeout="10 min")
    except WaitForEventTimeout:
        return "timeout"
    return got.payload


@define_workflow("retry-once")
async def retry_once(event: WorkflowEvent, step: WorkflowStep):
    def fn(ctx):
        if ctx.attempt == 1:
            raise RuntimeError("first attempt fails")
        return ctx.attempt

    return await step.do("x", fn, retries=Retries(limit=1, delay="10 min", backoff="constant"))


scenario = Scenario("pause-with-timers-and-deadlines", [reply, retry_once], runners=["a", "b"], steps=[
    create(reply, id="ev"), create(reply, id="to"), create(retry_once, id="rt"), create(retry_once, id="rt2"),
    run_until_idle(),
    advance("5 min"),
    pause("ev"), pause("to"), pause("rt"), pause("rt2"),
    advance("1 min"),
    event("ev", "reply", "in time, while paused"),
    resume("rt2"),
    run_until_idle(),
    expect_status("rt2", "waiting"),
    expect_history("rt2", steps={"do:x": {"attempts": 1, "next_retry_at": 600}}),
    expect_status("rt", "paused"),
    advance("14 min"),
    event("to", "reply", "too late"),
    resume("ev"), resume("to"), resume("rt"),
    run_until_idle(),
    expect_output("ev", "in time, while paused"),
    expect_output("to", "timeout"),
    expect_history("to", events=[{"payload": "too late", "consumed_by": None}]),
    expect_output("rt", 2),
    expect_output("rt2", 2),
], tolerates=["interleaving"])
