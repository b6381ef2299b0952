"""The validation gate: a pure function of measured figures that says whether a candidate may serve.

Rules, in order:
1. sanity: the probe prices are finite and non-negative, the signature is the feature schema, and the
   compiled trees (when stored) predict what the pipeline does on the holdout (they are what serves);
2. floor: R² and MAE on the reference holdout reach absolute bars;
3. no champion yet (or one without a holdout MAE): a candidate above the floor becomes champion;
4. a twin never replaces the champion: a candidate whose training data (its digest, recorded at
   registration) is the champion's is refused, whatever its figures;
5. enough recent labelled rows (``GATE_MIN_RECENT_ROWS``, rows neither model trained on): the candidate
   must be better there by ``GATE_RECENT_MARGIN`` of the champion's MAE with 95 % confidence
   (superiority), and not worse on the unseen reference holdout by more than
   ``GATE_NONINFERIORITY_MARGIN`` (non-inferiority, 95 %);
6. otherwise the holdout alone: better there by ``GATE_HOLDOUT_MARGIN`` with 95 % confidence.

Statistics (:mod:`services.trainer.paired`): both models are scored on the same rows; the per-row
differences of absolute error are resampled by a one-sided paired percentile bootstrap (2,000
resamples, fixed seed). Each comparison is recorded as :class:`~services.trainer.paired.Evidence`
(n, mean difference, 95 % bounds, margin, MDE at 80 % power) in ``Decision.evidence``.

Margins, from a power analysis (the trials of ``tests/model/test_gate_loops.py``). A/A candidates are
refits of the recipe on bootstrap resamples of its training rows: two such refits differ in holdout
MAE by ~2 % (sd), more than the rows' own sampling error on the 4,128 holdout rows, so a zero margin
promotes A/A candidates often (6 of 30 pairs on the holdout alone). On the holdout alone the margin is
2 % (0 of 42 A/A pairs promoted; 3 of 30 at 1 %; the holdout's MDE at 80 % power is 0.009, 3 % of its
MAE). On 200 recent rows the margin is 1 %, the one that meets both bars (A/A promoted in at most 5 %,
the demo's moved market in at least 95 %: 700 labelled rows at prices x1.25, the candidate's MAE
9.5 % lower on the newest rows):

    margin   A/A promoted (126)   moved market promoted (48)
    0 %      9 (7.1 %)            48
    1 %      5 (4.0 %)            47 (98 %)
    2 %      4 (3.2 %)            45 (94 %)
    3 %      2 (1.6 %)            44 (92 %)

The non-inferiority margin is loose (25 %): a candidate that learned a moved market prices the old one
differently (+4 to +6 % holdout MAE measured for the moved-market candidates), and the recent rows are
the market it will serve.

Measured by ``pytest tests/model/test_gate_loops.py -q -s`` (it prints them; trials as its docstring
says; trials share fitted models, so these are rates of that design, not of independent draws):

- A/A on 200 recent rows: 4 of 126 promoted (3.2 %; 5 of 126 with the 8-feature model the margin table
  was measured on); on the holdout alone: 0 of 42;
- moved market on 200 recent rows: 47 of 48 promoted (98 %);
- twins (``housing train`` on the same data), gate runs 2 to 10 with nothing new: 0 of 9 promoted.

A figure undefined on its rows (None, with the reason in ``Metrics.undefined``) is never compared: an
undefined holdout figure rejects the candidate; an undefined recent figure (R² of rows with one price,
MAE of no rows) means there are not enough recent rows, so the holdout decides. Either way the reasons
name the figure and say why.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from services.trainer.evaluate import Metrics
from services.trainer.paired import NON_INFERIORITY, SUPERIORITY, Evidence, Test, compare

Errors = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Thresholds:
    min_r2: float
    max_mae: float
    min_recent_rows: int
    recent_margin: float  # share of the champion's recent MAE the candidate must win by
    holdout_margin: float  # without recent rows: share of the champion's holdout MAE to win by
    noninferiority_margin: float  # with recent rows: share of the champion's holdout MAE it may lose


@dataclass(frozen=True)
class Figures:
    """One model's figures, measured on the same rows (in the same order) as the model it is compared with.

    ``recent`` is None when the recent rows were not measured at all; ``*_errors`` are the per-row
    absolute errors behind ``holdout`` and ``recent``; ``training_digest`` identifies the training data and
    recipe (:mod:`services.trainer.identity`; None: not recorded).
    """

    holdout: Metrics
    recent: Metrics | None = None
    problems: list[str] = field(default_factory=list)
    holdout_errors: Errors | None = None
    recent_errors: Errors | None = None
    training_digest: str | None = None


@dataclass(frozen=True)
class Decision:
    passed: bool
    reasons: list[str]
    evidence: list[Evidence] = field(default_factory=list)


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


def _recent_shortfall(candidate: Figures, champion: Figures, min_rows: int) -> str | None:
    """Why the recent rows cannot decide; None when they can (enough rows, every figure defined)."""
    recent = candidate.recent
    rows = recent.rows if recent is not None else 0
    undefined = _undefined("the candidate", "recent", recent) + _undefined(
        "the champion", "recent", champion.recent
    )
    if rows < min_rows:
        # With no rows every figure is undefined for that one reason: "only 0 rows" says it all.
        return f"only {rows} recent labelled rows (< {min_rows})" + (
            "; " + "; ".join(undefined) if rows else ""
        )
    if undefined:
        return f"not enough recent labelled rows ({rows}) to judge on: " + "; ".join(undefined)
    if candidate.recent_errors is None or champion.recent_errors is None:
        return "the recent rows' per-row errors were not measured"
    return None


def _floor(candidate: Figures, limits: Thresholds) -> tuple[bool, list[str]]:
    """(sane and above the floor, reasons): rules 1 and 2."""
    reasons = list(candidate.problems)
    holdout = candidate.holdout
    if holdout.r2 is None or holdout.mae is None:
        return False, reasons + _undefined("the candidate", "holdout", holdout, ("r2", "mae"))
    if reasons:
        return False, reasons
    if not holdout.r2 >= limits.min_r2:
        reasons.append(f"holdout R² {holdout.r2:.3f} is below the floor {limits.min_r2:.3f}")
    if not holdout.mae <= limits.max_mae:
        reasons.append(f"holdout MAE {holdout.mae:.3f} is above the ceiling {limits.max_mae:.3f}")
    if reasons:
        return False, reasons
    return True, [f"holdout R² {holdout.r2:.3f} and MAE {holdout.mae:.3f} clear the floor"]


def _without_comparison(candidate: Figures, champion: Figures | None) -> tuple[bool, str] | None:
    """Rules 3 and 4, which need no statistics: (passed, reason), or None to compare."""
    if champion is None:
        return True, "there is no champion yet: the candidate above the floor becomes the first"
    if champion.holdout.mae is None:
        why = champion.holdout.undefined.get("mae", "not measured")
        return True, f"the champion's holdout MAE is undefined ({why}): the candidate above the floor wins"
    digest = candidate.training_digest
    if digest is not None and digest == champion.training_digest:
        return False, (
            f"the candidate was trained on exactly the champion's rows with the same recipe (digest "
            f"{digest[:12]}): a twin never replaces the champion; wait for new labelled rows"
        )
    if candidate.holdout_errors is None or champion.holdout_errors is None:
        return False, "the holdout's per-row errors were not measured: the candidate cannot be compared"
    return None


def _holdout(candidate: Figures, champion: Figures, test: Test, margin: float) -> Evidence:
    assert candidate.holdout_errors is not None and champion.holdout_errors is not None
    return compare("holdout", test, candidate.holdout_errors, champion.holdout_errors, margin)


def decide(candidate: Figures, champion: Figures | None, limits: Thresholds) -> Decision:
    """Whether ``candidate`` may replace ``champion`` (None: there is none), with every reason and the
    evidence of each paired comparison."""
    above, reasons = _floor(candidate, limits)
    if not above:
        return Decision(False, reasons)
    settled = _without_comparison(candidate, champion)
    if settled is not None:
        return Decision(settled[0], [*reasons, settled[1]])
    assert champion is not None  # without one, the decision is settled above

    shortfall = _recent_shortfall(candidate, champion, limits.min_recent_rows)
    if shortfall is None:
        assert candidate.recent_errors is not None and champion.recent_errors is not None
        recent = compare(
            "recent", SUPERIORITY, candidate.recent_errors, champion.recent_errors, limits.recent_margin
        )
        holdout = _holdout(candidate, champion, NON_INFERIORITY, limits.noninferiority_margin)
        evidence = [recent, holdout]
        reasons.append("the recent labelled rows decide; the holdout guards against a collapse")
    else:
        evidence = [_holdout(candidate, champion, SUPERIORITY, limits.holdout_margin)]
        reasons.append(f"{shortfall}: the reference holdout decides; only a clearly better candidate passes")
    reasons += [item.describe() for item in evidence]
    return Decision(all(item.passed for item in evidence), reasons, evidence)
