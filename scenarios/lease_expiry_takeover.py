"""When a runner stalls past its lease, another runner takes the task over and the stale runner is fenced.

Runner a claims the task and stops inside the `charge` callback. Its 30 s lease runs out (the clock jumps
past it while a is stalled); runner b finds the expired lease, takes the task over, runs `charge` itself
and completes the workflow. When a wakes up, it cannot commit anything: its result is thrown away, and the
step's result is the one committed by b, exactly once.
"""

from engine import WorkflowEvent, WorkflowStep, define_workflow
from sim.scenario import (
    Scenario,
    barrier,
    create,
    expect_calls,
    expect_history,
    expect_output,
    expect_status,
    expect_trace,
    expire_lease,
    release,
    tick,
)

gate = barrier("charge", times=1)  # only the first call (runner a's) stops


async def charge(ctx):
    await gate.wait()
    return {"charged_by_attempt": ctx.attempt}


@define_workflow("payment")
async def payment(event: WorkflowEvent, step: WorkflowStep):
    return await step.do("charge", charge)


def b_took_over_after_expiry(tr):
    a_claim = tr.first("claim", runner="a")
    b_claim = tr.first("claim", runner="b")
    return b_claim is not None and b_claim["took_over"] and b_claim.t > a_claim["lease_until"]


scenario = Scenario("lease-expiry-takeover", [payment], runners=["a", "b"], lease="30 s", steps=[
    create(payment, id="p1"),
    tick("a"),                       # a claims and stops inside charge
    expect_status("p1", "running"),
    expect_calls("charge", 1),
    expire_lease("a"),               # a stalls; the clock jumps to 31 s
    tick("b"),                       # b takes over and completes
    expect_trace(b_took_over_after_expiry, "runner b claimed after runner a's lease expired"),
    expect_output("p1", {"charged_by_attempt": 1}),
    release(gate),                   # a wakes up and tries to finish its charge
    expect_trace(lambda tr: tr.count("commit", runner="a") == 0, "the stale runner a committed nothing"),
    expect_trace(lambda tr: tr.count("abandon", runner="a") == 1, "runner a abandoned the task"),
    expect_status("p1", "complete"),
    expect_history("p1", steps={"do:charge": {"status": "completed", "attempts": 1}}),
    expect_calls("charge", 2),
    expect_trace(lambda tr: tr.count("commit", key="do:charge", status="completed") == 1,
                 "the charge result was committed once"),
], tolerates=["interleaving"])
