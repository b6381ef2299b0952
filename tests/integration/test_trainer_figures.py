"""`housing train` with too few labelled production rows to define every figure: a clean run, nulls stored.

The real console script against a real embedded Postgres and a real MLflow store holding v1 as champion.
In the table all labelled rows are kept for the gate (TRAIN_RECENT_HOLDOUT_FRACTION=0.99) and one row is
enough for them to decide (GATE_MIN_RECENT_ROWS=1), so only an undefined figure can stop them deciding.
The last case is the reported one, with the default settings: two rows of one price, one kept for the gate.
The champion is first replaced (forced) by a refit on fewer base rows, so that a candidate trained on the
base rows alone is no twin of it: the figures decide, not the twin rule.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from sklearn.pipeline import Pipeline

from services.common.database import connect
from services.common.dataset import Dataset
from services.common.finite import NON_FINITE
from services.trainer.lifecycle import force_promote
from services.trainer.model import fit_model
from tests.conftest import Registry
from tests.integration.test_trainer import insert_labelled, register
from tests.integration.test_trainer_cli import env, housing  # noqa: F401 (env is a fixture)

ONE_PRICE = "fewer than two distinct true prices"


def strict_json(text: str) -> Any:
    """JSON as the standard defines it: NaN and Infinity are refused."""

    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} in JSON")

    return json.loads(text, parse_constant=refuse)


TABLE = {"TRAIN_RECENT_HOLDOUT_FRACTION": "0.99", "GATE_MIN_RECENT_ROWS": "1"}


@pytest.fixture(scope="module")
def other_champion(dataset: Dataset) -> Pipeline:
    return fit_model(dataset.x_train[:-500], dataset.y_train[:-500])


@pytest.mark.parametrize(
    ("settings", "prices", "gate_rows", "undefined", "reason"),
    [
        pytest.param(TABLE, [], 0, {"mae", "r2", "rmse"}, "only 0 recent labelled rows (< 1)", id="no rows"),
        pytest.param(
            TABLE, [2.0], 1, {"r2"}, f"the candidate's recent R² is undefined ({ONE_PRICE} (1 rows", id="one"
        ),
        pytest.param(
            TABLE,
            [2.0, 2.0],
            2,
            {"r2"},
            f"the champion's recent R² is undefined ({ONE_PRICE} (2 rows",
            id="two equal",
        ),
        pytest.param(
            TABLE, [1.0, 3.0], 2, set(), "recent, 2 rows: candidate - champion MAE", id="two different"
        ),
        pytest.param(
            {},
            [2.0, 2.0],
            1,
            {"r2"},
            "only 1 recent labelled rows (< 200); the candidate's recent R²",
            id="reported",
        ),
    ],
)
def test_train_records_undefined_figures_as_null_with_the_reason(
    env: dict[str, str],  # noqa: F811 (the fixture)
    champion_registry: Registry,
    database_url: str,
    dataset: Dataset,
    settings: dict[str, str],
    prices: list[float],
    gate_rows: int,
    undefined: set[str],
    reason: str,
    other_champion: Pipeline,
) -> None:
    force_promote(
        champion_registry.client,
        database_url,
        register(
            champion_registry, dataset, other_champion, (dataset.x_train[:-500], dataset.y_train[:-500])
        ),
        actor="test",
        reason="a champion the candidate is no twin of",
    )
    if prices:
        x = dataset.x_holdout[: len(prices)]
        insert_labelled(database_url, x, np.array(prices), datetime.now(UTC) - timedelta(hours=2))
    result = housing("train", "--json", env={**env, **settings}, timeout=300)

    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    summary = strict_json(result.stdout)
    assert summary["labelled_gate_rows"] == gate_rows
    assert ("recent_mae" in summary["metrics"]) == bool(gate_rows)
    assert summary["undefined"] == ({} if gate_rows else {"recent_mae": "no rows"})

    with connect(database_url) as conn:
        rows = conn.execute(
            "SELECT event, figures::text, reasons FROM model_events WHERE event <> 'forced' ORDER BY id"
        ).fetchall()
    assert len(rows) == 2 and rows[0][0] == "registered"
    event, text, reasons = rows[1]
    assert event in {"promoted", "rejected"}
    figures = strict_json(text)
    assert NON_FINITE not in figures and NON_FINITE not in summary  # every producer said "undefined" itself
    assert figures["passed"] == (event == "promoted")
    if undefined:
        # the holdout decides, and says why the recent rows could not
        assert any(reason in r and "the reference holdout decides" in r for r in reasons), reasons
    else:
        assert any(r.startswith(reason) for r in reasons), reasons
    for model in ("candidate", "champion"):
        recent = figures[model]["recent"]
        assert recent["rows"] == gate_rows
        assert {name for name in ("mae", "r2", "rmse") if recent[name] is None} == undefined
        assert set(recent["undefined"]) == undefined
        assert all(ONE_PRICE in why or why == "no rows" for why in recent["undefined"].values())

    # MLflow: an undefined figure is a tag with its reason, never a metric.
    client = champion_registry.client
    run = client.get_run(summary["run_id"])
    assert all(np.isfinite(value) for value in run.data.metrics.values())
    if gate_rows:
        assert "recent_mae" in run.data.metrics and "recent_mae.undefined" not in run.data.tags
    else:
        assert "recent_mae" not in run.data.metrics and run.data.tags["recent_mae.undefined"] == "no rows"
