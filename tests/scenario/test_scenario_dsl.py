"""The scenario DSL drives real runners deterministically: barriers, time, faults, values and trace queries."""

from __future__ import annotations

import asyncio

import pytest

from engine import Retries, WorkflowEvent, WorkflowStep, define_workflow
from sim.scenario.dsl import (
    Barrier,
    Scenario,
    ScenarioError,
    TraceView,
    advance,
    barrier,
    concurrent,
    create,
    event,
    expect,
    expect_calls,
    expect_history,
    expect_output,
    expect_status,
    expect_trace,
    expect_value,
    expire_lease,
    ref,
    release,
    restart,
    run_state,
    run_until_idle,
    tick,
)
from sim.scenario.run import ScenarioRun
from sim.core.trace import TraceRecord

gate = barrier("work")


async def gated(ctx):  # type: ignore[no-untyped-def]
    await gate.wait()
    return ctx.attempt


@define_workflow("gated")
async def gated_wf(event: WorkflowEvent, step: WorkflowStep):  # type: ignore[no-untyped-def]
    return await step.do("work", gated)


@define_workflow("chain")
async def chain(event: WorkflowEvent, step: WorkflowStep):  # type: ignore[no-untyped-def]
    total = 0
    for i in range(4):
        total += await step.do(f"s{i}", lambda i=i: i)
    got = await step.wait_for_event("go", type="go", timeout="1 hour")
    return total + got.payload


def scenario(*steps, **kwargs):  # type: ignore[no-untyped-def]
    kwargs.setdefault("runners", ["a", "b"])
    return Scenario("dsl-test", [gated_wf, chain], steps=list(steps), **kwargs)


def assert_ok(s: Scenario, seed: int | None = None) -> None:
    result = s.run(seed)
    assert result.ok, result.report


class TestDeterminism:
    def test_a_run_and_a_seed_repeat_byte_for_byte(self) -> None:
        """The deterministic run and any seeded run give identical traces when repeated."""
        s = scenario(*[create(chain, id=f"c{i}") for i in range(3)], run_until_idle(),
                     *[event(f"c{i}", "go", i) for i in range(3)], run_until_idle(),
                     tolerates=["interleaving", "crash", "lease_expiry"])
        for seed in (None, 4):
            assert s.run(seed).trace.digest() == s.run(seed).trace.digest()

    def test_different_seeds_explore_different_interleavings_and_faults(self) -> None:
        """Seeds vary the order of runner moves and inject the tolerated faults."""
        s = scenario(*[create(chain, id=f"c{i}") for i in range(3)], run_until_idle(),
                     *[event(f"c{i}", "go", i) for i in range(3)], run_until_idle(),
                     *[expect_output(f"c{i}", 6 + i) for i in range(3)],
                     tolerates=["interleaving", "crash", "lease_expiry"])
        results = [s.run(seed) for seed in range(12)]
        assert all(r.ok for r in results), [r.report for r in results if not r.ok][:1]
        assert len({r.trace.digest() for r in results}) > 6
        assert any(any(f.startswith("crash") for f in r.injected) for r in results)
        assert any(any(f.startswith("lease_expiry") for f in r.injected) for r in results)

    def test_expect_calls_is_exact_without_faults_and_at_least_under_injected_crashes(self) -> None:
        """A crash may rerun a callback (P1), so expect_calls relaxes to "at least" only when one was injected."""
        s = scenario(create(chain, id="c"), run_until_idle(), expect_calls("s0", 1),
                     tolerates=["crash"])
        crashed = [r for r in (s.run(seed) for seed in range(40)) if r.injected]
        assert crashed and all(r.ok for r in crashed)
        assert not scenario(create(chain, id="c"), run_until_idle(), expect_calls("s0", 2)).run().ok

    def test_unknown_tolerance_is_rejected(self) -> None:
        """`tolerates` only takes the documented fault kinds."""
        with pytest.raises(ScenarioError, match="unknown tolerates"):
            scenario(tolerates=["gremlins"])


