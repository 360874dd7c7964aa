"""pytest collects every scenario file in this folder as test items (hooks in sim.scenario.pytest_plugin)."""

from sim.scenario.pytest_plugin import pytest_addoption, pytest_collect_file

__all__ = ["pytest_addoption", "pytest_collect_file"]
