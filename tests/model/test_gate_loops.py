"""The gate as a loop: A/A candidates rarely pass, a real improvement nearly always does, twins never.

How the trials are built (models fitted once per module, predictions computed once, then only the
pure ``decide`` runs per trial, with the default settings' thresholds):

- A/A: seven refits of the production recipe, each on a bootstrap resample of the base training rows
  (the recipe is deterministic for a given data set, so other seeds would give the same trees). Every
  ordered pair (candidate, champion) of two different refits is a trial: 42 pairs. With recent rows:
  each pair judged on three draws of 200 steady-market rows (real held-out rows at their recorded
  prices), 126 trials; without: the pair judged on the reference holdout alone, 42 trials.
- Power: the champion is the recipe fitted on the base rows; three candidates each add 700 labelled
  rows of the demo's moved market (``covariate-shift`` at prices x1.25, as in ``services.local.scenarios``:
  90 % high-income districts; 700 is the trained part of the closed-loop test's 1,000 rows) at
  ``TRAIN_RECENT_WEIGHT``. Each is judged on 16 draws of 200 recent rows of that market whose features
  it did not train on, and on the holdout minus the rows it trained on: 48 trials.
- Twins and repetition: with the real trainer and registry, ``housing train`` run twice and three
  times on the same data, then the gate run on the twin until its 10th run, nothing new in between.

Measured (``pytest tests/model/test_gate_loops.py -q -s`` prints the figures): see the gate module's
docstring. Trials share models, so they are not independent: the rates are of this design.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pytest
from threadpoolctl import threadpool_limits

from services.common.database import connect
from services.common.dataset import Dataset
from services.common.registry import current_aliases
from services.common.vocabulary import ModelEvent, Role
from services.local.scenarios import HIGH_INCOME_SHARE, high_income_mask, sample_indices, scenario_spec
from services.trainer.evaluate import Metrics
from services.trainer.gate import Decision, Figures, decide
from services.trainer.lifecycle import gate_version, thresholds
from services.trainer.model import fit_model
from services.trainer.settings import TrainerSettings
from services.trainer.train import run_training
from tests.conftest import Registry

pytestmark = pytest.mark.timeout(600)

Array = npt.NDArray[np.float64]
SETTINGS = TrainerSettings()
LIMITS = thresholds(SETTINGS)
AA_REFITS = 7
AA_DRAWS = 3  # draws of recent rows per ordered pair
RECENT_ROWS = 200
SHIFTED_CANDIDATES = 3
SHIFTED_TRAINING_ROWS = 700
SHIFTED_DRAWS = 16
PRICE_FACTOR = 1.25


def _predict(model: object, x: Array) -> Array:
    with threadpool_limits(1):
        return np.asarray(model.predict(x), dtype=np.float64)  # type: ignore[attr-defined]


def figures(predicted_holdout: Array, y_holdout: Array, predicted_recent: Array, y_recent: Array) -> Figures:
    """A model's figures from its predictions: MAE from the same per-row errors the gate pairs."""
    holdout_errors = np.abs(predicted_holdout - y_holdout)
    recent_errors = np.abs(predicted_recent - y_recent)

    def metrics(errors: Array) -> Metrics:
        mae = float(errors.mean()) if len(errors) else None
        undefined = {} if len(errors) else {"mae": "no rows", "r2": "no rows", "rmse": "no rows"}
        return Metrics(mae, 0.85 if len(errors) else None, mae, len(errors), undefined)

    return Figures(metrics(holdout_errors), metrics(recent_errors), [], holdout_errors, recent_errors)


@pytest.fixture(scope="module")
def aa_predictions(dataset: Dataset) -> list[Array]:
    """Holdout predictions of seven refits on bootstrap resamples of the base rows."""
    predictions = []
    for seed in range(AA_REFITS):
        rows = np.random.default_rng([41, seed]).integers(0, len(dataset.y_train), len(dataset.y_train))
        predictions.append(
            _predict(fit_model(dataset.x_train[rows], dataset.y_train[rows]), dataset.x_holdout)
        )
    return predictions


@dataclass(frozen=True)
class Shifted:
    """A candidate that learned the moved market: the rows it trained on and its holdout predictions."""

    trained: npt.NDArray[np.intp]
    predicted: Array


@pytest.fixture(scope="module")
def shifted(dataset: Dataset) -> tuple[Array, list[Shifted]]:
    """(the champion's holdout predictions, three candidates trained on moved-market labelled rows)."""
    champion = _predict(fit_model(dataset.x_train, dataset.y_train), dataset.x_holdout)
    spec = scenario_spec("covariate-shift", PRICE_FACTOR)
    weights = np.concatenate(
        [np.ones(len(dataset.y_train)), np.full(SHIFTED_TRAINING_ROWS, SETTINGS.train_recent_weight)]
    )
    candidates = []
    for seed in range(SHIFTED_CANDIDATES):
        trained = sample_indices(
            dataset.x_holdout, spec, SHIFTED_TRAINING_ROWS, np.random.default_rng([43, seed])
        )
        x = np.vstack([dataset.x_train, dataset.x_holdout[trained]])
        y = np.concatenate([dataset.y_train, dataset.y_holdout[trained] * PRICE_FACTOR])
        candidates.append(Shifted(trained, _predict(fit_model(x, y, weights), dataset.x_holdout)))
    return champion, candidates


