"""Shared Hypothesis strategies and settings profiles for the state machine (property 10).

Profiles `dev`, `ci` and `exhaustive` are chosen by one environment variable, STEPSIM_HYPOTHESIS_PROFILE,
read when a run starts (never at import). They are registered with Hypothesis under those names, but the
machine applies its profile to itself only, so other Hypothesis tests keep their own settings.
"""

from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st

PROFILE_ENV = "STEPSIM_HYPOTHESIS_PROFILE"
SEED_ENV = "STEPSIM_HYPOTHESIS_SEED"

RUNNERS = ("r1", "r2")
LEASE = 30.0

# Ids are unique across workflows (one prefix each): the property checkers key rows by instance id alone.
ID_PREFIX = {"m-steps": "s", "m-wait": "w", "m-sleep": "z", "m-retry": "r", "m-script": "m"}
EVENT_IDS = ("e1", "e2", "e3")
EVENT_TYPES = ("go", "other")
# Small steps, then jumps across a lease (30 s) that also pass waits' timeouts and sleeps.
CLOCK_STEPS = (1.0, 5.0, 15.0, LEASE + 1.0, 2 * LEASE + 1.0)

_QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
          HealthCheck.large_base_example]

PROFILES: dict[str, dict[str, Any]] = {
    # Quick local iteration: few examples, failures kept in .hypothesis/ and replayed first.
    "dev": {"max_examples": 40, "stateful_step_count": 30},
    # The default suite: bounded time on a 2-core machine under `pytest -n 2`; no database, so a run is
    # fixed by its seed alone.
    "ci": {"max_examples": 600, "stateful_step_count": 50, "database": None},
    # Campaigns: long programs, many examples.
    "exhaustive": {"max_examples": 5000, "stateful_step_count": 100, "database": None},
}


def register_profiles() -> None:
    """Register dev, ci and exhaustive with Hypothesis (idempotent)."""
    for name, overrides in PROFILES.items():
        settings.register_profile(name, settings(deadline=None, suppress_health_check=_QUIET, print_blob=True,
                                                 **overrides))


def profile_name(default: str = "ci") -> str:
    """The profile STEPSIM_HYPOTHESIS_PROFILE names, else `default`; unknown names are an error."""
    name = os.environ.get(PROFILE_ENV, "").strip() or default
    if name not in PROFILES:
        raise ValueError(f"{PROFILE_ENV}={name!r}: expected one of {', '.join(PROFILES)}")
    return name


def profile_settings(name: str | None = None) -> settings:
    """The settings of profile `name` (default: the environment's choice)."""
    register_profiles()
    return settings.get_profile(name or profile_name())


def quality_settings(max_examples: int = 2000) -> settings:
    """For mutant hunting: stop at the first bug, shrink it, skip the explain phase (it is not shrinking)."""
    return settings(deadline=None, suppress_health_check=_QUIET, max_examples=max_examples,
                    stateful_step_count=40, database=None, report_multiple_bugs=False,
                    phases=[Phase.generate, Phase.shrink], print_blob=True)


# --- rule arguments -------------------------------------------------------------------------------------


def _params(workflow: str) -> list[dict[str, Any]]:
    """Every parameter set of a machine workflow (see properties.model's programs), simplest first."""
    if workflow == "m-steps":
        # Last, so the simpler sets keep their places: a refused "s#2" before two steps.
        return [{"k": k, "park": park} for park in (False, True) for k in (1, 2, 3)] + [
            {"k": 2, "park": False, "hash": True}]
    if workflow == "m-wait":
        return [{"waits": n, "timeout": t} for t in (20.0, 90.0) for n in (1, 2)]
    if workflow == "m-sleep":
        return [{"seconds": 10.0}, {"seconds": 60.0}]
    if workflow == "m-script":
        return [{"script": script} for script in SCRIPTS]
    return [{"fail": n, "catch": catch, "backoff": b} for catch in (True, False)
            for b in ("constant", "linear", "exponential") for n in range(4)]


