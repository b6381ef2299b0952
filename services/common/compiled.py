"""The compiled form of a model version: its trees as a treelite checkpoint, served instead of the pipeline.

scikit-learn's ``predict`` walks the 150 trees in Python-level loops: ~650-940 µs for one row of the
150-tree model on 2 cores. treelite's GTIL evaluates the same trees natively: ~50-140 µs for one row,
the same outputs to 1e-14 on the whole holdout. The trainer stores the checkpoint as an artifact of the
version's run (``compiled/model.tl``) and tags the version ``compiled.runtime``; the gate refuses a
version whose compiled predictions differ from its pipeline's on the holdout by more than
:data:`PARITY_TOLERANCE`; the server serves the compiled form when the tag is there, and the pipeline
otherwise (versions registered before this, or models that are not a single tree ensemble).

The trees of a pipeline that derives features (:mod:`services.common.derived_features`, the rotated
coordinates) are compiled alone: the checkpoint's treelite ``attributes`` name the transform and its
angles, and :meth:`CompiledModel.predict` applies that same function to the eight raw features before
GTIL. A checkpoint without them (every version trained before the transform) means none: its trees read
the eight raw features, as they always did.

Usage::

    compiled = compile_pipeline(pipeline)          # CannotCompile when it is not one tree ensemble
    save(compiled, folder / "model.tl")
    model = load(folder / "model.tl")              # .predict(x) -> one price per row
"""

from __future__ import annotations

import ctypes
import json
import threading
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from services.common.derived_features import coefficients_from, rotate, step_attributes

COMPILED_ARTIFACT = "compiled/model.tl"
TAG_COMPILED = "compiled.runtime"
PARITY_TOLERANCE = 1e-6
# Most rows a predict takes through the thread's pinned buffers (the server's one-row requests and
# their micro-batches); larger matrices get buffers of their own per call.
PINNED_ROWS = 16
RUNTIME_COMPILED = "treelite"
RUNTIME_PIPELINE = "scikit-learn"


class CannotCompile(ValueError):
    """The model is not a pipeline around one tree ensemble treelite can import."""


