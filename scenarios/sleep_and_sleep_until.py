"""`sleep` and `sleep_until` persist a wake time; the step completes on the first tick at or after it.

The instance sleeps one hour, does a step, then sleeps until three hours after its creation. It stays
`waiting` until exactly 3600 s and 10800 s; a run at 3599 s does nothing. A `sleep_until` in the past
completes at once.
"""

from datetime import timedelta

from engine import WorkflowEvent, WorkflowStep, define_workflow
from sim.scenario import (
    Scenario,
    advance_to,
    create,
    expect_history,
    expect_output,
    expect_status,
    expect_trace,
    run_until_idle,
)


@define_workflow("naps")
async def naps(event: WorkflowEvent, step: WorkflowStep):
    await step.sleep("nap", "1 hour")
    middle = await step.do("middle", lambda: "middle")
    await step.sleep_until("deadline", event.timestamp + timedelta(hours=3))
    await step.sleep_until("already-past", event.timestamp)
    return middle


scenario = Scenario("sleep-and-sleep-until", [naps], runners=["a", "b"], steps=[
    create(naps, id="z"),
    run_until_idle(),
    expect_status("z", "waiting"),
    expect_history("z", steps={"sleep:nap": {"status": "waiting", "wake_at": 3600, "type": "sleep"}}),
    advance_to(3599),
    run_until_idle(),
    expect_history("z", keys=["sleep:nap"]),
    advance_to(3600),
    run_until_idle(),
    expect_history("z", keys=["sleep:nap", "do:middle", "sleep_until:deadline"], steps={
        "sleep:nap": {"status": "completed"},
        "sleep_until:deadline": {"status": "waiting", "wake_at": 10800, "type": "sleep_until"}}),
    advance_to(10799),
    run_until_idle(),
    expect_status("z", "waiting"),
    advance_to(10800),
    run_until_idle(),
    expect_output("z", "middle"),
    expect_history("z", steps={"sleep_until:already-past": {"status": "completed", "wake_at": 0}}),
    expect_trace(lambda tr: tr.times("commit", key="sleep:nap", status="completed") == [3600],
                 "the nap completed at 3600 s exactly"),
], tolerates=["interleaving"])
