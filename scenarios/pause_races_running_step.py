"""A pause racing a runner lands either before the claim (paused at once) or mid-run (applied at the next
step boundary); either way no step runs while paused and none runs twice.

`concurrent()` puts the client's pause and runner a's tick into one schedule; the hand-written schedule
lands the pause between the call and the commit of step `one`. Under seeds the pause lands anywhere.
"""

from engine import WorkflowEvent, WorkflowStep, define_workflow
from sim.scenario import (
    Scenario,
    concurrent,
    create,
    event,
    expect_calls,
    expect_output,
    expect_status,
    expect_trace,
    pause,
    resume,
    run_until_idle,
    tick,
)


@define_workflow("three-then-wait")
async def three_then_wait(event: WorkflowEvent, step: WorkflowStep):
    total = 0
    for name in ("one", "two", "three"):
        total += await step.do(name, lambda: 1)
    done = await step.wait_for_event("done", type="done", timeout="1 hour")
    return total + done.payload


def nothing_committed_while_paused(tr):
    pause, resume = tr.first("pause", runner="client"), tr.first("resume", runner="client")
    took_effect = tr.first("commit", paused=True) or pause  # at a step boundary, or at once
    start = max(pause.index, took_effect.index)
    return not [e for e in tr.where("commit") if start < e.index < resume.index]


scenario = Scenario("pause-races-running-step", [three_then_wait], runners=["a", "b"], steps=[
    create(three_then_wait, id="x"),
    # a: start, find, claim, claimed -> call one; then the client's pause lands before one's commit
    concurrent(tick("a"), pause("x"), schedule=["a", "a", "a", "a", "client-1"]),
    expect_status("x", "paused"),
    run_until_idle(),
    expect_status("x", "paused"),
    expect_trace(nothing_committed_while_paused, "no step committed after the pause took effect"),
    resume("x"),
    event("x", "done", 10),
    run_until_idle(),
    expect_output("x", 13),
    expect_calls("one", 1),
    expect_calls("two", 1),
    expect_calls("three", 1),
], tolerates=["interleaving", "crash", "lease_expiry"])
