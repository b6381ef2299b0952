"""The compiled form of a model version: its trees as a treelite checkpoint, served instead of the pipeline.

scikit-learn's ``predict`` walks the 150 trees in Python-level loops: ~650-940 µs for one row of the
150-tree model on 2 cores. treelite imports the same trees and stores them as a checkpoint, which
:mod:`services.common.tree_walk` evaluates natively: ~5 µs for one row, the same outputs to 1e-14 on
the whole holdout (treelite's own evaluator, GTIL, took ~25 µs). The trainer stores the checkpoint as
an artifact of the version's run (``compiled/model.tl``) and tags the version ``compiled.runtime``;
the gate refuses a version whose compiled predictions differ from its pipeline's on the holdout by more
than :data:`PARITY_TOLERANCE`; the server serves the compiled form when the tag is there, and the
pipeline otherwise (versions registered before this, or models that are not a single tree ensemble).

The trees of a pipeline that derives features (:mod:`services.common.derived_features`, the rotated
coordinates) are compiled alone: the checkpoint's treelite ``attributes`` name the transform and its
angles, and :meth:`CompiledModel.predict` computes the same columns from the eight raw features on its
way into the trees. A checkpoint without them (every version trained before the transform) means
none: its trees read the eight raw features, as they always did.

Usage::

    compiled = compile_pipeline(pipeline)          # CannotCompile when it is not one tree ensemble we walk
    save(compiled, folder / "model.tl")
    model = load(folder / "model.tl")              # .predict(x) -> one price per row
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from services.common.derived_features import coefficients_from, step_attributes
from services.common.tree_walk import NotWalkable, flatten

COMPILED_ARTIFACT = "compiled/model.tl"
TAG_COMPILED = "compiled.runtime"
PARITY_TOLERANCE = 1e-6
RUNTIME_COMPILED = "treelite"
RUNTIME_PIPELINE = "scikit-learn"


class CannotCompile(ValueError):
    """The model is not a pipeline around one tree ensemble treelite can import."""


class CompiledModel:
    """A treelite model with the pipeline's ``predict`` contract: a matrix in, one price per row out.

    The checkpoint's trees are walked natively (:mod:`services.common.tree_walk`), the rotated
    coordinates computed on the way when ``rotation`` gives their (longitude, latitude) factors; None
    when the trees read the raw features alone.

    Raises:
        NotWalkable: the checkpoint holds trees the native walk does not evaluate.
    """

    def __init__(
        self,
        model: Any,
        rotation: tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]] | None = None,
    ) -> None:
        self._trees = flatten(model)
        self._rotation = rotation
        self._of_longitude, self._of_latitude = rotation if rotation is not None else (_NONE, _NONE)
        self._raw_width = self._trees.width - len(self._of_longitude)
        self._trees.predict(np.zeros((1, self._raw_width)), self._of_longitude, self._of_latitude)  # compiles

    @property
    def derives_features(self) -> bool:
        return self._rotation is not None

    def predict(self, x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        x = np.ascontiguousarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self._raw_width:  # the native walk reads what it is told to
            width = self._raw_width
            what = f"the {width} raw features" if self.derives_features else f"{width} numbers"
            raise ValueError(f"the compiled trees read rows of {what}, got shape {x.shape}")
        return self._trees.predict(x, self._of_longitude, self._of_latitude)


_NONE = np.empty(0, dtype=np.float64)


def runtime_label() -> str:
    """The value of the version tag: the runtime and its version."""
    import treelite

    return f"{RUNTIME_COMPILED} {treelite.__version__}"


def compile_pipeline(pipeline: Any) -> Any:
    """A treelite model of the pipeline's tree ensemble (a HistGradientBoosting or another), alone or
    after the derived-features step, whose name and angles the model's ``attributes`` then record.

    Raises:
        CannotCompile: the pipeline has other steps, treelite cannot import its estimator, or the native
            walk cannot evaluate its trees.
    """
    import treelite.sklearn

    steps = list(getattr(pipeline, "steps", None) or [(None, pipeline)])
    transform = step_attributes(steps[0][1]) if len(steps) == 2 else None
    if len(steps) != 1 and transform is None:
        raise CannotCompile(
            f"a pipeline of {len(steps)} steps: only a tree ensemble, alone or after the derived-features"
            " step, is compiled"
        )
    estimator = steps[-1][1]
    try:
        model = treelite.sklearn.import_model(estimator)
    except Exception as error:  # treelite raises plain exceptions for unsupported estimators
        raise CannotCompile(f"treelite cannot import {type(estimator).__name__}: {error}") from error
    try:
        flatten(model)
    except NotWalkable as error:
        raise CannotCompile(f"{type(estimator).__name__}: {error}") from error
    if transform is not None:
        model.get_header_accessor().set_field("attributes", json.dumps({**model.attributes, **transform}))
    return model


def save(model: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    model.serialize(str(path))
    return path


def load(path: Path) -> CompiledModel:
    import treelite

    model = treelite.Model.deserialize(str(path))
    # UnknownTransform (a ValueError) when the checkpoint names a transform this build does not have.
    return CompiledModel(model, coefficients_from(model.attributes))


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
