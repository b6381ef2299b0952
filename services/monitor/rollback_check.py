"""Automatic rollback, measured: the champion's sequential test against the model that served before the
episode, and the cool-down after a rollback.

Both models are judged on the same rows: the champion's labelled predictions since its promotion (its
logged prices against the true ones, in the order the labels arrived, the oldest ``horizon`` of them)
and the target's prices for those same features, scored now. The traffic before a promotion is no
yardstick: a champion promoted because the world moved would otherwise be compared with its
predecessor's error on the old world. Whether to roll back is the verdict's (``RollbackFigures.test``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg
from psycopg import sql

from services.common.features import FEATURE_COLUMNS
from services.common.vocabulary import ModelEvent, Role, RollbackState
from services.monitor.episode import CHAMPION_EVENTS, EventRow, Reign, reigns, restore_index
from services.monitor.sequential import SequentialLimits, SequentialTest, msprt

Predictor = Callable[[npt.NDArray[np.float64]], npt.NDArray[np.float64]]

OVER_STATES = [str(state) for state in RollbackState if state.over]


@dataclass(frozen=True)
class Promotion:
    version: int
    previous: int | None
    event: ModelEvent
    at: datetime


@dataclass(frozen=True)
class RollbackFigures:
    """What the check measured; whether to roll back is the verdict's (``test.state``)."""

    champion: int
    promoted_at: datetime
    target: int  # the version a rollback restores: the last one vouched for before the episode
    episode: tuple[int, ...]  # the champion and the unvouched versions since the target, newest first
    test: SequentialTest
    links: dict[int, str]  # how each earlier version of the chain was judged

    def as_dict(self) -> dict[str, Any]:
        return {
            "champion": self.champion,
            "target": self.target,
            "episode": list(self.episode),
            "promoted_at": self.promoted_at.isoformat(),
            **self.test.as_dict(),
            "links": {str(version): how for version, how in self.links.items()},
        }


@dataclass(frozen=True)
class Cooldown:
    """After a rollback, the labels received since it, and how many the next launch waits for."""

    rolled_back: int  # the version retired
    restored: int
    at: datetime
    labels: int
    needed: int


def last_promotion(conn: psycopg.Connection, version: int) -> Promotion | None:
    """The event that made ``version`` champion most recently (promoted, forced or rolled_back)."""
    row = conn.execute(
        "SELECT model_version, previous_version, event, created_at FROM model_events"
        " WHERE event = ANY(%s) AND model_version = %s"
        " ORDER BY created_at DESC, id DESC LIMIT 1",
        ([str(event) for event in CHAMPION_EVENTS], version),
    ).fetchone()
    return Promotion(int(row[0]), row[1], ModelEvent(row[2]), row[3]) if row else None


def _events(conn: psycopg.Connection) -> list[EventRow]:
    rows = conn.execute(
        "SELECT event, model_version, previous_version, created_at FROM model_events"
        " WHERE event = ANY(%s) ORDER BY created_at DESC, id DESC",
        ([str(event) for event in CHAMPION_EVENTS],),
    ).fetchall()
    return [EventRow(ModelEvent(r[0]), int(r[1]), r[2], r[3]) for r in rows]


def _vouched_by_reports(conn: psycopg.Connection, reign: Reign) -> bool:
    """A monitor run saw this reign's test end without a rollback (a cache of what a recount would find)."""
    row = conn.execute(
        "SELECT 1 FROM drift_reports WHERE model_version = %s AND created_at >= %s"
        " AND (%s::timestamptz IS NULL OR created_at <= %s)"
        " AND details -> 'rollback_check' ->> 'state' = ANY(%s) LIMIT 1",
        (reign.version, reign.start, reign.end, reign.end, OVER_STATES),
    ).fetchone()
    return row is not None


