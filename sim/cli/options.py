"""Command-line options several commands share."""

from __future__ import annotations

import click


def database_option(db: str | None) -> str | None:
    """`--db`: None or a postgresql:// URL whose server answers (a usage error otherwise, before any seed)."""
    if db is None:
        return None
    from sim.world.databases import is_postgres, postgres_reachable

    if not is_postgres(db):
        raise click.BadParameter("give a postgresql:// URL (SQLite is the default)", param_hint="--db")
    problem = postgres_reachable(db)
    if problem is not None:
        raise click.BadParameter(f"PostgreSQL does not answer: {problem}", param_hint="--db")
    return db
