"""The gate's evidence as the demo shows it: one line per paired comparison of a decision.

The gate records each comparison in ``model_events.figures["evidence"]`` as ``{comparison: figures}``
(rows, candidate - champion MAE ``difference`` with its 95 % bounds ``lower``/``upper``, ``margin``,
``mde``, ``passed``; in 100k USD). Older events have none, and a figure may be missing or null: this
shows what is there and never fails on what is not.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from services.common.features import TARGET_UNIT_USD


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _usd(value: float) -> str:
    return f"{value * TARGET_UNIT_USD / 1000:+.1f} k"


def describe_comparison(name: str, item: Mapping[str, Any]) -> str:
    """``recent: n=750, Δ MAE -5.2 k USD, 95 % [-7.9 k, -2.4 k], margin 1.4 k, MDE 4.3 k, shown``."""
    parts = [f"{item.get('comparison') or name}:"]
    rows = item.get("rows", item.get("n"))
    if isinstance(rows, int | float) and not isinstance(rows, bool):
        parts.append(f"n={int(rows)},")
    difference = _number(item.get("difference"))
    if difference is not None:
        parts.append(f"Δ MAE {_usd(difference)} USD,")
    lower, upper = _number(item.get("lower")), _number(item.get("upper"))
    if lower is not None or upper is not None:
        shown = (_usd(lower) if lower is not None else "…", _usd(upper) if upper is not None else "…")
        parts.append(f"95 % [{shown[0]}, {shown[1]}],")
    for key, label in (("margin", "margin"), ("mde", "MDE")):
        value = _number(item.get(key))
        if value is not None:
            parts.append(f"{label} {value * TARGET_UNIT_USD / 1000:.1f} k,")
    passed = item.get("passed")
    if isinstance(passed, bool):
        parts.append("shown" if passed else "not shown")
    return " ".join(parts).rstrip(",")


def describe_evidence(figures: Mapping[str, Any] | None) -> list[str]:
    """One line per comparison in ``figures["evidence"]``; [] when the event has none."""
    evidence = (figures or {}).get("evidence")
    if isinstance(evidence, Mapping):
        items = [(str(name), item) for name, item in evidence.items() if isinstance(item, Mapping)]
    elif isinstance(evidence, list):
        items = [(str(index), item) for index, item in enumerate(evidence) if isinstance(item, Mapping)]
    else:
        return []
    return [describe_comparison(name, item) for name, item in items]
