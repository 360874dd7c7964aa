"""The simulated runner's store on PostgreSQL: PostgresStore with the simulator's fault hooks.

Apart from its module (psycopg loads only for runs over PostgreSQL), it differs from SQLite's SimStore only
in the errors a fault raises: a serialization failure for "busy" (PostgreSQL rolled back; the store retries),
a dropped connection for an I/O error before COMMIT (retried whole), and a COMMIT whose outcome is unknown
(never retried: the runner abandons the claim, as on SQLite).
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import errors as pg_errors

from engine._pg_store import PostgresStore, _CommitUnknown
from sim.world.simulation import _FaultHooks


class SimPgStore(_FaultHooks, PostgresStore):
    """A simulated runner's PostgreSQL store over the world's one connection."""

    def _address(self, world: Any) -> str:
        return str(world.conn.url)

    def _busy(self) -> Exception:
        return pg_errors.SerializationFailure("could not serialize access due to concurrent update")

    def _io_error(self, message: str) -> Exception:
        return psycopg.OperationalError(f"server closed the connection unexpectedly ({message})")

    def _commit_unknown(self) -> Exception:
        # As PostgresStore.run_txn reports a COMMIT whose connection died: not retried, surfaced to the
        # caller as STORE_UNAVAILABLE with outcome_unknown.
        return _CommitUnknown("server closed the connection unexpectedly during COMMIT")
