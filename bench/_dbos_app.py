"""The DBOS Transact side of (e), written with DBOS's own API: a @DBOS.workflow calling @DBOS.step functions.

Imported only when `dbos` is importable. The decorators register into DBOS's process-wide registry (DBOS's
design, not ours); each repetition then builds, launches and destroys its own `DBOS` instance over a fresh
SQLite file. Sync workflows and steps are used because they are DBOS's primary (and its fastest) form.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

from dbos import DBOS


@DBOS.step()
def trivial_step(i: int) -> int:
    """The DBOS counterpart of `step.do(name, lambda: i)`."""
    return i


@DBOS.workflow()
def steps_workflow(n: int) -> int:
    """n trivial steps in a row, like the engine's benchmark workflow."""
    total = 0
    for i in range(n):
        total += trivial_step(i)
    return total


def pragma_creator(path: str, seen: set[tuple[str, int]]) -> Callable[[], sqlite3.Connection]:
    """A SQLAlchemy `creator` that opens each pooled connection with the engine's pragmas.

    DBOS's own connect listener still runs after this (IMMEDIATE transactions, busy timeout, foreign keys);
    we only add WAL and synchronous=NORMAL, which DBOS's SQLite engine does not set by itself. `seen`
    records what each connection reports back, so the report can show the settings really applied.
    """

    def create() -> sqlite3.Connection:
        conn = sqlite3.connect(path, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
        sync = conn.execute("PRAGMA synchronous").fetchone()[0]
        seen.add((str(mode), int(sync)))
        return conn

    return create


def launch(path: str, seen: set[tuple[str, int]]) -> None:
    """Configure and launch a DBOS instance whose system database is the SQLite file at `path`."""
    config: Any = {
        "name": "stepsim-bench",
        "system_database_url": f"sqlite:///{path}",
        "db_engine_kwargs": {"creator": pragma_creator(path, seen)},
        "log_level": "WARNING",
    }
    DBOS(config=config)
    DBOS.launch()


def launch_url(url: str) -> None:
    """Configure and launch a DBOS instance whose system database is the PostgreSQL database at `url`."""
    config: Any = {"name": "stepsim-bench", "system_database_url": url, "log_level": "WARNING"}
    DBOS(config=config)
    DBOS.launch()


def destroy() -> None:
    """Shut the instance down (background threads joined) but keep the registered functions."""
    DBOS.destroy(destroy_registry=False)
