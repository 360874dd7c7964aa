"""The backend fixture really runs the engine suite on both stores."""

from __future__ import annotations

from engine import Engine, SqliteStore


def test_default_engine_uses_the_backend_under_test(backend: str, rt: object) -> None:
    """On "postgres" a default Engine() is a PostgresStore in its own schema; on "sqlite" an in-memory SQLite."""
    engine = Engine(workflows=[], runtime=rt)  # type: ignore[arg-type]
    try:
        if backend == "postgres":
            from engine import PostgresStore

            assert isinstance(engine.store, PostgresStore)
            schema = engine.store.conn.execute("SELECT current_schema()").fetchone()[0]
            assert schema.startswith("t_")
        else:
            assert isinstance(engine.store, SqliteStore)
    finally:
        engine.store.close()
