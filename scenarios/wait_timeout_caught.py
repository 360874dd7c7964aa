"""A wait that times out raises `WaitForEventTimeout` (non-retryable, catchable) exactly at its deadline.

One instance catches it and escalates; one gets its reply in time; one does not catch it and ends
`errored` with `WaitForEventTimeout`. At 9 min nothing has timed out; at 10 min both waits without a reply
have.
"""

from engine import WorkflowEvent, WorkflowStep, define_workflow
from sim.scenario import (
    Scenario,
    advance,
    create,
    event,
    expect_error,
    expect_history,
    expect_output,
    expect_status,
    run_until_idle,
)
from sim.world.workflows import catch_timeout


@define_workflow("strict-wait")
async def strict_wait(event: WorkflowEvent, step: WorkflowStep):
    return (await step.wait_for_event("reply", type="reply", timeout="10 min")).payload


scenario = Scenario("wait-timeout-caught", [catch_timeout, strict_wait], runners=["a", "b"], steps=[
    create(catch_timeout, {"timeout": "10 min"}, id="silent"),
    create(catch_timeout, {"timeout": "10 min"}, id="answered"),
    create(strict_wait, id="strict"),
    run_until_idle(),
    advance("9 min"),
    event("answered", "reply", {"ok": True}),
    run_until_idle(),
    expect_output("answered", "replied"),
    expect_status("silent", "waiting"),
    expect_status("strict", "waiting"),
    advance("1 min"),
    run_until_idle(),
    expect_output("silent", "timed-out"),
    expect_history("silent", keys=["wait_for_event:reply", "do:escalate"], steps={
        "wait_for_event:reply": {"status": "errored", "error": "WaitForEventTimeout"},
        "do:escalate": {"status": "completed", "result": "escalated"}}),
    expect_error("strict", "WaitForEventTimeout"),
], tolerates=["interleaving"])
