"""The estimate's band: mean ± 3 SD of the estimated MAE over reference chunks, stored as a version tag."""

from __future__ import annotations

import json

import numpy as np
import pytest

from services.common.estimate_band import BAND_CHUNKS, EstimateBand, measure_band


def test_the_band_is_the_chunks_spread_with_the_realized_mae_beside_it() -> None:
    rng = np.random.default_rng(1)
    realized = np.abs(rng.normal(0, 0.35, size=4000))  # mean ~0.28, SD ~0.21 per row
    estimated = 0.9 * realized.mean() + 0.3 * (realized - realized.mean())  # reads 10% low, smoother
    band = measure_band(estimated, realized, chunk_rows=500, reference="holdout")
    assert (band.chunks, band.chunk_rows, band.reference_rows) == (BAND_CHUNKS, 500, 4000)
    assert band.mean == pytest.approx(estimated.mean(), rel=0.01)
    assert band.realized_mean == pytest.approx(realized.mean(), rel=0.01)
    # chunks drawn with replacement: the SD of a mean of 500 rows drawn from the same world
    assert band.sd == pytest.approx(estimated.std() / np.sqrt(500), rel=0.2)
    assert band.realized_sd == pytest.approx(realized.std() / np.sqrt(500), rel=0.2)
    assert band.lower == pytest.approx(band.mean - 3 * band.sd) and band.upper > band.mean
    assert band.bias == pytest.approx(1 / 0.9, rel=0.01)


def test_a_small_reference_is_resampled_not_understated() -> None:
    """600 rows in chunks of 500: without replacement the chunks would nearly coincide (SD ~60% low)."""
    rng = np.random.default_rng(2)
    errors = np.abs(rng.normal(0, 0.35, size=600))
    band = measure_band(errors, errors, chunk_rows=500, reference="recent", chunks=400)
    assert band.sd == pytest.approx(errors.std() / np.sqrt(500), rel=0.15)


def test_the_tag_round_trips_and_refuses_what_is_not_a_band() -> None:
    band = EstimateBand(0.29, 0.007, 0.3, 0.012, 200, 500, "holdout", 4128)
    again = EstimateBand.from_tag(band.to_tag())
    assert again == band
    assert json.loads(band.to_tag())["upper"] == pytest.approx(0.29 + 3 * 0.007)
    for text in ("not json", json.dumps({"mean": 0.3}), json.dumps({**band.as_dict(), "sd": "nan"})):
        with pytest.raises(ValueError, match="retrain"):
            EstimateBand.from_tag(text)


@pytest.mark.parametrize(
    ("estimated", "realized", "chunks", "message"),
    [
        ([], [], 200, "paired rows"),
        ([0.1, 0.2], [0.1], 200, "paired rows"),
        ([0.1, 0.2], [0.1, 0.2], 1, "at least 2 chunks"),
        ([0.1, np.nan], [0.1, 0.2], 200, "not finite"),
    ],
)
def test_bad_input_says_what_is_wrong(
    estimated: list[float], realized: list[float], chunks: int, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        measure_band(
            np.array(estimated), np.array(realized), chunk_rows=10, reference="holdout", chunks=chunks
        )