def market_rows(
    x_holdout: Array, unseen: npt.NDArray[np.intp], rng: np.random.Generator
) -> npt.NDArray[np.intp]:
    """200 rows the moved market sends (90 % high-income, as the scenario draws them from the holdout)
    among those the candidate did not train on."""
    high = high_income_mask(x_holdout)[unseen]
    n_high = round(RECENT_ROWS * HIGH_INCOME_SHARE)
    return np.concatenate(
        [
            rng.choice(unseen[high], n_high, replace=False),
            rng.choice(unseen[~high], RECENT_ROWS - n_high, replace=False),
        ]
    )


def aa_trials(dataset: Dataset, predictions: list[Array], with_recent: bool) -> Iterator[Decision]:
    y = dataset.y_holdout
    rng = np.random.default_rng(47)
    for i, j in itertools.permutations(range(len(predictions)), 2):
        for _ in range(AA_DRAWS if with_recent else 1):
            recent = rng.choice(len(y), RECENT_ROWS, replace=False) if with_recent else np.empty(0, np.intp)
            candidate = figures(predictions[i], y, predictions[i][recent], y[recent])
            champion = figures(predictions[j], y, predictions[j][recent], y[recent])
            yield decide(candidate, champion, LIMITS)


def test_aa_candidates_judged_on_recent_rows_are_rarely_promoted(
    dataset: Dataset, aa_predictions: list[Array]
) -> None:
    decisions = list(aa_trials(dataset, aa_predictions, with_recent=True))
    promoted = sum(d.passed for d in decisions)
    print(f"\nA/A on {RECENT_ROWS} recent rows: {promoted} of {len(decisions)} promoted")
    assert len(decisions) >= 40
    assert all({e.comparison for e in d.evidence} == {"recent", "holdout"} for d in decisions)
    assert promoted <= 0.05 * len(decisions)


def test_aa_candidates_judged_on_the_holdout_alone_are_rarely_promoted(
    dataset: Dataset, aa_predictions: list[Array]
) -> None:
    decisions = list(aa_trials(dataset, aa_predictions, with_recent=False))
    promoted = sum(d.passed for d in decisions)
    print(f"\nA/A on the holdout alone: {promoted} of {len(decisions)} promoted")
    assert len(decisions) >= 40
    assert all([e.comparison for e in d.evidence] == ["holdout"] for d in decisions)
    assert promoted <= 0.05 * len(decisions)


def test_a_candidate_that_learned_the_moved_market_is_promoted(
    dataset: Dataset, shifted: tuple[Array, list[Shifted]]
) -> None:
    champion, candidates = shifted
    y = dataset.y_holdout
    rng = np.random.default_rng(53)
    decisions, improvements = [], []
    for candidate in candidates:
        unseen = np.setdiff1d(np.arange(len(y)), candidate.trained)
        for _ in range(SHIFTED_DRAWS):
            recent = market_rows(dataset.x_holdout, unseen, rng)
            y_recent = y[recent] * PRICE_FACTOR
            decision = decide(
                figures(candidate.predicted[unseen], y[unseen], candidate.predicted[recent], y_recent),
                figures(champion[unseen], y[unseen], champion[recent], y_recent),
                LIMITS,
            )
            decisions.append(decision)
            improvements.append(-decision.evidence[0].difference / decision.evidence[0].champion_mae)
    promoted = sum(d.passed for d in decisions)
    print(
        f"\nmoved market, {RECENT_ROWS} recent rows: {promoted} of {len(decisions)} promoted "
        f"(recent MAE {np.mean(improvements):.1%} lower on average)"
    )
    assert len(decisions) >= 40
    assert promoted >= 0.95 * len(decisions), [d.reasons for d in decisions if not d.passed][:2]


def test_retraining_on_nothing_new_never_moves_the_champion(
    champion_registry: Registry, dataset: Dataset, database_url: str
) -> None:
    """`housing train` on the same data: the 2nd and 3rd trainings are twins, rejected; the gate's 10th
    run on the twin, with nothing new in between, still rejects it and moves nothing."""
    client = champion_registry.client
    settings = TrainerSettings(error_model_folds=0)  # the error model has no say in the gate
    twins = [
        run_training(client, champion_registry.experiment_id, database_url, dataset, settings)
        for _ in range(2)
    ]
    decisions = [twin.gate.decision for twin in twins if twin.gate is not None]
    for run in range(len(twins) + 2, 11):  # the gate's runs 4 to 10 (run 1 made the champion)
        decisions.append(
            gate_version(
                client, database_url, dataset, settings, twins[-1].version, actor=f"run {run}"
            ).decision
        )
    assert len(decisions) == 9 and not any(d.passed for d in decisions)
    assert all(any("a twin never replaces the champion" in r for r in d.reasons) for d in decisions)
    assert current_aliases(client) == {Role.CHAMPION: 1, Role.CHALLENGER: None, Role.PREVIOUS: None}
    with connect(database_url) as conn:
        events = [e for (e,) in conn.execute("SELECT event FROM model_events ORDER BY id").fetchall()]
    assert events.count(ModelEvent.PROMOTED) == 0 and events.count(ModelEvent.REJECTED) == 9
