"""How big the monitor's drift sample must be: detection, false positives and Evidently's time per size.

    python -m benchmarks.drift_sample [--sizes 250,500,1000,2000,5000] [--seeds 200]

The reference is the champion's profile sample (5,000 training rows, as the trainer stores it); each
window sample is drawn at random from the held-out rows of the data set (the rows the benchmarks'
traffic is made of), steady or with every median income multiplied (x1.5: the scale benchmark's
shift; x1.1: a subtle one). Per size and seed the preset's per-column tests are run (normed
Wasserstein distance, drifted at >= 0.1: :mod:`services.monitor.column_drift`, equal to Evidently's
figures). Prints, per size: on steady windows, the share of seeds with any column drifted (false
positives), the share with the dataset drifted (share >= 0.5) and the largest score seen; on shifted
windows, the share of seeds where MedInc drifted; and Evidently's own time for the preset plus its
HTML report on one sample of that size (median of 3, after one warm-up).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from services.monitor.column_drift import THRESHOLD, drift_tests

SHIFTS = (1.5, 1.1)


def study(sizes: list[int], seeds: int) -> list[dict[str, Any]]:
    from services.common.dataset import load_dataset
    from services.common.profile import build_profile

    dataset = load_dataset()
    reference = np.asarray(build_profile(dataset.x_train).sample, dtype=np.float64)
    source = dataset.x_holdout
    results = []
    for size in sizes:
        any_drift = dataset_drift = 0
        worst = 0.0
        detected = dict.fromkeys(SHIFTS, 0)
        for seed in range(seeds):
            rng = np.random.default_rng(seed)
            window = source[rng.integers(0, len(source), size)]
            steady = drift_tests(reference, window)
            assert steady is not None
            any_drift += steady.drifted_columns > 0
            dataset_drift += steady.drift_share >= 0.5
            worst = max(worst, *(test.score or 0.0 for test in steady.columns.values()))
            for factor in SHIFTS:
                shifted = window.copy()
                shifted[:, 0] *= factor
                tests = drift_tests(reference, shifted)
                assert tests is not None
                detected[factor] += tests.columns["MedInc"].drifted
        results.append(
            {
                "size": size,
                "false_any": any_drift / seeds,
                "false_dataset": dataset_drift / seeds,
                "worst_steady": worst,
                **{f"medinc_x{factor}": detected[factor] / seeds for factor in SHIFTS},
                "evidently_seconds": _evidently_seconds(reference, source, size),
            }
        )
    return results


def _evidently_seconds(reference: np.ndarray, source: np.ndarray, size: int) -> float:
    from services.monitor.evidently_drift import run_drift_preset

    window = source[np.random.default_rng(0).integers(0, len(source), size)]
    times = []
    with tempfile.TemporaryDirectory() as folder:
        for attempt in range(4):
            started = time.perf_counter()
            run_drift_preset(reference, window, drift_share=0.5).save_html(Path(folder) / "report.html")
            if attempt:  # the first one pays Evidently's import
                times.append(time.perf_counter() - started)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default="250,500,1000,2000,5000")
    parser.add_argument("--seeds", type=int, default=200)
    args = parser.parse_args(argv)
    results = study([int(size) for size in args.sizes.split(",")], args.seeds)
    print(
        f"| sample rows | steady: any column drifted | steady: dataset drifted | steady: largest score"
        f" (threshold {THRESHOLD}) | MedInc x1.5 detected | MedInc x1.1 detected"
        " | Evidently preset + HTML (s) |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        print(
            f"| {r['size']:,} | {r['false_any']:.1%} | {r['false_dataset']:.1%} | {r['worst_steady']:.3f}"
            f" | {r['medinc_x1.5']:.1%} | {r['medinc_x1.1']:.1%} | {r['evidently_seconds']:.2f} |"
        )
    print(f"\n{args.seeds} seeds per size; reference: the profile's 5,000 training rows.")


if __name__ == "__main__":
    main()
