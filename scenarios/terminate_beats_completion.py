"""Terminate during a running step beats that step's completion; a terminated instance takes no events.

Runner a is inside `charge` when the instance is terminated. The instance is `terminated` at once; when the
callback returns, a's commit is refused, so no step result is written and the status stays terminated.
Events, pause and resume on a terminated instance are rejected with INSTANCE_TERMINAL.
"""

from engine import WorkflowEvent, WorkflowStep, define_workflow
from sim.scenario import (
    Scenario,
    barrier,
    create,
    event,
    expect_calls,
    expect_history,
    expect_status,
    expect_trace,
    pause,
    release,
    resume,
    run_until_idle,
    terminate,
    tick,
)

gate = barrier("charge")


async def charge(ctx):
    await gate.wait()
    return "charged"


@define_workflow("charge-then-ship")
async def charge_then_ship(event: WorkflowEvent, step: WorkflowStep):
    await step.do("charge", charge)
    return await step.do("ship", lambda: "shipped")


scenario = Scenario("terminate-beats-completion", [charge_then_ship], runners=["a", "b"], steps=[
    create(charge_then_ship, id="t1"),
    tick("a"),
    expect_status("t1", "running"),
    terminate("t1"),
    expect_status("t1", "terminated"),
    release(gate),
    expect_status("t1", "terminated"),
    expect_history("t1", keys=[]),
    expect_trace(lambda tr: tr.count("commit", runner="a") == 0 and tr.count("finish", runner="a") == 0,
                 "runner a committed nothing after the terminate"),
    expect_calls("charge", 1),
    expect_calls("ship", 0),
    run_until_idle(),
    expect_status("t1", "terminated"),
    event("t1", "anything", {"late": True}, raises="INSTANCE_TERMINAL"),
    pause("t1", raises="INSTANCE_TERMINAL"),
    resume("t1", raises="INSTANCE_TERMINAL"),
    terminate("t1", raises="INSTANCE_TERMINAL"),
    expect_history("t1", events=[]),
], tolerates=["interleaving"])
