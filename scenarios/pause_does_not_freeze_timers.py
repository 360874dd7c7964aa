"""Pause does not freeze timers: a sleep that elapsed while paused completes right after resume.

The instance sleeps one hour and is paused meanwhile. Two hours pass; while paused it is never claimed (it
has no task to poll). On resume the elapsed sleep completes at once, without waiting another hour.
"""

from engine import WorkflowEvent, WorkflowStep, define_workflow
from sim.scenario import (
    Scenario,
    advance,
    create,
    expect_history,
    expect_output,
    expect_status,
    expect_trace,
    pause,
    resume,
    run_until_idle,
)


@define_workflow("nap-then-work")
async def nap_then_work(event: WorkflowEvent, step: WorkflowStep):
    await step.sleep("nap", "1 hour")
    return await step.do("work", lambda: "worked")


def not_claimed_while_paused(tr):
    paused, resumed = tr.last("pause", runner="client"), tr.last("resume", runner="client")
    return not [e for e in tr.where("claim", instance="x") if paused.index < e.index < resumed.index]


scenario = Scenario("pause-does-not-freeze-timers", [nap_then_work], runners=["a", "b"], steps=[
    create(nap_then_work, id="x"),
    run_until_idle(),
    expect_status("x", "waiting"),
    pause("x"),
    expect_status("x", "paused"),
    advance("2 hours"),
    run_until_idle(),
    expect_status("x", "paused"),
    expect_history("x", steps={"sleep:nap": {"status": "waiting"}}),
    resume("x"),
    run_until_idle(),                 # no advance: the sleep already elapsed while paused
    expect_output("x", "worked"),
    expect_trace(not_claimed_while_paused, "the paused instance was never claimed"),
], tolerates=["interleaving", "crash", "lease_expiry"])
