"""Noticing a prediction database restored into another server, so the kept sums are recounted.

The kept histograms and live-error sums take in only the rows of transactions a stored snapshot could
not see. Transaction ids belong to one server: after a ``pg_dump`` restored into a new Postgres the ids
start low again and never reach the stored xmin, so every new row would look already seen (measured: 300
of 600 labelled rows counted after a restore). A run therefore checks, before it trusts what it kept:

- the server's ``system_identifier`` (``pg_control_system()``, new with every ``initdb``; any role may
  read it) against the one stored beside the snapshot, and
- the current snapshot's xmax against the stored xmin: ids that went back (this also catches sums kept
  before the identifier was stored).

A physical restore (a base backup, point-in-time recovery) keeps both the identifier and the ids, and
keeps the sums valid: nothing is recounted.

Rows restored from the old server keep their old transaction ids, which the new server may reach later.
After a recount, the rows this snapshot reads but whose id it calls invisible can only be such foreign
rows (on one server a visible row's id is always visible): their id is cleared, so they count as seen.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg


@dataclass(frozen=True)
class Server:
    """The server this transaction runs on, and whether it is the one the kept sums were counted on."""

    system_identifier: int
    moved: str | None  # why the kept sums cannot be trusted (None: the same server)


def this_server(conn: psycopg.Connection, stored_identifier: int | None, stored_xmin: str | None) -> Server:
    """The current server, compared with the identifier and snapshot xmin stored with the kept sums."""
    row = conn.execute(
        "SELECT (pg_control_system()).system_identifier, pg_snapshot_xmax(pg_current_snapshot())::text,"
        " %(xmin)s::xid8 IS NOT NULL AND pg_snapshot_xmax(pg_current_snapshot()) < %(xmin)s::xid8",
        {"xmin": stored_xmin},
    ).fetchone()
    assert row is not None
    identifier, xmax, went_back = int(row[0]), row[1], bool(row[2])
    moved = None
    if stored_identifier is not None and stored_identifier != identifier:
        moved = (
            f"the database runs on another server (system identifier {identifier}, the kept sums were "
            f"counted on {stored_identifier}): restored from a dump, recounted from the rows"
        )
    elif went_back:
        moved = (
            f"transaction ids went back (now below {xmax}, the kept sums saw up to {stored_xmin}): "
            "the database was restored into another server, recounted from the rows"
        )
    return Server(identifier, moved)


# The rows this snapshot reads whose writing transaction it calls invisible: on one server, none.
_FOREIGN = (
    "xid >= pg_snapshot_xmin(pg_current_snapshot())"
    " AND NOT pg_visible_in_snapshot(xid, pg_current_snapshot())"
)


def forget_foreign_feedback(conn: psycopg.Connection) -> int:
    """Clear the id of feedback restored from another server that the new ids could reach: it counts as
    seen (the recount took it in). Returns how many rows; on one server the index range scan finds none."""
    return conn.execute(f"UPDATE feedback SET xid = NULL WHERE {_FOREIGN}").rowcount


def forget_foreign_late_rows(conn: psycopg.Connection) -> int:
    """Delete late-row records restored from another server (their buckets are recounted whole anyway)."""
    return conn.execute(f"DELETE FROM prediction_late_rows WHERE {_FOREIGN}").rowcount
