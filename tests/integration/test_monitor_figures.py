"""What the monitor stores is finite or null, against a real Postgres."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from benchmarks.monitor_data import insert_predictions
from services.common.dataset import Dataset
from services.common.finite import NON_FINITE
from services.common.vocabulary import RunStatus
from services.monitor.live_error import live_error
from services.monitor.report import insert_report

FIGURES = {"psi": {"MedInc": math.nan, "HouseAge": 0.1}, "drift_share": math.inf, "live_mae": 0.3}


def test_a_report_with_a_nan_stores_null_and_says_so(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with psycopg.connect(database_url) as conn:
        details = {"rows": 3, "rollback_check": {"previous_live_mae": math.nan}}
        report = insert_report(conn, status=RunStatus.OK, details=details, **FIGURES)  # type: ignore[arg-type]
        psi, share, mae, details = conn.execute(
            "SELECT psi, drift_share, live_mae, details FROM drift_reports WHERE id = %s", (report,)
        ).fetchone()
    assert psi == {"MedInc": None, "HouseAge": 0.1}
    assert share is None and mae == 0.3
    assert details["rows"] == 3 and details["rollback_check"] == {"previous_live_mae": None}
    assert set(details[NON_FINITE]) == {
        "psi.MedInc",
        "drift_share",
        "details.rollback_check.previous_live_mae",
    }
    assert "drift_reports: psi.MedInc=nan, drift_share=inf" in caplog.text


def test_live_mae_of_nothing_or_of_a_nan_price_is_none(database_url: str, dataset: Dataset) -> None:
    now = datetime.now(UTC)
    start = now - timedelta(hours=1)
    with psycopg.connect(database_url) as conn:
        assert live_error(conn, 1, start, now).mae is None
        x = dataset.x_holdout[:3]
        insert_predictions(conn, x, start=start, spacing=timedelta(seconds=1), actual=[1.0, 2.0, 3.0])
        assert live_error(conn, 1, start, now).mae == pytest.approx(2.0)
        insert_predictions(
            conn, x, start=start, spacing=timedelta(seconds=1), predictions=[math.nan] * 3, actual=[1.0] * 3
        )
        nan = live_error(conn, 1, start, now)
    assert nan.rows == 6 and nan.mae is None
