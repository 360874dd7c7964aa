"""A replay that meets a different step than history records stops the instance with a clear
NondeterminismError naming the expected and the found step.

The workflow picks its first step from outside state that changes between runs (a classic bug): the first
execution records `do:reserve`, then sleeps; the replay after the sleep asks for `do:reserve-v2` first. The
instance ends `errored` and no step of the wrong branch is called.
"""

from engine import WorkflowEvent, WorkflowStep, define_workflow
from sim.scenario import (
    Scenario,
    advance,
    create,
    expect_calls,
    expect_error,
    expect_history,
    expect_status,
    run_state,
    run_until_idle,
)


def reserve():
    run_state()["deployed_v2"] = True  # e.g. a new release goes out while the instance sleeps
    return "reserved"


@define_workflow("drifting")
async def drifting(event: WorkflowEvent, step: WorkflowStep):
    if run_state().get("deployed_v2"):
        await step.do("reserve-v2", lambda: "reserved v2")
    else:
        await step.do("reserve", reserve)
    await step.sleep("cooldown", "1 min")
    return "done"


scenario = Scenario("nondeterminism-detection", [drifting], runners=["a", "b"], steps=[
    create(drifting, id="d"),
    run_until_idle(),
    expect_status("d", "waiting"),
    advance("1 min"),
    run_until_idle(),
    expect_error("d", "NondeterminismError", "do:reserve"),
    expect_error("d", "NondeterminismError", "do:reserve-v2"),
    expect_history("d", keys=["do:reserve", "sleep:cooldown"]),
    expect_calls("reserve", 1),
    expect_calls("reserve-v2", 0),
], tolerates=["interleaving"])
