"""Fixtures for the engine suite: a fresh ManualRuntime per test (the clock moves only when a test says so),
and every test run twice, on SQLite and on PostgreSQL (DESIGN §3: one protocol, two backends, one suite)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fakes import ManualRuntime

from engine import Engine


@pytest.fixture
def rt() -> ManualRuntime:
    """A manual clock starting at fakes' default epoch, with a fixed seed."""
    return ManualRuntime()


@pytest.fixture(params=["sqlite", "postgres"], autouse=True)
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Which store the test's engines use. On "postgres", `Engine()`'s default database becomes a fresh
    schema of its own, so every test written as `Engine(workflows=...)` runs unchanged on PostgreSQL;
    tests that name a SQLite file stay on SQLite (they are about files)."""
    if request.param == "postgres":
        monkeypatch.setattr(Engine.__init__, "__defaults__", (request.getfixturevalue("pg_schema"), ()))
    yield request.param
