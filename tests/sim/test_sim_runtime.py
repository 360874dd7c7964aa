"""SimRuntime: the engine's Runtime for one simulated process (virtual, skewable time; seeded ids)."""

import math
import re

import pytest

from sim.core.choices import SeededChoices
from sim.core.clock import DEFAULT_START
from sim.core.runtime import SimRuntime
from sim.core.scheduler import Scheduler, SimulationError

ID_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_:-]{0,127}$")


def test_offset_and_drift_skew_local_time_only() -> None:
    """offset and drift change this runtime's now() but neither the global clock nor other runtimes."""
    with Scheduler(SeededChoices(0)) as sched:
        skewed, honest = SimRuntime(sched, "a", seed=1, offset=5.0), SimRuntime(sched, "b", seed=1)
        assert skewed.now() == DEFAULT_START + 5.0
        skewed.drift = 0.5
        sched.advance(100)
        assert skewed.now() == DEFAULT_START + 100 + 5 + 50
        assert honest.now() == sched.clock.now() == DEFAULT_START + 100
        skewed.drift = 0.0  # the skew accumulated so far stays; the clock does not leap back
        assert skewed.now() == DEFAULT_START + 155
        sched.advance(10)
        assert skewed.now() == DEFAULT_START + 165
        skewed.offset = -20.0
        assert skewed.now() == DEFAULT_START + 110 + 50 - 20
        assert sched.clock.now() == DEFAULT_START + 110


def test_drift_is_validated() -> None:
    """A drift that would stop or reverse the local clock is refused."""
    with Scheduler(SeededChoices(0)) as sched:
        with pytest.raises(ValueError):
            SimRuntime(sched, "a", seed=1, drift=-1.0)
        rt = SimRuntime(sched, "a", seed=1)
        with pytest.raises(ValueError):
            rt.drift = math.nan


def test_sleep_counts_local_seconds() -> None:
    """A runner whose clock runs twice as fast wakes after half the global time, ten local seconds on."""
    with Scheduler(SeededChoices(0)) as sched:
        rt = SimRuntime(sched, "a", seed=1, drift=1.0)

        async def nap() -> tuple[float, float]:
            before = rt.now()
            await rt.sleep(10)
            return before, rt.now()

        sched.spawn("a", nap())
        steps = sched.run(10)
        before, after = sched.result("a")
        assert after - before == 10
        assert steps[-1].t == DEFAULT_START + 5 and steps[-1].kind == "timer"


def test_sleep_zero_is_a_checkpoint() -> None:
    """sleep(0) and negative sleeps park as runnable, and never move the clock."""
    with Scheduler(SeededChoices(0)) as sched:
        rt = SimRuntime(sched, "a", seed=1)

        async def naps() -> None:
            await rt.sleep(0)
            await rt.sleep(-3)

        sched.spawn("a", naps())
        steps = sched.run(10)
        assert [(s.label, s.kind) for s in steps] == [("start", "run"), ("sleep", "run"), ("sleep", "run")]
        assert sched.clock.elapsed() == 0


def test_sleep_rejects_nan_and_infinity() -> None:
    """Sleeping NaN or forever is an error in a simulation."""
    with Scheduler(SeededChoices(0)) as sched:
        rt = SimRuntime(sched, "a", seed=1)
        for bad in (math.nan, math.inf):
            coro = rt.sleep(bad)
            with pytest.raises(ValueError):
                coro.send(None)


def test_checkpoint_outside_a_process_is_refused() -> None:
    """Parking from code that is not a simulated process raises SimulationError."""
    with Scheduler(SeededChoices(0)) as sched:
        coro = SimRuntime(sched, "a", seed=1).checkpoint("x")
        with pytest.raises(SimulationError, match="outside a process"):
            coro.send(None)


def test_checkpoint_labels_reach_the_scheduler() -> None:
    """checkpoint(label) shows up as a runnable waiter with that label."""
    with Scheduler(SeededChoices(0)) as sched:
        rt = SimRuntime(sched, "a", seed=1)

        async def body() -> None:
            await rt.checkpoint("before-commit")

        sched.spawn("a", body())
        sched.step()
        (waiter,) = sched.waiters()
        assert (waiter.process, waiter.label, waiter.kind, waiter.due) == ("a", "before-commit", "run", None)


def test_random_is_seeded_per_process() -> None:
    """The same seed and process name give the same random stream; another name gives another."""
    with Scheduler(SeededChoices(0)) as sched:
        first = [SimRuntime(sched, "a", seed=3).random.random() for _ in range(2)]
        other = SimRuntime(sched, "b", seed=3).random.random()
        assert first[0] == first[1] != other


def test_new_id_is_valid_unique_and_survives_restart() -> None:
    """Ids match the instance-id pattern and a restarted process never repeats its predecessor's ids."""
    with Scheduler(SeededChoices(0)) as sched:
        first = SimRuntime(sched, "runner-a", seed=1)
        ids = [first.new_id(), first.new_id()]
        restarted = SimRuntime(sched, "runner-a", seed=1)
        ids.append(restarted.new_id())
        assert ids == ["runner-a-000001", "runner-a-000002", "runner-a-000003"]
        odd = SimRuntime(sched, "-weird name/é", seed=1).new_id()
        empty = SimRuntime(sched, "", seed=1).new_id()
        for new_id in [*ids, odd, empty]:
            assert ID_RE.match(new_id), new_id
