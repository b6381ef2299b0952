"""Automatic rollback: is the freshly promoted champion worse live than the version it replaced?

The champion's live MAE since its promotion is compared with its predecessor's live MAE on the
predecessor's own labelled predictions before that promotion. Each needs ``min_rows`` labelled rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg

from services.monitor.live_error import LiveError, live_error


@dataclass(frozen=True)
class Promotion:
    version: int
    previous: int | None
    event: str
    at: datetime


@dataclass(frozen=True)
class RollbackCheck:
    promotion: Promotion
    champion: LiveError
    previous: LiveError
    roll_back: bool
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "champion": self.champion.version,
            "previous": self.previous.version,
            "promoted_at": self.promotion.at.isoformat(),
            "champion_live_mae": self.champion.mae,
            "champion_rows": self.champion.rows,
            "previous_live_mae": self.previous.mae,
            "previous_rows": self.previous.rows,
            "roll_back": self.roll_back,
            "reason": self.reason,
        }


def last_promotion(conn: psycopg.Connection, version: int) -> Promotion | None:
    """The event that made ``version`` champion most recently (promoted, forced or rolled_back)."""
    row = conn.execute(
        "SELECT model_version, previous_version, event, created_at FROM model_events"
        " WHERE event IN ('promoted', 'forced', 'rolled_back') AND model_version = %s"
        " ORDER BY created_at DESC, id DESC LIMIT 1",
        (version,),
    ).fetchone()
    return Promotion(int(row[0]), row[1], str(row[2]), row[3]) if row else None


def decide_rollback(
    champion: LiveError, previous: LiveError, *, tolerance: float, min_rows: int
) -> tuple[bool, str]:
    """A pure decision: roll back when both have ``min_rows`` labelled rows and the champion is worse."""
    if champion.rows < min_rows or champion.mae is None:
        return False, f"v{champion.version} has {champion.rows} labelled predictions (needs {min_rows})"
    if previous.rows < min_rows or previous.mae is None:
        return False, f"v{previous.version} had {previous.rows} labelled predictions (needs {min_rows})"
    limit = previous.mae * (1 + tolerance)
    if champion.mae > limit:
        return True, (
            f"live MAE of v{champion.version} is {champion.mae:.3f} on {champion.rows} rows, worse than "
            f"v{previous.version}'s {previous.mae:.3f} on {previous.rows} rows by more than {tolerance:.0%}"
        )
    return (
        False,
        f"live MAE of v{champion.version} {champion.mae:.3f} is within {tolerance:.0%} of {previous.mae:.3f}",
    )


def check_rollback(
    conn: psycopg.Connection,
    champion: int,
    previous_alias: int | None,
    *,
    now: datetime,
    lookback: timedelta,
    tolerance: float,
    min_rows: int,
) -> RollbackCheck | None:
    """The rollback check for a champion promoted over another version; None when there is nothing to check.

    A champion restored by a rollback is not checked (it was the good one), nor one whose predecessor
    is no longer the ``previous`` alias (a rollback would restore something else).
    """
    promotion = last_promotion(conn, champion)
    if promotion is None or promotion.event == "rolled_back" or promotion.previous is None:
        return None
    if previous_alias != promotion.previous:
        return None
    current = live_error(conn, champion, promotion.at, now)
    before = live_error(conn, promotion.previous, promotion.at - lookback, promotion.at)
    roll_back, reason = decide_rollback(current, before, tolerance=tolerance, min_rows=min_rows)
    return RollbackCheck(promotion, current, before, roll_back, reason)
