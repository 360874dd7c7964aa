"""Fixtures shared by every tier: the PostgreSQL server the suite runs against, and fresh schemas on it."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

import pytest

from sim.world.databases import DEFAULT_POSTGRES, fresh_schema, postgres_reachable

_schemas = itertools.count()


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The PostgreSQL server (STEPSIM_POSTGRES, else 127.0.0.1:5432/test); skipped where there is none,
    failed instead under CI, which must run the PostgreSQL tier (`.ci/run` starts the server)."""
    url = os.environ.get("STEPSIM_POSTGRES", DEFAULT_POSTGRES)
    problem = postgres_reachable(url)
    if problem is not None:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is required in CI ({url}): {problem}")
        pytest.skip(f"no PostgreSQL at {url}: {problem}")
    return url


@pytest.fixture
def pg_schema(postgres_url: str) -> Iterator[str]:
    """The URL of a new, empty schema of its own (dropped after the test): an isolated engine database."""
    with fresh_schema(postgres_url, f"t_{os.getpid()}_{next(_schemas)}") as url:
        yield url
