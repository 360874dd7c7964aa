"""NonRetryableError stops retrying at once: one attempt, however generous the retry policy.

`CardRejected` subclasses `NonRetryableError`. Uncaught, the instance is `errored` with the original class
name and message after a single attempt; caught, the workflow takes its fallback path.
"""

from engine import NonRetryableError, Retries, StepFailed, WorkflowEvent, WorkflowStep, define_workflow
from sim.scenario import (
    Scenario,
    create,
    expect_calls,
    expect_error,
    expect_history,
    expect_output,
    run_until_idle,
)


class CardRejected(NonRetryableError):
    pass


def reject(ctx):
    raise CardRejected("card rejected: stolen")


POLICY = Retries(limit=10, delay="1 s", backoff="constant")


@define_workflow("strict-charge")
async def strict_charge(event: WorkflowEvent, step: WorkflowStep):
    return await step.do("charge", reject, retries=POLICY)


@define_workflow("charge-with-fallback")
async def with_fallback(event: WorkflowEvent, step: WorkflowStep):
    try:
        return await step.do("charge", reject, retries=POLICY)
    except StepFailed as failed:
        why = f"invoice instead ({failed.error_name}, {failed.attempts})"
    return await step.do("invoice", lambda: why)


scenario = Scenario("non-retryable-error", [strict_charge, with_fallback], runners=["a", "b"], steps=[
    create(strict_charge, id="strict"),
    create(with_fallback, id="fallback"),
    run_until_idle(),
    expect_error("strict", "CardRejected", "card rejected: stolen"),
    expect_history("strict", steps={"do:charge": {"status": "errored", "attempts": 1, "max_attempts": 11,
                                                  "next_retry_at": None}}),
    expect_calls("charge", 1, instance="strict"),
    expect_output("fallback", "invoice instead (CardRejected, 1)"),
    expect_calls("charge", 1, instance="fallback"),
], tolerates=["interleaving", "crash", "lease_expiry"])
