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
import re
from dataclasses import dataclass
from importlib import resources

import psycopg
from psycopg import sql
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


# Each migration runs with these unless its header says otherwise (``-- lock_timeout: 30s``,
# ``-- statement_timeout: 30min``): a migration that waits on a lock held by the live services gives up
# after 5 s (the run rolls back whole, the hook retries) instead of queueing every writer behind it.
DEFAULT_TIMEOUTS = {"lock_timeout": "5s", "statement_timeout": "5min"}
_DIRECTIVE = re.compile(r"^--\s*(lock_timeout|statement_timeout|contract):\s*(.+?)\s*$", re.MULTILINE)


class MigrationFailed(RuntimeError):
    """A migration failed; nothing of the run was applied (one transaction)."""


@dataclass(frozen=True)
class Migration:
    """One SQL file of ``services/common/migrations`` and what its header declares."""

    version: str
    sql: str

    @property
    def directives(self) -> dict[str, str]:
        return {name: value for name, value in _DIRECTIVE.findall(self.sql)}

    @property
    def timeouts(self) -> dict[str, str]:
        return {name: self.directives.get(name, value) for name, value in DEFAULT_TIMEOUTS.items()}

    @property
    def contract(self) -> str | None:
        """What this contract step removes or tightens (see docs/migrations.md); None: an expand step."""
        return self.directives.get("contract")


def migrations() -> list[Migration]:
    """Every migration, in order of their file names."""
    folder = resources.files("services.common") / "migrations"
    files = sorted((item for item in folder.iterdir() if item.name.endswith(".sql")), key=lambda i: i.name)
    return [Migration(item.name.removesuffix(".sql"), item.read_text(encoding="utf-8")) for item in files]


def migration_files() -> list[tuple[str, str]]:
    """(version, sql) of every migration, in order of their file names."""
    return [(one.version, one.sql) for one in migrations()]


def migrate(url: str, *, until: str | None = None) -> list[str]:
    """Apply the migrations not yet recorded in ``schema_migrations``; return the versions applied.

    ``until`` stops after that version (tests build a database in an older layout with it).

    Idempotent and safe from several processes at once: the whole run holds a transaction-scoped
    advisory lock and is one transaction, so a failing migration leaves nothing of the run behind.
    Each migration runs under its lock and statement timeouts (:data:`DEFAULT_TIMEOUTS`).

    Raises:
        MigrationFailed: a migration failed or timed out; the message names it and the fix.
    """
    applied: list[str] = []
    with connect(url) as conn:
        try:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations ("
                    " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
                )
                done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
                for migration in migrations():
                    if migration.version not in done:
                        _apply(conn, migration)
                        applied.append(migration.version)
                    if migration.version == until:
                        break
        except psycopg.Error as error:
            raise MigrationFailed(_failure(applied, error)) from error
    return applied


def _apply(conn: psycopg.Connection, migration: Migration) -> None:
    log.info("applying migration %s", migration.version)
    for name, value in migration.timeouts.items():
        conn.execute(sql.SQL("SET LOCAL {} = {}").format(sql.Identifier(name), sql.Literal(value)))
    try:
        conn.execute(migration.sql.encode())
    except psycopg.Error as error:
        error.add_note(migration.version)
        raise
    conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (migration.version,))


def _failure(applied: list[str], error: psycopg.Error) -> str:
    notes = getattr(error, "__notes__", [])
    where = f"migration {notes[-1]}" if notes else "the migration run"
    undone = f" (rolled back with it: {', '.join(applied)})" if applied else ""
    if isinstance(error, psycopg.errors.LockNotAvailable):
        return (
            f"{where} waited longer than its lock_timeout for a table the running services hold; nothing "
            f"was applied{undone}. Run it again (the migrate hook retries); if it keeps failing, find the "
            "holder in pg_stat_activity (wait_event_type 'Lock'), or give the migration a longer "
            "`-- lock_timeout:` header"
        )
    if isinstance(error, psycopg.errors.QueryCanceled):
        return (
            f"{where} ran longer than its statement_timeout; nothing was applied{undone}. Give it a longer "
            "`-- statement_timeout:` header if the data is that large"
        )
    return f"{where} failed: {first_line(error)}; nothing was applied{undone}"
