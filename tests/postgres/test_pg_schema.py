"""The two schemas are written twice (SQLite's types and migrations, PostgreSQL's), so a test keeps them
the same: every table, column, nullability, primary key and index, and every migration version applied."""

from __future__ import annotations

import psycopg

from engine._pg_schema import MIGRATIONS as PG_MIGRATIONS
from engine._pg_schema import migrate as migrate_pg
from engine._schema import migrate as migrate_sqlite
from engine._sqlite_store import connect

TABLES = ("workflow_instance", "workflow_step", "workflow_event", "workflow_task")


def _sqlite_shape() -> dict[str, object]:
    conn = connect(":memory:")
    migrate_sqlite(conn)
    shape: dict[str, object] = {}
    for table in TABLES:
        cols = conn.execute(f"PRAGMA table_info({table})").fetchall()
        shape[table] = {(c["name"], bool(c["notnull"]) or c["pk"] > 0, c["pk"] > 0) for c in cols}
        shape[table + " indexes"] = {r["name"] for r in conn.execute(f"PRAGMA index_list({table})")
                                     if not r["name"].startswith("sqlite_autoindex")}
    return shape


def _postgres_shape(url: str) -> dict[str, object]:
    with psycopg.connect(url, autocommit=True) as conn:
        migrate_pg(conn)
        shape: dict[str, object] = {}
        for table in TABLES:
            pk = {r[0] for r in conn.execute(
                "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
                "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = %s::regclass AND i.indisprimary", (table,))}
            cols = conn.execute("SELECT column_name, is_nullable FROM information_schema.columns "
                                "WHERE table_schema = current_schema() AND table_name = %s", (table,)).fetchall()
            shape[table] = {(name, nullable == "NO", name in pk) for name, nullable in cols}
            shape[table + " indexes"] = {r[0] for r in conn.execute(
                "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() AND tablename = %s "
                "AND indexname NOT LIKE '%%_pkey' AND indexname NOT LIKE '%%_key'", (table,))}
    return shape


def test_both_backends_have_the_same_tables_columns_and_indexes(pg_schema: str) -> None:
    """A column or index added to one backend's migrations and not the other's fails here."""
    assert _postgres_shape(pg_schema) == _sqlite_shape()


def test_postgres_migrations_apply_once(pg_schema: str) -> None:
    """A second migrate on a current schema applies nothing (many processes start at once)."""
    with psycopg.connect(pg_schema, autocommit=True) as conn:
        assert migrate_pg(conn) == [v for v, _ in PG_MIGRATIONS]
        assert migrate_pg(conn) == []
