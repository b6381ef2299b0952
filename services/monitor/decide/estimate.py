"""The label-free estimate as evidence: the estimated degradation, and the concept shift beside the truth.

- estimated degradation (trigger ``estimated_degradation``): on a window of DRIFT_MIN_ROWS predictions,
  the error model's estimated MAE above the *band* registered with the champion (``estimate.band``:
  mean + 3 SD of the estimate over 200 chunks of DRIFT_MIN_ROWS reference rows the model did not
  train on, services/common/estimate_band.py). Below the band is said, never a degradation. A version
  registered without a band keeps the old rule (the estimate beyond the holdout MAE by
  ESTIMATED_MAE_TOLERANCE) and its reason says so. The estimate's standard error (SD of the per-row
  estimated errors / √n) is reported beside it. Under covariate shift a higher estimate means harder
  districts, not a model a retrain can improve: it alerts, and launches only under the labels rule.
- concept shift (trigger ``concept_shift``): where the window has ROLLBACK_MIN_ROWS labelled rows,
  realized ÷ estimated MAE on those same rows, read against the estimate's bias on the reference (the
  band's realized ÷ estimated), outside [0.9, 1.1] *and* more than 3 standard errors from 1: the prices
  moved with the features unchanged, which the estimate cannot see. Alerted, never a launch by itself.

Statistics, measured by ``tests/model/test_estimate_band.py`` on the champion the trainer registers
(a band from half the holdout, windows from the other half, 10 splits x 2,000 steady windows drawn
with replacement, 300 windows of the simulator's covariate shift, 90% high-income, per split):
- the band, 500-row windows: false alarms on 0.56% of steady windows (worst split 3.55%: the band's
  centre is itself an estimate from ~2,000 rows; the registered band uses the whole holdout), power on
  the covariate shift 94%; 300-row windows: 0.49% (worst 2.35%) and 81%. The band is the estimate's own
  spread (SD ~3% of the MAE at 500 rows, so ±9% at 3 SD). NannyML's choice, the realized MAE's spread
  (SD ~1.7x wider), gave ~0.02% false alarms but ~53% power in an exploratory run on the earlier
  8-feature model: too deaf here.
- the concept shift, 200 labelled rows: flagged on 0.86% of steady windows ([0.9, 1.1] alone would
  flag ~15-20%: a 200-row MAE has a relative SD of ~6%); prices +25% (ratio ~1.9): 100%; prices +10%
  (ratio ~1.18): 37% (more labels see it: the SE falls as 1/√n).
Reproduce: ``.venv/bin/python -m pytest tests/model/test_estimate_band.py -q -s`` (prints the figures).
"""

from __future__ import annotations

from services.common.vocabulary import Trigger
from services.monitor.decide.rule import Finding, Limits, Measured, enough_rows

CONCEPT_RATIO = (0.9, 1.1)  # realized ÷ estimated, against the estimate's bias on the reference
CONCEPT_SIGMAS = 3.0  # ... and this many standard errors from 1 (at 200 rows [0.9, 1.1] alone: ~15%)


def judge_estimate(measured: Measured, limits: Limits) -> Finding:
    """The label-free estimate on the window's sample against the champion's band (or, without one,
    against the training MAE by ESTIMATED_MAE_TOLERANCE)."""
    estimated, band = measured.estimated_mae, measured.estimate_band
    if not enough_rows(measured, limits) or estimated is None:
        return Finding()
    se = measured.estimate_se
    said = f"estimated MAE {estimated:.3f}" + (f" (SE {se:.3f})" if se is not None else "")
    said += f" on {measured.estimated_rows} rows without labels"
    if band is None:
        reference = measured.reference_mae
        if reference is None:
            return Finding()
        active = estimated > reference * (1 + limits.estimated_mae_tolerance)
        reason = (
            f"{said} is {'beyond' if active else 'within'} {limits.estimated_mae_tolerance:.0%} of the "
            f"training MAE {reference:.3f} (the champion has no estimate band: the old rule)"
        )
        return Finding(active, (Trigger.ESTIMATED_DEGRADATION,) if active else (), (reason,))
    active = estimated > band.upper
    where = "above" if active else "below" if estimated < band.lower else "within"
    reason = (
        f"{said} is {where} its band [{band.lower:.3f}, {band.upper:.3f}] (mean ± {band.sigmas:g} SD over "
        f"{band.chunks} chunks of {band.chunk_rows} {band.reference} rows)"
    )
    if where == "below":
        reason += ": easier rows than the reference, not a degradation"
    if band.chunk_rows != limits.drift_min_rows:
        reason += (
            f"; the band's chunks have {band.chunk_rows} rows, DRIFT_MIN_ROWS is {limits.drift_min_rows}"
        )
    return Finding(active, (Trigger.ESTIMATED_DEGRADATION,) if active else (), (reason,))


def judge_concept_shift(measured: Measured, limits: Limits) -> Finding:
    """Realized ÷ estimated on the window's labelled rows, against the estimate's bias on the reference."""
    concept = measured.concept
    if concept is None:
        return Finding()
    if concept.rows < limits.rollback_min_rows:
        return Finding(
            reasons=(
                f"realized ÷ estimated MAE {concept.ratio:.2f} on {concept.rows} labelled rows; "
                f"{limits.rollback_min_rows} needed to call a concept shift",
            )
        )
    bias = measured.estimate_band.bias if measured.estimate_band is not None else None
    bias = bias if bias is not None and bias > 0 else 1.0
    ratio, se = concept.ratio / bias, concept.ratio_se / bias
    low, high = CONCEPT_RATIO
    active = not low <= ratio <= high and abs(ratio - 1) > CONCEPT_SIGMAS * se
    reason = (
        f"realized ÷ estimated MAE {concept.ratio:.2f} on {concept.rows} labelled rows"
        + (f" ({ratio:.2f} against the estimate's {bias:.2f} on the reference)" if bias != 1.0 else "")
        + f", SE {se:.2f}: "
        + (
            "a concept shift (prices moved with the features unchanged; the estimate cannot see it)"
            if active
            else f"no concept shift (within [{low}, {high}] or within {CONCEPT_SIGMAS:g} SE of 1)"
        )
    )
    return Finding(active, (Trigger.CONCEPT_SHIFT,) if active else (), (reason,))
