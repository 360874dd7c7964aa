"""A runner that crashes in the middle of a step is recovered: the callback may run again, its result
commits once.

Runner a records a charge in the ledger and crashes before committing. Its lease keeps the task from runner
b until it expires; then b takes over, runs the callback again (the ledger shows both calls, with the same
idempotency key, which is how a real charge would be deduplicated) and the step commits exactly once.
"""

from engine import WorkflowEvent, WorkflowStep, define_workflow
from sim.scenario import (
    Scenario,
    barrier,
    crash,
    create,
    expect,
    expect_calls,
    expect_history,
    expect_output,
    expect_status,
    expect_trace,
    expire_lease,
    restart_runner,
    run_state,
    run_until_idle,
    tick,
)

gate = barrier("after-charge", times=1)


async def charge(ctx):
    run_state().setdefault("ledger", []).append(ctx.idempotency_key)
    await gate.wait()  # runner a crashes here: the side effect happened, the commit did not
    return "charged"


@define_workflow("order")
async def order(event: WorkflowEvent, step: WorkflowStep):
    charged = await step.do("charge", charge)
    shipped = await step.do("ship", lambda: "shipped")
    return [charged, shipped]


scenario = Scenario("crash-mid-step", [order], runners=["a", "b"], steps=[
    create(order, id="o1"),
    tick("a"),
    crash("a"),
    run_until_idle("b"),             # a's lease is still live: nothing for b yet
    expect_status("o1", "running"),
    expect_calls("charge", 1),
    expire_lease("a"),
    run_until_idle("b"),
    expect_output("o1", ["charged", "shipped"]),
    expect_calls("charge", 2),
    expect_calls("ship", 1),
    expect_history("o1", steps={"do:charge": {"status": "completed", "attempts": 1, "result": "charged"}}),
    expect_trace(lambda tr: tr.count("commit", key="do:charge", status="completed") == 1,
                 "the charge result was committed once"),
    expect_trace(lambda tr: tr.first("claim", runner="b", took_over=True) is not None,
                 "runner b took the task over from the crashed runner a"),
    expect(lambda ctx: ctx.state["ledger"] == ["order:o1:1:do:charge"] * 2,
           "both calls carried the same idempotency key"),
    restart_runner("a"),
    run_until_idle(),
    expect_status("o1", "complete"),
], tolerates=["interleaving"])
