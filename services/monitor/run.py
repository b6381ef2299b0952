"""One monitor run: lock, reference, window, drift, live error, report, act, alert, metrics.

Everything here takes its parts as arguments (settings, database URL, MLflow client, launcher,
alert channels); only the CLI reads the environment and builds them.
"""

from __future__ import annotations

import logging
import math
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg
from mlflow.entities import Metric
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from services.common import compiled
from services.common.database import connect, first_line
from services.common.error_model import CompiledErrorModel, ErrorEstimator, load_error_model
from services.common.features import FEATURE_NAMES
from services.common.profile import ReferenceProfile
from services.common.progress import Stages
from services.common.registry import (
    ERROR_MODEL_ARTIFACT,
    ERROR_MODEL_COMPILED_ARTIFACT,
    METRIC_HOLDOUT_MAE,
    PROFILE_ARTIFACT,
    RegistryError,
    alias_version,
    current_aliases,
    get_version,
    model_uri,
    version_figures,
)
from services.common.rollback import roll_back
from services.common.vocabulary import Action, AlertKind, Plan, Role, RunStatus, Trigger
from services.monitor.alerts import Alert, Channel, deliver, mark_alerted, observe
from services.monitor.column_drift import DriftTests, drift_tests
from services.monitor.evidently_drift import EvidentlyResult, run_drift_preset
from services.monitor.histograms import window_counts
from services.monitor.launchers import Launcher, LaunchResult, TrainerOutcome
from services.monitor.live_error import kept_live_error
from services.monitor.lock import monitor_lock
from services.monitor.metrics import push_metrics
from services.monitor.psi import psi
from services.monitor.report import insert_report, last_logged_to_mlflow, mlflow_due, reserve_report_id
from services.monitor.rollback_check import Predictor, RollbackFigures, check_rollback, last_promotion
from services.monitor.sample import WindowSample, sample_window
from services.monitor.settings import MonitorSettings
from services.monitor.verdict import Limits, Measured, Verdict, judge

log = logging.getLogger(__name__)

ACTOR = "housing monitor"
RUN_STAGES = 7


class MonitorFailed(RuntimeError):
    """The run could not do its job; the message says why (a report row says so too, when possible)."""


def load_predictor(version: int) -> Predictor:
    """A registered version's ``predict`` with one OpenMP thread (the rollback check and the estimates
    score the window's rows)."""
    import mlflow.sklearn
    from threadpoolctl import threadpool_limits

    try:
        model = mlflow.sklearn.load_model(model_uri(version))
    except (MlflowException, OSError) as error:
        raise MonitorFailed(f"cannot load model version {version}: {error}") from error

    def predict(x: np.ndarray) -> np.ndarray:
        with threadpool_limits(1):
            return np.asarray(model.predict(x), dtype=np.float64)

    return predict


@dataclass
class RunSummary:
    """What one run found and did: printed by ``housing monitor --json``."""

    status: RunStatus
    report_id: int | None = None
    model_version: int | None = None
    window_start: datetime | None = None
    window_end: datetime | None = None
    rows: int = 0
    labelled_rows: int = 0
    psi: dict[str, float] = field(default_factory=dict)
    drift_share: float | None = None
    drift: bool = False
    live_mae: float | None = None
    reference_mae: float | None = None
    estimated_mae: float | None = None  # label-free, from the champion's error model
    trainer: TrainerOutcome | None = None
    trainer_checked: bool = False  # the launcher could look at its trainers this run
    triggers: list[Trigger] = field(default_factory=list)
    action: Action = Action.NONE
    alerted: bool = False
    report_path: str | None = None
    detail: str = ""
    duration_seconds: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "report_id": self.report_id,
            "status": self.status,
            "model_version": self.model_version,
            "window_start": self.window_start.isoformat() if self.window_start else None,
            "window_end": self.window_end.isoformat() if self.window_end else None,
            "rows": self.rows,
            "labelled_rows": self.labelled_rows,
            "psi": self.psi,
            "drift_share": self.drift_share,
            "drift": self.drift,
            "live_mae": self.live_mae,
            "reference_mae": self.reference_mae,
            "estimated_mae": self.estimated_mae,
            "trainer": self.trainer.as_dict() if self.trainer else None,
            "triggers": self.triggers,
            "action": self.action,
            "alerted": self.alerted,
            "report_path": self.report_path,
            "detail": self.detail,
            "duration_seconds": round(self.duration_seconds, 3),
        }