START = 1_700_000_000.0  # where the harness's virtual clock starts
# Step scripts (`m-script`) for the options the four small programs leave out: every backoff with delays,
# zero-delay retries, repeated keys after a caught failure, refused names and results, multi-field `match`,
# `sleep_until` behind and ahead of the clock, text durations, other callback shapes.
SCRIPTS: tuple[list[dict[str, Any]], ...] = (
    [{"op": "do", "name": "a", "fail": 1, "limit": 2, "delay": 5.0, "backoff": "linear"}],
    [{"op": "wait", "name": "w", "type": "go", "timeout": 20.0, "match": {"k": 1}, "catch": True},
     {"op": "do", "name": "a"}],
    [{"op": "wait", "name": "w", "type": "go", "timeout": 90.0, "match": {"k": 1, "v": 2}},
     {"op": "wait", "name": "w", "type": "go", "timeout": 20.0, "catch": True}],
    [{"op": "sleep_until", "name": "u", "at": START + 40.0}, {"op": "sleep_until", "name": "u", "at": 0.0},
     {"op": "do", "name": "a", "shape": "async"}],
    [{"op": "do", "name": "a", "fail": 3, "limit": 1, "delay": 5.0, "backoff": "exponential", "catch": True},
     {"op": "do", "name": "a", "fail": 1, "limit": 1, "delay": 0.0}],
    [{"op": "do", "name": "x#1"}, {"op": "do", "name": "b", "result": "unjson", "catch": True},
     {"op": "sleep", "name": "s", "seconds": 10.0, "form": "text"}],
)


# Simplest first: Hypothesis shrinks towards the first workflow and the first parameter set.
WORKFLOW_ORDER = ("m-steps", "m-sleep", "m-wait", "m-retry", "m-script")

# Every (id, params) per workflow: three ids each, so creating an existing id (idempotent) happens often.
# Whole parameter sets are drawn from precomputed lists, one Hypothesis choice instead of one per field:
# that halves Hypothesis' own cost per rule (see the rule-steps benchmark, `stepsim quality --bench`).
ITEMS: dict[str, list[tuple[str, dict[str, Any]]]] = {
    wf: [(f"{ID_PREFIX[wf]}{n}", p) for p in _params(wf) for n in range(3)] for wf in WORKFLOW_ORDER
}


def instance_specs() -> st.SearchStrategy[tuple[str, str, dict[str, Any]]]:
    """(workflow, instance id, params) for `create`; each workflow equally likely."""
    return st.one_of([st.sampled_from([(wf, iid, p) for iid, p in ITEMS[wf]]) for wf in WORKFLOW_ORDER])


def batch_specs() -> st.SearchStrategy[tuple[str, list[tuple[str, dict[str, Any]]]]]:
    """(workflow, [(id, params), ...]) for `create_batch`; ids may repeat inside one batch."""
    return st.one_of([st.tuples(st.just(wf), st.lists(st.sampled_from(ITEMS[wf]), min_size=1, max_size=3))
                      for wf in WORKFLOW_ORDER])


runners = st.sampled_from(RUNNERS)
event_types = st.sampled_from(EVENT_TYPES)
# Integers, and objects for the scripts' `match` filters (whole, partial and other matches).
payloads = st.one_of(st.integers(0, 9), st.sampled_from(({"k": 1}, {"k": 1, "v": 2}, {"k": 2, "v": 2})))
event_ids = st.sampled_from((None, *EVENT_IDS))
clock_steps = st.sampled_from(CLOCK_STEPS)
# Where a tick may stop mid-flight: the engine's checkpoint labels (and the machine's "callback" inside a
# parked step). None runs the tick to its end. Each label opens a window for other rules: "tick:claim"
# found a task but has not claimed it, "tick:claimed" holds a lease, "step:call"/"callback"/"step:commit"
# are before, inside and after a step's side effect, "suspend"/"finish" before the hand-back or the end.
STOPS = (None, "tick:claim", "tick:claimed", "step:call", "callback", "step:commit", "suspend", "finish")
# The windows before a fenced write (a step commit, the finish) are listed twice: they are where a stalled
# runner can write over a newer claimant or a lifecycle operation, the bugs that are hardest to reach.
stops = st.sampled_from(STOPS + ("step:commit", "finish"))
