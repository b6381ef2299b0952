"""Choosing the model's features and hyper-parameters by cross-validation on the training part only.

    python -m benchmarks.model_selection [--folds 5] [--repeats 7]

Every candidate (raw or derived features, learning rate, trees, leaves, no larger than the ensemble
served before: 150 trees of 63 leaves) is scored by K-fold cross-validation (shuffled, seed 0) on the
80 % training part of the standard split; the reference holdout, which gates every candidate, plays no
part in the choice. The rule (:func:`choose`): the lowest mean out-of-fold MAE. Then, for the model
served before and the chosen one only, fitted on the whole training part: R² and MAE on the holdout (as
``housing train`` reports them), the fit's time (best of 3), and the compiled trees' predict time for
1 / 16 / 64 rows with the transform included (best of ``--repeats``), one thread, the models timed
alternately in this same run so that a busy machine slows them alike. ``--measure-only`` skips the
cross-validation and measures the model as ``services/trainer/model.py`` builds it.
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
LEARNING_RATES = (0.05, 0.1, 0.15, 0.2)
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
    return [
        Candidate(
            derive,
            {"max_iter": trees, "learning_rate": lr, "max_leaf_nodes": leaves, "l2_regularization": 1.0},
        )
        for derive in (False, True)
        for lr in LEARNING_RATES
        for trees, leaves in SIZES
    ]


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
        candidate,
        float(np.mean(maes)),
        float(np.std(maes)),
        float(np.mean(r2s)),
        time.perf_counter() - started,
    )


def compiled_costs(
    models: Sequence[Any], rows: npt.NDArray[np.float64], repeats: int
) -> list[dict[int, float]]:
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


class BeforePath:
    """The compiled predict as it was before the derived features: ``treelite.gtil.predict`` per call."""

    def __init__(self, model: Any) -> None:
        self._model = model

    def predict(self, x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        import treelite.gtil

        return np.asarray(treelite.gtil.predict(self._model, x, nthread=1), dtype=np.float64).reshape(-1)


@dataclass(frozen=True)
class Measured:
    """A model fitted on the whole training part: its holdout figures, fit time and compiled trees."""

    label: str
    candidate: Candidate
    r2: float
    mae: float
    parity: float  # largest |compiled - pipeline| on the holdout
    compiled: Any
    before_path: BeforePath


def measure(label: str, candidate: Candidate, dataset: Any) -> Measured:
    import tempfile
    from pathlib import Path

    from sklearn.metrics import mean_absolute_error, r2_score

    from services.common import compiled

    pipeline = _fit(candidate, dataset.x_train, dataset.y_train)
    predicted = pipeline.predict(dataset.x_holdout)
    raw_trees = compiled.compile_pipeline(pipeline)
    with tempfile.TemporaryDirectory() as folder:
        trees = compiled.load(compiled.save(raw_trees, Path(folder) / "model.tl"))
    return Measured(
        label,
        candidate,
        float(r2_score(dataset.y_holdout, predicted)),
        float(mean_absolute_error(dataset.y_holdout, predicted)),
        compiled.max_abs_difference(trees.predict(dataset.x_holdout), predicted),
        trees,
        BeforePath(raw_trees),
    )


def current() -> Candidate:
    """The model as ``services/trainer/model.py`` builds it today."""
    from services.trainer.model import PARAMS

    return Candidate(True, {k: v for k, v in PARAMS.items() if k not in FIXED})


def select(x: npt.NDArray[np.float64], y: npt.NDArray[np.float64], folds: int) -> Candidate:
    """Cross-validate every candidate on (x, y), print the table, and return the choice."""
    print(f"{folds}-fold cross-validation on the training part ({len(y)} rows); MAE in 100k USD\n")
    print("| features, trees, learning rate | CV MAE (± sd over folds) | CV R² | seconds |")
    print("| --- | --- | --- | --- |")
    scored = []
    for candidate in candidates():
        result = cross_validate(candidate, x, y, folds)
        scored.append(result)
        print(
            f"| {candidate.label} | {result.mae:.4f} ± {result.mae_sd:.4f} | {result.r2:.4f} |"
            f" {result.seconds:.1f} |",
            flush=True,
        )
    chosen = choose(scored).candidate
    agrees = "agrees with" if chosen == current() else "DIFFERS from"
    print(f"\nchosen (lowest CV MAE): {chosen.label}; {agrees} services/trainer/model.py PARAMS\n")
    return chosen


def fit_seconds(
    candidates: Sequence[Candidate], x: npt.NDArray[np.float64], y: npt.NDArray[np.float64], repeats: int
) -> list[float]:
    """Seconds per fit of each candidate on (x, y), one thread: best of ``repeats``, alternating."""
    best = [float("inf")] * len(candidates)
    for _ in range(repeats):
        for i, candidate in enumerate(candidates):
            started = time.perf_counter()
            _fit(candidate, x, y)
            best[i] = min(best[i], time.perf_counter() - started)
    return best


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument(
        "--measure-only", action="store_true", help="skip the cross-validation: measure model.PARAMS"
    )
    args = parser.parse_args(argv)

    from services.common.dataset import load_dataset

    dataset = load_dataset()
    chosen = current() if args.measure_only else select(dataset.x_train, dataset.y_train, args.folds)
    before = measure("before", Candidate(BEFORE["derive"], BEFORE["params"]), dataset)
    after = measure("chosen", chosen, dataset)
    paths = {
        f"before: {before.candidate.label}, as served before (treelite.gtil.predict)": before.before_path,
        f"before: {before.candidate.label}, as served now (CompiledModel)": before.compiled,
        f"chosen: {after.candidate.label} (CompiledModel, rotation included)": after.compiled,
    }
    costs = compiled_costs(list(paths.values()), dataset.x_holdout, args.repeats)
    fits = fit_seconds([before.candidate, after.candidate], dataset.x_train, dataset.y_train, 3)
    print(f"Standard split (the holdout reports, it never chooses); compiled: best of {args.repeats}\n")
    print("| model | R² | MAE | fit (s, one thread, best of 3) | compiled vs pipeline |")
    print("| --- | --- | --- | --- | --- |")
    for m, fit in zip((before, after), fits, strict=True):
        print(f"| {m.label}: {m.candidate.label} | {m.r2:.4f} | {m.mae:.4f} | {fit:.2f} | {m.parity:.1e} |")
    print("\n| compiled predict | µs: 1 / 16 / 64 rows | ÷ the first row |")
    print("| --- | --- | --- |")
    for label, cost in zip(paths, costs, strict=True):
        shown = " / ".join(f"{cost[size]:.0f}" for size in BATCHES)
        ratios = " / ".join(f"{cost[size] / costs[0][size]:.2f}" for size in BATCHES)
        print(f"| {label} | {shown} | {ratios} |")


if __name__ == "__main__":
    main()
