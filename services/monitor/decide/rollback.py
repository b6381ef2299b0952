"""Rule 3 of the verdict: is a fresh champion worse than the version it replaced?

- labelled (trigger ``rollback``): a champion promoted over another version is rolled back when, on the
  same labelled rows since its promotion, its MAE is worse than its predecessor's by more than
  ROLLBACK_TOLERANCE, both with ROLLBACK_MIN_ROWS rows (``rollback_check.decide_rollback``);
- estimated (trigger ``estimated_regression``): before ROLLBACK_MIN_ROWS labels, the two error models'
  estimates on the same window rows may say the same: alerted, never rolled back on (a rollback needs
  labels).
"""

from __future__ import annotations

from dataclasses import dataclass

from services.common.vocabulary import Trigger
from services.monitor.decide.rule import Finding, Limits, Measured, enough_rows
from services.monitor.rollback_check import decide_rollback


@dataclass(frozen=True)
class RollbackFinding(Finding):
    """The rollback rule's finding, with the check's reason whether or not a rollback is due."""

    reason: str | None = None  # None: no promotion over another version to check


def judge_rollback(measured: Measured, limits: Limits) -> RollbackFinding:
    """The rollback check's decision on its figures; no reason when there is no promotion to check."""
    if measured.rollback is None:
        return RollbackFinding()
    due, reason = decide_rollback(
        measured.rollback.champion,
        measured.rollback.previous,
        tolerance=limits.rollback_tolerance,
        min_rows=limits.rollback_min_rows,
    )
    return RollbackFinding(due, (Trigger.ROLLBACK,) if due else (), (f"rollback check: {reason}",), reason)


def judge_estimated_regression(measured: Measured, limits: Limits, rollback_due: bool) -> Finding:
    """A fresh champion estimated worse than its predecessor while the labels cannot decide yet."""
    rollback, estimated, previous = measured.rollback, measured.estimated_mae, measured.previous_estimated_mae
    if rollback is None or rollback_due or not enough_rows(measured, limits):
        return Finding()
    if estimated is None or previous is None or rollback.champion.rows >= limits.rollback_min_rows:
        return Finding()  # nothing to compare, or the labels decide
    if estimated <= previous * (1 + limits.rollback_tolerance):
        return Finding()
    reason = (
        f"before {limits.rollback_min_rows} labels, v{rollback.champion.version}'s estimated MAE "
        f"{estimated:.3f} is worse than v{rollback.previous.version}'s {previous:.3f} on the same rows by "
        f"more than {limits.rollback_tolerance:.0%}: alerted, not rolled back (a rollback needs labels)"
    )
    return Finding(True, (Trigger.ESTIMATED_REGRESSION,), (reason,))
