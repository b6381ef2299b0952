"""Postgres: the connection pool and the schema migrations.

Connections never use server-side prepared statements (``prepare_threshold=None``), so the same
code works through Supabase's transaction pooler (PgBouncer in transaction mode).

Every connection, pooled or not, fails on a dead network path instead of hanging (:data:`LIVENESS`).
Statement timeouts are set per transaction (``SET LOCAL statement_timeout``) where a caller must not
wait: a session-level setting would leak to other clients through a transaction pooler, and
poolers refuse the ``options`` startup parameter.
"""

from __future__ import annotations

import logging
from importlib import resources

import psycopg
from psycopg.conninfo import make_conninfo
from psycopg_pool import ConnectionPool

log = logging.getLogger(__name__)

# Any fixed number works; it only has to be the same in every process that migrates.
_MIGRATION_LOCK = 0x686F7573  # "hous"


# libpq settings: connect within 5 s; probe an idle connection after 30 s, every 10 s, and give up
# after 3 unanswered probes; give up on data the server has not acknowledged after 30 s (keepalives
# alone never fire while unacknowledged data is in flight).
LIVENESS: dict[str, int] = {
    "connect_timeout": 5,
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
    "tcp_user_timeout": 30_000,
}


class DatabaseUnavailable(RuntimeError):
    """Postgres cannot be reached."""


def connect(url: str, *, autocommit: bool = False, timeout: int = 5) -> psycopg.Connection:
    """One connection that works through a transaction pooler; raises DatabaseUnavailable naming the fix."""
    try:
        conninfo = make_conninfo(url, **{**LIVENESS, "connect_timeout": timeout})
        return psycopg.connect(conninfo, autocommit=autocommit, prepare_threshold=None)
    except psycopg.OperationalError as error:
        raise DatabaseUnavailable(
            f"cannot connect to Postgres ({first_line(error)}); check DATABASE_URL and that the server is up"
        ) from error


def create_pool(url: str, *, min_size: int = 1, max_size: int = 4, name: str = "housing") -> ConnectionPool:
    """A psycopg pool without server-side prepared statements; opened, not yet checked."""
    return ConnectionPool(
        make_conninfo(url, **LIVENESS),
        min_size=min_size,
        max_size=max_size,
        kwargs={"prepare_threshold": None},
        name=name,
        open=True,
    )


def first_line(error: BaseException) -> str:
    """The first line of an error's message: psycopg's messages run over several."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def migration_files() -> list[tuple[str, str]]:
    """(version, sql) of every migration, in order of their file names."""
    folder = resources.files("services.common") / "migrations"
    files = sorted((item for item in folder.iterdir() if item.name.endswith(".sql")), key=lambda i: i.name)
    return [(item.name.removesuffix(".sql"), item.read_text(encoding="utf-8")) for item in files]


def migrate(url: str, *, until: str | None = None) -> list[str]:
    """Apply the migrations not yet recorded in ``schema_migrations``; return the versions applied.

    ``until`` stops after that version (tests build a database in an older layout with it).

    Idempotent and safe from several processes at once: the whole run holds a transaction-scoped
    advisory lock, and each migration commits together with its record.
    """
    applied: list[str] = []
    with connect(url) as conn, conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
        for version, sql in migration_files():
            if version in done:
                if version == until:
                    break
                continue
            log.info("applying migration %s", version)
            conn.execute(sql.encode())
            conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (version,))
            applied.append(version)
            if version == until:
                break
    return applied
