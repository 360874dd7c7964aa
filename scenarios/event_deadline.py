"""An event created after a wait's deadline is never accepted; one created before it (or exactly at it) is
accepted even when the runner only gets to it late.

Three instances wait for `reply` with a 10 min deadline (600 s). Their replies are sent at 599 s, 600 s and
601 s, and no runner runs until 700 s. The first two are consumed; the third times out, and its event stays
unconsumed.
"""

from engine import WaitForEventTimeout, WorkflowEvent, WorkflowStep, define_workflow
from sim.scenario import (
    Scenario,
    advance_to,
    create,
    event,
    expect_history,
    expect_output,
    run_until_idle,
)


@define_workflow("await-reply")
async def await_reply(event: WorkflowEvent, step: WorkflowStep):
    try:
        reply = await step.wait_for_event("reply", type="reply", timeout="10 min")
    except WaitForEventTimeout:
        return "timed out"
    return reply.payload


scenario = Scenario("event-deadline", [await_reply], runners=["a", "b"], steps=[
    create(await_reply, id="early"),
    create(await_reply, id="exact"),
    create(await_reply, id="late"),
    run_until_idle(),
    expect_history("early", steps={"wait_for_event:reply": {"status": "waiting", "wake_at": 600}}),
    advance_to(599), event("early", "reply", "sent at 599 s"),
    advance_to(600), event("exact", "reply", "sent at 600 s"),
    advance_to(601), event("late", "reply", "sent at 601 s"),
    advance_to(700),
    run_until_idle(),
    expect_output("early", "sent at 599 s"),
    expect_output("exact", "sent at 600 s"),
    expect_output("late", "timed out"),
    expect_history("late", steps={"wait_for_event:reply": {"status": "errored", "error": "WaitForEventTimeout"}},
                   events=[{"type": "reply", "consumed_by": None}]),
], tolerates=["interleaving"])
