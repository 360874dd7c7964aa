"""Pausing an instance mid-run takes effect at the next step boundary; resume continues where it stopped.

Runner a is inside step `one` when the instance is paused: the pause is only requested (the instance stays
`running`), step `one` still commits, and then the instance is `paused` without starting `two`. A paused
instance is not claimed. After resume, `two` runs and `one` is not called again.
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
    pause,
    release,
    resume,
    run_until_idle,
    tick,
)

gate = barrier("one")


async def one(ctx):
    await gate.wait()
    return 1


@define_workflow("one-two")
async def one_two(event: WorkflowEvent, step: WorkflowStep):
    first = await step.do("one", one)
    second = await step.do("two", lambda: 2)
    return first + second


scenario = Scenario("pause-at-step-boundary", [one_two], runners=["a", "b"], steps=[
    create(one_two, id="x"),
    tick("a"),
    pause("x"),
    expect_status("x", "running"),
    expect(lambda ctx: ctx.status("x").pause_requested, "the pause is requested, not yet applied"),
    release(gate),
    expect_status("x", "paused"),
    expect_history("x", keys=["do:one"], steps={"do:one": {"status": "completed"}}),
    expect_calls("two", 0),
    run_until_idle(),
    expect_status("x", "paused"),
    expect_trace(lambda tr: tr.count("claim", instance="x") == 1, "the paused instance was not claimed again"),
    resume("x"),
    run_until_idle(),
    expect_output("x", 3),
    expect_calls("one", 1),
    expect_calls("two", 1),
], tolerates=["interleaving", "crash", "lease_expiry"])
