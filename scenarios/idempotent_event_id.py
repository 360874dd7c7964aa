"""`event_id` makes resends idempotent: the same id to the same instance is a no-op (also after it ended);
the same id for another instance is EVENT_ID_CONFLICT.

The instance takes every `go` event it gets within its windows: the event `e1` sent twice is delivered
once, so the second window times out. Events without an id to an ended instance are rejected.
"""

from engine import WaitForEventTimeout, WorkflowEvent, WorkflowStep, define_workflow
from sim.scenario import (
    Scenario,
    advance,
    create,
    event,
    expect_history,
    expect_output,
    expect_status,
    run_until_idle,
)


@define_workflow("count-gos")
async def count_gos(event: WorkflowEvent, step: WorkflowStep):
    seen = [(await step.wait_for_event("first", type="go", timeout="1 hour")).payload]
    try:
        seen.append((await step.wait_for_event("second", type="go", timeout="1 min")).payload)
    except WaitForEventTimeout:
        seen.append(None)
    return seen


scenario = Scenario("idempotent-event-id", [count_gos], runners=["a", "b"], steps=[
    create(count_gos, id="x"),
    create(count_gos, id="y"),
    event("x", "go", "once", event_id="e1"),
    event("x", "go", "once again?", event_id="e1"),       # same id, same instance: no-op
    event("y", "go", "stolen", event_id="e1", raises="EVENT_ID_CONFLICT"),
    run_until_idle(),
    advance("2 min"),
    run_until_idle(),
    expect_output("x", ["once", None]),
    expect_history("x", events=[{"id": "e1", "payload": "once", "consumed_by": "wait_for_event:first"}]),
    expect_history("y", events=[]),
    event("x", "go", "after the end", event_id="e1"),     # still a no-op after the instance ended
    event("x", "go", "new one", raises="INSTANCE_TERMINAL"),
    expect_status("y", "waiting"),
], tolerates=["interleaving", "duplicate_event", "crash", "lease_expiry"])
