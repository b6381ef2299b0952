"""The validation gate: a pure function of figures and thresholds that says whether a candidate may serve.

Rules, in order:
1. sanity: the probe prices are finite and non-negative, and the signature is the feature schema;
2. floor: R² and MAE on the reference holdout reach absolute bars;
3. no champion yet: a candidate above the floor becomes the first champion;
4. enough recent labelled rows: they decide (the candidate's MAE there must beat the champion's), and
   the holdout only guards against collapse, with a looser tolerance;
5. otherwise: not worse than the champion on the reference holdout beyond a tolerance.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from services.trainer.evaluate import Metrics


@dataclass(frozen=True)
class Thresholds:
    min_r2: float
    max_mae: float
    holdout_tolerance: float
    shifted_holdout_tolerance: float
    min_recent_rows: int


@dataclass(frozen=True)
class Figures:
    """One model's figures, measured on the same rows as the model it is compared with."""

    holdout: Metrics | None
    recent: Metrics | None = None
    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Decision:
    passed: bool
    reasons: list[str]


def decide(candidate: Figures, champion: Figures | None, limits: Thresholds) -> Decision:
    """Whether ``candidate`` may replace ``champion`` (None: there is none), with every reason."""
    reasons = list(candidate.problems)
    holdout = candidate.holdout
    if holdout is None:
        reasons.append("the candidate has no finite figures on the reference holdout")
        return Decision(False, reasons)
    if reasons:
        return Decision(False, reasons)

    floor_ok = True
    if not holdout.r2 >= limits.min_r2:
        reasons.append(f"holdout R² {holdout.r2:.3f} is below the floor {limits.min_r2:.3f}")
        floor_ok = False
    if not holdout.mae <= limits.max_mae:
        reasons.append(f"holdout MAE {holdout.mae:.3f} is above the ceiling {limits.max_mae:.3f}")
        floor_ok = False
    if floor_ok:
        reasons.append(f"holdout R² {holdout.r2:.3f} and MAE {holdout.mae:.3f} clear the floor")
    else:
        return Decision(False, reasons)

    if champion is None or champion.holdout is None:
        reasons.append("there is no champion yet: the candidate above the floor becomes the first")
        return Decision(True, reasons)

    recent, champion_recent = candidate.recent, champion.recent
    if recent is not None and champion_recent is not None and recent.rows >= limits.min_recent_rows:
        passed = recent.mae < champion_recent.mae
        reasons.append(
            f"on {recent.rows} recent labelled rows the candidate's MAE {recent.mae:.3f} is "
            f"{'below' if passed else 'not below'} the champion's {champion_recent.mae:.3f}"
        )
        tolerance = limits.shifted_holdout_tolerance
    else:
        seen = recent.rows if recent is not None else 0
        reasons.append(
            f"only {seen} recent labelled rows (< {limits.min_recent_rows}): the reference holdout decides"
        )
        passed = True
        tolerance = limits.holdout_tolerance

    allowed = champion.holdout.mae * (1 + tolerance)
    holdout_ok = holdout.mae <= allowed
    reasons.append(
        f"holdout MAE {holdout.mae:.3f} is {'within' if holdout_ok else 'beyond'} {tolerance:.0%} of the "
        f"champion's {champion.holdout.mae:.3f}"
    )
    return Decision(passed and holdout_ok, reasons)
