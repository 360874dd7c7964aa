"""What can go wrong in a scenario: its own mistakes, unmet expectations, broken invariants, and the report."""

from __future__ import annotations

from typing import Any

from properties import Violation

__all__ = ["InvariantBroken", "Mismatch", "ScenarioError", "ScenarioFailure", "StepError"]


class ScenarioError(Exception):
    """The scenario itself is wrong (unknown runner, ticking a crashed runner, ...), not the engine."""


class Mismatch(Exception):
    """An expectation did not hold: what the step expected and what it found."""

    def __init__(self, expected: str, found: str) -> None:
        super().__init__(f"expected {expected}, found {found}")
        self.expected = expected
        self.found = found


class ScenarioFailure(AssertionError):
    """A scenario failed; `str()` is the full report: file:line, step, expected vs found, the trace so far."""

    def __init__(self, report: str, *, scenario: str, seed: int | None, where: str | None) -> None:
        super().__init__(report)
        self.report = report
        self.scenario = scenario
        self.seed = seed
        self.where = where


class InvariantBroken(Exception):
    """A property of DESIGN §6 was violated while the step ran."""

    def __init__(self, violations: list[Violation]) -> None:
        super().__init__("; ".join(v.prop for v in violations))
        self.violations = violations


class StepError(Exception):
    """An exception inside a `concurrent()` branch, with the inner step that raised it."""

    def __init__(self, step: Any, error: BaseException) -> None:
        super().__init__(str(error))
        self.step = step
        self.error = error
