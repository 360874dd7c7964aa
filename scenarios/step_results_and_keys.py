"""Step identity and results: keys are `type:name` with `#2`, `#3` for repeats (`do:x` and `sleep:x` are
different keys); completed steps replay their stored JSON result without calling the callback again; a
non-JSON result is a non-retryable step error whose message says "JSON"; an output that fails the
workflow's output schema errors the instance with OutputValidationError.
"""

from engine import Retries, StepFailed, WorkflowEvent, WorkflowStep, define_workflow
from sim.scenario import (
    Scenario,
    advance,
    create,
    expect_calls,
    expect_error,
    expect_history,
    expect_output,
    run_until_idle,
)


@define_workflow("keys")
async def keys(event: WorkflowEvent, step: WorkflowStep):
    a = await step.do("x", lambda: {"n": 1})
    await step.sleep("x", "1 s")
    b = await step.do("x", lambda: {"n": 2})
    c = await step.do("x", lambda: {"n": 3})
    try:
        await step.do("bad", lambda: {1, 2}, retries=Retries(limit=3, delay="1 s"))
    except StepFailed as failed:
        bad = f"{failed.error_name}: {failed.attempts} attempt(s)"
    return [a["n"], b["n"], c["n"], bad]


def must_be_int(value):
    if not isinstance(value, int):
        raise TypeError(f"output must be an int, got {value!r}")
    return value


@define_workflow("typed-output", output=must_be_int)
async def typed_output(event: WorkflowEvent, step: WorkflowStep):
    return await step.do("answer", lambda: "forty-two")


scenario = Scenario("step-results-and-keys", [keys, typed_output], runners=["a", "b"], steps=[
    create(keys, id="k"),
    create(typed_output, id="t"),
    run_until_idle(),                             # k sleeps after do:x; its replay will not call do:x again
    advance("1 s"),
    run_until_idle(),
    expect_output("k", [1, 2, 3, "NotSerializable: 1 attempt(s)"]),
    expect_history("k", keys=["do:x", "sleep:x", "do:x#2", "do:x#3", "do:bad"], steps={
        "do:x": {"result": {"n": 1}, "type": "do"}, "sleep:x": {"type": "sleep"},
        "do:x#3": {"result": {"n": 3}},
        "do:bad": {"status": "errored", "attempts": 1, "error_message": "JSON"}}),
    expect_calls("do:x", 1),
    expect_calls("do:x#2", 1),
    expect_error("t", "OutputValidationError", "output must be an int"),
], tolerates=["interleaving", "crash", "lease_expiry"])
