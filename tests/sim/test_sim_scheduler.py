"""Scheduler: deterministic interleaving, virtual time, crashes and child tasks on a private loop."""

import asyncio
import contextlib
import gc
import inspect
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.core.choices import (
    ChoiceSource,
    HypothesisChoices,
    RecordingChoices,
    SeededChoices,
    TapeChoices,
    TapeMismatch,
    dump_tape,
    load_tape,
)
from sim.core.clock import DEFAULT_START, VirtualClock
from sim.core.runtime import SimRuntime
from sim.core.scheduler import Scheduler, SimulationError, StepResult, Waiter
from sim.core.trace import Trace

ROOT = Path(__file__).resolve().parents[2]
PROCESSES = ("a", "b", "c")
ROUNDS = 4
# Each toy process parks at "start", then twice per round (checkpoint + sleep).
PARKS_PER_PROCESS = 1 + 2 * ROUNDS


async def toy(rt: SimRuntime) -> str:
    for i in range(ROUNDS):
        await rt.checkpoint(f"cp{i}")
        await rt.sleep(rt.random.choice([0, 1, 5, 30]))
    return rt.process


def simulate(choices: ChoiceSource) -> list[StepResult]:
    with Scheduler(choices, VirtualClock()) as sched:
        for name in PROCESSES:
            sched.spawn(name, toy(SimRuntime(sched, name, seed=1)))
        steps = sched.run(10_000)
        assert [sched.result(p) for p in PROCESSES] == list(PROCESSES)
        assert sched.step() is None
    return steps


def trace_of(steps: list[StepResult]) -> Trace:
    trace = Trace()
    for s in steps:
        trace.add(s.t, s.process, "step", {"label": s.label, "kind": s.kind, "eligible": s.eligible})
    return trace


