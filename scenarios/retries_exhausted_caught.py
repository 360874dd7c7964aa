"""With the default retries (limit 5, 10 s, exponential) a step that always fails runs 6 attempts, at
0, 10, 30, 70, 150 and 310 s; then its last error is raised into the workflow, which catches it.

The caught `StepFailed` carries the original error's name, message and the attempt count; the workflow
compensates and completes. A second instance does not catch it and ends `errored` with the original error.
"""

from engine import StepFailed, WorkflowEvent, WorkflowStep, define_workflow
from sim.scenario import (
    Scenario,
    advance_to,
    create,
    expect_calls,
    expect_error,
    expect_history,
    expect_output,
    expect_status,
    expect_trace,
    run_until_idle,
)

RETRY_TIMES = [10, 30, 70, 150, 310]


def always_declined(ctx):
    raise ConnectionError(f"gateway down (attempt {ctx.attempt})")


@define_workflow("charge-or-refund")
async def charge_or_refund(event: WorkflowEvent, step: WorkflowStep):
    try:
        return await step.do("charge", always_declined)
    except StepFailed as failed:
        refund = await step.do("refund", lambda: "refunded")
        return {"error": failed.error_name, "message": failed.message, "attempts": failed.attempts,
                "then": refund}


@define_workflow("charge-only")
async def charge_only(event: WorkflowEvent, step: WorkflowStep):
    return await step.do("charge", always_declined)


scenario = Scenario("retries-exhausted-caught", [charge_or_refund, charge_only], runners=["a", "b"], steps=[
    create(charge_or_refund, id="caught"),
    create(charge_only, id="uncaught"),
    run_until_idle(),
    *[s for t in RETRY_TIMES for s in (advance_to(t), run_until_idle())],
    expect_output("caught", {"error": "ConnectionError", "message": "gateway down (attempt 6)", "attempts": 6,
                             "then": "refunded"}),
    expect_history("caught", keys=["do:charge", "do:refund"], steps={
        "do:charge": {"status": "errored", "attempts": 6, "max_attempts": 6, "error": "ConnectionError"}}),
    expect_error("uncaught", "ConnectionError", "gateway down (attempt 6)"),
    expect_status("uncaught", "errored"),
    expect_calls("charge", 6, instance="caught"),
    expect_calls("charge", 6, instance="uncaught"),
    expect_trace(lambda tr: tr.times("step_call", instance="caught", key="do:charge") == [0, *RETRY_TIMES],
                 "attempts at 0, 10, 30, 70, 150, 310 s"),
], tolerates=["interleaving"])
