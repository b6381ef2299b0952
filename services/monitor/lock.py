"""The monitor lock: two overlapping runs never both act.

A transaction-scoped advisory lock (``pg_try_advisory_xact_lock``) on a connection whose transaction
stays open for the whole run. Unlike a session lock it works through a transaction pooler (Supabase's
PgBouncer), which hands a server session to one transaction only; and it is released by Postgres
when the run's connection goes away, even if the pod is killed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from services.common.database import connect

MONITOR_LOCK = 0x686F6D6F  # "homo": housing monitor


@contextmanager
def monitor_lock(database_url: str) -> Iterator[bool]:
    """Yield True while this run holds the lock, False (at once) when another run holds it."""
    conn = connect(database_url)
    try:
        # An idle transaction is what holds the lock: no timeout may end it early.
        conn.execute("SET idle_in_transaction_session_timeout = 0")
        row = conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (MONITOR_LOCK,)).fetchone()
        yield bool(row and row[0])
    finally:
        conn.rollback()
        conn.close()
