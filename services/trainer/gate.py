"""The validation gate: a pure function of figures and thresholds that says whether a candidate may serve.

Rules, in order:
1. sanity: the probe prices are finite and non-negative, the signature is the feature schema, and the
   compiled trees (when stored) predict what the pipeline does on the holdout (they are what serves);
2. floor: R² and MAE on the reference holdout reach absolute bars;
3. no champion yet: a candidate above the floor becomes the first champion;
4. enough recent labelled rows: they decide (the candidate's MAE there must beat the champion's), and
   the holdout only guards against collapse, with a looser tolerance;
5. otherwise: not worse than the champion on the reference holdout beyond a tolerance.

A figure undefined on its rows (None, with the reason in ``Metrics.undefined``) is never compared: an
undefined holdout figure rejects the candidate; an undefined recent figure (R² of rows with one price,
MAE of no rows) means there are not enough recent rows, so the holdout decides. Either way the reasons
name the figure and say why.
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
    """One model's figures, measured on the same rows as the model it is compared with.

    ``recent`` is None when the recent rows were not measured at all.
    """

    holdout: Metrics
    recent: Metrics | None = None
    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Decision:
    passed: bool
    reasons: list[str]


LABELS = {"mae": "MAE", "r2": "R²", "rmse": "RMSE"}


def _undefined(who: str, where: str, metrics: Metrics | None, names: tuple[str, ...] = ()) -> list[str]:
    """ "the candidate's recent R² is undefined (why)": the undefined figures (of ``names``), by reason."""
    if metrics is None:
        return [f"{who}'s {where} figures were not measured"]
    by_reason: dict[str, list[str]] = {}
    for name, why in metrics.undefined.items():
        if not names or name in names:
            by_reason.setdefault(why, []).append(LABELS.get(name, name))
    return [
        f"{who}'s {where} {_listed(labels)} {'is' if len(labels) == 1 else 'are'} undefined ({why})"
        for why, labels in by_reason.items()
    ]


def _listed(words: list[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


def _recent_shortfall(candidate: Metrics | None, champion: Metrics | None, min_rows: int) -> str | None:
    """Why the recent rows cannot decide; None when they can (enough rows, every figure defined)."""
    rows = candidate.rows if candidate is not None else 0
    undefined = _undefined("the candidate", "recent", candidate) + _undefined(
        "the champion", "recent", champion
    )
    if rows < min_rows:
        # With no rows every figure is undefined for that one reason: "only 0 rows" says it all.
        return f"only {rows} recent labelled rows (< {min_rows})" + (
            "; " + "; ".join(undefined) if rows else ""
        )
    if undefined:
        return f"not enough recent labelled rows ({rows}) to judge on: " + "; ".join(undefined)
    return None


def decide(candidate: Figures, champion: Figures | None, limits: Thresholds) -> Decision:
    """Whether ``candidate`` may replace ``champion`` (None: there is none), with every reason."""
    reasons = list(candidate.problems)
    holdout = candidate.holdout
    if holdout.r2 is None or holdout.mae is None:
        reasons += _undefined("the candidate", "holdout", holdout, ("r2", "mae"))
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

    if champion is None:
        reasons.append("there is no champion yet: the candidate above the floor becomes the first")
        return Decision(True, reasons)
    champion_mae = champion.holdout.mae
    if champion_mae is None:
        why = champion.holdout.undefined.get("mae", "not measured")
        reasons.append(
            f"the champion's holdout MAE is undefined ({why}): the candidate above the floor replaces it"
        )
        return Decision(True, reasons)

    recent, champion_recent = candidate.recent, champion.recent
    shortfall = _recent_shortfall(recent, champion_recent, limits.min_recent_rows)
    if shortfall is None and recent is not None and champion_recent is not None:
        assert recent.mae is not None and champion_recent.mae is not None  # no shortfall: both defined
        passed = recent.mae < champion_recent.mae
        reasons.append(
            f"on {recent.rows} recent labelled rows the candidate's MAE {recent.mae:.3f} is "
            f"{'below' if passed else 'not below'} the champion's {champion_recent.mae:.3f}"
        )
        tolerance = limits.shifted_holdout_tolerance
    else:
        reasons.append(f"{shortfall}: the reference holdout decides")
        passed = True
        tolerance = limits.holdout_tolerance

    allowed = champion_mae * (1 + tolerance)
    holdout_ok = holdout.mae <= allowed
    reasons.append(
        f"holdout MAE {holdout.mae:.3f} is {'within' if holdout_ok else 'beyond'} {tolerance:.0%} of the "
        f"champion's {champion_mae:.3f}"
    )
    return Decision(passed and holdout_ok, reasons)
