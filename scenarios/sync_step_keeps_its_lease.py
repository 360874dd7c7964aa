"""A sync step longer than the lease keeps it: the heartbeat renews while the callback blocks.

`slow` is a plain function that blocks its runner for 70 s (its `time.sleep`) under a 60 s lease. The engine
runs sync callbacks off the event loop (inline with simulated duration here, a worker thread in
production), so runner a's heartbeat renews the lease at 40 s and 80 s and runner b, polling all along, never
takes the task over. Before issue 10 the result was discarded at 70 s and the step ran again forever.
"""

from engine import WorkflowEvent, WorkflowStep, define_workflow
from sim.scenario import (
    Scenario,
    advance,
    busy,
    create,
    expect_calls,
    expect_output,
    expect_status,
    expect_trace,
    run_until_idle,
    tick,
)


def slow(ctx):
    busy(70)
    return f"charged on attempt {ctx.attempt}"


@define_workflow("slow-sync")
async def slow_sync(event: WorkflowEvent, step: WorkflowStep):
    return await step.do("slow", slow, timeout="10 min")


scenario = Scenario("sync-step-keeps-its-lease", [slow_sync], runners=["a", "b"], lease="60 s", steps=[
    create(slow_sync, id="x"),
    tick("a"),                       # a claims and enters the 70 s sync callback
    expect_status("x", "running"),
    advance("65 s"),                 # past the first lease: only the heartbeat kept it
    run_until_idle("b"),
    expect_status("x", "running"),
    advance("10 s"),                 # the callback returns at 70 s and commits
    run_until_idle(),
    expect_output("x", "charged on attempt 1"),
    expect_calls("slow", 1),
    expect_trace(lambda tr: tr.times("renew", runner="a") == [40.0], "a renewed once, when a third was left"),
    expect_trace(lambda tr: tr.first("claim", runner="b") is None, "b never claimed the task"),
], tolerates=["interleaving"])
