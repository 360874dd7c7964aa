"""Step calls the engine refuses at the call: `#` in a name, and a step nested in a step callback.

`#` is reserved for repeat keys, so `do("x#2")` raises INVALID_STEP_NAME before anything is written and the
second `do("x")` keys as `do:x#2` (before issue 10 the two collided and the run looped forever). A step
awaited inside another step's callback raises NestedStepError (non-retryable) into that callback, so the
outer step fails at once and the workflow, which catches it, goes on; replays after the sleep agree.
A wait whose timeout is out of range and a sleep whose duration is not one are refused with INVALID_ARGUMENT
before they take a key or a position: the replay after the sleep finds no hole where they stood (issue 12:
the wait's range check used to come after its key, and the replay errored as nondeterministic).
"""

from engine import EngineError, InvalidStepName, StepFailed, WorkflowEvent, WorkflowStep, define_workflow
from sim.scenario import (
    Scenario,
    advance,
    create,
    expect_calls,
    expect_history,
    expect_output,
    run_until_idle,
)


@define_workflow("rules")
async def rules(event: WorkflowEvent, step: WorkflowStep):
    first = await step.do("x", lambda: 1)
    try:
        await step.do("x#2", lambda: 2)
        verdict = "accepted"
    except InvalidStepName as exc:
        verdict = exc.code

    async def outer():
        return await step.do("inner", lambda: "inner")

    try:
        nested = await step.do("outer", outer)
    except StepFailed as failed:
        nested = [failed.error_name, failed.attempts]
    refused = []
    for call in (lambda: step.wait_for_event("w", type="go", timeout="366 days"),
                 lambda: step.sleep("bad", "5 parsecs")):
        try:
            await call()
        except EngineError as exc:
            refused.append(exc.code)
    await step.sleep("nap", "5 s")
    return [first, verdict, await step.do("x", lambda: 3), nested, refused]


scenario = Scenario("step-call-rules", [rules], runners=["a", "b"], steps=[
    create(rules, id="r"),
    run_until_idle(),
    advance("5 s"),
    run_until_idle(),
    expect_output("r", [1, "INVALID_STEP_NAME", 3, ["NestedStepError", 1],
                        ["INVALID_ARGUMENT", "INVALID_ARGUMENT"]]),
    expect_history("r", keys=["do:x", "do:outer", "sleep:nap", "do:x#2"],
                   steps={"do:outer": {"status": "errored", "attempts": 1, "error": "NestedStepError"}}),
    expect_calls("outer", 1),
], tolerates=["interleaving", "crash", "lease_expiry"])
