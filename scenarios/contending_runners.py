"""Two runners contending for one task: both find it, exactly one claims it, the work runs once.

The hand-written schedule makes runners a and b both read the due task before either claims it; the
optimistic claim lets a win and b's claim fails cleanly (`claim_lost`). Then both runners race over five
more instances: every step callback still runs exactly once (no crash, no lease loss: property 1).
"""

from engine import WorkflowEvent, WorkflowStep, define_workflow
from sim.scenario import (
    Scenario,
    concurrent,
    create,
    create_batch,
    expect_calls,
    expect_output,
    expect_status,
    expect_trace,
    run_until_idle,
    tick,
)


@define_workflow("three-steps")
async def three_steps(event: WorkflowEvent, step: WorkflowStep):
    first = await step.do("first", lambda: 1)
    second = await step.do("second", lambda: first + 1)
    return await step.do("third", lambda: second + 1)


def both_found_one_claimed(tr):
    found_by = {e.runner for e in tr.where("find") if any(d[0] == 1 for d in e["due"])}
    return found_by == {"a", "b"} and tr.count("claim", task=1, kind="run") == 1 and \
        tr.count("claim_lost", task=1) == 1


scenario = Scenario("contending-runners", [three_steps], runners=["a", "b"], steps=[
    create(three_steps, id="solo"),
    # moves: a starts, b starts, a finds, b finds, a claims, b tries to claim (and loses)
    concurrent(tick("a"), tick("b"), schedule=["a", "b", "a", "b", "a", "b"]),
    expect_trace(both_found_one_claimed, "both runners found the task and exactly one claimed it"),
    expect_output("solo", 3),
    expect_calls("first", 1, instance="solo"),
    expect_calls("third", 1, instance="solo"),
    create_batch(three_steps, [{"id": f"i{n}"} for n in range(5)]),
    concurrent(run_until_idle("a"), run_until_idle("b")),
    run_until_idle(),
    *[expect_status(f"i{n}", "complete") for n in range(5)],
    *[expect_calls(key, 1, instance=f"i{n}") for n in range(5) for key in ("first", "second", "third")],
], tolerates=["interleaving"])