class TestBarriers:
    def test_barrier_stops_a_callback_until_released(self) -> None:
        """A runner stopped at a barrier stays mid-step (running, lease held) until release lets it finish."""
        assert_ok(scenario(
            create(gated_wf, id="g"),
            tick("a"),
            expect_status("g", "running"),
            expect(lambda ctx: ctx.blocked_at("a") == "work" and ctx.in_flight("a"), "a is stopped at 'work'"),
            run_until_idle("b"),                       # b cannot take a task a still holds
            expect_trace(lambda tr: tr.count("claim", runner="b") == 0, "b claimed nothing"),
            release(gate),
            expect_output("g", 1),
            expect(lambda ctx: not ctx.in_flight("a"), "a finished its tick"),
        ))

    def test_releasing_an_unused_barrier_and_ticking_a_busy_runner_are_scenario_errors(self) -> None:
        """Mistakes in a scenario's choreography are reported, not silently ignored."""
        report = scenario(release("work")).run().report or ""
        assert "no step callback is stopped at that barrier" in report
        report = scenario(create(gated_wf, id="g"), tick("a"), tick("a")).run().report or ""
        assert "stopped at barrier 'work'; release('work') first" in report

    def test_barrier_outside_a_scenario_returns_at_once(self) -> None:
        """Workflows from scenario files still run outside the simulator: wait() is a no-op, run_state() empty."""
        asyncio.run(Barrier("free").wait())
        assert run_state() == {}


class TestTimeAndLeases:
    def test_advance_fires_heartbeats_at_their_due_times(self) -> None:
        """While a callback is stopped, the 30 s lease is renewed whenever a third of it is left (20, 40, 60 s)."""
        assert_ok(scenario(
            create(gated_wf, id="g"),
            tick("a"),
            advance("65 s"),
            expect_trace(lambda tr: tr.times("renew", runner="a") == [20.0, 40.0, 60.0], "renewals at 20, 40, 60 s"),
            expect_status("g", "running"),
            release(gate),
            expect_output("g", 1),
        ))

    def test_expire_lease_needs_a_lease(self) -> None:
        """expire_lease on a runner holding nothing is a scenario error."""
        assert "holds no live lease" in (scenario(expire_lease("a")).run().report or "")

    def test_expired_lease_lets_the_other_runner_take_over(self) -> None:
        """After expire_lease the other runner claims with took_over and the stale one is fenced on release."""
        assert_ok(scenario(
            create(gated_wf, id="g"),
            tick("a"),
            expire_lease("a"),
            concurrent(tick("b")),
            expect_trace(lambda tr: tr.first("claim", runner="b", took_over=True) is not None, "b took over"),
            expect(lambda ctx: ctx.now == 31.0, "the clock is 1 s past a's lease"),
            release(gate),
            expect_output("g", 1),
            expect_calls("work", 2),
            expect_trace(lambda tr: tr.count("commit", runner="a") == 0, "a committed nothing"),
        ))

    def test_a_retry_is_not_run_before_its_time(self) -> None:
        """run_until_idle never waits for a timer: a retry due in 5 s waits for advance()."""

        @define_workflow("once-flaky")
        async def once_flaky(event: WorkflowEvent, step: WorkflowStep):  # type: ignore[no-untyped-def]
            def fn(ctx):  # type: ignore[no-untyped-def]
                if ctx.attempt == 1:
                    raise RuntimeError("no")
                return "yes"

            return await step.do("x", fn, retries=Retries(limit=1, delay="5 s", backoff="constant"))

        assert_ok(Scenario("retry", [once_flaky], steps=[
            create(once_flaky, id="f"), run_until_idle(), run_until_idle(),
            expect_history("f", steps={"do:x": {"attempts": 1, "next_retry_at": 5}}),
            advance("5 s"), run_until_idle(), expect_output("f", "yes"),
        ]))


