"""Rule 2 of the verdict: is the champion worse than at training?

- live (trigger ``live_error``): with ROLLBACK_MIN_ROWS labelled predictions in the window, a live MAE
  beyond the champion's training (holdout) MAE by more than LIVE_MAE_TOLERANCE; an undefined MAE, or no
  training MAE, never degrades;
- estimated (trigger ``estimated_degradation``): before the labels, on a window of DRIFT_MIN_ROWS
  predictions, the error model's label-free estimate beyond the training MAE by more than
  ESTIMATED_MAE_TOLERANCE. Under covariate shift a higher estimate may mean harder districts rather than
  a model a retrain can improve: it launches the trainer only with new labels (``labels``).
"""

from __future__ import annotations

from services.common.vocabulary import Trigger
from services.monitor.decide.rule import Finding, Limits, Measured, enough_rows
from services.monitor.live_error import degraded


def judge_live(measured: Measured, limits: Limits) -> Finding:
    """The live MAE on labelled predictions against the training MAE."""
    live, reference, rows = measured.live_mae, measured.reference_mae, measured.labelled_rows
    active = degraded(
        live, reference, rows, tolerance=limits.live_mae_tolerance, min_rows=limits.rollback_min_rows
    )
    if rows < limits.rollback_min_rows:
        reason = f"{rows} labelled predictions; {limits.rollback_min_rows} needed to judge the live MAE"
    elif live is None:
        reason = f"the live MAE on {rows} labelled predictions is undefined (a logged price is not finite)"
    elif reference is None:
        reason = f"live MAE {live:.3f} on {rows} rows; no training MAE to compare it with"
    else:
        reason = (
            f"live MAE {live:.3f} on {rows} rows is {'beyond' if active else 'within'} "
            f"{limits.live_mae_tolerance:.0%} of the training MAE {reference:.3f}"
        )
    return Finding(active, (Trigger.LIVE_ERROR,) if active else (), (reason,))


def judge_estimate(measured: Measured, limits: Limits) -> Finding:
    """The label-free estimate on the window's sample against the training MAE."""
    estimated, reference = measured.estimated_mae, measured.reference_mae
    if not enough_rows(measured, limits) or estimated is None or reference is None:
        return Finding()
    active = estimated > reference * (1 + limits.estimated_mae_tolerance)
    reason = (
        f"estimated MAE {estimated:.3f} on {measured.estimated_rows} rows without labels is "
        f"{'beyond' if active else 'within'} {limits.estimated_mae_tolerance:.0%} "
        f"of the training MAE {reference:.3f}"
    )
    return Finding(active, (Trigger.ESTIMATED_DEGRADATION,) if active else (), (reason,))
