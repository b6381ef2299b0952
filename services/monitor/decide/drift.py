"""Rule 1 of the verdict: has the window drifted from the champion's reference?

A window judges drift only with DRIFT_MIN_ROWS predictions: then a feature whose PSI reaches
PSI_THRESHOLD (trigger ``psi``), or an Evidently drifted share reaching DRIFT_SHARE_THRESHOLD (trigger
``drift_share``), is drift. A NaN PSI never reaches a threshold. Under no drift PSI is small (simulated
with numpy, 20,000 windows of 500 rows, 10 quantile bins against a 16.5k-row reference: mean 0.019, max
0.076), so the 0.2 threshold itself is no source of false alarms; repeating a decision every run is,
which is why a drift launches the trainer only with new labels (``labels``) and alerts once per episode.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.common.vocabulary import Trigger
from services.monitor.decide.rule import Finding, Limits, Measured, enough_rows


@dataclass(frozen=True)
class DriftFinding(Finding):
    """The drift rule's finding, with the features whose PSI reached the threshold."""

    psi_drifted: tuple[str, ...] = ()


def judge_drift(measured: Measured, limits: Limits) -> DriftFinding:
    """Drift by PSI or by Evidently's drifted share, on a window with rows enough to say so."""
    if not enough_rows(measured, limits):
        return DriftFinding(
            reasons=(f"{measured.rows} predictions in the window; {limits.drift_min_rows} needed",)
        )
    reasons: list[str] = []
    triggers: list[Trigger] = []
    psi_drifted = tuple(name for name, value in measured.psi.items() if value >= limits.psi_threshold)
    share = measured.drift_share
    share_drift = share is not None and share >= limits.drift_share_threshold
    if psi_drifted:
        triggers.append(Trigger.PSI)
        reasons.append(
            f"PSI reached {limits.psi_threshold}: "
            + ", ".join(f"{name} {measured.psi[name]:.3f}" for name in psi_drifted)
        )
    if share is not None:
        reasons.append(
            f"Evidently's drifted share {share:.2f} "
            f"{'reached' if share_drift else 'is below'} {limits.drift_share_threshold}"
        )
    if not psi_drifted and measured.psi:
        reasons.append(f"no feature's PSI reached {limits.psi_threshold}")
    if share_drift:
        triggers.append(Trigger.DRIFT_SHARE)
    return DriftFinding(bool(triggers), tuple(triggers), tuple(reasons), psi_drifted)
