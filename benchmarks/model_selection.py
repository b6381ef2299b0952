"""Choosing the model's features and hyper-parameters by cross-validation on the training part only.

    python -m benchmarks.model_selection [--folds 5] [--repeats 7]

Every candidate (raw or derived features × learning rate × trees × leaves, no larger than the ensemble
served before: 150 trees of 63 leaves) is scored by K-fold cross-validation (shuffled, seed 0) on the
80 % training part of the standard split; the reference holdout, which gates every candidate, plays no
part in the choice. The rule (:func:`choose`): the lowest mean out-of-fold MAE. Then, for the model
served before and the chosen one only, fitted on the whole training part: R² and MAE on the holdout (as
``housing train`` reports them), the fit's time, and the compiled trees' predict time for 1 / 16 / 64
rows with the transform included (best of ``--repeats``, one thread, the two models timed alternately
in this same run so that a busy machine slows both alike).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

# The ensemble served before the derived features: the baseline of every ratio printed here.
BEFORE: dict[str, Any] = {
    "derive": False,
    "params": {"max_iter": 150, "learning_rate": 0.2, "max_leaf_nodes": 63, "l2_regularization": 1.0},
}
FIXED = {"early_stopping": False, "random_state": 0}
LEARNING_RATES = (0.1, 0.15, 0.2)
SIZES = ((150, 63), (120, 63), (150, 31))  # (trees, leaves): none larger than BEFORE
BATCHES = (1, 16, 64)


@dataclass(frozen=True)
class Candidate:
    derive: bool
    params: dict[str, Any]

    @property
    def label(self) -> str:
        p = self.params
        features = "8 raw + 10 rotated" if self.derive else "8 raw"
        return (
            f"{features}, {p['max_iter']} trees of {p['max_leaf_nodes']} leaves, lr {p['learning_rate']:g},"
            f" l2 {p['l2_regularization']:g}"
        )


@dataclass(frozen=True)
class Scored:
    candidate: Candidate
    mae: float  # mean over the folds
    mae_sd: float
    r2: float
    seconds: float


def candidates() -> list[Candidate]:
    grid = [
        Candidate(derive, {"max_iter": trees, "learning_rate": lr, "max_leaf_nodes": leaves, "l2_regularization": 1.0})
        for derive in (False, True)
        for lr in LEARNING_RATES
        for trees, leaves in SIZES
    ]
    return grid


def choose(scored: Sequence[Scored]) -> Scored:
    """The candidate with the lowest mean out-of-fold MAE (ties: the first, i.e. the smaller grid entry)."""
    if not scored:
        raise ValueError("no candidates scored: nothing to choose from")
    return min(scored, key=lambda s: s.mae)


def _fit(candidate: Candidate, x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]) -> Any:
    from services.trainer.model import build_model, fit_model

    return fit_model(x, y, model=build_model({**candidate.params, **FIXED}, derive=candidate.derive))


def cross_validate(
    candidate: Candidate, x: npt.NDArray[np.float64], y: npt.NDArray[np.float64], folds: int
) -> Scored:
    from sklearn.metrics import mean_absolute_error, r2_score
    from sklearn.model_selection import KFold

    maes, r2s = [], []
    started = time.perf_counter()
    for train, valid in KFold(folds, shuffle=True, random_state=0).split(x):
        predicted = _fit(candidate, x[train], y[train]).predict(x[valid])
        maes.append(mean_absolute_error(y[valid], predicted))
        r2s.append(r2_score(y[valid], predicted))
    return Scored(
        candidate, float(np.mean(maes)), float(np.std(maes)), float(np.mean(r2s)), time.perf_counter() - started
    )


def compiled_costs(models: Sequence[Any], rows: npt.NDArray[np.float64], repeats: int) -> list[dict[int, float]]:
    """µs per predict call of each compiled model, per batch size: best of ``repeats``, models alternating."""
    best: list[dict[int, float]] = [dict.fromkeys(BATCHES, float("inf")) for _ in models]
    for size in BATCHES:
        batch = np.ascontiguousarray(rows[:size])
        calls = max(20, 2000 // size)
        for _ in range(repeats):
            for i, model in enumerate(models):
                started = time.perf_counter()
                for _ in range(calls):
                    model.predict(batch)
                best[i][size] = min(best[i][size], (time.perf_counter() - started) / calls * 1e6)
    return best


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)

    import tempfile
    from pathlib import Path

    from sklearn.metrics import mean_absolute_error, r2_score

    from services.common import compiled
    from services.common.dataset import load_dataset

    dataset = load_dataset()
    x, y = dataset.x_train, dataset.y_train
    print(f"{args.folds}-fold cross-validation on the training part ({len(y)} rows); MAE in 100k USD\n")
    print("| features, trees, learning rate | CV MAE (± sd over folds) | CV R² | seconds |")
    print("| --- | --- | --- | --- |")
    scored = []
    for candidate in candidates():
        result = cross_validate(candidate, x, y, args.folds)
        scored.append(result)
        print(
            f"| {candidate.label} | {result.mae:.4f} ± {result.mae_sd:.4f} | {result.r2:.4f} |"
            f" {result.seconds:.1f} |",
            flush=True,
        )
    chosen = choose(scored)
    print(f"\nchosen (lowest CV MAE): {chosen.candidate.label}\n")

    before = Candidate(BEFORE["derive"], BEFORE["params"])
    rows = []
    models = []
    for label, candidate in (("before", before), ("chosen", chosen.candidate)):
        started = time.perf_counter()
        pipeline = _fit(candidate, x, y)
        fit_seconds = time.perf_counter() - started
        predicted = pipeline.predict(dataset.x_holdout)
        with tempfile.TemporaryDirectory() as folder:
            model = compiled.load(compiled.save(compiled.compile_pipeline(pipeline), Path(folder) / "model.tl"))
        parity = compiled.max_abs_difference(model.predict(dataset.x_holdout), predicted)
        models.append(model)
        rows.append(
            (label, candidate, r2_score(dataset.y_holdout, predicted), mean_absolute_error(dataset.y_holdout, predicted), fit_seconds, parity)
        )
    costs = compiled_costs(models, dataset.x_holdout, args.repeats)
    print("Standard split (holdout: reported, never used to choose); compiled predict µs, best of", args.repeats)
    print("\n| model | R² | MAE | fit (s, one thread) | compiled − pipeline | predict µs 1 / 16 / 64 |")
    print("| --- | --- | --- | --- | --- | --- |")
    for (label, candidate, r2, mae, fit_seconds, parity), cost in zip(rows, costs, strict=True):
        shown = " / ".join(f"{cost[size]:.0f}" for size in BATCHES)
        print(f"| {label}: {candidate.label} | {r2:.4f} | {mae:.4f} | {fit_seconds:.2f} | {parity:.1e} | {shown} |")
    ratios = " / ".join(f"{costs[1][size] / costs[0][size]:.2f}" for size in BATCHES)
    print(f"\nchosen ÷ before, compiled predict 1 / 16 / 64 rows: {ratios}")


if __name__ == "__main__":
    main()
