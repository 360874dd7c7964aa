"""The lifecycle rules around pause, resume, terminate and restart outside a running step.

Pausing an instance no runner holds makes it `paused` at once, and it is not claimed until resumed;
resuming an instance that is not paused is a no-op; pause, resume and terminate of a terminal instance are
INSTANCE_TERMINAL; restart works from `errored` and starts run 2; events never create instances.
"""

from engine import Retries, WorkflowEvent, WorkflowStep, define_workflow
from sim.scenario import (
    Scenario,
    create,
    event,
    expect,
    expect_error,
    expect_history,
    expect_output,
    expect_status,
    expect_trace,
    pause,
    restart,
    resume,
    run_state,
    run_until_idle,
    terminate,
)


def flaky_once():
    state = run_state()
    state["calls"] = state.get("calls", 0) + 1
    if state["calls"] == 1:
        raise ValueError("bad input")
    return "fixed"


@define_workflow("fix-then-restart")
async def fix_then_restart(event: WorkflowEvent, step: WorkflowStep):
    return await step.do("work", flaky_once, retries=Retries(limit=0, delay=0))


scenario = Scenario("lifecycle-rules", [fix_then_restart], runners=["a", "b"], steps=[
    create(fix_then_restart, id="p"),
    pause("p"),
    expect_status("p", "paused"),
    run_until_idle(),
    expect_trace(lambda tr: tr.count("claim", instance="p") == 0, "a paused instance is not claimed"),
    pause("p"),                                    # pausing twice is harmless
    resume("p"),
    resume("p"),                                   # not paused any more: a no-op
    expect_status("p", "queued"),
    run_until_idle(),
    expect_error("p", "ValueError", "bad input"),
    pause("p", raises="INSTANCE_TERMINAL"),
    resume("p", raises="INSTANCE_TERMINAL"),
    terminate("p", raises="INSTANCE_TERMINAL"),
    restart("p", save_as="run"),
    expect(lambda ctx: ctx["run"] == 2 and ctx.status("p").error is None, "run 2 starts with no error"),
    run_until_idle(),
    expect_output("p", "fixed"),
    expect_history("p", run=1, steps={"do:work": {"status": "errored", "attempts": 1}}),
    expect_history("p", run=2, steps={"do:work": {"status": "completed", "result": "fixed"}}),
    event("ghost", "go", workflow="fix-then-restart", raises="INSTANCE_NOT_FOUND"),
    expect(lambda ctx: ctx.count("workflow_instance") == 1, "the event created no instance"),
], tolerates=["interleaving"])
