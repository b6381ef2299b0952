"""Counting what a retrain could learn: labelled production rows newer than any model trained on.

A candidate learns only from labelled rows its champion did not see. The trainer records the newest
labelled row it trained on as its run's tag ``train.labelled_until`` (empty: none) and the start of the
rows it reads as ``train.labelled_since`` (its TRAIN_LABELLED_WINDOW_HOURS before training; used only
when the run trained on labelled rows, so that the window is a trainer's). A run
counts the champion-served predictions with feedback made after the champion's ``labelled_until``, and
after the ``labelled_until`` of the newest candidate the gate refused (``model_events`` 'rejected'): a
refused candidate already tried those rows. Rows older than the trainer's window would not be read by
it, so they are not counted either. The count stops at the number a launch needs (a LIMIT: the query's
cost does not grow with the traffic past it). Whether that is enough is decided in
``decide/labels.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from services.common.database import first_line
from services.common.registry import TAG_LABELLED_SINCE, TAG_LABELLED_UNTIL, RegistryError, get_version
from services.common.vocabulary import ModelEvent, Role


@dataclass(frozen=True)
class TrainedOn:
    """The labelled production rows a version trained on, as its run recorded them."""

    version: int
    until: datetime | None  # the newest labelled row it trained on (None: none)
    window: timedelta | None = None  # how far back its trainer read (TRAIN_LABELLED_WINDOW_HOURS)

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "labelled_until": self.until.isoformat() if self.until else None,
            "window_hours": round(self.window.total_seconds() / 3600, 3) if self.window else None,
        }


@dataclass(frozen=True)
class NewLabels:
    """Labelled production rows newer than what the champion (and a refused candidate) trained on."""

    count: int  # counted up to ``needed``: ``count == needed`` means at least that many
    needed: int  # RETRAIN_MIN_NEW_LABELS
    after: datetime | None  # rows made after this count (None: every labelled row in the window)
    since: datetime | None  # and no earlier than this: the oldest row the next trainer would read
    champion: TrainedOn
    refused: TrainedOn | None = None  # the newest candidate the gate rejected (None: none)

    def as_dict(self) -> dict[str, Any]:
        return {
            "new": self.count,
            "needed": self.needed,
            "after": self.after.isoformat() if self.after else None,
            "since": self.since.isoformat() if self.since else None,
            "champion": self.champion.as_dict(),
            "refused": self.refused.as_dict() if self.refused else None,
        }


def newest_trained(champion: TrainedOn, refused: TrainedOn | None) -> datetime | None:
    """The newest labelled row the champion or the refused candidate trained on (None: neither saw one)."""
    moments = [m for m in (champion.until, refused.until if refused else None) if m is not None]
    return max(moments) if moments else None


def trained_on(client: MlflowClient, version: int, run_id: str) -> TrainedOn:
    """What ``version``'s run says it trained on; a run without the tags trained on no labelled row."""
    if not run_id:
        return TrainedOn(version, None)
    run = client.get_run(run_id)
    until, since = run.data.tags.get(TAG_LABELLED_UNTIL), run.data.tags.get(TAG_LABELLED_SINCE)
    # The window only of a run that trained on labelled rows (read from train.labelled_since to its
    # start): a version registered otherwise (forced in, or by hand) may record any labelled_since. The
    # run starts seconds after the trainer read its clock: a window seconds too long.
    window = None
    if since and until and run.info.start_time:
        started = datetime.fromtimestamp(run.info.start_time / 1000, tz=UTC)
        window = max(started - datetime.fromisoformat(since), timedelta(0))
    return TrainedOn(version, datetime.fromisoformat(until) if until else None, window)


def last_refused(client: MlflowClient, conn: psycopg.Connection) -> TrainedOn | None:
    """The newest candidate the gate rejected, and what it trained on (None: none was)."""
    row = conn.execute(
        "SELECT model_version FROM model_events WHERE event = %s ORDER BY created_at DESC, id DESC LIMIT 1",
        (ModelEvent.REJECTED,),
    ).fetchone()
    if row is None:
        return None
    version = int(row[0])
    return trained_on(client, version, get_version(client, version).run_id or "")


def count_labelled(
    conn: psycopg.Connection, after: datetime | None, since: datetime | None, limit: int
) -> int:
    """Champion-served predictions with feedback made after ``after`` and since ``since``, up to ``limit``.

    The time range is stated on both tables (feedback is partitioned by its prediction's time).
    """
    row = conn.execute(
        "SELECT count(*) FROM (SELECT 1 FROM predictions p"
        " JOIN feedback f ON f.prediction_id = p.id AND f.predicted_at = p.created_at"
        " WHERE p.role = %s"
        " AND (%s::timestamptz IS NULL OR p.created_at > %s)"
        " AND (%s::timestamptz IS NULL OR f.predicted_at > %s)"
        " AND (%s::timestamptz IS NULL OR p.created_at >= %s)"
        " AND (%s::timestamptz IS NULL OR f.predicted_at >= %s)"
        " LIMIT %s) AS counted",
        (Role.CHAMPION, after, after, after, after, since, since, since, since, limit),
    ).fetchone()
    assert row is not None
    return int(row[0])


def new_labels(
    client: MlflowClient, conn: psycopg.Connection, champion: int, run_id: str, needed: int, now: datetime
) -> NewLabels:
    """The labelled rows a retrain would learn from, counted up to ``needed``. Raises what the registry
    or the database raise (the caller records it)."""
    mine = trained_on(client, champion, run_id)
    refused = last_refused(client, conn)
    after = newest_trained(mine, refused)
    since = now - mine.window if mine.window else None
    return NewLabels(count_labelled(conn, after, since, needed), needed, after, since, mine, refused)


def count_failure(error: Exception) -> str:
    """Why the new labels could not be counted (the run waits rather than launching blind)."""
    kind = "the registry" if isinstance(error, (MlflowException, RegistryError)) else "the database"
    return f"cannot count the new labels ({kind}: {first_line(error)}): waiting"