@dataclass
class MonitorParts:
    """The real parts a run works with, built by the CLI (or a test)."""

    settings: MonitorSettings
    database_url: str
    client: MlflowClient
    experiment_id: str
    launcher: Callable[[], Launcher]  # built on first use: a bad Kubernetes config fails only the launch
    channels: list[Channel] = field(default_factory=list)
    stages: Stages = field(default_factory=lambda: Stages(RUN_STAGES, quiet=True))


def run_monitor(parts: MonitorParts) -> RunSummary:
    """One monitor run. Raises MonitorFailed only when the run could not do its job."""
    started = time.perf_counter()
    with monitor_lock(parts.database_url) as held:
        if not held:
            parts.stages.say("another monitor run holds the lock: nothing to do")
            return RunSummary(RunStatus.LOCKED, detail="another monitor run holds the lock")
        try:
            summary = _locked_run(parts)
        except MonitorFailed:
            raise
        except Exception as error:
            message = f"{type(error).__name__}: {first_line(error)}"
            log.exception("monitor run failed")
            error_row(parts.database_url, message)
            raise MonitorFailed(f"the monitor run failed ({message})") from error
    summary.duration_seconds = time.perf_counter() - started
    if parts.settings.pushgateway_url:
        problem = push_metrics(
            parts.settings.pushgateway_url,
            psi=summary.psi,
            drift_share=summary.drift_share,
            drift_detected=summary.drift,
            live_mae=summary.live_mae,
            reference_mae=summary.reference_mae,
            estimated_mae=summary.estimated_mae,
            trainer_failed=summary.trainer.failed if summary.trainer else None,
            finished_at=time.time(),
            duration_seconds=summary.duration_seconds,
            grouping_key={
                "namespace": parts.settings.housing_namespace,
                "release": parts.settings.housing_release,
            },
            timeout=parts.settings.alert_timeout_seconds,
        )
        if problem:
            summary.details["metrics"] = problem
    log.info(
        "monitor: status=%s rows=%d psi=%s drift_share=%s live_mae=%s estimated_mae=%s action=%s alerted=%s",
        summary.status,
        summary.rows,
        summary.psi,
        summary.drift_share,
        summary.live_mae,
        summary.estimated_mae,
        summary.action,
        summary.alerted,
    )
    return summary


def error_row(database_url: str, message: str, **figures: Any) -> int | None:
    """Store an `error` report saying why the run failed; never raises (the database may be what failed)."""
    try:
        with connect(database_url) as conn:
            return insert_report(conn, status=RunStatus.ERROR, details={"error": message}, **figures)
    except Exception:  # the database is what failed: the exit code and stderr carry the message
        log.exception("could not store the error report")
        return None


def _load_reference(client: MlflowClient, run_id: str) -> ReferenceProfile:
    with tempfile.TemporaryDirectory() as folder:
        path = client.download_artifacts(run_id, PROFILE_ARTIFACT, folder)
        return ReferenceProfile.load(Path(path))


def _window_start(
    conn: psycopg.Connection, settings: MonitorSettings, champion: int, now: datetime
) -> datetime:
    """The last DRIFT_WINDOW_HOURS, no earlier than the champion's promotion or the last retrain/rollback."""
    start = now - timedelta(hours=settings.drift_window_hours)
    promotion = last_promotion(conn, champion)
    if promotion is not None:
        start = max(start, promotion.at)
    row = conn.execute(
        "SELECT max(window_end) FROM drift_reports WHERE action IN (%s, %s)",
        (Action.TRAINER_LAUNCHED, Action.ROLLED_BACK),
    ).fetchone()
    if row and row[0] is not None:
        start = max(start, row[0])
    return min(start, now)


