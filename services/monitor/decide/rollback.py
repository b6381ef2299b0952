"""Rule 3 of the verdict: is a fresh champion worse than the model that served before its episode?

- labelled (trigger ``rollback``): the sequential test of ``services.monitor.sequential`` (mSPRT on the
  paired |error| differences of the labelled rows since the promotion, ROLLBACK_ALPHA, ROLLBACK_MIN_EFFECT,
  ROLLBACK_HORIZON_LABELS, from ROLLBACK_MIN_ROWS rows; its error rates are in that module) says
  ``worse``: roll back to the version before the episode (``services.monitor.episode``). ``not_worse``
  and ``inconclusive`` end the test: the champion stays and is not judged again;
- estimated (trigger ``estimated_regression``): before ROLLBACK_MIN_ROWS labels, the champion's estimated
  MAE beyond the target's by more than ROLLBACK_MIN_EFFECT on the same window rows: alerted, never rolled
  back on (a rollback needs labels);
- cool-down: after a rollback, while the restored version is champion, the trainer waits for
  ROLLBACK_COOLDOWN_LABELS new labels (recorded with the rollback), so retrain, promote and roll back
  do not cycle on the same evidence.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.common.vocabulary import RollbackState, Trigger
from services.monitor.decide.rule import Finding, Limits, Measured, enough_rows
from services.monitor.sequential import describe


@dataclass(frozen=True)
class RollbackFinding(Finding):
    """The rollback rule's finding, with the test's reason whether or not a rollback is due."""

    reason: str | None = None  # None: no promotion over another version to test


def judge_rollback(measured: Measured, limits: Limits) -> RollbackFinding:
    """The sequential test's decision; no reason when there is no promotion to test."""
    figures = measured.rollback
    if figures is None:
        return RollbackFinding()
    reason = describe(figures.test, figures.champion, figures.target, limits.rollback)
    due = figures.test.state is RollbackState.WORSE
    if due:
        episode = ", ".join(f"v{version}" for version in figures.episode)
        reason += f"; restores v{figures.target}, the model before the episode ({episode})"
    return RollbackFinding(due, (Trigger.ROLLBACK,) if due else (), (f"rollback test: {reason}",), reason)


def judge_estimated_regression(measured: Measured, limits: Limits, rollback_due: bool) -> Finding:
    """A fresh champion estimated worse than its rollback target while the labels cannot decide yet."""
    rollback, estimated, target = measured.rollback, measured.estimated_mae, measured.previous_estimated_mae
    if rollback is None or rollback_due or not enough_rows(measured, limits):
        return Finding()
    if estimated is None or target is None or rollback.test.rows >= limits.rollback_min_rows:
        return Finding()  # nothing to compare, or the labels decide
    if estimated <= target * (1 + limits.rollback_min_effect):
        return Finding()
    reason = (
        f"before {limits.rollback_min_rows} labels, v{rollback.champion}'s estimated MAE "
        f"{estimated:.3f} is worse than v{rollback.target}'s {target:.3f} on the same rows by "
        f"more than {limits.rollback_min_effect:.0%}: alerted, not rolled back (a rollback needs labels)"
    )
    return Finding(True, (Trigger.ESTIMATED_REGRESSION,), (reason,))


def cooldown_hold(measured: Measured) -> str | None:
    """Why a launch waits after a rollback, or None when no cool-down holds it."""
    cooldown = measured.cooldown
    if cooldown is None or cooldown.labels >= cooldown.needed:
        return None
    return (
        f"cool-down after rolling back v{cooldown.rolled_back} to v{cooldown.restored}: "
        f"{cooldown.labels} of {cooldown.needed} new labels before the next launch (ROLLBACK_COOLDOWN_LABELS)"
    )