class TestValues:
    def test_saved_values_refs_and_callables(self) -> None:
        """save_as keeps results; ref() and callables of the context are resolved when the step runs."""
        assert_ok(scenario(
            create(chain, save_as="auto"),
            expect_value("auto", "client-000001"),
            run_until_idle(save_as="processed"),
            expect_value("processed", 1),
            event(ref("auto"), "go", lambda ctx: len(ctx["auto"])),
            run_until_idle(),
            expect_output(ref("auto"), lambda ctx: 6 + len(ctx["auto"])),
            restart(ref("auto"), save_as="run"),
            expect_value("run", 2),
            tick("b", save_as="ticked"),
            expect_value("ticked", 1),
        ))

    def test_unknown_names_and_instances_are_scenario_errors(self) -> None:
        """Reading a name nobody saved says which names exist."""
        report = scenario(expect_status(ref("nope"), "complete")).run().report or ""
        assert "nothing was saved as 'nope'" in report


class TestConcurrent:
    def test_schedule_hand_writes_the_first_moves(self) -> None:
        """A schedule naming a process that cannot move is rejected with the processes that can."""
        report = scenario(create(chain, id="c"), concurrent(tick("a"), tick("b"), schedule=["a", "x"])).run().report
        assert report is not None and "schedule: 'x' cannot move now (movable: ['a', 'b'])" in report

    def test_a_branch_may_drive_one_runner_only(self) -> None:
        """Two runners in one branch is a construction error."""
        with pytest.raises(ScenarioError, match="one concurrent\\(\\) branch may drive one runner"):
            concurrent([tick("a"), tick("b")])

    def test_advance_cannot_run_inside_concurrent(self) -> None:
        """Steps that move time or the world as a whole are not branch steps."""
        with pytest.raises(ScenarioError, match="cannot run inside concurrent"):
            concurrent(advance("1 s"))


class TestTraceView:
    def test_queries_match_runner_incarnations_and_convert_times(self) -> None:
        """Filters match `a.2` as runner a; times (and time fields) are seconds since the start."""
        t0 = 1000.0
        view = TraceView([
            TraceRecord(t0 + 1, "a", "claim", {"task": 1, "lease_until": t0 + 31}),
            TraceRecord(t0 + 2, "b", "claim_lost", {"task": 1}),
            TraceRecord(t0 + 40, "a.2", "claim", {"task": 1, "lease_until": t0 + 70}),
        ], t0)
        assert [e.runner for e in view.where("claim", runner="a")] == ["a", "a.2"]
        assert view.first("claim")["lease_until"] == 31.0
        assert view.times("claim", task=1) == [1.0, 40.0]
        assert view.count(runner="b") == 1 and view.last("claim_lost") is view[1]
        assert TraceView.before(view[0], view[2]) and not TraceView.before(view[2], view[0])
        assert view.first("finish") is None and not TraceView.before(None, view[0])


def test_context_exposes_status_history_counts_and_time() -> None:
    """Callables get the run as context: status, history, row counts, now and the scratch state."""
    seen: dict[str, object] = {}

    def look(ctx: ScenarioRun) -> bool:
        seen.update(status=ctx.status("c").status.value, steps=len(ctx.history("c").steps),
                    rows=ctx.count("workflow_step"), now=ctx.now, state=ctx.state)
        return True

    assert_ok(scenario(create(chain, id="c"), run_until_idle(), advance("5 s"), expect(look, "look around")))
    assert seen == {"status": "waiting", "steps": 5, "rows": 5, "now": 5.0, "state": {}}


def test_public_surface_of_sim_scenario() -> None:
    """sim.scenario.dsl exports exactly the DSL (trio's test_exports pattern) and every name is importable."""
    import sim.scenario.dsl

    expected = {
        "FAULT_KINDS", "Barrier", "Entry", "Ref", "Scenario", "ScenarioError", "ScenarioFailure", "ScenarioResult",
        "ScenarioRun", "Step", "TraceView", "act", "advance", "advance_to", "barrier", "busy", "concurrent", "crash",
        "create", "create_batch", "event", "expect", "expect_calls", "expect_error", "expect_history",
        "expect_instances", "expect_output", "expect_status", "expect_trace", "expect_value", "expire_lease",
        "hang", "pause", "proceed", "ref", "release", "restart", "restart_runner", "resume", "run_state",
        "run_until_idle", "terminate", "tick",
    }
    assert set(sim.scenario.dsl.__all__) == expected
    assert all(hasattr(sim.scenario.dsl, name) for name in expected)
