"""Quality tier (slow, not in the default run): the state machine catches broken engines and shrinks them."""

from __future__ import annotations

import pytest

from sim.zoo.quality import MUTANTS, Mutant, hunt

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m.slug for m in MUTANTS])
def test_machine_catches_and_shrinks_the_mutant(mutant: Mutant) -> None:
    """Against this broken engine the machine fails within 5,000 examples and shrinks to at most 12 rules."""
    result = hunt(mutant, seed=0, max_examples=5000)
    assert result.detected, f"{mutant.title} was not caught"
    assert result.rules is not None and result.rules <= 12, result.program