def _labelled(
    conn: psycopg.Connection, version: int, start: datetime, end: datetime, limit: int
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """(features, logged prices, true prices) of ``version``'s labelled champion predictions made in
    [start, end), the first ``limit`` in the order their labels arrived."""
    query = sql.SQL(
        "SELECT {columns}, p.prediction, f.actual"
        " FROM predictions p JOIN feedback f ON f.prediction_id = p.id AND f.predicted_at = p.created_at"
        " WHERE p.role = {role} AND p.model_version = %s AND p.created_at >= %s AND p.created_at < %s"
        " AND f.predicted_at >= %s AND f.predicted_at < %s"
        " ORDER BY f.received_at, p.id LIMIT %s"
    ).format(
        columns=sql.SQL(", ").join(sql.Identifier("p", column) for column in FEATURE_COLUMNS),
        role=sql.Literal(Role.CHAMPION),
    )
    rows = conn.execute(query, (version, start, end, start, end, limit)).fetchall()
    matrix = np.array(rows, dtype=np.float64).reshape(len(rows), len(FEATURE_COLUMNS) + 2)
    width = len(FEATURE_COLUMNS)
    return matrix[:, :width], matrix[:, width], matrix[:, width + 1]


class _Judge:
    """Runs reigns' tests, loading each target model once."""

    def __init__(
        self,
        conn: psycopg.Connection,
        now: datetime,
        predictor: Callable[[int], Predictor],
        limits: SequentialLimits,
    ) -> None:
        self.conn, self.now, self.predictor, self.limits = conn, now, predictor, limits
        self.models: dict[int, Predictor] = {}

    def test(self, reign: Reign, target: int) -> SequentialTest:
        assert reign.start is not None
        x, logged, actual = _labelled(
            self.conn, reign.version, reign.start, reign.end or self.now, self.limits.horizon
        )
        champion = np.abs(logged - actual)
        if len(actual) < self.limits.min_rows:  # load the target only when the test can speak
            return msprt(champion, champion, self.limits)
        if target not in self.models:
            self.models[target] = self.predictor(target)
        return msprt(champion, np.abs(self.models[target](x) - actual), self.limits)


def check_rollback(
    conn: psycopg.Connection,
    champion: int,
    *,
    now: datetime,
    predictor: Callable[[int], Predictor],
    limits: SequentialLimits,
) -> RollbackFigures | None:
    """The champion's rollback test against the model before its episode; None when there is nothing to
    test (a champion restored by a rollback, the first champion, or one older than the event log)."""
    chain = reigns(_events(conn), champion)
    if chain[0].vouched_without_test or chain[0].start is None:
        return None
    judge = _Judge(conn, now, predictor, limits)
    vouched = [False] * len(chain)
    links: dict[int, str] = {}
    vouched[-1] = True
    links[chain[-1].version] = _why(chain[-1], len(chain))
    nearest = len(chain) - 1
    for i in range(len(chain) - 2, 0, -1):  # oldest first: each is judged against the one before it
        reign = chain[i]
        if reign.vouched_without_test or _vouched_by_reports(conn, reign):
            vouched[i], links[reign.version] = True, "vouched for by its own test (a monitor report)"
        else:
            test = judge.test(reign, chain[nearest].version)
            vouched[i] = test.state.over
            links[reign.version] = (
                f"its test against v{chain[nearest].version}: {test.state} on {test.rows} rows"
            )
        if vouched[i]:
            nearest = i
    index = restore_index(chain, vouched)
    target = chain[index].version
    test = judge.test(chain[0], target)
    return RollbackFigures(
        champion, chain[0].start, target, tuple(r.version for r in chain[:index]), test, links
    )


def _why(reign: Reign, depth: int) -> str:
    if reign.event is ModelEvent.ROLLED_BACK:
        return "restored by a rollback"
    if reign.event is None:
        return "no event made it champion (it served before the event log)"
    if reign.previous is None:
        return "the first champion"
    return f"the oldest of the {depth} reigns read: taken as vouched for"


def cooldown(conn: psycopg.Connection, champion: int, needed: int) -> Cooldown | None:
    """The cool-down after the last rollback, while its restored version is still champion; else None.

    ``needed`` is what the rollback event recorded (``figures.cooldown_labels``), else the setting.
    """
    row = conn.execute(
        "SELECT event, model_version, previous_version, created_at, figures -> 'cooldown_labels'"
        " FROM model_events WHERE event = ANY(%s) ORDER BY created_at DESC, id DESC LIMIT 1",
        ([str(event) for event in CHAMPION_EVENTS],),
    ).fetchone()
    if row is None or row[0] != ModelEvent.ROLLED_BACK or row[1] != champion or row[2] is None:
        return None
    wanted = int(row[4]) if isinstance(row[4], int | float) else needed
    counted = conn.execute(
        "SELECT count(*) FROM (SELECT 1 FROM feedback WHERE received_at > %s LIMIT %s) AS recent",
        (row[3], max(wanted, 0)),
    ).fetchone()
    return Cooldown(int(row[2]), int(row[1]), row[3], int(counted[0]) if counted else 0, wanted)
