"""A psycopg 3 connection that speaks the engine's portable SQL: `?` placeholders and sqlite3-style rows.

The `*_txn` functions are written once (`_txn`) against the small surface both backends share: `execute(sql,
params)` returning a cursor with `fetchone`, `fetchall`, iteration and `rowcount`, and rows indexable by
position and by column name. sqlite3 offers that natively; this adapter gives psycopg the same shape, so the
transactions, the properties and the simulator's checks run unchanged on PostgreSQL (the differential idea of
Hypothesis' `test_database_agreement.py`: one set of operations, two stores that must agree).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, Self

import psycopg
from psycopg.rows import RowMaker


class Row(tuple[Any, ...]):
    """A result row readable as `row[0]` and `row["column"]`, and convertible with `dict(row)`."""

    _names: dict[str, int]  # shared by every row of one result

    def __new__(cls, values: Sequence[Any], names: dict[str, int]) -> Self:
        row = super().__new__(cls, values)
        row._names = names
        return row

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return tuple.__getitem__(self, self._names[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        """Column names in select order (what `dict(row)` reads)."""
        return list(self._names)


def _row_factory(cursor: psycopg.Cursor[Any]) -> RowMaker[Row]:
    names = {column.name: i for i, column in enumerate(cursor.description or ())}
    return lambda values: Row(values, names)


@functools.lru_cache(maxsize=1024)
def translate(sql: str) -> str:
    """Rewrite sqlite's `?` placeholders as psycopg's `%s` (a literal `%` is doubled first).

    The engine's SQL never puts `?` inside a string literal, so a plain rewrite is exact; cached, because
    the same few dozen statements run on every step.
    """
    return sql.replace("%", "%%").replace("?", "%s")


class PgConnection:
    """One psycopg connection behind the sqlite3-shaped surface the `*_txn` functions use.

    `locks_rows` tells `_txn` to take the row locks PostgreSQL needs under READ COMMITTED (SQLite's
    `BEGIN IMMEDIATE` already serialises every writer).
    """

    locks_rows = True

    def __init__(self, raw: psycopg.Connection[Any], *, url: str | None = None) -> None:
        self.raw = raw
        self.url = url  # what it was opened with, when the opener says (a harness reconnecting elsewhere)
        raw.row_factory = _row_factory
        # Rows written through this connection, as sqlite3's `total_changes`: the harness skips re-checking
        # tables that no statement changed.
        self.total_changes = 0

    def execute(self, sql: str, params: Sequence[Any] = ()) -> psycopg.Cursor[Row]:
        """Run one statement with `?` placeholders; returns the cursor (rows, rowcount)."""
        cursor: psycopg.Cursor[Row] = self.raw.execute(translate(sql), tuple(params))
        if cursor.rowcount > 0 and not sql.startswith("SELECT"):
            self.total_changes += cursor.rowcount
        return cursor

    def executescript(self, script: str) -> None:
        """Run several statements (migrations); PostgreSQL takes them in one simple-query message."""
        self.raw.execute(script.encode())  # bytes: sent as is, no placeholder parsing

    def close(self) -> None:
        """Close the underlying connection."""
        self.raw.close()

    @property
    def closed(self) -> bool:
        """Whether the underlying connection is closed (or broken)."""
        return bool(self.raw.closed)
