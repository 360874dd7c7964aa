"""`create_batch` creates up to 100 instances in one go, skips ids that already exist (returning only the
ids it created), and rejects the whole batch, writing nothing, if one item is invalid or it is too large.
"""

from engine import WorkflowEvent, WorkflowStep, define_workflow
from sim.scenario import (
    Scenario,
    create,
    create_batch,
    expect,
    expect_instances,
    expect_output,
    expect_value,
    run_until_idle,
)


def positive(params):
    if not isinstance(params, dict) or not isinstance(params.get("n"), int) or params["n"] <= 0:
        raise ValueError(f"n must be a positive int, got {params!r}")
    return params


@define_workflow("double", params=positive)
async def double(event: WorkflowEvent, step: WorkflowStep):
    return await step.do("double", lambda: event.payload["n"] * 2)


scenario = Scenario("create-batch-skips-existing", [double], runners=["a", "b"], steps=[
    create(double, {"n": 1}, id="b"),
    create_batch(double, [{"id": "a", "params": {"n": 10}}, {"id": "b", "params": {"n": 20}},
                          {"id": "c", "params": {"n": 30}}], save_as="created"),
    expect_value("created", ["a", "c"]),
    expect_instances(double, ["b", "a", "c"]),
    expect(lambda ctx: ctx.status("b").params == {"n": 1}, "the existing instance b kept its params"),
    create_batch(double, [{"id": "d", "params": {"n": 4}}, {"id": "e", "params": {"n": -1}}],
                 raises=("INVALID_PARAMS", "batch item 1")),
    create_batch(double, [{"id": f"big-{i}", "params": {"n": 1}} for i in range(101)], raises="BATCH_TOO_LARGE"),
    expect_instances(double, ["b", "a", "c"]),
    expect(lambda ctx: ctx.count("workflow_task") == 3, "only the three created instances have tasks"),
    run_until_idle(),
    expect_output("a", 20),
    expect_output("b", 2),
    expect_output("c", 60),
], tolerates=["interleaving", "crash", "lease_expiry"])
