"""Events belong to the run that was current when they were sent: a restart never delivers them to the new run.

An approval sent while run 1 still sleeps is buffered for run 1. The instance is restarted before run 1
reaches its wait: run 2 must not take that stale approval (a duplicate webhook finishing a restarted order);
it waits until an approval sent to run 2 arrives. Run 1's history keeps its unconsumed event.
"""

from datetime import datetime

from engine import WorkflowEvent, WorkflowStep, define_workflow
from sim.scenario import (
    Scenario,
    advance,
    create,
    event,
    expect,
    expect_history,
    expect_status,
    restart,
    run_until_idle,
)


@define_workflow("order")
async def order(event_: WorkflowEvent, step: WorkflowStep):
    await step.sleep("settle", "10 s")
    got = await step.wait_for_event("approval", type="approval", timeout="1 hour")
    return {"run": event_.run_number, "approval": got}


def _approved_by_new_webhook(info):
    out = info.output or {}
    got = out.get("approval") or {}
    return (str(info.status) == "complete" and out.get("run") == 2 and got.get("type") == "approval"
            and got.get("payload") == {"by": "new webhook"}
            and datetime.fromisoformat(got["timestamp"]).tzinfo is not None)


scenario = Scenario("events-belong-to-their-run", [order], runners=["a", "b"], steps=[
    create(order, id="o"),
    run_until_idle(),
    event("o", "approval", {"by": "old webhook"}),   # buffered for run 1, which is asleep
    restart("o"),
    run_until_idle(),
    advance("10 s"),
    run_until_idle(),
    expect_status("o", "waiting"),                    # run 2 did not take run 1's event
    expect_history("o", run=1, events=[{"type": "approval", "payload": {"by": "old webhook"}, "consumed_by": None}]),
    expect_history("o", run=2, events=[]),
    event("o", "approval", {"by": "new webhook"}),
    run_until_idle(),
    # Crashes move the clock (their leases must run out), so the send time is checked for its form only.
    expect(lambda ctx: _approved_by_new_webhook(ctx.status("o")), "run 2 completed with the new webhook's event"),
], tolerates=["interleaving", "crash", "lease_expiry", "duplicate_event"])
