"""Same-type events are each consumed by at most one wait, in the order they were sent.

Three waits for `item` each take the next `item` event: two are buffered before the workflow starts and
two more arrive later. The waits get items 1, 2, 3 in that order; item 4 stays buffered, unconsumed.
"""

from engine import WorkflowEvent, WorkflowStep, define_workflow
from sim.scenario import (
    Scenario,
    create,
    event,
    expect_history,
    expect_output,
    expect_status,
    run_until_idle,
)


@define_workflow("three-items")
async def three_items(event: WorkflowEvent, step: WorkflowStep):
    items = []
    for _ in range(3):
        received = await step.wait_for_event("item", type="item", timeout="1 hour")
        items.append(received.payload["n"])
    return items


scenario = Scenario("same-type-events-in-order", [three_items], runners=["a", "b"], steps=[
    create(three_items, id="x"),
    event("x", "item", {"n": 1}),
    event("x", "item", {"n": 2}),
    run_until_idle(),
    expect_status("x", "waiting"),
    expect_history("x", keys=["wait_for_event:item", "wait_for_event:item#2", "wait_for_event:item#3"]),
    event("x", "item", {"n": 3}),
    event("x", "item", {"n": 4}),
    run_until_idle(),
    expect_output("x", [1, 2, 3]),
    expect_history("x", events=[
        {"payload": {"n": 1}, "consumed_by": "wait_for_event:item"},
        {"payload": {"n": 2}, "consumed_by": "wait_for_event:item#2"},
        {"payload": {"n": 3}, "consumed_by": "wait_for_event:item#3"},
        {"payload": {"n": 4}, "consumed_by": None},
    ]),
], tolerates=["interleaving", "crash", "lease_expiry"])
