"""(d) The raw SQLite limit: commits/s of one INSERT + one UPDATE per transaction, with the engine's settings.

The connection is opened exactly as the engine opens its own (WAL, synchronous=NORMAL, foreign keys,
busy timeout, autocommit mode with explicit BEGIN IMMEDIATE), so the figure is the ceiling a store doing
one small write transaction per step could reach from Python on this machine.
"""

from __future__ import annotations

import gc
import os
import sqlite3
import time

from ._records import Measurement

SCHEMA = (
    ("CREATE TABLE journal (id INTEGER PRIMARY KEY, owner TEXT NOT NULL, key TEXT NOT NULL, result TEXT, "
     "updated_at REAL NOT NULL, UNIQUE (owner, key))"),
    "CREATE TABLE head (id INTEGER PRIMARY KEY, version INTEGER NOT NULL, updated_at REAL NOT NULL)",
)


def connect(path: str) -> sqlite3.Connection:
    """The engine's connection settings, restated here so the benchmark never reaches into engine privates."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=5000")
    return conn


def _commits(path: str, count: int) -> float:
    conn = connect(path)
    try:
        for statement in SCHEMA:
            conn.execute(statement)
        conn.execute("INSERT INTO head (id, version, updated_at) VALUES (1, 0, 0)")
        gc.collect()
        start = time.perf_counter()
        for i in range(count):
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO journal (owner, key, result, updated_at) VALUES (?, ?, ?, ?)",
                         ("bench", f"do:s{i}", str(i), float(i)))
            conn.execute("UPDATE head SET version = version + 1, updated_at = ? WHERE id = 1", (float(i),))
            conn.execute("COMMIT")
        elapsed = time.perf_counter() - start
        (version,) = conn.execute("SELECT version FROM head WHERE id = 1").fetchone()
        if version != count:
            raise RuntimeError(f"raw SQLite committed {version} of {count} transactions")
    finally:
        conn.close()
    return elapsed


def raw_commits(workdir: str, count: int, repeats: int) -> Measurement:
    """(d) `count` commits of INSERT + UPDATE on a fresh WAL file per repetition."""
    seconds = [_commits(os.path.join(workdir, f"raw-{rep}.db"), count) for rep in range(repeats)]
    return Measurement(case="d", system="sqlite", label="raw SQLite: 1 INSERT + 1 UPDATE per commit",
                       seconds=tuple(seconds), commits=count)
