"""Creating an existing id returns the existing instance unchanged (idempotent create); `id=None` takes a
fresh id from the runtime.

The second create of `order-1` with other params returns `order-1` and changes nothing: the params, the
single run and the output are the first create's, also after the instance completed.
"""

from engine import WorkflowEvent, WorkflowStep, define_workflow
from sim.scenario import (
    Scenario,
    create,
    expect,
    expect_calls,
    expect_instances,
    expect_output,
    expect_value,
    ref,
    run_until_idle,
)


@define_workflow("echo")
async def echo(event: WorkflowEvent, step: WorkflowStep):
    return await step.do("echo", lambda: event.payload)


scenario = Scenario("idempotent-create", [echo], runners=["a", "b"], steps=[
    create(echo, {"n": 1}, id="order-1", save_as="first"),
    create(echo, {"n": 2}, id="order-1", save_as="second"),
    expect_value("second", "order-1"),
    expect(lambda ctx: ctx.status("order-1").params == {"n": 1}, "the params are the first create's"),
    run_until_idle(),
    expect_output("order-1", {"n": 1}),
    create(echo, {"n": 3}, id="order-1"),
    expect_output("order-1", {"n": 1}),
    expect(lambda ctx: ctx.status("order-1").run_number == 1, "still one run"),
    expect_calls("echo", 1, instance="order-1"),
    create(echo, {"n": 4}, save_as="auto"),
    expect_value("auto", "client-000001"),
    run_until_idle(),
    expect_output(ref("auto"), {"n": 4}),
    expect_instances(echo, ["order-1", "client-000001"]),
], tolerates=["interleaving", "crash", "lease_expiry"])
