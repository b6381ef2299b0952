"""Which ``TRAIN_RECENT_WEIGHT`` to give labelled production rows, chosen on a time-ordered split.

    python -m benchmarks.recent_weight [--weights 1,2,3,5,10,20] [--seeds 2]

A moved market sends labelled rows in time order (``services.local.scenarios``: real held-out rows,
prices x1.25): ``covariate-shift`` (90 % high-income districts, 1,000 labelled rows) and
``concept-shift`` (the holdout's mix, 3,000 rows). As the trainer does, the oldest 70 % are trained on
(base set + those rows at the weight) and the newest 30 % are kept: the model is scored there (only on
rows whose features it did not train on) and on the reference holdout minus the rows it trained on
(the world before the move, at its recorded prices). Prints, per market and weight, both MAEs
(100k USD, mean over seeds) and their change against weight 1. The weight beside the setting is the
one with the lowest error on the newest rows whose holdout error stays within the gate's
non-inferiority margin.
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

MARKETS = (("covariate-shift", 1000), ("concept-shift", 3000))
PRICE_FACTOR = 1.25
RECENT_FRACTION = 0.3


def study(weights: list[float], seeds: int) -> list[dict[str, Any]]:
    from services.common.dataset import load_dataset
    from services.local.scenarios import sample_indices, scenario_spec
    from services.trainer.model import fit_model

    dataset = load_dataset()
    x_holdout, y_holdout = dataset.x_holdout, dataset.y_holdout
    base_weights = np.ones(len(dataset.y_train))
    results = []
    for market, rows in MARKETS:
        spec = scenario_spec(market, PRICE_FACTOR)
        scores: dict[float, list[tuple[float, float]]] = {weight: [] for weight in weights}
        for seed in range(seeds):
            stream = sample_indices(x_holdout, spec, rows, np.random.default_rng([7, seed]))
            cut = rows - round(rows * RECENT_FRACTION)
            trained, newest = stream[:cut], np.setdiff1d(stream[cut:], stream[:cut])
            unseen = np.setdiff1d(np.arange(len(y_holdout)), trained)
            x = np.vstack([dataset.x_train, x_holdout[trained]])
            y = np.concatenate([dataset.y_train, y_holdout[trained] * PRICE_FACTOR])
            for weight in weights:
                model = fit_model(x, y, np.concatenate([base_weights, np.full(cut, weight)]))
                recent = np.abs(model.predict(x_holdout[newest]) - y_holdout[newest] * PRICE_FACTOR).mean()
                holdout = np.abs(model.predict(x_holdout[unseen]) - y_holdout[unseen]).mean()
                scores[weight].append((float(recent), float(holdout)))
        baseline = np.mean(scores[weights[0]], axis=0)
        for weight in weights:
            recent, holdout = np.mean(scores[weight], axis=0)
            results.append(
                {
                    "market": f"{market} x{PRICE_FACTOR} ({rows} rows)",
                    "weight": weight,
                    "recent_mae": recent,
                    "holdout_mae": holdout,
                    "recent_change": recent / baseline[0] - 1,
                    "holdout_change": holdout / baseline[1] - 1,
                }
            )
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="1,2,3,5,10,20")
    parser.add_argument("--seeds", type=int, default=2)
    args = parser.parse_args(argv)
    weights = [float(w) for w in args.weights.split(",")]
    print("| market | weight | MAE newest rows | vs weight 1 | MAE unseen holdout | vs weight 1 |")
    print("|---|---:|---:|---:|---:|---:|")
    for row in study(weights, args.seeds):
        print(
            f"| {row['market']} | {row['weight']:g} | {row['recent_mae']:.4f} | {row['recent_change']:+.1%}"
            f" | {row['holdout_mae']:.4f} | {row['holdout_change']:+.1%} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
