"""Whole monitor runs against a real Postgres, a real MLflow store and real HTTP alert receivers."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest

from benchmarks.monitor_data import insert_predictions
from services.common.dataset import Dataset
from services.common.estimate_band import TAG_ESTIMATE_BAND, EstimateBand
from services.common.progress import Stages
from services.common.registry import MODEL_NAME, TAG_DECISION, current_aliases
from services.common.vocabulary import (
    Action,
    AlertKind,
    GateDecision,
    ModelEvent,
    Plan,
    Role,
    RunStatus,
    Trigger,
)
from services.monitor.alerts import Channel, TelegramChannel, WebhookChannel
from services.monitor.launchers.local import LocalLauncher, read_lock, trainer_running
from services.monitor.run import MonitorParts, run_monitor
from services.monitor.settings import MonitorSettings
from tests.conftest import Registry, session_signer, signed


class Receiver:
    """A local HTTP server that records JSON POSTs; ``status`` and ``delay`` make it fail or hang."""

    def __init__(self, status: int = 200, delay: float = 0.0) -> None:
        self.posts: list[tuple[str, dict[str, Any]]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                receiver.posts.append((self.path, body))
                time.sleep(delay)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"ok": true}')

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receivers() -> Iterator[tuple[Receiver, Receiver]]:
    webhook, telegram = Receiver(), Receiver()
    yield webhook, telegram
    webhook.server.shutdown()
    telegram.server.shutdown()


def _settings(database_url: str, home: Path, **overrides: Any) -> MonitorSettings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "housing_home": home,
        "drift_min_rows": 500,
        "drift_sample_rows": 2000,
        "alert_timeout_seconds": 0.5,
        # These runs test launching itself; test_monitor_labels.py tests waiting for new labels.
        "retrain_min_new_labels": 0,
        **overrides,
    }
    return MonitorSettings(**values)


def _parts(
    settings: MonitorSettings, registry: Registry, channels: list[Channel], command: list[str] | None = None
) -> MonitorParts:
    command = command or [sys.executable, "-c", "import time; time.sleep(20)"]
    return MonitorParts(
        settings,
        settings.database_url.get_secret_value() if settings.database_url else "",
        registry.client,
        registry.experiment_id,
        lambda: LocalLauncher(settings.housing_home, command),
        channels,
        Stages(7, quiet=True),
    )


def _db_now(url: str) -> datetime:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT now()").fetchone()
        assert row is not None
        return row[0]


def _log(url: str, x: np.ndarray, start: datetime, **kwargs: Any) -> None:
    """Log predictions just after ``start``, all in the past by the time the monitor runs."""
    with psycopg.connect(url) as conn:
        insert_predictions(conn, x, start=start, spacing=timedelta(microseconds=50), **kwargs)
    time.sleep(max(0.0, (start + timedelta(microseconds=50) * len(x) - _db_now(url)).total_seconds()) + 0.05)


def _served(registry: Registry, x: np.ndarray, version: int = 1) -> np.ndarray:
    """The prices ``version`` serves for ``x``: what the server logs with each row."""
    import mlflow.sklearn

    model = mlflow.sklearn.load_model(
        registry.client.get_model_version_download_uri(MODEL_NAME, str(version))
    )
    return np.asarray(model.predict(x), dtype=np.float64)


def _stop_trainer(home: Path) -> None:
    lock = read_lock(home)
    if lock and trainer_running(home):
        os.killpg(lock["pid"], signal.SIGTERM)


def _shifted(dataset: Dataset) -> np.ndarray:
    x = dataset.x_holdout.copy()
    x[:, 0] *= 1.5
    return x


def _launches(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM drift_reports WHERE action = 'trainer_launched'").fetchone()
    assert row is not None
    return int(row[0])


def test_on_an_empty_registry_the_monitor_trains_v1_once_and_retries_a_failure_once_an_hour(
    database_url: str, registry: Registry, _champion_store: Path, tmp_path: Path, receivers: Any
) -> None:
    """The first-champion loop: empty registry → one launch; runs 2 to 10 while it trains → none; a
    failed trainer → one alert, no launch until ALERT_COOLDOWN_MINUTES after the last launch (the clock
    is moved by back-dating that row, not by waiting); a champion → the normal runs. The champion's
    arrival is the store overwritten by one whose v1 the real trainer registered and promoted (the
    session's champion store), so the test needs no second training. ~4 s."""
    webhook, _ = receivers
    settings = _settings(database_url, tmp_path)
    channels: list[Channel] = [WebhookChannel(webhook.url, 0.5)]
    parts = _parts(settings, registry, channels)
    try:
        first = run_monitor(parts)
        assert first.action == Action.TRAINER_LAUNCHED and first.plan == Plan.LAUNCH_TRAINER
        assert first.detail.startswith("no champion yet: training v1 (trainer started")
        for _ in range(2, 11):
            later = run_monitor(parts)
            assert later.action == Action.NONE and "training v1 (launched 0 min ago)" in later.detail
        assert _launches(database_url) == 1 and webhook.posts == []
    finally:
        _stop_trainer(tmp_path)
    _wait_trainer(tmp_path)

    failing = _parts(settings, registry, channels, [sys.executable, "-c", "import sys; sys.exit(3)"])
    with psycopg.connect(database_url) as conn:  # the trainer above was stopped: start the clock anew
        conn.execute("UPDATE drift_reports SET created_at = created_at - interval '61 minutes'")
    retried = run_monitor(failing)
    assert retried.action == Action.TRAINER_LAUNCHED and "retrying v1" in retried.detail
    _wait_trainer(tmp_path)
    for run in range(2, 11):
        waiting = run_monitor(failing)
        assert waiting.action == Action.NONE and "the v1 trainer failed" in waiting.detail
        assert "retried in 60 min" in waiting.detail
        assert waiting.alerted is (run == 2)
    assert _launches(database_url) == 2
    assert [body["kind"] for _, body in webhook.posts] == [AlertKind.TRAINER_FAILED]
    assert "no champion yet" in webhook.posts[0][1]["text"]

    with psycopg.connect(database_url) as conn:
        conn.execute("UPDATE drift_reports SET created_at = created_at - interval '61 minutes'")
    assert run_monitor(failing).action == Action.TRAINER_LAUNCHED
    _wait_trainer(tmp_path)

    # v1 is champion: the runs monitor it and launch nothing on an empty window.
    shutil.copy(_champion_store, registry.folder / "mlflow.db")
    for _ in range(2):
        summary = run_monitor(failing)
        assert summary.model_version == 1 and summary.action == Action.NONE
    assert _launches(database_url) == 3


def test_drift_launches_once_and_alerts_once_per_episode(
    database_url: str, champion_registry: Registry, dataset: Dataset, tmp_path: Path, receivers: Any
) -> None:
    webhook, telegram = receivers
    settings = _settings(database_url, tmp_path, alert_cooldown_minutes=0)
    channels: list[Channel] = [
        WebhookChannel(webhook.url, 0.5),
        TelegramChannel(telegram.url, "123:secret", "-1001", 0.5),
    ]
    parts = _parts(settings, champion_registry, channels)
    try:
        # too little data first: a report, no alert, no launch
        _log(database_url, dataset.x_holdout[:100], _db_now(database_url))
        assert run_monitor(parts).status == RunStatus.INSUFFICIENT_DATA

        _log(database_url, _shifted(dataset), _db_now(database_url))
        first = run_monitor(parts)
        assert first.status == RunStatus.DRIFT, first
        assert first.psi["MedInc"] >= 0.2 and first.action == Action.TRAINER_LAUNCHED and first.alerted
        assert first.report_path and Path(first.report_path).stat().st_size > 100_000
        with psycopg.connect(database_url) as conn:
            row = conn.execute(
                "SELECT status, action, alerted, report_path, rows, psi->>'MedInc',"
                " details->>'mlflow_run_id', details->'reasons', (SELECT count(*) FROM drift_reports)"
                " FROM drift_reports WHERE id = %s",
                (first.report_id,),
            ).fetchone()
        assert row is not None
        assert row[:5] == (RunStatus.DRIFT, Action.TRAINER_LAUNCHED, True, first.report_path, first.rows)
        assert row[7][0].startswith("PSI reached 0.2: MedInc") and row[8] == 2  # one row per run
        assert first.estimated_mae is not None and first.estimated_mae > 0  # the champion has an error model
        assert float(row[5]) == pytest.approx(first.psi["MedInc"])
        artifacts = champion_registry.client.list_artifacts(row[6], "monitor")
        assert [a.path for a in artifacts] == [f"monitor/drift-report-{first.report_id}.html"]

        # the same episode: the trainer still runs, and nobody is alerted twice
        _log(database_url, _shifted(dataset), _db_now(database_url))
        second = run_monitor(parts)
        assert (
            second.status == RunStatus.DRIFT
            and second.action == Action.TRAINER_ALREADY_RUNNING
            and not second.alerted
        )
        assert len(webhook.posts) == 1 and len(telegram.posts) == 1
        path, body = telegram.posts[0]
        assert path == "/bot123:secret/sendMessage" and body["chat_id"] == "-1001" and "drift" in body["text"]
        assert (
            webhook.posts[0][1]["kind"] == AlertKind.DRIFT
            and webhook.posts[0][1]["report"]["psi"]["MedInc"] >= 0.2
        )

        # the episode ends on a run without drift; the next drift is a new episode: one more alert
        _log(database_url, dataset.x_holdout, _db_now(database_url))
        assert run_monitor(parts).status == RunStatus.OK
        _log(database_url, _shifted(dataset), _db_now(database_url))
        assert run_monitor(parts).alerted
        assert len(webhook.posts) == 2 and len(telegram.posts) == 2
    finally:
        _stop_trainer(tmp_path)


def _wait_trainer(home: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while trainer_running(home):
        assert time.monotonic() < deadline, "the trainer did not finish"
        time.sleep(0.05)


def test_each_failed_trainer_is_alerted_once_recorded_and_does_not_block_the_next(
    database_url: str, champion_registry: Registry, dataset: Dataset, tmp_path: Path, receivers: Any
) -> None:
    webhook, _ = receivers
    settings = _settings(database_url, tmp_path, alert_cooldown_minutes=0)
    failing = [sys.executable, "-c", "import sys; sys.exit(3)"]
    parts = _parts(settings, champion_registry, [WebhookChannel(webhook.url, 0.5)], failing)

    _log(database_url, _shifted(dataset), _db_now(database_url))
    assert run_monitor(parts).action == Action.TRAINER_LAUNCHED
    _wait_trainer(tmp_path)

    # The next run sees the failure (too few new rows to judge drift): alerted and recorded.
    noticed = run_monitor(parts)
    assert noticed.status == RunStatus.INSUFFICIENT_DATA and noticed.alerted
    assert noticed.trainer is not None and noticed.trainer.failed and "exited 3" in noticed.trainer.reason
    assert Trigger.TRAINER_FAILED in noticed.triggers
    kinds = [body["kind"] for _, body in webhook.posts]
    assert kinds == [AlertKind.DRIFT, AlertKind.TRAINER_FAILED]
    assert "the last trainer failed" in webhook.posts[-1][1]["text"]
    assert webhook.posts[-1][1]["report"]["trainer"]["failed"] is True
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT details->'trainer', details->'triggers' FROM drift_reports WHERE id = %s",
            (noticed.report_id,),
        ).fetchone()
    assert row is not None and row[0]["failed"] is True and Trigger.TRAINER_FAILED in row[1]

    # The same failure again: no second alert.
    assert not run_monitor(parts).alerted
    assert len(webhook.posts) == 2

    # Drift again: the failed trainer does not block a new launch; its failure is a new alert.
    _log(database_url, _shifted(dataset), _db_now(database_url))
    assert run_monitor(parts).action == Action.TRAINER_LAUNCHED
    _wait_trainer(tmp_path)
    again = run_monitor(parts)
    assert again.alerted and [body["kind"] for _, body in webhook.posts][-1] == AlertKind.TRAINER_FAILED
    assert again.trainer is not None and noticed.trainer.trainer != again.trainer.trainer

    # A trainer that succeeds ends the episode.
    succeeding = [sys.executable, "-c", ""]
    parts = _parts(settings, champion_registry, [WebhookChannel(webhook.url, 0.5)], succeeding)
    _log(database_url, _shifted(dataset), _db_now(database_url))
    assert run_monitor(parts).action == Action.TRAINER_LAUNCHED
    _wait_trainer(tmp_path)
    fine = run_monitor(parts)
    assert (
        fine.trainer is not None and not fine.trainer.failed and Trigger.TRAINER_FAILED not in fine.triggers
    )


def _top_income(dataset: Dataset, share: float = 0.4) -> np.ndarray:
    """Real districts the model errs more on: the holdout's top ``share`` by income (in range, no labels)."""
    income = dataset.x_holdout[:, 0]
    return dataset.x_holdout[income >= np.quantile(income, 1 - share)]


def test_an_estimate_above_its_band_is_an_estimated_degradation_before_any_label(
    database_url: str, champion_registry: Registry, dataset: Dataset, tmp_path: Path, receivers: Any
) -> None:
    webhook, _ = receivers
    # Drift cannot fire here: only the label-free estimate can speak.
    quiet = {"psi_threshold": 100.0, "drift_share_threshold": 1.0}
    settings = _settings(database_url, tmp_path, **quiet)
    parts = _parts(settings, champion_registry, [WebhookChannel(webhook.url, 0.5)])
    band = EstimateBand.from_tag(
        champion_registry.client.get_model_version(MODEL_NAME, "1").tags[TAG_ESTIMATE_BAND]
    )
    try:
        top = _top_income(dataset, 0.2)  # the estimate ~0.358 against the band's upper edge ~0.330
        _log(database_url, top, _db_now(database_url), predictions=_served(champion_registry, top))
        summary = run_monitor(parts)
        assert summary.labelled_rows == 0 and summary.live_mae is None
        assert summary.estimated_mae is not None and summary.estimated_mae > band.upper
        assert summary.estimate_se is not None and 0 < summary.estimate_se < 0.02
        assert summary.triggers == [Trigger.ESTIMATED_DEGRADATION]
        assert (summary.status, summary.action) == (RunStatus.DEGRADED, Action.TRAINER_LAUNCHED)
        assert summary.details["estimate"]["band"] == band.as_dict()
        assert any(
            f"(SE {summary.estimate_se:.3f}) on {len(top)} rows without labels is above its band "
            f"[{band.lower:.3f}, {band.upper:.3f}]" in reason
            for reason in summary.details["reasons"]
        ), summary.details["reasons"]
        assert summary.alerted and webhook.posts[-1][1]["kind"] == AlertKind.ESTIMATED_DEGRADATION
        assert f"vs its band [{band.lower:.3f}, {band.upper:.3f}]" in webhook.posts[-1][1]["text"]
        with psycopg.connect(database_url) as conn:
            stored = conn.execute(
                "SELECT estimated_mae, details->'estimate'->>'standard_error' FROM drift_reports"
                " WHERE id = %s",
                (summary.report_id,),
            ).fetchone()
        assert stored is not None and stored[0] == pytest.approx(summary.estimated_mae)
        assert float(stored[1]) == pytest.approx(summary.estimate_se)
    finally:
        _stop_trainer(tmp_path)


def test_a_milder_mix_inside_the_band_is_no_degradation(
    database_url: str, champion_registry: Registry, dataset: Dataset, tmp_path: Path
) -> None:
    """Steady holdout rows: the estimate sits inside the band the trainer measured on their like."""
    settings = _settings(database_url, tmp_path, psi_threshold=100.0, drift_share_threshold=1.0)
    rows = dataset.x_holdout[:2000]
    _log(database_url, rows, _db_now(database_url), predictions=_served(champion_registry, rows))
    summary = run_monitor(_parts(settings, champion_registry, []))
    assert (summary.status, summary.triggers, summary.action) == (RunStatus.OK, [], Action.NONE)
    assert any("is within its band" in reason for reason in summary.details["reasons"])


def test_prices_that_moved_with_the_features_unchanged_are_a_concept_shift(
    database_url: str, champion_registry: Registry, dataset: Dataset, tmp_path: Path, receivers: Any
) -> None:
    """Labelled steady rows selling 25% above the data set: realized ÷ estimated ~1.9, flagged and alerted."""
    webhook, _ = receivers
    settings = _settings(
        database_url, tmp_path, psi_threshold=100.0, drift_share_threshold=1.0, live_mae_tolerance=10.0
    )
    parts = _parts(settings, champion_registry, [WebhookChannel(webhook.url, 0.5)])
    rows = dataset.x_holdout[:1000]
    served = _served(champion_registry, rows)
    _log(
        database_url, rows, _db_now(database_url), predictions=served, actual=dataset.y_holdout[:1000] * 1.25
    )
    summary = run_monitor(parts)
    concept = summary.details["concept"]
    assert concept["rows"] == 1000 and summary.realized_to_estimated == concept["realized_to_estimated"]
    assert concept["realized_mae"] == pytest.approx(summary.live_mae)
    assert 1.5 < concept["realized_to_estimated"] < 2.5 and concept["ratio_se"] < 0.1
    assert summary.triggers == [Trigger.CONCEPT_SHIFT] and summary.action == Action.NONE
    assert summary.as_dict()["realized_to_estimated"] == summary.realized_to_estimated
    assert webhook.posts[-1][1]["kind"] == AlertKind.CONCEPT_SHIFT
    assert "a concept shift" in webhook.posts[-1][1]["text"]
    # the same prices on the next run: the same episode, not alerted again
    _log(
        database_url, rows, _db_now(database_url), predictions=served, actual=dataset.y_holdout[:1000] * 1.25
    )
    again = run_monitor(parts)
    assert again.triggers == [Trigger.CONCEPT_SHIFT] and not again.alerted


def test_retrain_on_can_leave_the_estimate_to_alert_only(
    database_url: str, champion_registry: Registry, dataset: Dataset, tmp_path: Path
) -> None:
    """A champion registered before the band: the old rule (ESTIMATED_MAE_TOLERANCE), and it says so."""
    champion_registry.client.delete_model_version_tag(MODEL_NAME, "1", TAG_ESTIMATE_BAND)
    quiet = {"psi_threshold": 100.0, "drift_share_threshold": 1.0, "estimated_mae_tolerance": 0.05}
    settings = _settings(database_url, tmp_path, retrain_on="drift,live_degradation", **quiet)
    top = _top_income(dataset)
    _log(database_url, top, _db_now(database_url), predictions=_served(champion_registry, top))
    summary = run_monitor(_parts(settings, champion_registry, []))
    assert summary.triggers == [Trigger.ESTIMATED_DEGRADATION]
    assert (summary.status, summary.action) == (RunStatus.DEGRADED, Action.NONE)
    assert "estimated_degradation only alerts (RETRAIN_ON)" in summary.details["reasons"]
    assert any("no estimate band: the old rule" in reason for reason in summary.details["reasons"])
    assert summary.details["estimate"]["band"].startswith("no estimate band (registered before the band")


def _register_copy_of_v1(registry: Registry, folder: Path, *, without: str = "", source: str = "") -> int:
    """A new champion version made of v1's run (its metrics, and its artifacts but ``without``) with
    ``source`` as its model (v1's by default): what another trainer or an older one registered."""
    from mlflow.entities import Metric

    client = registry.client
    v1 = client.get_model_version(MODEL_NAME, "1")
    client.download_artifacts(v1.run_id, "", str(folder))
    if without:
        (folder / without).unlink()
    run = client.create_run(registry.experiment_id)
    logged = client.get_run(v1.run_id).data.metrics
    client.log_batch(run.info.run_id, metrics=[Metric(k, v, 0, 0) for k, v in logged.items()])
    client.log_artifacts(run.info.run_id, str(folder))
    client.set_terminated(run.info.run_id)
    version = signed(
        client, client.create_model_version(MODEL_NAME, source or str(v1.source), run.info.run_id).version
    )
    client.set_registered_model_alias(MODEL_NAME, Role.CHAMPION, str(version))
    return version


def test_the_estimate_reads_the_served_prices_and_the_compiled_error_model_not_the_models(
    database_url: str, champion_registry: Registry, dataset: Dataset, tmp_path: Path
) -> None:
    """The champion's model cannot be loaded at all (its source is an empty folder): the estimate
    needs only the prices logged with the rows and the compiled error model."""
    from services.common.error_model import CompiledErrorModel
    from services.monitor.champion import load_predictor, read_champion
    from services.monitor.summary import MonitorFailed

    x = dataset.x_holdout
    served = _served(champion_registry, x)
    (tmp_path / "no-model").mkdir()
    version = _register_copy_of_v1(
        champion_registry, tmp_path / "artifacts", source=(tmp_path / "no-model").as_uri()
    )
    parts = _parts(_settings(database_url, tmp_path), champion_registry, [])
    with pytest.raises(MonitorFailed, match=f"model version {version} refused: model/ is not in its signed"):
        load_predictor(parts.client, parts.trusted, version)
    _log(database_url, x, _db_now(database_url), predictions=served, model_version=version)
    champion = read_champion(parts.client, parts.trusted)
    assert champion is not None and isinstance(champion.error_model, CompiledErrorModel)
    summary = run_monitor(parts)
    assert summary.status == RunStatus.OK and summary.estimated_mae is not None
    assert summary.details["estimate"] == {
        "rows": 2000,
        "estimated_mae": summary.estimated_mae,
        "standard_error": summary.estimate_se,
        # a copy registered by hand, without the trainer's tag: the old rule, said
        "band": "no estimate band (registered before the band existed): the estimate is judged by"
        " ESTIMATED_MAE_TOLERANCE",
    }


def test_a_version_without_the_compiled_error_model_is_estimated_with_its_regressor(
    database_url: str, champion_registry: Registry, dataset: Dataset, tmp_path: Path
) -> None:
    """Versions registered before the compiled form: the pickled regressor, the same estimate, said."""
    from services.common.error_model import ErrorModel
    from services.common.registry import ERROR_MODEL_COMPILED_ARTIFACT
    from services.monitor.champion import read_champion

    x = dataset.x_holdout
    served = _served(champion_registry, x)
    parts = _parts(_settings(database_url, tmp_path), champion_registry, [])
    compiled_champion = read_champion(parts.client, parts.trusted)
    version = _register_copy_of_v1(
        champion_registry, tmp_path / "artifacts", without=ERROR_MODEL_COMPILED_ARTIFACT
    )
    champion = read_champion(parts.client, parts.trusted)
    note = (
        f"champion v{version} has no compiled error model (registered before it existed):"
        " estimating with its scikit-learn regressor"
    )
    assert champion is not None and champion.error_model_note == note
    assert isinstance(champion.error_model, ErrorModel)
    assert compiled_champion is not None and compiled_champion.error_model is not None
    expected = champion.error_model.estimate_mae(x, served)
    assert expected is not None
    assert compiled_champion.error_model.estimate_mae(x, served) == pytest.approx(expected, abs=1e-6)

    _log(database_url, x, _db_now(database_url), predictions=served, model_version=version)
    summary = run_monitor(parts)
    assert summary.estimated_mae is not None and summary.details["estimate"]["note"] == note


def test_a_champion_without_an_error_model_is_judged_without_an_estimate(
    database_url: str, champion_registry: Registry, dataset: Dataset, tmp_path: Path
) -> None:
    from services.trainer.lifecycle import force_promote
    from services.trainer.settings import TrainerSettings
    from services.trainer.train import run_training

    client = champion_registry.client
    older = run_training(
        client,
        champion_registry.experiment_id,
        database_url,
        dataset,
        TrainerSettings(error_model_folds=0),
        promote=False,
    )
    force_promote(client, database_url, older.version, actor="test", reason="a version from before")
    _log(database_url, dataset.x_holdout, _db_now(database_url), model_version=older.version)
    summary = run_monitor(_parts(_settings(database_url, tmp_path), champion_registry, []))
    assert summary.status == RunStatus.OK and summary.estimated_mae is None
    assert summary.details["estimate"] == (
        f"champion v{older.version} has no error model (registered before it existed): no estimate"
    )


def test_before_labels_a_champion_estimated_worse_than_its_predecessor_is_alerted_not_rolled_back(
    database_url: str, champion_registry: Registry, dataset: Dataset, tmp_path: Path, receivers: Any
) -> None:
    from datetime import UTC

    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import Pipeline

    from services.common.error_model import fit_error_model
    from services.common.profile import build_profile
    from services.trainer.lifecycle import force_promote
    from services.trainer.registration import TrainingRecord, register_candidate

    webhook, _ = receivers
    client = champion_registry.client
    x, y = dataset.x_train, dataset.y_train

    def linear(
        rows: np.ndarray, prices: np.ndarray, weights: np.ndarray | None
    ) -> Any:  # a weaker model than v1's
        model = Pipeline([("regressor", LinearRegression())]).fit(rows, prices)
        return lambda features: np.asarray(model.predict(features), dtype=np.float64)

    weak = Pipeline([("regressor", LinearRegression())]).fit(x, y)
    holdout_mae = float(np.mean(np.abs(weak.predict(dataset.x_holdout) - dataset.y_holdout)))
    record = TrainingRecord(
        model=weak,
        x_train=x,
        y_train=y,
        base_rows=len(y),
        labelled_rows=0,
        labelled_since=datetime.now(UTC),
        labelled_until=None,
        metrics={"holdout_mae": holdout_mae},
        profile=build_profile(x),
        error_model=fit_error_model(x, y, linear),
    )
    version, _ = register_candidate(client, champion_registry.experiment_id, record, session_signer())
    force_promote(client, database_url, version, actor="test", reason="a weaker model, no labels yet")
    rows = dataset.x_holdout[:1500]
    _log(database_url, rows, _db_now(database_url), model_version=version, predictions=weak.predict(rows))

    summary = run_monitor(
        _parts(_settings(database_url, tmp_path), champion_registry, [WebhookChannel(webhook.url, 0.5)])
    )
    assert summary.triggers == [Trigger.ESTIMATED_REGRESSION], summary.details["reasons"]
    assert (summary.status, summary.action) == (RunStatus.DEGRADED, Action.NONE)
    assert current_aliases(client)[Role.CHAMPION] == version  # an estimate never rolls back
    estimate = summary.details["rollback_estimate"]
    assert (
        estimate["previous"] == 1
        and estimate["champion_estimated_mae"] > 1.1 * estimate["previous_estimated_mae"]
    )
    assert summary.alerted and webhook.posts[-1][1]["kind"] == AlertKind.ESTIMATED_REGRESSION


def test_only_runs_that_find_something_fill_the_registry(
    database_url: str, champion_registry: Registry, dataset: Dataset, tmp_path: Path
) -> None:
    parts = _parts(_settings(database_url, tmp_path), champion_registry, [])
    try:
        _log(database_url, dataset.x_holdout, _db_now(database_url))
        first = run_monitor(parts)
        _log(database_url, dataset.x_holdout, _db_now(database_url))
        second = run_monitor(parts)
        assert (first.status, second.status) == ("ok", "ok")
        with psycopg.connect(database_url) as conn:
            logged = dict(
                conn.execute(
                    "SELECT id, details ? 'mlflow_run_id' FROM drift_reports WHERE id = ANY(%s)",
                    ([first.report_id, second.report_id],),
                ).fetchall()
            )
            note = conn.execute(
                "SELECT details->>'mlflow' FROM drift_reports WHERE id = %s", (second.report_id,)
            ).fetchone()
        # The first "ok" is logged with its HTML (none was yet); the second renders no Evidently report
        # at all (a drift is always rendered and logged: test_drift_launches_once_and_alerts_once_per_episode
        # finds its HTML in MLflow).
        assert logged == {first.report_id: True, second.report_id: False}
        assert first.report_path and Path(first.report_path).is_file()
        assert second.report_path is None
        assert note is not None and "no Evidently report this run" in note[0]
        assert second.drift_share == 0.0 and second.details["sample"]["tests"].startswith("numpy")
    finally:
        _stop_trainer(tmp_path)


def test_failing_or_hanging_alert_endpoints_do_not_fail_the_run(
    database_url: str, champion_registry: Registry, dataset: Dataset, tmp_path: Path
) -> None:
    broken, hanging = Receiver(status=500), Receiver(delay=3)
    settings = _settings(database_url, tmp_path)
    parts = _parts(
        settings, champion_registry, [WebhookChannel(broken.url, 0.5), WebhookChannel(hanging.url, 0.5)]
    )
    try:
        _log(database_url, _shifted(dataset), _db_now(database_url))
        started = time.monotonic()
        summary = run_monitor(parts)
        assert summary.status == RunStatus.DRIFT and not summary.alerted
        assert time.monotonic() - started < 30
        assert len(broken.posts) == 3  # retried
        with psycopg.connect(database_url) as conn:
            details = conn.execute(
                "SELECT details FROM drift_reports WHERE id = %s", (summary.report_id,)
            ).fetchone()
        assert details is not None and len(details[0]["alert"]["errors"]) == 2
    finally:
        _stop_trainer(tmp_path)
        broken.server.shutdown()
        hanging.server.shutdown()


def test_a_champion_worse_than_its_predecessor_is_rolled_back(
    database_url: str, champion_registry: Registry, dataset: Dataset, tmp_path: Path, receivers: Any
) -> None:
    from services.trainer.lifecycle import force_promote
    from services.trainer.settings import TrainerSettings
    from services.trainer.train import run_training

    webhook, _ = receivers
    client = champion_registry.client
    truth = dataset.y_holdout[:400]
    # v1 served well before the new version came in
    with psycopg.connect(database_url) as conn:
        insert_predictions(
            conn,
            dataset.x_holdout[:400],
            start=_db_now(database_url) - timedelta(minutes=30),
            spacing=timedelta(seconds=1),
            model_version=1,
            predictions=truth + 0.3,
            actual=truth,
        )
    summary = run_training(
        client, champion_registry.experiment_id, database_url, dataset, TrainerSettings(), promote=False
    )
    force_promote(client, database_url, summary.version, actor="test", reason="a deliberately bad model")
    assert current_aliases(client)[Role.CHAMPION] == summary.version
    # the new champion is far worse live
    _log(
        database_url,
        dataset.x_holdout[:300],
        _db_now(database_url),
        model_version=summary.version,
        predictions=dataset.y_holdout[:300] + 1.0,
        actual=dataset.y_holdout[:300],
    )

    settings = _settings(database_url, tmp_path)
    report = run_monitor(_parts(settings, champion_registry, [WebhookChannel(webhook.url, 0.5)]))
    assert report.action == Action.ROLLED_BACK, report
    assert report.status == RunStatus.DEGRADED and report.alerted
    assert current_aliases(client)[Role.CHAMPION] == 1
    with psycopg.connect(database_url) as conn:
        event = conn.execute(
            "SELECT model_version, previous_version, actor FROM model_events WHERE event = %s",
            (ModelEvent.ROLLED_BACK,),
        ).fetchone()
    assert event == (1, summary.version, "housing monitor")
    tags = client.get_model_version(MODEL_NAME, str(summary.version)).tags
    assert tags[TAG_DECISION] == GateDecision.ROLLED_BACK
    assert webhook.posts and AlertKind.ROLLED_BACK in webhook.posts[-1][1]["kind"]
    # the restored champion is not rolled back again
    again = run_monitor(_parts(settings, champion_registry, []))
    assert again.action != Action.ROLLED_BACK


def test_a_champion_promoted_into_a_moved_world_is_not_rolled_back(
    database_url: str, champion_registry: Registry, dataset: Dataset, tmp_path: Path
) -> None:
    """Prices rose 25 % at the promotion: the new champion's live error is above v1's on the old world,
    but v1 scored on the same new rows does far worse, so the new champion stays."""
    from services.trainer.lifecycle import force_promote
    from services.trainer.settings import TrainerSettings
    from services.trainer.train import run_training

    client = champion_registry.client
    old_truth = dataset.y_holdout[:400]
    with psycopg.connect(database_url) as conn:  # v1 was perfect on the old world
        insert_predictions(
            conn,
            dataset.x_holdout[:400],
            start=_db_now(database_url) - timedelta(minutes=30),
            spacing=timedelta(seconds=1),
            model_version=1,
            predictions=old_truth,
            actual=old_truth,
        )
    summary = run_training(
        client, champion_registry.experiment_id, database_url, dataset, TrainerSettings(), promote=False
    )
    force_promote(client, database_url, summary.version, actor="test", reason="the world moved")
    new_truth = dataset.y_holdout[400:700] * 1.25
    _log(  # the new champion is 0.1 off on the new world: worse than v1's 0.0 on the old one
        database_url,
        dataset.x_holdout[400:700],
        _db_now(database_url),
        model_version=summary.version,
        predictions=new_truth + 0.1,
        actual=new_truth,
    )
    report = run_monitor(_parts(_settings(database_url, tmp_path), champion_registry, []))
    assert report.action != Action.ROLLED_BACK, report
    assert current_aliases(client)[Role.CHAMPION] == summary.version
    check = report.details["rollback_check"]
    assert (check["target"], check["rows"], check["state"]) == (1, 300, "not_worse")
    assert check["upper"] < 0 and check["effect"] < -0.2  # v1 errs far more on the new world


def test_the_cli_runs_a_real_trainer_on_drift(
    database_url: str, champion_registry: Registry, dataset: Dataset, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "MLFLOW_TRACKING_URI": champion_registry.uri,
        "HOUSING_HOME": str(tmp_path),
        "TRAINER_LAUNCHER": "local",
        "DRIFT_SAMPLE_ROWS": "1000",
    }
    housing = [sys.executable, "-c", "from services.cli import main; main()"]
    quiet = subprocess.run(
        [*housing, "monitor", "--json"], env=env, capture_output=True, text=True, timeout=120
    )
    assert quiet.returncode == 0, quiet.stderr
    assert json.loads(quiet.stdout)["status"] == RunStatus.INSUFFICIENT_DATA

    # A shifted market whose prices are known: more than RETRAIN_MIN_NEW_LABELS (667) new labels.
    _log(database_url, _shifted(dataset), _db_now(database_url), actual=dataset.y_holdout * 1.25)
    done = subprocess.run(
        [*housing, "monitor", "--json"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert {
        "report_id",
        "status",
        "psi",
        "drift_share",
        "live_mae",
        "reference_mae",
        "estimated_mae",
        "action",
        "alerted",
        "report_path",
        "plan",
        "labels",
    } <= set(summary)
    assert summary["status"] == RunStatus.DRIFT and summary["action"] == Action.TRAINER_LAUNCHED
    assert summary["labels"]["new"] == summary["labels"]["needed"] == 667
    assert summary["estimated_mae"] > 0
    assert "[1/7]" in done.stderr
    deadline = time.monotonic() + 240
    while trainer_running(tmp_path):
        assert time.monotonic() < deadline, "the trainer did not finish"
        time.sleep(0.5)
    log_text = Path(read_lock(tmp_path)["log"]).read_text()  # type: ignore[index]
    versions = champion_registry.client.search_model_versions(f"name='{MODEL_NAME}'")
    assert len(versions) == 2, log_text


def test_the_cli_fails_when_the_database_is_down(champion_registry: Registry, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
        "MLFLOW_TRACKING_URI": champion_registry.uri,
        "HOUSING_HOME": str(tmp_path),
    }
    run = subprocess.run(
        [sys.executable, "-c", "from services.cli import main; main()", "monitor", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 1
    assert "cannot connect to Postgres" in run.stderr


def test_json_over_an_http_tracking_server_is_the_document_alone(
    database_url: str, champion_registry: Registry, dataset: Dataset, tmp_path: Path
) -> None:
    """As in the cluster: the monitor talks to an ``mlflow server``. MLflow prints a run's URL to
    stdout when it ends one over HTTP; `housing monitor --json` must still print only its document,
    also on a run that logs its report to MLflow."""
    from benchmarks.monitor_process import Stack, tracking_server

    with tracking_server(Stack(database_url, champion_registry.uri, tmp_path)) as over_http:
        _log(database_url, _shifted(dataset), _db_now(database_url))
        env = {
            **over_http.environment(),
            # The session champion is signed with this test run's pair, not the bench home's.
            "MODEL_VERIFY_KEYS": os.environ["MODEL_VERIFY_KEYS"],
            "RETRAIN_ON": "live_degradation",  # drift alerts only: no trainer in this test
            "DRIFT_SAMPLE_ROWS": "1000",
        }
        done = subprocess.run(
            [sys.executable, "-c", "from services.cli import main; main()", "monitor", "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)  # the whole of stdout is the document
    assert summary["status"] == RunStatus.DRIFT and summary["report_path"], summary
    runs = champion_registry.client.search_runs(
        [champion_registry.experiment_id], "tags.`housing.kind` = 'monitor'"
    )
    assert [r.data.tags["housing.drift_report"] for r in runs] == [str(summary["report_id"])]


def test_a_bad_model_over_an_unproven_twin_goes_back_to_the_model_before_the_episode_then_cools_down(
    database_url: str, champion_registry: Registry, dataset: Dataset, tmp_path: Path
) -> None:
    """v1 served; v2 came in and had too few labels to be vouched for; v3, bad, came in over it. The
    rollback restores v1 (not ``previous``, v2), retires both, and the next launch waits for labels."""
    from services.local.bad_model import register_bad_model
    from services.trainer.lifecycle import force_promote

    client = champion_registry.client
    signer = session_signer()
    twin = register_bad_model(client, champion_registry.experiment_id, database_url, dataset, signer)
    bad = register_bad_model(client, champion_registry.experiment_id, database_url, dataset, signer)
    force_promote(client, database_url, twin, actor="test", reason="a twin")
    truth = dataset.y_holdout
    _log(  # too few labels for v2's own test to speak: it is part of the episode
        database_url,
        dataset.x_holdout[:100],
        _db_now(database_url),
        model_version=twin,
        predictions=truth[:100],
        actual=truth[:100],
    )
    force_promote(client, database_url, bad, actor="test", reason="a bad model over the twin")
    _log(
        database_url,
        dataset.x_holdout[100:400],
        _db_now(database_url),
        model_version=bad,
        predictions=truth[100:400] + 1.0,
        actual=truth[100:400],
    )
    settings = _settings(database_url, tmp_path)
    report = run_monitor(_parts(settings, champion_registry, []))
    assert report.action == Action.ROLLED_BACK, report.details["reasons"]
    assert current_aliases(client)[Role.CHAMPION] == 1
    check = report.details["rollback_check"]
    assert (check["target"], check["episode"], check["state"]) == (1, [bad, twin], "worse")
    assert check["links"][str(twin)] == "its test against v1: waiting on 100 rows"
    reason = report.details["rollback"]["reason"]
    assert f"v{bad} is worse than v1: roll back (n=" in reason and "always-valid p=" in reason
    for version in (bad, twin):
        assert (
            client.get_model_version(MODEL_NAME, str(version)).tags[TAG_DECISION] == GateDecision.ROLLED_BACK
        )
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT model_version, previous_version, figures ->> 'cooldown_labels' FROM model_events"
            " WHERE event = %s",
            (ModelEvent.ROLLED_BACK,),
        ).fetchone()
    assert row == (1, bad, str(settings.rollback_cooldown_labels))

    # A lasting drift right after the rollback: run after run waits for new labels and never launches.
    _log(database_url, _shifted(dataset)[:1500], _db_now(database_url))
    for _ in range(2):
        held = run_monitor(_parts(settings, champion_registry, []))
        assert held.status == RunStatus.DRIFT and held.action == Action.NONE, held.details["reasons"]
        assert held.details["reasons"][-1].startswith(f"cool-down after rolling back v{bad} to v1: 0 of 1000")
        assert held.details["cooldown"]["labels"] == 0
    assert current_aliases(client)[Role.CHAMPION] == 1
