"""The compiled form of a model version: its trees as a treelite checkpoint, served instead of the pipeline.

scikit-learn's ``predict`` walks the 150 trees in Python-level loops: ~650-940 µs for one row of the
150-tree model on 2 cores. treelite's GTIL evaluates the same trees natively: ~50-140 µs for one row,
the same outputs to 1e-14 on the whole holdout. The trainer stores the checkpoint as an artifact of the
version's run (``compiled/model.tl``) and tags the version ``compiled.runtime``; the gate refuses a
version whose compiled predictions differ from its pipeline's on the holdout by more than
:data:`PARITY_TOLERANCE`; the server serves the compiled form when the tag is there, and the pipeline
otherwise (versions registered before this, or models that are not a single tree ensemble).

Usage::

    compiled = compile_pipeline(pipeline)          # CannotCompile when it is not one tree ensemble
    save(compiled, folder / "model.tl")
    model = load(folder / "model.tl")              # .predict(x) -> one price per row
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

COMPILED_ARTIFACT = "compiled/model.tl"
TAG_COMPILED = "compiled.runtime"
PARITY_TOLERANCE = 1e-6
RUNTIME_COMPILED = "treelite"
RUNTIME_PIPELINE = "scikit-learn"


class CannotCompile(ValueError):
    """The model is not a pipeline around one tree ensemble treelite can import."""


class CompiledModel:
    """A treelite model with the pipeline's ``predict`` contract: a matrix in, one price per row out."""

    def __init__(self, model: Any) -> None:
        self._model = model

    def predict(self, x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        import treelite.gtil

        # One thread: the server has its own threads, and GTIL's pool would fight them for 2 cores.
        return np.asarray(treelite.gtil.predict(self._model, x, nthread=1), dtype=np.float64).reshape(-1)


def runtime_label() -> str:
    """The value of the version tag: the runtime and its version."""
    import treelite

    return f"{RUNTIME_COMPILED} {treelite.__version__}"


def compile_pipeline(pipeline: Any) -> Any:
    """A treelite model of the pipeline's only step (a HistGradientBoosting or other tree ensemble).

    Raises:
        CannotCompile: the pipeline has other steps, or treelite cannot import its estimator.
    """
    import treelite.sklearn

    steps = getattr(pipeline, "steps", None)
    if steps is not None and len(steps) != 1:
        raise CannotCompile(f"a pipeline of {len(steps)} steps: only a lone tree ensemble is compiled")
    estimator = steps[0][1] if steps is not None else pipeline
    try:
        return treelite.sklearn.import_model(estimator)
    except Exception as error:  # treelite raises plain exceptions for unsupported estimators
        raise CannotCompile(f"treelite cannot import {type(estimator).__name__}: {error}") from error


def save(model: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    model.serialize(str(path))
    return path


def load(path: Path) -> CompiledModel:
    import treelite

    return CompiledModel(treelite.Model.deserialize(str(path)))


def load_from_run(client: Any, run_id: str) -> CompiledModel:
    """Download and load the compiled trees logged in ``run_id`` (an MlflowClient; errors propagate)."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        return load(Path(client.download_artifacts(run_id, COMPILED_ARTIFACT, folder)))


def max_abs_difference(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> float:
    """The largest absolute difference between two prediction vectors (inf when shapes differ)."""
    a, b = np.asarray(a, dtype=np.float64).reshape(-1), np.asarray(b, dtype=np.float64).reshape(-1)
    if a.shape != b.shape:
        return float("inf")
    return float(np.max(np.abs(a - b))) if len(a) else 0.0
