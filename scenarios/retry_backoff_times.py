"""Retries follow their backoff exactly: constant d, linear d*n, exponential d*2**(n-1) after attempt n.

Three instances fail their first three attempts of `charge` (Retries(limit=3, delay="10 s")) and succeed on
the fourth. The retry times are pinned to the second: constant 10, 20, 30; linear 10, 30, 60; exponential
10, 30, 70. A retry is never run before its time, and every attempt is recorded.
"""

from engine import Retries, WorkflowEvent, WorkflowStep, define_workflow
from sim.scenario import (
    Scenario,
    advance_to,
    create,
    expect_calls,
    expect_history,
    expect_output,
    expect_status,
    expect_trace,
    run_until_idle,
)


@define_workflow("flaky-charge")
async def flaky(event: WorkflowEvent, step: WorkflowStep):
    def charge(ctx):
        if ctx.attempt <= 3:
            raise RuntimeError(f"declined (attempt {ctx.attempt})")
        return ctx.attempt

    return await step.do("charge", charge, retries=Retries(limit=3, delay="10 s", backoff=event.payload))


def retry(at, attempts):
    return {"do:charge": {"status": "waiting", "attempts": attempts, "next_retry_at": at, "error": "RuntimeError"}}


scenario = Scenario("retry-backoff-times", [flaky], runners=["a", "b"], steps=[
    create(flaky, "constant", id="c"),
    create(flaky, "linear", id="l"),
    create(flaky, "exponential", id="e"),
    run_until_idle(),
    expect_history("c", steps=retry(10, 1)),
    expect_history("l", steps=retry(10, 1)),
    expect_history("e", steps=retry(10, 1)),
    advance_to(9.999),
    run_until_idle(),
    expect_calls("charge", 3),                        # nothing ran early
    advance_to(10),
    run_until_idle(),
    expect_history("c", steps=retry(20, 2)),
    expect_history("l", steps=retry(30, 2)),
    expect_history("e", steps=retry(30, 2)),
    advance_to(20), run_until_idle(),
    expect_history("c", steps=retry(30, 3)),
    advance_to(30), run_until_idle(),
    expect_output("c", 4),
    expect_history("l", steps=retry(60, 3)),
    expect_history("e", steps=retry(70, 3)),
    advance_to(60), run_until_idle(),
    expect_output("l", 4),
    expect_status("e", "waiting"),
    advance_to(70), run_until_idle(),
    expect_output("e", 4),
    expect_history("e", steps={"do:charge": {"status": "completed", "attempts": 4, "max_attempts": 4}}),
    expect_trace(lambda tr: tr.times("step_call", instance="c") == [0, 10, 20, 30], "constant: 0, 10, 20, 30"),
    expect_trace(lambda tr: tr.times("step_call", instance="l") == [0, 10, 30, 60], "linear: 0, 10, 30, 60"),
    expect_trace(lambda tr: tr.times("step_call", instance="e") == [0, 10, 30, 70], "exponential: 0, 10, 30, 70"),
], tolerates=["interleaving"])
