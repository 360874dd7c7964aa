"""A 1,000-step loop with one repeated step name runs to completion in one claim; the keys are `do:add`,
`do:add#2`, ..., `do:add#1000`, each result commits once, and the output is the sum 0 + 1 + ... + 999.
"""

from sim.scenario import (
    Scenario,
    create,
    expect,
    expect_calls,
    expect_output,
    run_until_idle,
)
from sim.world.workflows import loop

N = 1000


def keys_in_order(ctx):
    keys = [s.key for s in ctx.history("big").steps]
    return keys == ["do:add"] + [f"do:add#{i}" for i in range(2, N + 1)]


scenario = Scenario("thousand-step-loop", [loop], runners=["a", "b"], steps=[
    create(loop, {"steps": N}, id="big"),
    run_until_idle(),
    expect_output("big", sum(range(N))),
    expect(keys_in_order, "1,000 steps keyed do:add, do:add#2, ..., do:add#1000"),
    expect_calls("do:add", 1),
    expect_calls("do:add#1000", 1),
    expect(lambda ctx: ctx.trace.count("commit", status="completed") == N, "each result committed once"),
], tolerates=["interleaving", "crash", "lease_expiry"])
