"""With all four task kinds due, a runner claims them in priority order wake, retry, resume, run, even
though the `run` task has been due the longest.

At 100 s: `run` for `new` (due since 50 s), `resume` for `paused` (due since 60 s), `wake` for `sleeper`
and `retry` for `flaky` (both due at 100 s). One tick of runner a claims them wake, retry, resume, run.
"""

from engine import Retries, WorkflowEvent, WorkflowStep, define_workflow
from sim.scenario import (
    Scenario,
    advance_to,
    create,
    expect_status,
    expect_trace,
    expect_value,
    pause,
    resume,
    run_until_idle,
    tick,
)


@define_workflow("sleeper")
async def sleeper(event: WorkflowEvent, step: WorkflowStep):
    await step.sleep("nap", "100 s")
    return "woke"


@define_workflow("flaky")
async def flaky(event: WorkflowEvent, step: WorkflowStep):
    def once(ctx):
        if ctx.attempt == 1:
            raise RuntimeError("first attempt fails")
        return "retried"

    return await step.do("once", once, retries=Retries(limit=1, delay="100 s", backoff="constant"))


@define_workflow("plain")
async def plain(event: WorkflowEvent, step: WorkflowStep):
    return await step.do("work", lambda: "done")


def claimed_in_priority_order(tr):
    claims = tr.where("claim")[-4:]
    return [(c["kind"], c["instance"]) for c in claims] == [
        ("wake", "sleeper"), ("retry", "flaky"), ("resume", "paused"), ("run", "new")]


scenario = Scenario("priority-ordering", [sleeper, flaky, plain], runners=["a", "b"], steps=[
    create(sleeper, id="sleeper"),
    create(flaky, id="flaky"),
    create(plain, id="paused"),
    pause("paused"),
    run_until_idle(),                       # sleeper sleeps until 100 s, flaky retries at 100 s
    advance_to(50),
    create(plain, id="new"),
    advance_to(60),
    resume("paused"),
    advance_to(100),
    tick("a", max_tasks=4, save_as="processed"),
    expect_value("processed", 4),
    expect_trace(claimed_in_priority_order, "claims in order wake, retry, resume, run"),
    expect_trace(lambda tr: [d[1] for d in tr.last("find", runner="a")["due"]] == ["wake", "retry", "resume", "run"],
                 "the runner found the due tasks in priority order"),
    *[expect_status(i, "complete") for i in ("sleeper", "flaky", "paused", "new")],
], tolerates=["interleaving"])
