"""Rule 7 of the verdict: launch the trainer only with something new to learn.

A signal that would launch the trainer (drift, an estimated or a live degradation, as RETRAIN_ON allows)
launches it only when at least RETRAIN_MIN_NEW_LABELS labelled production rows are newer than the
newest the champion trained on (its run's ``train.labelled_until``) and than the newest a refused
candidate trained on (``new_labels.py`` counts them). Otherwise the plan is ``wait_for_labels``: the run
alerts once per episode ("drift; waiting for labels: k of N") and records why; no trainer starts, so
the window is not restarted and a lasting shift does not launch again every DRIFT_MIN_ROWS.

Why N = 667 by default: the trainer keeps the newest TRAIN_RECENT_HOLDOUT_FRACTION (0.3) of the labelled
rows for the gate, which lets them decide only with GATE_MIN_RECENT_ROWS (200) of them:
ceil(200 / 0.3) = 667. With fewer, a candidate is trained on (nearly) the champion's rows and judged
without recent evidence: the churn measured before this rule (a lasting covariate shift without labels,
six rounds of 500 rows: six launches, six versions, the champion moved six times). 0 turns the rule off.
Uncounted new labels (the registry or the database failed) wait: a launch needs the evidence.
Loop tests: tests/integration/test_monitor_labels.py (2nd and 10th run of a lasting shift without
labels launch nothing and alert once; the prices arriving launch once).
"""

from __future__ import annotations

from collections.abc import Mapping

from services.common.vocabulary import Plan, RetrainSignal
from services.monitor.decide.rule import Finding, Limits, Measured


def hold_for_labels(
    plan: Plan, signals: Mapping[RetrainSignal, bool], measured: Measured, limits: Limits
) -> tuple[Plan, Finding]:
    """(plan, finding): a launch becomes ``wait_for_labels`` with too few new labels (finding active)."""
    needed = limits.retrain_min_new_labels
    if plan is not Plan.LAUNCH_TRAINER or needed == 0:
        return plan, Finding()
    count = measured.new_labels
    if count is not None and count >= needed:
        reason = f"{count} labelled rows newer than any model trained on ({needed} needed): launch"
        return plan, Finding(reasons=(reason,))
    up = ", ".join(signal for signal, active in signals.items() if active and signal in limits.retrain_on)
    shown = "?" if count is None else str(count)
    return Plan.WAIT_FOR_LABELS, Finding(True, (), (f"{up}; waiting for labels: {shown} of {needed}",))
