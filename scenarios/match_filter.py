"""`wait_for_event(..., match={...})` only accepts events whose payload fields match; others stay buffered
for later waits, still in send order.

Replies for orders o1 and o2 arrive before the waits. The wait matching `{"order": "o2"}` skips o1 and
takes o2; the next, unfiltered wait takes o1. A reply for o3 sent later is left for nobody.
"""

from engine import WorkflowEvent, WorkflowStep, define_workflow
from sim.scenario import (
    Scenario,
    create,
    event,
    expect_history,
    expect_output,
    run_until_idle,
)


@define_workflow("matched-replies")
async def matched_replies(event: WorkflowEvent, step: WorkflowStep):
    wanted = await step.wait_for_event("o2-reply", type="reply", match={"order": "o2"}, timeout="1 hour")
    anything = await step.wait_for_event("any-reply", type="reply", timeout="1 hour")
    return [wanted.payload["order"], anything.payload["order"]]


scenario = Scenario("match-filter", [matched_replies], runners=["a", "b"], steps=[
    create(matched_replies, id="m"),
    event("m", "reply", {"order": "o1", "ok": True}),
    event("m", "reply", {"order": "o2", "ok": True}),
    run_until_idle(),
    expect_output("m", ["o2", "o1"]),
    expect_history("m", events=[
        {"payload": {"order": "o1", "ok": True}, "consumed_by": "wait_for_event:any-reply"},
        {"payload": {"order": "o2", "ok": True}, "consumed_by": "wait_for_event:o2-reply"},
    ]),
], tolerates=["interleaving", "crash", "lease_expiry"])
