"""The trees of a treelite checkpoint as flat arrays, walked by one native loop (numba).

treelite's GTIL interprets its own node records: ~10 µs a call plus ~16 µs a row for the 150 trees of 18
columns, which was a third of the event loop's busy time serving one-row ``/predict`` at 16 connections
(py-spy). The same trees as five flat arrays, walked by a loop numba compiles once per process, take
~5 µs for one row and ~4 µs a row in a batch, with the same outputs to 1e-14 on the whole data set
(``python -m benchmarks.model_selection`` prints both; the parity tests compare them row by row).

The loop also computes the rotated coordinates (:mod:`services.common.derived_features`) row by row,
with the same two roundings as :func:`~services.common.derived_features.rotate` (a product, then a
product added), so a row reaches the same leaves alone, in a batch, and in the pipeline.

What it walks: numerical ``<=`` splits with a default direction for NaN, one output per row, leaf
values summed (a forest's averaged) then the base score added: what treelite imports from
scikit-learn's tree ensembles. Anything else (categorical splits, other comparisons, transformed
outputs, vector leaves) is refused
with :class:`NotWalkable` when the checkpoint is flattened, never answered wrong.

Compiling the loop (first call in a process) takes ~0.4 s and importing numba ~0.25 s.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
import numpy.typing as npt

from services.common.derived_features import LATITUDE, LONGITUDE

# treelite's enums (include/treelite/enum/operator.h, tree_node_type.h): a node's comparison and kind.
_LESS_EQUAL = 3
_LEAF, _NUMERICAL = 0, 1


class NotWalkable(ValueError):
    """The checkpoint holds trees or outputs the native loop does not evaluate."""


@dataclass(frozen=True)
class FlatTrees:
    """Every tree's nodes, one after another; a child index is absolute (into these arrays).

    ``feature`` is -1 at a leaf; ``threshold``, ``left``, ``right`` and ``default_left`` (NaN's way)
    are read at a split, ``leaf_value`` at a leaf; ``roots`` holds each tree's first node.
    """

    feature: npt.NDArray[np.int32]
    threshold: npt.NDArray[np.float64]
    left: npt.NDArray[np.int32]
    right: npt.NDArray[np.int32]
    default_left: npt.NDArray[np.uint8]
    leaf_value: npt.NDArray[np.float64]
    roots: npt.NDArray[np.int32]
    base_score: float
    divisor: float
    width: int  # columns the trees read (the raw features, then any derived ones)

    def predict(
        self,
        x: npt.NDArray[np.float64],
        of_longitude: npt.NDArray[np.float64],
        of_latitude: npt.NDArray[np.float64],
    ) -> npt.NDArray[np.float64]:
        """One output per row of ``x`` (C-contiguous float64, ``width - len(of_longitude)`` columns),
        the rotated coordinates appended first when the factors are not empty."""
        out = np.empty(x.shape[0], dtype=np.float64)
        _walk(
            x,
            of_longitude,
            of_latitude,
            self.feature,
            self.threshold,
            self.left,
            self.right,
            self.default_left,
            self.leaf_value,
            self.roots,
            self.base_score,
            self.divisor,
            out,
        )
        return out


def flatten(model: Any) -> FlatTrees:
    """The trees of a treelite ``Model`` as :class:`FlatTrees`.

    Raises:
        NotWalkable: what the model holds is not numerical ``<=`` trees with one summed output.
    """
    header = model.get_header_accessor()
    postprocessor = header.get_field("postprocessor")
    if int(header.get_field("num_target")[0]) != 1 or list(header.get_field("leaf_vector_shape")) != [1, 1]:
        raise NotWalkable("the trees have more than one output")
    if postprocessor != "identity":
        raise NotWalkable(f"the trees' outputs are transformed ({postprocessor})")
    parts: dict[str, list[npt.NDArray[Any]]] = {key: [] for key in _FIELDS}
    roots, start = [], 0
    for index in range(model.num_tree):
        tree = model.get_tree_accessor(index)
        fields = {key: np.asarray(tree.get_field(key)) for key in _FIELDS}
        _check(index, fields)
        split = fields["node_type"] != _LEAF
        fields["split_index"] = np.where(split, fields["split_index"], -1)
        fields["cleft"] = np.where(split, fields["cleft"] + start, 0)
        fields["cright"] = np.where(split, fields["cright"] + start, 0)
        for key, value in fields.items():
            parts[key].append(value)
        roots.append(start)
        start += len(fields["node_type"])
    joined = {key: np.concatenate(values) for key, values in parts.items()}
    return FlatTrees(
        feature=joined["split_index"].astype(np.int32),
        threshold=joined["threshold"].astype(np.float64),
        left=joined["cleft"].astype(np.int32),
        right=joined["cright"].astype(np.int32),
        default_left=joined["default_left"].astype(np.uint8),
        leaf_value=joined["leaf_value"].astype(np.float64),
        roots=np.asarray(roots, dtype=np.int32),
        base_score=float(header.get_field("base_scores")[0]),
        # A forest averages its trees (GTIL divides the sum by their count); boosted trees add up.
        divisor=float(model.num_tree) if int(header.get_field("average_tree_output")[0]) else 1.0,
        width=int(model.num_feature),
    )


_FIELDS = ("node_type", "cmp", "split_index", "threshold", "cleft", "cright", "default_left", "leaf_value")


def _check(index: int, fields: dict[str, npt.NDArray[Any]]) -> None:
    kinds = fields["node_type"]
    split = kinds != _LEAF
    if np.any(kinds[split] != _NUMERICAL):
        raise NotWalkable(f"tree {index} has categorical splits")
    if np.any(fields["cmp"][split] != _LESS_EQUAL):
        raise NotWalkable(f"tree {index} has splits other than `<=`")
    if len(fields["leaf_value"]) != len(kinds):
        raise NotWalkable(f"tree {index} has vector leaves")


@numba.njit(nogil=True, cache=False)
def _walk(  # pragma: no cover - compiled; its outputs are compared with GTIL's and the pipeline's
    x: Any,
    of_longitude: Any,
    of_latitude: Any,
    feature: Any,
    threshold: Any,
    left: Any,
    right: Any,
    default_left: Any,
    leaf_value: Any,
    roots: Any,
    base_score: float,
    divisor: float,
    out: Any,
) -> None:
    raw = x.shape[1]
    row = np.empty(raw + of_longitude.shape[0], dtype=np.float64)
    for r in range(x.shape[0]):
        for c in range(raw):
            row[c] = x[r, c]
        for k in range(of_longitude.shape[0]):
            derived = x[r, LONGITUDE] * of_longitude[k]
            derived += x[r, LATITUDE] * of_latitude[k]
            row[raw + k] = derived
        total = 0.0
        for t in range(roots.shape[0]):
            node = roots[t]
            while feature[node] >= 0:
                value = row[feature[node]]
                if value <= threshold[node]:
                    node = left[node]
                elif value != value:  # NaN: the split's default way
                    node = left[node] if default_left[node] else right[node]
                else:
                    node = right[node]
            total += leaf_value[node]
        out[r] = total / divisor + base_score
