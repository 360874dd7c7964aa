"""pytest collects every scenario file in this folder as test items (hooks in sim.scenario_pytest)."""

from sim.scenario_pytest import pytest_addoption, pytest_collect_file

__all__ = ["pytest_addoption", "pytest_collect_file"]
