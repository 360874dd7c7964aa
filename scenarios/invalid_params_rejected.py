"""Invalid params are rejected with the validator's messages and nothing is written; so are invalid ids.

The approval workflow validates its params with an attrs class. A negative amount, a missing field and an
empty id are all refused without a single row in any table; a valid create afterwards works normally.
"""

from sim.scenario import (
    Scenario,
    create,
    expect,
    expect_instances,
    expect_status,
    run_until_idle,
)
from sim.world.workflows import approval

TABLES = ("workflow_instance", "workflow_task", "workflow_step", "workflow_event")


def nothing_written(ctx):
    return all(ctx.count(table) == 0 for table in TABLES)


scenario = Scenario("invalid-params-rejected", [approval], runners=["a", "b"], steps=[
    create(approval, {"request_id": "r1", "amount": -5}, id="r1", raises=("INVALID_PARAMS", "amount")),
    create(approval, {"request_id": "r1"}, id="r1", raises="INVALID_PARAMS"),
    create(approval, {"request_id": "r1", "amount": 5}, id="", raises="INVALID_ID"),
    create(approval, {"request_id": "r1", "amount": 5}, id="no spaces allowed", raises="INVALID_ID"),
    expect(nothing_written, "no instance, task, step or event rows"),
    run_until_idle(),
    expect(nothing_written, "still nothing after the runners ran"),
    create(approval, {"request_id": "r1", "amount": 5}, id="r1"),
    run_until_idle(),
    expect_status("r1", "waiting"),
    expect_instances(approval, ["r1"]),
], tolerates=["interleaving"])
