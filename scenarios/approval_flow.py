"""The approval flow of DESIGN §7: wait for an approval event, cool down 2 s, wait for fulfilment, complete.

Whatever the interleaving of runners a and b, crashes and lease expiries in between, the instance waits
for each event in turn (events consumed once, by the right wait) and completes with the confirmation id.
"""

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
from sim.world.workflows import approval

scenario = Scenario("approval-flow", [approval], runners=["a", "b"], steps=[
    create(approval, {"request_id": "r1", "amount": 125}, id="r1"),
    run_until_idle(),                       expect_status("r1", "waiting"),
    event("r1", "approval", {"approved": True}),
    run_until_idle(),  advance("2 s"),  run_until_idle(),
    expect_history("r1", keys=["wait_for_event:approval", "sleep:cooldown", "wait_for_event:fulfilment"]),
    event("r1", "fulfillment", {"confirmation_id": "c1"}),
    run_until_idle(),                       expect_status("r1", "complete"),
    expect_output("r1", {"request_id": "r1", "approved": True, "confirmation_id": "c1"}),
    expect_history("r1", events=[{"type": "approval", "consumed_by": "wait_for_event:approval"},
                                 {"type": "fulfillment", "consumed_by": "wait_for_event:fulfilment"}]),
], tolerates=["interleaving", "crash", "lease_expiry"])
