"""Figures are finite or absent where they are stored: the one guard at every storage edge.

Producers say when a figure is undefined (None, with the reason next to it). This guard catches a NaN or
an infinity that still reaches Postgres JSON or float columns, MLflow metrics or a printed summary:
Postgres refuses NaN in JSON, and a NaN in a float column or a metric compares false with every
threshold, so a check on it silently never fires.

The guard stores null, lists the path under ``non_finite`` with the reason, and logs an error naming
where the figure was, so a trainer or monitor run still records its decision; tests assert that no
stored document carries ``non_finite``, so a producer that regresses fails them.
"""

from __future__ import annotations

import json
import logging
import math
import numbers
from collections.abc import Mapping
from typing import Any

log = logging.getLogger(__name__)

NON_FINITE = "non_finite"  # the key that lists what the guard nulled, and why


def is_finite(value: object) -> bool:
    """False only for a real number (Python or numpy) that is NaN or infinite; True for anything else."""
    return not isinstance(value, numbers.Real) or math.isfinite(value)


def non_finite_paths(value: Any, path: str = "") -> dict[str, str]:
    """Every NaN or infinity in a JSON-like value: ``{"a.b[2]": "nan"}``; empty when all are finite."""
    if isinstance(value, Mapping):
        found: dict[str, str] = {}
        for key, item in value.items():
            found.update(non_finite_paths(item, f"{path}.{key}" if path else str(key)))
        return found
    if isinstance(value, list | tuple):
        found = {}
        for index, item in enumerate(value):
            found.update(non_finite_paths(item, f"{path}[{index}]"))
        return found
    if not is_finite(value):
        return {path or "value": repr(float(value))}
    return {}


def _nulled(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _nulled(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_nulled(item) for item in value]
    return None if not is_finite(value) else value


def finite_document(document: Mapping[str, Any], *, where: str) -> dict[str, Any]:
    """``document`` with every NaN/infinity as null and listed under ``non_finite``, logged as an error.

    ``where`` names the storage edge in the error and the log line (e.g. ``model_events.figures``).
    """
    found = non_finite_paths(document)
    if not found:
        return dict(document)
    listed = ", ".join(f"{path}={value}" for path, value in found.items())
    message = (
        f"non-finite figures reached {where}: {listed}; a producer must record them as null with a reason"
    )
    log.error(message)
    cleaned: dict[str, Any] = _nulled(document)
    cleaned[NON_FINITE] = {
        path: f"{value} is not a finite number: stored as null" for path, value in found.items()
    }
    return cleaned


def dumps_summary(document: Mapping[str, Any]) -> str:
    """A command's ``--json`` summary: null for an undefined figure, never NaN (allow_nan=False)."""
    return json.dumps(finite_document(document, where="the JSON summary"), indent=2, allow_nan=False)
