"""The estimate's band and the concept-shift flag, run as loops: false alarms on steady windows, power
on the simulator's shifts (the figures in services/monitor/decide/estimate.py and docs/design.md).

The champion and its error model are the ones the trainer registers. Its registered band used the whole
holdout, so here the band is measured again with the trainer's own function on half the holdout, and
the windows come from the other half (10 random splits): steady windows are rows drawn with replacement
(a production window is rows drawn from the same world), shifted ones are the simulator's scenarios.
Each window goes through the monitor's decision functions themselves.

Reproduce (prints the table): ``.venv/bin/python -m pytest tests/model/test_estimate_band.py -q -s``
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import mlflow
import mlflow.sklearn
import numpy as np
import numpy.typing as npt
import pytest
from threadpoolctl import threadpool_limits

from services.common.dataset import Dataset
from services.common.error_model import load_error_model
from services.common.estimate_band import EstimateBand
from services.common.registry import ERROR_MODEL_ARTIFACT, MODEL_NAME
from services.local.scenarios import sample_indices, scenario_spec
from services.monitor.concept import concept_figures
from services.monitor.decide.estimate import judge_concept_shift, judge_estimate
from services.monitor.decide.rule import Limits, Measured
from services.trainer.registration import estimate_band
from tests.conftest import Registry

pytestmark = pytest.mark.timeout(600)  # includes training the session champion

SPLITS = 10
STEADY_WINDOWS = 2000
SHIFTED_WINDOWS = 300
Rows = npt.NDArray[np.intp]


@dataclass(frozen=True)
class Judged:
    """The registered champion's predictions and its error model's per-row errors on the holdout."""

    dataset: Dataset
    model: object
    error_model: object
    predictions: npt.NDArray[np.float64]
    estimated: npt.NDArray[np.float64]


@pytest.fixture
def judged(champion_registry: Registry, dataset: Dataset, tmp_path: Path) -> Judged:
    client = champion_registry.client
    version = client.get_model_version(MODEL_NAME, "1")
    model = mlflow.sklearn.load_model(client.get_model_version_download_uri(MODEL_NAME, "1"))
    path = client.download_artifacts(version.run_id, ERROR_MODEL_ARTIFACT, str(tmp_path))
    error_model = load_error_model(Path(path))
    with threadpool_limits(1):
        predictions = np.asarray(model.predict(dataset.x_holdout), dtype=np.float64)
    estimated = error_model.row_errors(dataset.x_holdout, predictions)
    return Judged(dataset, model, error_model, predictions, estimated)


def limits(rows: int) -> Limits:
    return Limits(
        drift_min_rows=rows,
        psi_threshold=0.2,
        drift_share_threshold=0.5,
        live_mae_tolerance=0.25,
        rollback_min_rows=200,
    )


def _splits(n: int) -> list[tuple[Rows, Rows]]:
    halves = []
    for split in range(SPLITS):
        order = np.random.default_rng([31, split]).permutation(n)
        halves.append((order[: n // 2], order[n // 2 :]))
    return halves


def _band(judged: Judged, rows: Rows, chunk_rows: int) -> EstimateBand:
    d = judged.dataset
    return estimate_band(
        judged.model,  # type: ignore[arg-type]
        judged.error_model,  # type: ignore[arg-type]
        d.x_holdout[rows],
        d.y_holdout[rows],
        reference="holdout",
        chunk_rows=chunk_rows,
    )


def _fires(estimates: npt.NDArray[np.float64], band: EstimateBand, rows: int) -> float:
    """The share of windows whose estimate the monitor's decision calls a degradation."""
    decided = [
        judge_estimate(
            Measured(rows=rows, estimated_mae=float(value), estimated_rows=rows, estimate_band=band),
            limits(rows),
        ).active
        for value in estimates
    ]
    return float(np.mean(decided))


def band_rates(judged: Judged, rows: int) -> tuple[list[float], list[float]]:
    """Per split: the false-alarm rate on steady windows and the power on the covariate shift."""
    false_alarms, power = [], []
    shift = scenario_spec("covariate-shift")
    for split, (half, other) in enumerate(_splits(len(judged.predictions))):
        band = _band(judged, half, rows)
        rng = np.random.default_rng([32, split, rows])
        steady = other[rng.integers(0, len(other), size=(STEADY_WINDOWS, rows))]
        false_alarms.append(_fires(judged.estimated[steady].mean(axis=1), band, rows))
        x_other = judged.dataset.x_holdout[other]
        shifted = np.array(
            [
                judged.estimated[other[sample_indices(x_other, shift, rows, rng)]].mean()
                for _ in range(SHIFTED_WINDOWS)
            ]
        )
        power.append(_fires(shifted, band, rows))
    return false_alarms, power


def concept_rates(judged: Judged, rows: int, price_factor: float) -> float:
    """The share of labelled windows of ``rows`` rows (prices x ``price_factor``) called a concept shift."""
    flagged = []
    y = judged.dataset.y_holdout
    for split, (half, other) in enumerate(_splits(len(judged.predictions))):
        band = _band(judged, half, 500)
        rng = np.random.default_rng([33, split, rows])
        for window in other[rng.integers(0, len(other), size=(STEADY_WINDOWS // 4, rows))]:
            figures = concept_figures(
                judged.estimated[window], np.abs(judged.predictions[window] - price_factor * y[window])
            )
            measured = Measured(rows=500, estimate_band=band, concept=figures)
            flagged.append(judge_concept_shift(measured, limits(500)).active)
    return float(np.mean(flagged))


def test_the_band_rarely_fires_on_steady_windows_and_catches_the_covariate_shift(judged: Judged) -> None:
    false_500, power_500 = band_rates(judged, 500)
    false_300, power_300 = band_rates(judged, 300)
    print(
        f"\nband, 500-row windows: false alarms {np.mean(false_500):.2%} (worst split {max(false_500):.2%}),"
        f" power {np.mean(power_500):.1%}; 300 rows: {np.mean(false_300):.2%} (worst {max(false_300):.2%}),"
        f" power {np.mean(power_300):.1%}"
    )
    assert np.mean(false_500) <= 0.02 and np.mean(false_300) <= 0.02
    assert np.mean(power_500) >= 0.85
    assert np.mean(power_300) >= 0.50


def test_the_concept_shift_flag_is_quiet_on_steady_labels_and_sees_moved_prices(judged: Judged) -> None:
    steady, moved, slight = (concept_rates(judged, 200, factor) for factor in (1.0, 1.25, 1.10))
    print(
        f"\nconcept shift, 200 labelled rows: steady {steady:.2%}, prices +25% {moved:.1%}, +10% {slight:.1%}"
    )
    assert steady <= 0.02
    assert moved >= 0.99
