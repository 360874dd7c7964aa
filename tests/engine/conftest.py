"""Fixtures for the engine suite: a fresh ManualRuntime per test (the clock moves only when a test says so)."""

from __future__ import annotations

import pytest
from fakes import ManualRuntime


@pytest.fixture
def rt() -> ManualRuntime:
    """A manual clock starting at fakes' default epoch, with a fixed seed."""
    return ManualRuntime()
