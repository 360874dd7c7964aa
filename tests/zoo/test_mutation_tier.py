"""The slow tier of issue 12: automatic mutation testing of the engine, judged by the searches alone."""

from __future__ import annotations

import pytest

from sim.core.parallel import run_all
from sim.zoo.mutate import judge, mutations

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("module", ["engine._txn", "engine._step"])
def test_the_searches_kill_most_mutants_of_the_core_modules(module: str) -> None:
    """At least 80% of the mutants that change behaviour are killed by fuzz and the explorer, no example test."""
    verdicts = list(run_all(judge, [(m, 40) for m in mutations((module,))], jobs=2, chunksize=1))
    killed = sum(v.status == "killed" for v in verdicts)
    changed = killed + sum(v.status == "survived" for v in verdicts)
    assert killed >= 0.8 * changed, f"{killed}/{changed} killed in {module}"
