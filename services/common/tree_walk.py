"""The trees of a treelite checkpoint as flat node records, walked by one native loop (numba).

treelite's GTIL interprets its own node records: ~10 µs a call plus ~16 µs a row for the 150 trees of 18
columns, which was a third of the event loop's busy time serving one-row ``/predict`` at 16 connections
(py-spy). The same trees as 16-byte node records (:data:`NODE`), walked by a loop numba compiles once
per process, take ~5 µs for one row and ~4-5 µs a row in a batch, with the same outputs to 1e-14 on
the whole data set (``python -m benchmarks.model_selection`` times both; tests/unit/test_tree_walk.py
compares them on every row).

The loop also computes the rotated coordinates (:mod:`services.common.derived_features`) row by row,
with the same two roundings as :func:`~services.common.derived_features.rotate` (a product, then a
product added), so a row reaches the same leaves alone, in a batch, and in the pipeline.

What it walks: numerical ``<=`` splits with a default direction for NaN, one output per row, leaf
values summed (a forest's averaged) then the base score added: what treelite imports from
scikit-learn's tree ensembles. Anything else (categorical splits, other comparisons, transformed
outputs, vector leaves) is refused with :class:`NotWalkable` when the checkpoint is flattened, never
answered wrong.

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


# One node in 16 bytes, so a tree's path reads one cache line a level: the split's threshold or the
# leaf's value, the right child (the left one is the next node: the nodes are in depth-first order), the
# feature (-1 at a leaf) and NaN's way. Against five separate arrays and a row walked through every tree
# in turn, these records walked one tree at a time over the batch's rows cost ~25-30 % less (one row
# 7.7 -> 5.0 µs warm, 20.7 -> 15.0 µs after 4 MB of other work; 16 rows 121 -> 83 µs).
NODE = np.dtype(
    [("value", np.float64), ("right", np.int32), ("feature", np.int16), ("default_left", np.uint8)],
    align=True,
)


@dataclass(frozen=True)
class FlatTrees:
    """Every tree's nodes as :data:`NODE` records, one tree after another, each in depth-first order;
    ``roots`` holds each tree's first node."""

    nodes: npt.NDArray[np.void]
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
        out = np.zeros(x.shape[0], dtype=np.float64)
        _walk(x, of_longitude, of_latitude, self.nodes, self.roots, self.base_score, self.divisor, out)
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
    trees, roots, start = [], [], 0
    for index in range(model.num_tree):
        fields = {key: np.asarray(model.get_tree_accessor(index).get_field(key)) for key in _FIELDS}
        _check(index, fields)
        trees.append(_records(fields, start))
        roots.append(start)
        start += len(trees[-1])
    return FlatTrees(
        nodes=np.concatenate(trees),
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


def _records(fields: dict[str, npt.NDArray[Any]], start: int) -> npt.NDArray[np.void]:
    """One tree's nodes as :data:`NODE` records in depth-first order (left subtree first), numbered
    from ``start``."""
    split = fields["node_type"] != _LEAF
    order: list[int] = []  # treelite's node ids in depth-first order
    pending = [0]
    while pending:
        node = pending.pop()
        order.append(node)
        if split[node]:
            pending += [int(fields["cright"][node]), int(fields["cleft"][node])]
    position = np.empty(len(order), dtype=np.int64)
    position[order] = np.arange(len(order))
    ids = np.asarray(order)
    records = np.zeros(len(order), dtype=NODE)
    records["value"] = np.where(split[ids], fields["threshold"][ids], fields["leaf_value"][ids])
    records["right"] = np.where(split[ids], position[fields["cright"][ids]] + start, -1)
    records["feature"] = np.where(split[ids], fields["split_index"][ids], -1)
    records["default_left"] = fields["default_left"][ids]
    return records


@numba.njit(nogil=True, cache=False)
def _walk(  # pragma: no cover - compiled; its outputs are compared with GTIL's and the pipeline's
    x: Any,
    of_longitude: Any,
    of_latitude: Any,
    nodes: Any,
    roots: Any,
    base_score: float,
    divisor: float,
    out: Any,
) -> None:
    count, raw = x.shape
    rows = np.empty((count, raw + of_longitude.shape[0]), dtype=np.float64)
    for r in range(count):
        for c in range(raw):
            rows[r, c] = x[r, c]
        for k in range(of_longitude.shape[0]):
            derived = x[r, LONGITUDE] * of_longitude[k]
            derived += x[r, LATITUDE] * of_latitude[k]
            rows[r, raw + k] = derived
    for t in range(roots.shape[0]):  # one tree over every row: its nodes stay in cache
        for r in range(count):
            node = roots[t]
            while nodes[node].feature >= 0:
                value = rows[r, nodes[node].feature]
                nan = value != value  # NaN takes the split's default way
                left = nodes[node].default_left != 0 if nan else value <= nodes[node].value
                node = node + 1 if left else nodes[node].right
            out[r] += nodes[node].value
    for r in range(count):
        out[r] = out[r] / divisor + base_score
