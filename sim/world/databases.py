"""Databases for runs over PostgreSQL: one schema per run (or per worker), named in the URL.

A PostgreSQL engine keeps its tables in its connection's `search_path`, so a fresh schema is a fresh
database as far as the engine can tell. Creating and migrating one costs ~150 ms, so simulated runs reuse
one schema per process and empty it between seeds (~8 ms: DELETE, and the id counters set back, so a seed
replays to the same trace on one backend).

`fresh_database(url)` is the one door: None gives the simulator's in-memory SQLite database, a
`postgresql://` URL a PostgreSQL one behind the same sqlite3-shaped connection (`engine._pg_conn`).
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import os
import re
import socket
import sqlite3
import urllib.parse
from collections.abc import Iterator
from typing import Any

from engine._schema import migrate as migrate_sqlite
from engine._sqlite_store import connect

DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
ENGINE_TABLES = ("workflow_event", "workflow_step", "workflow_task", "workflow_instance")
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def is_postgres(url: str) -> bool:
    """Whether `url` names a PostgreSQL database."""
    return url.startswith(("postgres://", "postgresql://"))


def with_schema(url: str, schema: str) -> str:
    """`url` with its search_path set to `schema` (libpq's `options`), other query parameters kept."""
    if not _SCHEMA_NAME.match(schema):
        raise ValueError(f"schema names here are lower-case identifiers, got {schema!r}")
    parts = urllib.parse.urlsplit(url)
    query = [(k, v) for k, v in urllib.parse.parse_qsl(parts.query) if k != "options"]
    query.append(("options", f"-csearch_path={schema}"))
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


def create_schema(url: str, schema: str) -> str:
    """Drop and create `schema` in the database at `url`; returns the URL that works inside it."""
    import psycopg

    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        conn.execute(f'CREATE SCHEMA "{schema}"')
    return with_schema(url, schema)


def drop_schema(url: str, schema: str) -> None:
    """Drop `schema` and everything in it."""
    import psycopg

    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@contextlib.contextmanager
def fresh_schema(url: str, name: str) -> Iterator[str]:
    """A new empty schema for one test or run, dropped afterwards; yields the URL that uses it."""
    scoped = create_schema(url, name)
    try:
        yield scoped
    finally:
        drop_schema(url, name)


def worker_schema(prefix: str) -> str:
    """A schema name unique to this process on this machine (pytest-xdist workers and campaign processes run
    side by side; other machines may share the server)."""
    return f"{prefix}_{_host_tag()}_{os.getpid()}"


def _host_tag() -> str:
    return hashlib.blake2b(socket.gethostname().encode(), digest_size=3).hexdigest()


def drop_orphans(url: str, prefix: str) -> list[str]:
    """Drop this machine's `prefix` schemas whose process is gone (a pool worker exits without atexit)."""
    import psycopg

    mine = re.compile(rf"^{re.escape(prefix)}_{_host_tag()}_(\d+)$")
    dropped = []
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        names = [r[0] for r in conn.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE %s",
                                             (f"{prefix}_%",))]
        for name in names:
            found = mine.match(name)
            if found and not _alive(int(found.group(1))):
                conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
                dropped.append(name)
    return dropped


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # somebody else's live process
        return True
    return True


def postgres_reachable(url: str = DEFAULT_POSTGRES) -> str | None:
    """None if PostgreSQL answers at `url`, else why not (for skip messages)."""
    try:
        import psycopg

        with psycopg.connect(url, autocommit=True, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:  # noqa: BLE001 - any failure to connect means "not reachable", with its reason
        return f"{type(exc).__name__}: {exc}"
    return None


_SQLITE_TEMPLATE: list[sqlite3.Connection] = []
_POSTGRES: dict[str, Any] = {}  # base URL -> this process's connection to its own emptied schema
_SEQUENCES = (("workflow_instance", "seq"), ("workflow_task", "id"), ("workflow_event", "id"))


def fresh_database(url: str | None = None) -> Any:
    """An empty engine database for one simulated run: in-memory SQLite, or this process's PostgreSQL
    schema at `url`, emptied. Give it back with `release` when the run ends."""
    if url is None or not is_postgres(url):
        return _fresh_sqlite()
    return _fresh_postgres(url)


def _fresh_sqlite() -> sqlite3.Connection:
    # The backup API copies a migrated template's schema in microseconds; the explorer builds thousands.
    if not _SQLITE_TEMPLATE:
        template = connect(":memory:")
        migrate_sqlite(template)
        _SQLITE_TEMPLATE.append(template)
    conn = connect(":memory:")
    _SQLITE_TEMPLATE[0].backup(conn)
    return conn


def _fresh_postgres(url: str) -> Any:
    import psycopg

    from engine._pg_conn import PgConnection
    from engine._pg_schema import migrate as migrate_postgres

    conn = _POSTGRES.get(url)
    if conn is None or conn.closed:
        drop_orphans(url, "sim")
        schema = worker_schema("sim")
        scoped = create_schema(url, schema)
        # Durability of a scratch schema is worth nothing; commits that skip the WAL flush are what make a
        # campaign over PostgreSQL affordable. Visibility and locking, which the engine relies on, are
        # unchanged.
        raw = psycopg.connect(scoped, autocommit=True)
        raw.execute("SET synchronous_commit = off")
        migrate_postgres(raw)
        conn = PgConnection(raw, url=scoped)
        _POSTGRES[url] = conn
        atexit.register(_drop_quietly, url, schema, conn)
    else:
        with conn.raw.transaction():
            for table in ENGINE_TABLES:
                conn.raw.execute(f"DELETE FROM {table}")
            for table, column in _SEQUENCES:
                conn.raw.execute(f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), 1, false)")
    conn.total_changes = 0
    return conn


def release(conn: Any) -> None:
    """End a run's use of its database: SQLite's goes away, PostgreSQL's stays for the next run."""
    if isinstance(conn, sqlite3.Connection):
        conn.close()


def _drop_quietly(url: str, schema: str, conn: Any) -> None:
    with contextlib.suppress(Exception):
        conn.close()
        drop_schema(url, schema)


def database_of(conn: Any) -> str | None:
    """The URL a run's connection works in (None for the simulator's in-memory SQLite)."""
    return getattr(conn, "url", None)
