"""The scenario library: enough files, each documented, loadable, uniquely named, covering DESIGN §2–§3."""

from __future__ import annotations

from pathlib import Path

from sim.scenario.files import discover, jobs_for, load

SCENARIOS = Path(__file__).parents[2] / "scenarios"


def test_at_least_25_documented_scenario_files_with_unique_names() -> None:
    """Every file in scenarios/ loads, has a docstring, and names a distinct scenario."""
    paths = discover([SCENARIOS])
    assert len(paths) >= 25
    scenarios = [load(p) for p in paths]
    assert all(s.doc and len(s.doc) > 40 for s in scenarios)
    assert len({s.name for s in scenarios}) == len(scenarios)


def test_the_library_covers_the_issue_list() -> None:
    """Each semantic the scenario library must pin down has its own file."""
    names = {p.stem for p in discover([SCENARIOS])}
    required = {
        "approval_flow", "retry_backoff_times", "non_retryable_error", "attempt_timeout",
        "retries_exhausted_caught", "sleep_and_sleep_until", "pause_does_not_freeze_timers",
        "pause_at_step_boundary", "terminate_beats_completion", "restart_fences_stale_runner", "events_buffered",
        "same_type_events_in_order", "event_deadline", "match_filter", "idempotent_event_id",
        "wait_timeout_caught", "lease_expiry_takeover", "contending_runners", "priority_ordering",
        "crash_mid_step", "nondeterminism_detection", "idempotent_create", "create_batch_skips_existing",
        "invalid_params_rejected", "thousand_step_loop",
    }
    assert required <= names, sorted(required - names)


def test_jobs_cover_the_deterministic_run_and_seeds_of_tolerant_scenarios(tmp_path: Path) -> None:
    """Scenarios that tolerate nothing run once; the others once plus once per seed; --seed runs only that."""
    paths = discover([SCENARIOS])
    jobs = jobs_for(paths, 2)
    strict = [p for p in paths if not load(p).tolerates]
    assert len(jobs) == len(paths) + 2 * (len(paths) - len(strict))
    assert {j.seed for j in jobs_for(paths, 2, only_seed=7)} == {7}
    assert [j.path for j in jobs_for(paths, 0, match="approval")] == [str(SCENARIOS / "approval_flow.py")]
