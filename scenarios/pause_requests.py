"""A pause requested mid-step stops the run at the next step boundary, whatever comes next (a sleep, a
wait, another step); resume before that boundary cancels the request; a request survives the crash of the
runner that held the task and is applied by the runner that takes over.
"""

from engine import WorkflowEvent, WorkflowStep, define_workflow
from sim.scenario import (
    Scenario,
    advance,
    barrier,
    crash,
    create,
    event,
    expect_calls,
    expect_history,
    expect_output,
    expect_status,
    expire_lease,
    pause,
    release,
    restart_runner,
    resume,
    run_until_idle,
    tick,
)

gate_s, gate_w, gate_m = barrier("s"), barrier("w"), barrier("m", times=1)


def gated(gate, value):
    async def work():
        await gate.wait()
        return value

    return work


@define_workflow("then-sleep")
async def then_sleep(event: WorkflowEvent, step: WorkflowStep):
    a = await step.do("work", gated(gate_s, 1))
    await step.sleep("nap", "10 min")
    return a


@define_workflow("then-wait")
async def then_wait(event: WorkflowEvent, step: WorkflowStep):
    b = await step.do("work", gated(gate_w, 2))
    got = await step.wait_for_event("go", type="go", timeout="1 hour")
    return [b, got.payload]


@define_workflow("then-more")
async def then_more(event: WorkflowEvent, step: WorkflowStep):
    c = await step.do("work", gated(gate_m, 3))
    return c + await step.do("more", lambda: 4)


scenario = Scenario("pause-requests", [then_sleep, then_wait, then_more], runners=["a", "b", "c"], steps=[
    create(then_sleep, id="s"), create(then_wait, id="w"), create(then_more, id="m"),
    tick("a", max_tasks=1), tick("b", max_tasks=1), tick("c", max_tasks=1),   # each stops inside `work`
    pause("s"), pause("w"), pause("m"),
    event("w", "go", "buffered"),
    resume("w"),                                   # cancels w's pause request: w runs on
    release(gate_s), release(gate_w),
    expect_status("s", "paused"),
    expect_history("s", keys=["do:work"]),         # paused before its sleep started
    expect_output("w", [2, "buffered"]),
    crash("c"),                                    # m's pause is requested; its runner dies mid-step
    expect_status("m", "running"),
    expire_lease("c"),
    run_until_idle("a"),                           # a takes over, re-runs work, then the pause applies
    expect_status("m", "paused"),
    expect_history("m", keys=["do:work"]),
    resume("s"),
    run_until_idle(),
    expect_status("s", "waiting"),                 # the 10 min sleep starts after resume
    advance("10 min"),
    run_until_idle(),
    expect_output("s", 1),
    resume("m"),
    restart_runner("c"),
    run_until_idle(),
    expect_output("m", 7),
    expect_calls("work", 2, instance="m"),
    expect_calls("more", 1),
], tolerates=["interleaving"])
