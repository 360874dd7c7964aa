"""Restart starts a new run and fences the old one: a stale runner can never commit into the new run,
and the old run's history is kept.

Runner a is inside step `two` of run 1 when the instance is restarted. Runner b executes run 2 from the top
to completion. When a's callback returns, its commit is refused (the run it holds is gone). Run 1 keeps its
one completed step; run 2 has both. Restarting a completed instance starts run 3 the same way.
"""

from engine import WorkflowEvent, WorkflowStep, define_workflow
from sim.scenario import (
    Scenario,
    barrier,
    create,
    expect,
    expect_calls,
    expect_history,
    expect_output,
    expect_status,
    expect_trace,
    expect_value,
    release,
    restart,
    run_until_idle,
    tick,
)

gate = barrier("two", times=1)


async def two(ctx):
    await gate.wait()
    return f"two of run {ctx.run_number}"


@define_workflow("two-steps")
async def two_steps(event: WorkflowEvent, step: WorkflowStep):
    one = await step.do("one", lambda ctx: f"one of run {ctx.run_number}")
    return [one, await step.do("two", two)]


scenario = Scenario("restart-fences-stale-runner", [two_steps], runners=["a", "b"], steps=[
    create(two_steps, id="x"),
    tick("a"),                                    # a completes `one`, stops inside `two` (run 1)
    restart("x", save_as="run"),
    expect_value("run", 2),
    expect_status("x", "queued"),
    run_until_idle("b"),                          # b runs run 2 from the top
    expect_output("x", ["one of run 2", "two of run 2"]),
    release(gate),                                # a's run-1 commit must be refused
    expect_trace(lambda tr: tr.count("commit", runner="a", key="do:two") == 0,
                 "the stale runner a never committed step two"),
    expect_trace(lambda tr: tr.last("abandon", runner="a") is not None, "runner a abandoned run 1"),
    expect_status("x", "complete"),
    expect(lambda ctx: ctx.status("x").run_number == 2, "the instance is in run 2"),
    expect_history("x", run=1, keys=["do:one"], steps={"do:one": {"result": "one of run 1"}}),
    expect_history("x", run=2, keys=["do:one", "do:two"]),
    expect_calls("two", 1, run=1),
    expect_calls("two", 1, run=2),
    restart("x", save_as="run"),                  # restart works from a terminal status too
    expect_value("run", 3),
    run_until_idle(),
    expect_output("x", ["one of run 3", "two of run 3"]),
    expect_history("x", run=2, keys=["do:one", "do:two"]),
], tolerates=["interleaving"])