class CompiledModel:
    """A treelite model with the pipeline's ``predict`` contract: a matrix in, one price per row out.

    ``rotation``: the (longitude, latitude) factors of the derived columns when the trees read the
    rotated coordinates after the raw features, None when they read the raw features alone.
    """

    def __init__(
        self,
        model: Any,
        rotation: tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]] | None = None,
    ) -> None:
        self._model = model
        self._rotation = rotation
        self._call = _OneThreadPredict.of(model)

    @property
    def derives_features(self) -> bool:
        return self._rotation is not None

    def predict(self, x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        if self._call is not None and x.ndim == 2 and x.shape[0] <= PINNED_ROWS:
            return self._call.pinned(x, self._rotation)
        if self._rotation is not None:
            x = rotate(x, *self._rotation)
        if self._call is not None:
            return self._call(x)
        import treelite.gtil

        # One thread: the server has its own threads, and GTIL's pool would fight them for 2 cores.
        return np.asarray(treelite.gtil.predict(self._model, x, nthread=1), dtype=np.float64).reshape(-1)


class _OneThreadPredict:
    """GTIL's C entry point (``TreeliteGTILPredict``, treelite's C API) for one-output float64 trees,
    with what ``treelite.gtil.predict`` redoes on every call done once: its configuration parsed (one
    thread), the model's types and output shape read. Measured with the 150 trees of 8 features, best of 7,
    alternating in one run (``python -m benchmarks.model_selection``, a loaded machine): 1 / 16 / 64 rows
    73 / 957 / 3,457 µs against 176 / 1,093 / 3,679 through ``treelite.gtil.predict``. It reaches two
    private Python names of treelite (``treelite.core._LIB``, ``treelite.gtil.gtil.GTILConfig``; the
    version is pinned below 5); the parity tests and the gate's parity check catch a change."""

    def __init__(self, model: Any, config: Any, width: int) -> None:
        from treelite.core import _LIB, _check_call

        self._handle = model.handle
        self._model = model  # keeps the handle alive
        self._config = config  # the same: its handle is freed with it
        self._width = width
        self._double = ctypes.POINTER(ctypes.c_double)
        self._float64 = ctypes.c_char_p(b"float64")
        self._rows = ctypes.c_uint64
        self._entry = _LIB.TreeliteGTILPredict
        self._check = _check_call
        self._pins = threading.local()  # per thread: rows -> (input, output, their pointers, rows)

    @classmethod
    def of(cls, model: Any) -> _OneThreadPredict | None:
        """The fast call for ``model``, or None (other input types, several outputs per row)."""
        from treelite.core import _LIB, _check_call
        from treelite.gtil.gtil import GTILConfig

        if model.input_type != "float64" or model.output_type != "float64":
            return None
        config = GTILConfig(nthread=1, predict_type="default")
        shape = ctypes.POINTER(ctypes.c_uint64)()
        ndim = ctypes.c_uint64()
        _check_call(
            _LIB.TreeliteGTILGetOutputShape(
                model.handle, ctypes.c_uint64(1), config.handle, ctypes.byref(shape), ctypes.byref(ndim)
            )
        )
        if int(np.prod(np.ctypeslib.as_array(shape, shape=(ndim.value,)))) != 1:
            return None
        return cls(model, config, int(model.num_feature))

    def pinned(
        self,
        x: npt.NDArray[np.float64],
        rotation: tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]] | None,
    ) -> npt.NDArray[np.float64]:
        """``__call__`` on ``x`` (rows of the raw features, rotated first when ``rotation``) through
        buffers this thread keeps per row count, their ctypes pointers made once.

        The pointers (``ndarray.ctypes``, ``data_as``) cost ~7.6 % and the rotation's allocation ~1 % of a
        one-row /predict served on the event loop (py-spy, in-process); the outputs are the same.
        """
        rows = x.shape[0]
        pins = self._pins.__dict__
        pin = pins.get(rows)
        if pin is None:
            source = np.empty((rows, self._width), dtype=np.float64)
            out = np.empty(rows, dtype=np.float64)
            pointers = (ctypes.c_void_p(source.ctypes.data), ctypes.c_void_p(out.ctypes.data))
            pin = pins[rows] = (source, out, *pointers, self._rows(rows))
        source, out, source_pointer, out_pointer, count = pin
        if rotation is not None:
            rotate(x, *rotation, out=source)
        elif x.shape[1] == self._width:
            source[:] = x
        else:
            raise ValueError(f"the compiled trees read rows of {self._width} numbers, got shape {x.shape}")
        out.fill(0.0)
        self._check(
            self._entry(self._handle, source_pointer, self._float64, count, out_pointer, self._config.handle)
        )
        return out.copy()

    def __call__(self, x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        x = np.ascontiguousarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self._width:
            raise ValueError(f"the compiled trees read rows of {self._width} numbers, got shape {x.shape}")
        out = np.zeros(x.shape[0], dtype=np.float64)
        self._check(
            self._entry(
                self._handle,
                x.ctypes.data_as(self._double),
                self._float64,
                self._rows(x.shape[0]),
                out.ctypes.data_as(self._double),
                self._config.handle,
            )
        )
        return out


def runtime_label() -> str:
    """The value of the version tag: the runtime and its version."""
    import treelite

    return f"{RUNTIME_COMPILED} {treelite.__version__}"


def compile_pipeline(pipeline: Any) -> Any:
    """A treelite model of the pipeline's tree ensemble (a HistGradientBoosting or another), alone or
    after the derived-features step, whose name and angles the model's ``attributes`` then record.

    Raises:
        CannotCompile: the pipeline has other steps, or treelite cannot import its estimator.
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