class TestDeterminism:
    def test_same_seed_same_schedule(self) -> None:
        """One seed gives the same step sequence and a byte-identical trace every time."""
        for seed in range(5):
            first, second = simulate(SeededChoices(seed)), simulate(SeededChoices(seed))
            assert first == second
            assert trace_of(first).to_jsonl() == trace_of(second).to_jsonl()
            assert len(first) == len(PROCESSES) * PARKS_PER_PROCESS

    def test_different_seeds_different_schedules(self) -> None:
        """Different seeds explore different interleavings (trio's test_scheduler_determinism)."""
        digests = {trace_of(simulate(SeededChoices(seed))).digest() for seed in range(20)}
        assert len(digests) >= 15

    def test_recorded_tape_replays_same_schedule(self) -> None:
        """A tape recorded from a seeded run, serialised and replayed, reproduces the exact schedule."""
        rec = RecordingChoices(SeededChoices(42))
        original = simulate(rec)
        assert rec.tape and {c.kind for c in rec.tape} == {"sched"}
        replay = TapeChoices(load_tape(dump_tape(rec.tape)))
        assert simulate(replay) == original
        assert replay.position == len(rec.tape) and not replay.exhausted

    def test_tape_prefix_still_runs(self) -> None:
        """Half a tape replays its prefix, then follows choice 0, and flags the tape as exhausted."""
        rec = RecordingChoices(SeededChoices(7))
        original = simulate(rec)
        prefix = TapeChoices(rec.tape[: len(rec.tape) // 2])
        shorter = simulate(prefix)
        assert prefix.exhausted
        assert len(shorter) == len(original)
        assert shorter[:5] == original[:5]

    def test_tape_from_other_workload_mismatches(self) -> None:
        """Replaying a tape whose decisions do not fit the run raises TapeMismatch."""
        rec = RecordingChoices(SeededChoices(3))
        simulate(rec)
        wrong = [type(c)("fault", c.n, c.value) for c in rec.tape]
        with pytest.raises(TapeMismatch, match="position 0"):
            simulate(TapeChoices(wrong))

    @settings(database=None, max_examples=25, deadline=None)
    @given(data=st.data())
    def test_hypothesis_drives_the_schedule(self, data: st.DataObject) -> None:
        """Hypothesis can pick every interleaving; every run still completes all processes."""
        steps = simulate(HypothesisChoices(data))
        assert len(steps) == len(PROCESSES) * PARKS_PER_PROCESS

    def test_pick_override_chooses_the_process(self) -> None:
        """A pick callback decides instead of the ChoiceSource: "c" moves whenever it can."""
        picked: list[str] = []

        def prefer_c(waiters: Sequence[Waiter]) -> int:
            assert [w.seq for w in waiters] == sorted(w.seq for w in waiters)
            names = [w.process for w in waiters]
            index = names.index("c") if "c" in names else 0
            picked.append(names[index])
            return index

        rec = RecordingChoices(SeededChoices(0))
        with Scheduler(rec) as sched:
            for name in PROCESSES:
                sched.spawn(name, toy(SimRuntime(sched, name, seed=1)))
            steps = sched.run(10_000, pick=prefer_c)
        assert [s.process for s in steps] == picked
        assert [s.process for s in steps[:2]] == ["c", "c"]  # start, then cp0, before anyone else
        assert rec.tape == []  # the ChoiceSource was never asked

    def test_pick_out_of_range(self) -> None:
        """A pick callback returning an invalid index is a SimulationError."""
        with Scheduler(SeededChoices(0)) as sched:
            sched.spawn("a", toy(SimRuntime(sched, "a", seed=1)))
            with pytest.raises(SimulationError, match="outside"):
                sched.step(pick=lambda waiters: len(waiters))


class TestVirtualTime:
    def test_clock_jumps_only_when_everyone_is_blocked(self) -> None:
        """A due-later timer fires only after every runnable process has parked on timers or finished."""
        with Scheduler(SeededChoices(1)) as sched:
            rt_a, rt_b = SimRuntime(sched, "a", seed=1), SimRuntime(sched, "b", seed=1)

            async def sleeper() -> float:
                await rt_a.sleep(10)
                return rt_a.now()

            async def busy() -> None:
                for i in range(5):
                    await rt_b.checkpoint(f"busy{i}")

            sched.spawn("a", sleeper())
            sched.spawn("b", busy())
            steps = sched.run(100)
        assert steps[-1].kind == "timer" and steps[-1].process == "a"
        assert steps[-1].t == DEFAULT_START + 10
        assert all(s.t == DEFAULT_START for s in steps[:-1])
        assert sched.clock.now() == DEFAULT_START + 10

    def test_due_timer_competes_with_runnable_waiters(self) -> None:
        """Once the clock is advanced past a timer, it is eligible alongside runnable waiters."""
        with Scheduler(SeededChoices(1)) as sched:
            rt = SimRuntime(sched, "a", seed=1)

            async def sleeper() -> None:
                await rt.sleep(10)

            async def spinner() -> None:
                while True:
                    await rt.checkpoint("spin")

            sched.spawn("a", sleeper())
            sched.spawn("b", spinner())
            sched.run(2, pick=lambda ws: 0)  # both started: "a" sleeps, "b" spins
            assert [w.kind for w in sched.waiters()] == ["timer", "run"]
            step = sched.step(pick=lambda ws: 0)
            assert step is not None and step.process == "b" and step.eligible == 1
            sched.advance(10)
            seen: list[Waiter] = []

            def first(ws: Sequence[Waiter]) -> int:
                seen.extend(ws)
                return 0

            step = sched.step(pick=first)
            assert [w.kind for w in seen] == ["timer", "run"]
            assert step is not None and step.kind == "timer" and sched.is_done("a")

    def test_seven_days_of_sleeps(self) -> None:
        """Seven simulated days of heartbeats and polls run in virtual time, without real sleeping."""
        week = 7 * 24 * 3600.0
        with Scheduler(SeededChoices(9)) as sched:

            async def poller(rt: SimRuntime, interval: float) -> int:
                beats = 0
                end = rt.now() + week
                while rt.now() < end:
                    await rt.sleep(interval)
                    await rt.checkpoint("beat")
                    beats += 1
                return beats

            for name, interval in (("a", 600.0), ("b", 3600.0), ("c", 86_400.0)):
                sched.spawn(name, poller(SimRuntime(sched, name, seed=1), interval))
            sched.run(100_000)
            assert [sched.result(p) for p in "abc"] == [1008, 168, 7]
        assert sched.clock.elapsed() == week

    def test_real_asyncio_sleep_is_refused(self) -> None:
        """Simulated code that waits on the real clock is reported instead of silently racing it."""
        with Scheduler(SeededChoices(0)) as sched:

            async def bad() -> None:
                await asyncio.sleep(1)

            sched.spawn("a", bad())
            with pytest.raises(SimulationError, match="real-time timer"):
                sched.run(10)


class TestCrash:
    def test_crash_stops_at_once_with_hook_first(self) -> None:
        """Code after the current await never runs; finally blocks see the on_crash hook already called."""
        events: list[object] = []
        db_dead = [False]
        with Scheduler(SeededChoices(0)) as sched:
            rt = SimRuntime(sched, "a", seed=1)

            async def runner() -> None:
                try:
                    await rt.checkpoint("before-commit")
                    events.append("commit")
                finally:
                    events.append(("finally", db_dead[0]))
                    try:
                        await rt.checkpoint("cleanup")
                        events.append("cleanup ran")
                    except asyncio.CancelledError:
                        events.append("cleanup cancelled")
                        raise

            sched.spawn("a", runner())
            sched.step()  # start -> parks at before-commit
            assert [w.label for w in sched.waiters()] == ["before-commit"]
            sched.crash("a", on_crash=lambda: db_dead.__setitem__(0, True))
            assert events == [("finally", True), "cleanup cancelled"]
            assert sched.is_crashed("a") and not sched.is_alive("a") and not sched.is_done("a")
            assert sched.waiters() == ()
            assert sched.step() is None
            with pytest.raises(SimulationError, match="crashed"):
                sched.result("a")

            async def again() -> str:
                await rt.checkpoint("restarted")
                return "back"

            sched.spawn("a", again())
            assert sched.is_alive("a") and not sched.is_crashed("a")
            sched.run(10)
            assert sched.result("a") == "back"
            assert sched.processes == ("a",)

    def test_crash_refuses_every_later_wait(self) -> None:
        """Cleanup that swallows cancellation cannot park again: every later wait is cancelled on the spot."""
        attempts = [0]
        with Scheduler(SeededChoices(0)) as sched:
            rt = SimRuntime(sched, "a", seed=1)

            async def stubborn() -> None:
                try:
                    await rt.checkpoint("work")
                finally:
                    for _ in range(1000):
                        with contextlib.suppress(asyncio.CancelledError):
                            attempts[0] += 1
                            await rt.sleep(1)

            sched.spawn("a", stubborn())
            sched.step()
            sched.crash("a")
            assert attempts == [1000]
            assert sched.waiters() == () and sched.clock.elapsed() == 0

    def test_crash_cancels_child_tasks_and_swallows_their_errors(self) -> None:
        """A crash cancels every task the process started; errors raised while dying are swallowed."""
        child_finally: list[str] = []
        with Scheduler(SeededChoices(0)) as sched:
            rt = SimRuntime(sched, "a", seed=1)

            async def heartbeat() -> None:
                try:
                    while True:
                        await rt.sleep(5)
                finally:
                    child_finally.append("heartbeat")
                    raise RuntimeError("dying noisily")

            async def runner() -> None:
                beat = asyncio.ensure_future(heartbeat())
                try:
                    while True:
                        await rt.checkpoint("work")
                finally:
                    assert not beat.done()

            sched.spawn("a", runner())
            sched.run(5)
            assert {w.label for w in sched.waiters()} == {"work", "sleep"}
            sched.crash("a")
            assert child_finally == ["heartbeat"]
            assert sched.waiters() == () and sched.step() is None
            gc.collect()
            assert sched.unhandled == []

    def test_crash_before_start_closes_the_coroutine(self) -> None:
        """Crashing a process that never ran closes its coroutine (no "never awaited" warning)."""
        with Scheduler(SeededChoices(0)) as sched:
            coro = toy(SimRuntime(sched, "a", seed=1))
            sched.spawn("a", coro)
            sched.crash("a")
            assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED
            sched.crash("a")  # idempotent

    def test_crash_leaves_other_processes_running(self) -> None:
        """Crashing one process does not disturb the others' waiters or results."""
        with Scheduler(SeededChoices(4)) as sched:
            for name in PROCESSES:
                sched.spawn(name, toy(SimRuntime(sched, name, seed=1)))
            sched.run(6)
            sched.crash("b")
            sched.run(10_000)
            assert sched.result("a") == "a" and sched.result("c") == "c"
            assert sched.failures() == {}


class TestChildTasks:
    @staticmethod
    async def with_timeout(rt: SimRuntime, work_seconds: float, timeout: float) -> tuple[str, float]:
        async def work() -> str:
            await rt.checkpoint("work-begin")
            await rt.sleep(work_seconds)
            return "done"

        job = asyncio.ensure_future(work())
        timer = asyncio.ensure_future(rt.sleep(timeout))
        done, _ = await asyncio.wait({job, timer}, return_when=asyncio.FIRST_COMPLETED)
        # Explicit references, never iteration over the returned sets: their order follows id() hashes.
        loser = timer if job in done else job
        loser.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loser
        return ("ok" if job in done else "timeout", rt.now())

    def _run(self, seed: int, work_seconds: float, timeout: float) -> tuple[list[StepResult], object]:
        with Scheduler(SeededChoices(seed)) as sched:
            rt = SimRuntime(sched, "a", seed=1)
            sched.spawn("a", self.with_timeout(rt, work_seconds, timeout))
            sched.spawn("b", toy(SimRuntime(sched, "b", seed=1)))
            steps = sched.run(1000)
            assert sched.waiters() == ()
            return steps, sched.result("a")

    def test_timeout_fires_in_virtual_time(self) -> None:
        """A slow child loses the race to runtime.sleep(timeout), at exactly the virtual deadline."""
        steps, result = self._run(1, work_seconds=100, timeout=10)
        assert result == ("timeout", DEFAULT_START + 10)
        assert max(s.t for s in steps) < DEFAULT_START + 100  # the cancelled work timer never fired

    def test_fast_child_wins(self) -> None:
        """A child that finishes first wins and the cancelled timer leaves no waiter behind."""
        _, result = self._run(1, work_seconds=5, timeout=10)
        assert result == ("ok", DEFAULT_START + 5)

    def test_child_tasks_are_deterministic(self) -> None:
        """Runs with child tasks repeat exactly under one seed."""
        for seed in range(5):
            assert self._run(seed, 100, 10) == self._run(seed, 100, 10)


class TestProcesses:
    def test_root_exception_is_kept(self) -> None:
        """A root coroutine's exception is kept for exception(), result() and failures()."""
        with Scheduler(SeededChoices(0)) as sched:

            async def boom() -> None:
                raise ValueError("boom")

            sched.spawn("a", boom())
            sched.run(10)
            assert sched.is_done("a")
            assert isinstance(sched.exception("a"), ValueError)
            assert list(sched.failures()) == ["a"]
            with pytest.raises(ValueError, match="boom"):
                sched.result("a")

    def test_unretrieved_child_error_is_recorded(self) -> None:
        """A child task that fails unobserved is reported in unhandled, not lost."""
        with Scheduler(SeededChoices(0)) as sched:
            rt = SimRuntime(sched, "a", seed=1)

            async def failing() -> None:
                raise KeyError("lost")

            async def parent() -> None:
                asyncio.ensure_future(failing())
                await rt.checkpoint("after")

            sched.spawn("a", parent())
            sched.run(10)
            gc.collect()
            assert any(isinstance(c.get("exception"), KeyError) for c in sched.unhandled)

    def test_current_process_is_inherited_by_children(self) -> None:
        """current_process() names the spawning process in its root and in tasks it creates."""
        seen: list[str | None] = []
        with Scheduler(SeededChoices(0)) as sched:

            async def child() -> None:
                seen.append(sched.current_process())

            async def root() -> None:
                seen.append(sched.current_process())
                await asyncio.gather(asyncio.ensure_future(child()))

            sched.spawn("p", root())
            sched.run(10)
            assert seen == ["p", "p"]
            assert sched.current_process() is None

    def test_misuse_is_reported(self) -> None:
        """Respawning a live name, spawning a non-coroutine, or driving from inside the loop raise."""
        with Scheduler(SeededChoices(0)) as sched:
            sched.spawn("a", toy(SimRuntime(sched, "a", seed=1)))
            late = toy(SimRuntime(sched, "a", seed=1))
            with pytest.raises(SimulationError, match="still alive"):
                sched.spawn("a", late)
            assert inspect.getcoroutinestate(late) == inspect.CORO_CLOSED
            with pytest.raises(TypeError):
                sched.spawn("b", toy)  # type: ignore[arg-type]
            with pytest.raises(SimulationError, match="not finished"):
                sched.exception("a")

            async def driver() -> None:
                sched.step()

            sched.spawn("d", driver())
            sched.run(100)
            assert isinstance(sched.exception("d"), SimulationError)
            with pytest.raises(SimulationError, match="no process"):
                sched.crash("nobody")

    def test_close_tears_everything_down(self) -> None:
        """close() cancels parked processes and later use is refused; closing twice is harmless."""
        sched = Scheduler(SeededChoices(0))
        sched.spawn("a", toy(SimRuntime(sched, "a", seed=1)))
        sched.run(3)
        sched.close()
        sched.close()
        coro = toy(SimRuntime(sched, "b", seed=1))
        with pytest.raises(SimulationError, match="closed"):
            sched.spawn("b", coro)
        assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED
        with pytest.raises(SimulationError, match="closed"):
            sched.step()

    def test_run_until(self) -> None:
        """run_until stops as soon as the predicate holds and reports whether it did."""
        with Scheduler(SeededChoices(2)) as sched:
            for name in PROCESSES:
                sched.spawn(name, toy(SimRuntime(sched, name, seed=1)))
            assert sched.run_until(lambda: sched.is_done("b"), 10_000)
            assert sched.is_done("b")
            assert not sched.run_until(lambda: False, 10_000)


_SUBPROCESS_RUN = """
import asyncio
from sim import Scheduler, SeededChoices, SimRuntime, Trace

async def worker(rt):
    async def beat():
        while True:
            await rt.sleep(rt.random.choice([1, 2, 3]))
    async def work(i):
        await rt.checkpoint(f"job{i}")
        await rt.sleep(rt.random.choice([0.5, 2, 4]))
    hb = asyncio.ensure_future(beat())
    for i in range(6):
        job = asyncio.ensure_future(work(i))
        timer = asyncio.ensure_future(rt.sleep(3))
        await asyncio.wait({job, timer}, return_when=asyncio.FIRST_COMPLETED)
        for t in (job, timer):
            t.cancel()
    hb.cancel()

trace = Trace()
with Scheduler(SeededChoices(2024)) as sched:
    for name in "abcd":
        sched.spawn(name, worker(SimRuntime(sched, name, seed=7)))
    for s in sched.run(100_000):
        trace.add(s.t, s.process, "step", {"label": s.label, "eligible": s.eligible})
print(len(trace), round(sched.clock.elapsed(), 6), trace.digest())
"""


def test_trace_identical_across_interpreters() -> None:
    """Fresh interpreters with different hash seeds produce a byte-identical trace for one seed."""
    import os
    import subprocess
    import sys

    outputs = set()
    for hash_seed in ("0", "1", "random"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        done = subprocess.run(
            [sys.executable, "-c", _SUBPROCESS_RUN],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        outputs.add(done.stdout)
    assert len(outputs) == 1
    steps, elapsed, _digest = outputs.pop().split()
    assert int(steps) > 50 and float(elapsed) > 0