@contextmanager
def _timed(timings: dict[str, float], name: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        timings[name] = round(time.perf_counter() - started, 3)


@dataclass(frozen=True)
class Champion:
    """The champion a run judges: its version, training figures, reference profile and the ``previous``."""

    version: int
    reference_mae: float | None
    profile: ReferenceProfile
    previous_alias: int | None
    error_model: ErrorEstimator | None  # None: registered without one (no estimate), or unreadable
    error_model_note: str | None = None  # why there is no estimate, or that it comes from scikit-learn


def _read_champion(parts: MonitorParts) -> Champion | None:
    """The champion and its reference profile; None when there is none yet. Raises MonitorFailed."""
    client = parts.client
    try:
        champion_mv = alias_version(client, Role.CHAMPION)
    except RegistryError as error:
        error_row(parts.database_url, str(error))
        raise MonitorFailed(str(error)) from error
    if champion_mv is None:
        return None
    version = int(champion_mv.version)
    try:
        figures = version_figures(client, champion_mv)
        profile = _load_reference(client, figures.run_id)
        previous_alias = current_aliases(client)[Role.PREVIOUS]
    except (MlflowException, OSError, ValueError, RegistryError) as error:
        message = (
            f"cannot read the reference profile ({PROFILE_ARTIFACT}) of champion v{version}: "
            f"{first_line(error)}; retrain with `housing train` or check MLFLOW_TRACKING_URI"
        )
        error_row(parts.database_url, message, model_version=version)
        raise MonitorFailed(message) from error
    error_model, note = _load_error_model(client, figures.run_id, version)
    return Champion(
        version, figures.metrics.get(METRIC_HOLDOUT_MAE), profile, previous_alias, error_model, note
    )


def _load_error_model(
    client: MlflowClient, run_id: str, version: int, role: str = Role.CHAMPION
) -> tuple[ErrorEstimator | None, str | None]:
    """A version's error model, compiled when it has that form, or None and why (a note too when the
    pickled regressor is used); never raises (without it, the run estimates nothing)."""
    folder = str(Path(ERROR_MODEL_ARTIFACT).parent)
    try:
        stored = {item.path for item in client.list_artifacts(run_id, folder)}
        with tempfile.TemporaryDirectory() as temporary:
            if ERROR_MODEL_COMPILED_ARTIFACT in stored:
                path = client.download_artifacts(run_id, ERROR_MODEL_COMPILED_ARTIFACT, temporary)
                return CompiledErrorModel(compiled.load(Path(path))), None
            if ERROR_MODEL_ARTIFACT not in stored:
                return (
                    None,
                    f"{role} v{version} has no error model (registered before it existed): no estimate",
                )
            path = client.download_artifacts(run_id, ERROR_MODEL_ARTIFACT, temporary)
            note = (
                f"{role} v{version} has no compiled error model (registered before it existed):"
                " estimating with its scikit-learn regressor"
            )
            return load_error_model(Path(path)), note
    except Exception as error:  # a broken artifact costs the estimate, not the run
        return None, f"cannot read the error model of {role} v{version}: {first_line(error)}; no estimate"


def _locked_run(parts: MonitorParts) -> RunSummary:
    """Measure, judge, act, alert; then store the report row once and log the run to MLflow."""
    settings, stages = parts.settings, parts.stages
    timings: dict[str, float] = {}
    with stages.stage("reading the champion and its reference profile"), _timed(timings, "reference"):
        champion = _read_champion(parts)
        if champion is None:
            message = "no champion yet: nothing to monitor (train one with `housing train`)"
            with connect(parts.database_url) as conn:
                report_id = insert_report(
                    conn, status=RunStatus.INSUFFICIENT_DATA, details={"reason": message}
                )
            stages.say(message, end=" ")
            return RunSummary(RunStatus.INSUFFICIENT_DATA, report_id=report_id, detail=message)
        stages.say(f"v{champion.version}", end=" ")

    with connect(parts.database_url) as conn:
        row = conn.execute("SELECT now()").fetchone()
        assert row is not None
        now: datetime = row[0]
        start = _window_start(conn, settings, champion.version, now)
        summary = RunSummary(
            RunStatus.OK,
            model_version=champion.version,
            window_start=start,
            window_end=now,
            reference_mae=champion.reference_mae,
        )
        summary.details["timings"] = timings
        launcher = _launcher(parts, summary)
        measured, drift, rollback = _measure(parts, conn, champion, summary, start, now, timings)

        verdict = judge(measured, Limits.of(settings))
        summary.status, summary.drift, summary.detail = verdict.status, verdict.drift, verdict.detail
        summary.triggers = list(verdict.triggers)
        summary.details["reasons"] = list(verdict.reasons)
        if rollback is not None:
            summary.details["rollback_check"] = {
                **rollback.as_dict(),
                "roll_back": verdict.rollback_due,
                "reason": verdict.rollback_reason,
            }
        summary.report_id = reserve_report_id(conn)
        conn.commit()

        with stages.stage("acting"), _timed(timings, "act"):
            _act(parts, launcher, summary, verdict, rollback)
            stages.say(summary.action, end=" ")

        # Evidently's HTML report goes with a report logged to MLflow: a run that finds nothing, and
        # logged one within REPORT_EVERY_HOURS, neither imports Evidently (~3.4 s) nor renders (~0.8 s).
        due = mlflow_due(
            summary.status, summary.action, last_logged_to_mlflow(conn), now, settings.report_every_hours
        )
        with stages.stage("writing the Evidently report"), _timed(timings, "html"):
            if due and drift is not None and drift.sample is not None:
                path = settings.reports_folder.resolve() / f"drift-report-{summary.report_id}.html"
                _render_report(champion, drift, summary, settings.drift_share_threshold).save_html(path)
                summary.report_path = str(path)
                stages.say(str(path), end=" ")
            else:
                stages.say("not due" if drift is not None else "skipped: too few rows", end=" ")

        with stages.stage("alerting"), _timed(timings, "alert"):
            _alert(parts, conn, summary, now, verdict)
            stages.say("alert sent" if summary.alerted else "no alert", end=" ")

        with _timed(timings, "mlflow"):
            if due:
                _log_to_mlflow(parts, summary)
            elif drift is not None:
                summary.details["mlflow"] = (
                    "nothing found: no Evidently report this run; one is rendered and logged to MLflow "
                    f"on every finding and at least every {settings.report_every_hours:g} h"
                )
        insert_report(
            conn,
            report_id=summary.report_id,
            status=summary.status,
            window_start=start,
            window_end=now,
            model_version=champion.version,
            rows=summary.rows,
            labelled_rows=summary.labelled_rows,
            psi=summary.psi,
            tests={
                "psi_threshold": settings.psi_threshold,
                "psi_drifted": list(verdict.psi_drifted),
                "evidently": {k: v.as_dict() for k, v in drift.tests.columns.items()} if drift else {},
                "drift_share_threshold": settings.drift_share_threshold,
            },
            drift_share=summary.drift_share,
            live_mae=summary.live_mae,
            reference_mae=champion.reference_mae,
            estimated_mae=summary.estimated_mae,
            action=summary.action,
            alerted=summary.alerted,
            report_path=summary.report_path,
            details={**summary.details, "triggers": summary.triggers},
        )
        conn.commit()
    return summary


def _measure(
    parts: MonitorParts,
    conn: psycopg.Connection,
    champion: Champion,
    summary: RunSummary,
    start: datetime,
    now: datetime,
    timings: dict[str, float],
) -> tuple[Measured, WindowDrift | None, RollbackFigures | None]:
    """The window's figures for ``judge()``, recorded in ``summary`` as they come (with the trainer's)."""
    settings, stages, profile = parts.settings, parts.stages, champion.profile
    with stages.stage("PSI from SQL histograms"), _timed(timings, "histograms"):
        counts = window_counts(
            conn, profile, start, now, now=now, retention=timedelta(hours=2 * settings.drift_window_hours)
        )
        conn.commit()
        summary.rows = counts.rows
        summary.details["histograms"] = {**counts.details, "scanned_rows": counts.scanned}
        if counts.rows >= settings.drift_min_rows:
            summary.psi = {
                name: psi(profile.bins[name].expected, counts.counts[name]) for name in FEATURE_NAMES
            }
        stages.say(f"{counts.rows} rows ({counts.scanned} read)", end=" ")

    drift: WindowDrift | None = None
    sample: WindowSample | None = None
    with stages.stage("Evidently's drift tests on a random sample"), _timed(timings, "evidently"):
        if counts.rows >= settings.drift_min_rows:
            sample = sample_window(conn, start, now, rows=settings.drift_sample_rows, window_rows=counts.rows)
            drift = _drift(profile, sample.x, settings.drift_share_threshold)
            summary.drift_share = drift.tests.drift_share
            summary.details["sample"] = {"rows": len(sample), "plan": sample.plan, "tests": drift.computed_by}
            stages.say(
                f"{len(sample)} rows ({sample.plan}), drifted share {drift.tests.drift_share:.2f}", end=" "
            )
        else:
            stages.say("skipped: too few rows", end=" ")

    with stages.stage("live and estimated error, rollback check"), _timed(timings, "live_error"):
        estimated_rows = _estimate(champion, sample, summary)
        kept = kept_live_error(
            conn,
            champion.version,
            start,
            now,
            now=now,
            retention=timedelta(hours=2 * settings.drift_window_hours),
        )
        live = kept.error
        summary.live_mae, summary.labelled_rows = live.mae, live.rows
        summary.details["live_error"] = kept.details
        rollback = check_rollback(
            conn,
            champion.version,
            champion.previous_alias,
            now=now,
            predictor=load_predictor,
            min_rows=settings.rollback_min_rows,
        )
        previous_estimate = None
        if rollback is not None and rollback.champion.rows < settings.rollback_min_rows:
            previous_estimate = _estimate_previous(parts.client, rollback.previous.version, sample, summary)
        stages.say(
            f"MAE {live.mae if live.mae is not None else float('nan'):.3f} on {live.rows} rows", end=" "
        )
    measured = Measured(
        rows=counts.rows,
        psi=summary.psi,
        drift_share=summary.drift_share,
        live_mae=live.mae,
        labelled_rows=live.rows,
        reference_mae=champion.reference_mae,
        estimated_mae=summary.estimated_mae,
        estimated_rows=estimated_rows,
        rollback=rollback,
        previous_estimated_mae=previous_estimate,
        trainer=summary.trainer,
    )
    return measured, drift, rollback


@dataclass(frozen=True)
class WindowDrift:
    """The preset's per-column tests on the window's sample, and Evidently's result when it had to run."""

    tests: DriftTests
    sample: npt.NDArray[np.float64]
    evidently: EvidentlyResult | None = None

    @property
    def computed_by(self) -> str:
        return "evidently" if self.evidently is not None else "numpy (Evidently's preset tests)"


def _drift(profile: ReferenceProfile, sample: npt.NDArray[np.float64], share: float) -> WindowDrift:
    """The preset's tests in numpy; Evidently itself only when it would choose tests we do not compute."""
    reference = np.asarray(profile.sample, dtype=np.float64)
    tests = drift_tests(reference, sample)
    if tests is not None:
        return WindowDrift(tests, sample)
    result = run_drift_preset(reference, sample, drift_share=share)
    return WindowDrift(DriftTests(result.tests, result.drift_share, result.drifted_columns), sample, result)


def _render_report(
    champion: Champion, drift: WindowDrift, summary: RunSummary, share: float
) -> EvidentlyResult:
    """Evidently's report on the run's sample (the same tests: a share it finds otherwise is recorded)."""
    if drift.evidently is not None:
        return drift.evidently
    result = run_drift_preset(
        np.asarray(champion.profile.sample, dtype=np.float64),
        drift.sample,
        drift_share=share,
    )
    if abs(result.drift_share - drift.tests.drift_share) > 1e-9:
        summary.details["evidently_disagrees"] = {
            "run_share": drift.tests.drift_share,
            "evidently_share": result.drift_share,
        }
        log.warning("Evidently's drifted share %s differs from the run's %s", result.drift_share, drift.tests)
    return result


def _estimate(champion: Champion, sample: WindowSample | None, summary: RunSummary) -> int:
    """The label-free MAE estimate on the window's sample into ``summary``; the rows it averaged.

    It averages the error model over the sampled rows the champion served, with the prices it served
    (logged with each row): no model is loaded to score them again.
    """
    if champion.error_model_note:
        log.info("%s", champion.error_model_note)
    if champion.error_model is None:
        summary.details["estimate"] = champion.error_model_note
        return 0
    if sample is None or len(sample) == 0:
        summary.details["estimate"] = "too few rows in the window: no estimate"
        return 0
    x, served = sample.served_by(champion.version)
    if len(x) == 0:
        summary.details["estimate"] = f"no sampled row was served by v{champion.version}: no estimate"
        return 0
    summary.estimated_mae = champion.error_model.estimate_mae(x, served)
    summary.details["estimate"] = {"rows": len(x), "estimated_mae": summary.estimated_mae}
    if champion.error_model_note:
        summary.details["estimate"]["note"] = champion.error_model_note
    return len(x)


def _estimate_previous(
    client: MlflowClient, version: int, sample: WindowSample | None, summary: RunSummary
) -> float | None:
    """The predecessor's estimated MAE on the champion's sample, while labels cannot judge the rollback."""
    if summary.estimated_mae is None or sample is None or len(sample) == 0:
        return None
    try:
        run_id = get_version(client, version).run_id or ""
        error_model, note = _load_error_model(client, run_id, version, role="previous")
        if error_model is None:
            summary.details["rollback_estimate"] = note
            return None
        estimate = error_model.estimate_mae(sample.x, load_predictor(version)(sample.x))
    except (RegistryError, MlflowException, MonitorFailed) as error:
        summary.details["rollback_estimate"] = f"cannot estimate v{version}: {first_line(error)}"
        return None
    summary.details["rollback_estimate"] = {
        "champion_estimated_mae": summary.estimated_mae,
        "previous": version,
        "previous_estimated_mae": estimate,
        "rows": len(sample),
    }
    return estimate


def _launcher(parts: MonitorParts, summary: RunSummary) -> Launcher | str:
    """The launcher, having recorded how the newest finished trainer ended; or why there is none."""
    try:
        launcher = parts.launcher()
    except Exception as error:  # a bad template or Kubernetes config: the launch fails, the run does not
        return f"cannot start the trainer: {first_line(error)}"
    try:
        summary.trainer = launcher.last_finished()
    except Exception as error:
        summary.details["trainer"] = {"error": f"cannot see the last trainer: {first_line(error)}"}
        return launcher
    summary.trainer_checked = True
    summary.details["trainer"] = summary.trainer.as_dict() if summary.trainer else None
    return launcher


def _act(
    parts: MonitorParts,
    launcher: Launcher | str,
    summary: RunSummary,
    verdict: Verdict,
    rollback: RollbackFigures | None,
) -> None:
    """Carry out the verdict's plan; ``summary.action`` says how it went."""
    if verdict.plan is Plan.ROLL_BACK:
        assert rollback is not None and verdict.rollback_reason is not None
        reason = verdict.rollback_reason
        try:
            bad, good = roll_back(
                parts.client,
                parts.database_url,
                actor=ACTOR,
                reasons=[reason],
                figures={
                    **rollback.as_dict(),
                    "roll_back": True,
                    "reason": reason,
                    "drift_report": summary.report_id,
                },
            )
        except (RegistryError, MlflowException, psycopg.Error) as error:
            summary.action = Action.ROLLBACK_FAILED
            summary.detail = f"rollback was due ({reason}) but failed: {first_line(error)}"
            summary.details["rollback"] = {"error": summary.detail}
            return
        summary.action = Action.ROLLED_BACK
        summary.detail = f"rolled back: v{good} is champion again, v{bad} retired ({reason})"
        summary.details["rollback"] = {"bad": bad, "restored": good, "reason": reason}
        return
    if verdict.plan is not Plan.LAUNCH_TRAINER:
        return
    if isinstance(launcher, str):
        result = LaunchResult(Action.LAUNCH_FAILED, launcher)
    else:
        result = launcher.launch(summary.report_id or 0)
    summary.action = result.action
    summary.detail = result.detail
    summary.details["launch"] = {"detail": result.detail, **result.info}


def _alert_text(summary: RunSummary, settings: MonitorSettings, kinds: list[AlertKind]) -> str:
    lines = [
        f"Cali Housing monitor: {', '.join(kinds)}"
        f" (report {summary.report_id}, champion v{summary.model_version})"
    ]
    if summary.psi:
        top = sorted(summary.psi.items(), key=lambda item: -item[1])[:4]
        lines.append(
            "PSI: "
            + ", ".join(f"{name} {value:.2f}" for name, value in top)
            + f" (threshold {settings.psi_threshold}); drifted share {summary.drift_share or 0:.2f}"
        )
    if summary.live_mae is not None:
        lines.append(
            f"live MAE {summary.live_mae:.3f} on {summary.labelled_rows} rows"
            f" vs {summary.reference_mae or math.nan:.3f} at training"
        )
    if summary.estimated_mae is not None:
        lines.append(
            f"estimated MAE {summary.estimated_mae:.3f} without labels"
            f" vs {summary.reference_mae or math.nan:.3f} at training"
        )
    if summary.trainer is not None and summary.trainer.failed:
        lines.append(f"the last trainer failed: {summary.trainer.trainer} ({summary.trainer.reason})")
    lines.append(f"action: {summary.action}" + (f" ({summary.detail})" if summary.detail else ""))
    return "\n".join(lines)


def _alert(
    parts: MonitorParts, conn: psycopg.Connection, summary: RunSummary, now: datetime, verdict: Verdict
) -> None:
    settings = parts.settings
    cooldown = timedelta(minutes=settings.alert_cooldown_minutes)
    judged = summary.status != RunStatus.INSUFFICIENT_DATA
    due: list[AlertKind] = []
    trainer = summary.trainer
    # Each failed trainer is its own episode (its name is the subject); a success ends it.
    if summary.trainer_checked:
        failed = trainer if trainer is not None and trainer.failed else None
        subject = failed.trainer if failed is not None else None
        state = observe(conn, AlertKind.TRAINER_FAILED, failed is not None, now, subject=subject)
        if state.due(now, cooldown):
            due.append(AlertKind.TRAINER_FAILED)
    if judged:
        for kind, active in (
            (AlertKind.DRIFT, summary.drift),
            (AlertKind.LIVE_ERROR, verdict.live_degraded),
            (AlertKind.ESTIMATED_DEGRADATION, verdict.estimated_degraded),
            (AlertKind.ESTIMATED_REGRESSION, verdict.estimated_regression),
            (AlertKind.LAUNCH_FAILED, summary.action == Action.LAUNCH_FAILED),
        ):
            if observe(conn, kind, active, now).due(now, cooldown):
                due.append(kind)
    if summary.action is Action.ROLLED_BACK:  # an event, not an episode: always alerted
        due.append(AlertKind.ROLLED_BACK)
    elif summary.action is Action.ROLLBACK_FAILED:
        due.append(AlertKind.ROLLBACK_FAILED)
    conn.commit()
    if not due:
        return
    summary.details["alert_kinds"] = due
    if not parts.channels:
        summary.details["alert"] = "no alert channel configured (ALERT_WEBHOOK_URL or TELEGRAM_BOT_TOKEN)"
        return
    alert = Alert(", ".join(due), _alert_text(summary, settings, due), {"report": summary.as_dict()})
    delivered, errors = deliver(parts.channels, alert)
    summary.details["alert"] = {"delivered": delivered, "errors": errors}
    if delivered:
        summary.alerted = True
        for kind in due:
            mark_alerted(conn, kind, now)
        conn.commit()


def _log_to_mlflow(parts: MonitorParts, summary: RunSummary) -> None:
    """A run in the project's experiment with the report's figures and its HTML (its id in the details)."""
    if summary.report_id is None or (
        summary.status == RunStatus.INSUFFICIENT_DATA and not summary.report_path
    ):
        return
    client = parts.client
    try:
        run = client.create_run(
            parts.experiment_id,
            run_name=f"monitor-{summary.report_id}",
            tags={
                "housing.kind": "monitor",
                "housing.drift_report": str(summary.report_id),
                "housing.model_version": str(summary.model_version),
                "housing.status": summary.status,
                "housing.action": summary.action,
            },
        )
        stamp = int(time.time() * 1000)
        values: dict[str, float | None] = {f"psi_{name}": value for name, value in summary.psi.items()}
        values.update(
            {
                "drift_share": summary.drift_share,
                "live_mae": summary.live_mae,
                "reference_mae": summary.reference_mae,
                "estimated_mae": summary.estimated_mae,
                "rows": summary.rows,
                "labelled_rows": summary.labelled_rows,
                "drift_detected": float(summary.drift),
            }
        )
        metrics = [
            Metric(k, float(v), stamp, 0) for k, v in values.items() if v is not None and math.isfinite(v)
        ]
        client.log_batch(run.info.run_id, metrics=metrics)
        if summary.report_path:
            client.log_artifact(run.info.run_id, summary.report_path, artifact_path="monitor")
        # Over HTTP (the cluster's tracking server) MLflow writes the run's URL to stdout here, which
        # would come before `housing monitor --json`'s document: it goes to stderr with the logs.
        with redirect_stdout(sys.stderr):
            client.set_terminated(run.info.run_id)
    except (MlflowException, OSError) as error:
        log.warning("could not log the report to MLflow: %s", first_line(error))
        summary.details["mlflow"] = f"could not log to MLflow: {first_line(error)}"
        return
    summary.details["mlflow_run_id"] = run.info.run_id
