"""Reading an MLflow scoring request (``POST /invocations``) into the model's rows.

MLflow's scoring server takes a JSON object with exactly one of four keys; so does this one:

- ``dataframe_split``: ``{"columns": [...], "data": [[...], ...]}`` (``index`` is allowed and ignored),
  what ``pandas.DataFrame.to_dict(orient="split")`` and MLflow's own client send;
- ``dataframe_records``: ``[{"MedInc": ..., ...}, ...]``;
- ``instances``: rows as objects, or as lists of the eight values in the schema's order;
- ``inputs``: the same as ``instances``, or columns: ``{"MedInc": [...], ...}``.

Columns are matched by name, in any order, and every row is checked with the same rules as a row of
``POST /predict``; each problem names the row, the field and the rule.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from services.common.features import FEATURE_NAMES, row_problems
from services.inference.batcher import Matrix
from services.inference.bodies import MAX_PROBLEMS
from services.inference.errors import InvalidInput

FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
_ONE_OF = ", ".join(FORMATS)


def parse_invocations(payload: object, max_batch: int) -> Matrix:
    """The rows of an MLflow scoring request, 1 to ``max_batch`` of them, in schema order.

    Raises:
        InvalidInput: naming each field and the rule it breaks (at most MAX_PROBLEMS of them).
    """
    if not isinstance(payload, dict):
        raise InvalidInput(
            f"the body must be a JSON object with one of {_ONE_OF}",
            [f"body: must be an object, got {type(payload).__name__}"],
        )
    given = [key for key in FORMATS if key in payload]
    problems = [
        f"{key}: not allowed (the body holds one of {_ONE_OF})" for key in payload if key not in FORMATS
    ]
    if len(given) != 1:
        problems.append(f"body: must hold exactly one of {_ONE_OF}, got {len(given)}")
    if problems:
        raise InvalidInput("the scoring request is not valid: " + "; ".join(problems), problems)
    key = given[0]
    rows = _rows(key, payload[key], problems)
    if rows is not None and not 1 <= len(rows) <= max_batch:
        problems.append(f"{key}: must hold 1 to {max_batch} rows (PREDICT_MAX_BATCH), got {len(rows)}")
    if rows is not None and not problems:
        for index, row in enumerate(rows):
            problems.extend(f"{key}[{index}].{problem}" for problem in row_problems(row))
            if len(problems) >= MAX_PROBLEMS:
                break
    if problems or rows is None:
        problems = problems[:MAX_PROBLEMS]
        raise InvalidInput("the scoring request is not valid: " + "; ".join(problems), problems)
    return np.array([[row[name] for name in FEATURE_NAMES] for row in rows], dtype=np.float64)


def _rows(key: str, value: object, problems: list[str]) -> list[Mapping[str, object]] | None:
    """Each row as a mapping of column to value; None (with the problem added) when the shape is wrong."""
    if key == "dataframe_split":
        return _split(value, problems)
    if key == "inputs" and isinstance(value, dict):
        return _columns(value, problems)
    if not isinstance(value, list):
        problems.append(f"{key}: must be a list of rows, got {type(value).__name__}")
        return None
    rows: list[Mapping[str, object]] = []
    for index, row in enumerate(value):
        if isinstance(row, dict):
            rows.append(row)
        elif isinstance(row, list) and key != "dataframe_records":
            if len(row) != len(FEATURE_NAMES):
                problems.append(
                    f"{key}[{index}]: a row as a list must hold the {len(FEATURE_NAMES)} features in order "
                    f"({', '.join(FEATURE_NAMES)}), got {len(row)} values"
                )
            else:
                rows.append(dict(zip(FEATURE_NAMES, row, strict=True)))
        else:
            problems.append(f"{key}[{index}]: must be an object with the features, got {type(row).__name__}")
        if len(problems) >= MAX_PROBLEMS:
            break
    return None if problems else rows


def _split(value: object, problems: list[str]) -> list[Mapping[str, object]] | None:
    if not isinstance(value, dict):
        problems.append(
            f"dataframe_split: must be an object with columns and data, got {type(value).__name__}"
        )
        return None
    problems.extend(
        f"dataframe_split.{key}: not allowed (columns, data, index)"
        for key in value
        if key not in {"columns", "data", "index"}
    )
    columns, data = value.get("columns"), value.get("data")
    if not isinstance(columns, list) or not all(isinstance(column, str) for column in columns):
        problems.append("dataframe_split.columns: must be a list of column names")
    if not isinstance(data, list) or not all(isinstance(row, list) for row in data):
        problems.append("dataframe_split.data: must be a list of rows, each a list of values")
    if problems:
        return None
    assert isinstance(columns, list) and isinstance(data, list)
    for index, row in enumerate(data):
        if len(row) != len(columns):
            problems.append(f"dataframe_split.data[{index}]: must hold {len(columns)} values, got {len(row)}")
            if len(problems) >= MAX_PROBLEMS:
                break
    return None if problems else [dict(zip(columns, row, strict=True)) for row in data]


def _columns(value: dict[str, object], problems: list[str]) -> list[Mapping[str, object]] | None:
    lengths = {len(column) if isinstance(column, list) else -1 for column in value.values()}
    if -1 in lengths or len(lengths) > 1:
        problems.append("inputs: as columns, each value must be a list, all of one length")
        return None
    length = lengths.pop() if lengths else 0
    columns = {name: column for name, column in value.items() if isinstance(column, list)}
    return [{name: column[index] for name, column in columns.items()} for index in range(length)]
