"""Events are buffered: one sent before its wait is reached, or while the instance is paused, is consumed
when the wait is reached.

`go` is sent right after the instance is created, before any runner touched it; the first wait consumes it
at once. The instance is then paused while it waits for `more`; `more` arrives while paused and nothing
moves until resume, after which it is consumed and the workflow completes.
"""

from engine import WorkflowEvent, WorkflowStep, define_workflow
from sim.scenario import (
    Scenario,
    create,
    event,
    expect_history,
    expect_output,
    expect_status,
    pause,
    resume,
    run_until_idle,
)


@define_workflow("go-then-more")
async def go_then_more(event: WorkflowEvent, step: WorkflowStep):
    go = await step.wait_for_event("go", type="go", timeout="1 hour")
    work = await step.do("work", lambda: "worked")
    more = await step.wait_for_event("more", type="more", timeout="1 hour")
    return [go.payload, work, more.payload]


scenario = Scenario("events-buffered", [go_then_more], runners=["a", "b"], steps=[
    create(go_then_more, id="x"),
    event("x", "go", {"n": 1}, event_id="x-go"),      # before the wait exists
    run_until_idle(),
    expect_status("x", "waiting"),
    expect_history("x", keys=["wait_for_event:go", "do:work", "wait_for_event:more"],
                   steps={"wait_for_event:go": {"status": "completed"},
                          "wait_for_event:more": {"status": "waiting"}}),
    pause("x"),
    event("x", "more", {"n": 2}, event_id="x-more"),  # while paused
    run_until_idle(),
    expect_status("x", "paused"),
    expect_history("x", events=[{"type": "go", "consumed_by": "wait_for_event:go"},
                                {"type": "more", "consumed_by": None}]),
    resume("x"),
    run_until_idle(),
    expect_output("x", [{"n": 1}, "worked", {"n": 2}]),
    expect_history("x", events=[{"id": "x-go", "consumed_by": "wait_for_event:go"},
                                {"id": "x-more", "consumed_by": "wait_for_event:more"}]),
], tolerates=["interleaving", "crash", "lease_expiry", "duplicate_event"])
