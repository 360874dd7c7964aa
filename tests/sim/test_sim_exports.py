"""The public surface of the sim package (trio's test_exports pattern)."""

import sim
import sim.core.choices
import sim.core.clock
import sim.core.runtime
import sim.core.scheduler
import sim.core.trace

EXPECTED = {
    "DEFAULT_START",
    "FLIP",
    "Choice",
    "ChoiceSource",
    "HypothesisChoices",
    "RecordingChoices",
    "Scheduler",
    "SeededChoices",
    "SimRuntime",
    "SimulationError",
    "StepResult",
    "TapeChoices",
    "TapeMismatch",
    "Trace",
    "TraceRecord",
    "VirtualClock",
    "Waiter",
    "WaiterKind",
    "dump_tape",
    "load_tape",
}


def test_package_exports() -> None:
    """sim re-exports exactly the public names of its modules, and each one resolves."""
    assert set(sim.__all__) == EXPECTED
    modules = (sim.core.choices, sim.core.clock, sim.core.runtime, sim.core.scheduler, sim.core.trace)
    assert set().union(*(m.__all__ for m in modules)) == EXPECTED
    for name in EXPECTED:
        assert getattr(sim, name) is not None


def test_no_hypothesis_import_at_load() -> None:
    """Importing sim does not need Hypothesis (it is a dev dependency); only HypothesisChoices uses it."""
    import subprocess
    import sys

    code = "import sys, sim; assert 'hypothesis' not in sys.modules, sorted(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True)
