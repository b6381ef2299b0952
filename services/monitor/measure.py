"""Measuring a run's window: PSI from SQL histograms, the drift tests on a sample, the live and
estimated error, and the rollback check's figures, into ``Measured`` (what ``judge`` decides on).

Each step writes its figures into the run's summary as it comes (the report keeps them even when a
later step fails); nothing here decides.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

import numpy as np
import numpy.typing as npt
import psycopg
from mlflow.exceptions import MlflowException

from services.common.database import first_line
from services.common.features import FEATURE_NAMES
from services.common.profile import ReferenceProfile
from services.common.registry import RegistryError, get_version
from services.common.vocabulary import Action
from services.monitor.champion import ArtifactRefused, Champion, load_predictor, load_version_error_model
from services.monitor.column_drift import DriftTests, drift_tests
from services.monitor.concept import ConceptFigures, measure_concept, standard_error
from services.monitor.decide.rule import Limits, Measured
from services.monitor.evidently_drift import EvidentlyResult, run_drift_preset
from services.monitor.histograms import WindowCounts, window_counts
from services.monitor.live_error import kept_live_error
from services.monitor.new_labels import count_failure, new_labels
from services.monitor.parts import MonitorParts
from services.monitor.psi import psi
from services.monitor.rollback_check import RollbackFigures, check_rollback, cooldown, last_promotion
from services.monitor.sample import WindowSample, sample_window
from services.monitor.summary import MonitorFailed, RunSummary, timed

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WindowDrift:
    """The preset's per-column tests on the window's sample, and Evidently's result when it had to run."""

    tests: DriftTests
    sample: npt.NDArray[np.float64]
    evidently: EvidentlyResult | None = None

    @property
    def computed_by(self) -> str:
        return "evidently" if self.evidently is not None else "numpy (Evidently's preset tests)"


@dataclass(frozen=True)
class Window:
    """What a run measured: the figures ``judge`` decides on, the drift tests (for the HTML report) and
    the rollback check's figures (for the rollback itself)."""

    measured: Measured
    drift: WindowDrift | None
    rollback: RollbackFigures | None


def window_start(
    conn: psycopg.Connection, drift_window_hours: float, champion: int, now: datetime
) -> datetime:
    """The last DRIFT_WINDOW_HOURS, no earlier than the champion's promotion or the last retrain/rollback."""
    start = now - timedelta(hours=drift_window_hours)
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


def measure(
    parts: MonitorParts,
    conn: psycopg.Connection,
    champion: Champion,
    summary: RunSummary,
    timings: dict[str, float],
) -> Window:
    """The window's figures for ``judge()``, recorded in ``summary`` as they come (with the trainer's)."""
    assert summary.window_start is not None and summary.window_end is not None
    stages = parts.stages
    with stages.stage("PSI from SQL histograms"), timed(timings, "histograms"):
        counts = _histograms(parts, conn, champion.profile, summary)
    with stages.stage("Evidently's drift tests on a random sample"), timed(timings, "evidently"):
        sample, drift = _sample_drift(parts, conn, champion.profile, counts, summary)
    with stages.stage("live and estimated error, rollback check"), timed(timings, "live_error"):
        estimated_rows = estimate(champion, sample, summary)
        rollback, previous_estimate = _errors(parts, conn, champion, sample, summary)
        figures = concept(conn, champion, summary)
        held = cooldown(conn, champion.version, parts.settings.rollback_cooldown_labels)
        if held is not None:
            summary.details["cooldown"] = {
                "rolled_back": held.rolled_back,
                "restored": held.restored,
                "since": held.at.isoformat(),
                "labels": held.labels,
                "needed": held.needed,
            }
    with timed(timings, "labels"):
        labels = _new_labels(parts, conn, champion, summary)
    measured = Measured(
        rows=counts.rows,
        psi=summary.psi,
        drift_share=summary.drift_share,
        live_mae=summary.live_mae,
        labelled_rows=summary.labelled_rows,
        reference_mae=champion.reference_mae,
        estimated_mae=summary.estimated_mae,
        estimated_rows=estimated_rows,
        estimate_se=summary.estimate_se,
        estimate_band=champion.estimate_band,
        concept=figures,
        rollback=rollback,
        previous_estimated_mae=previous_estimate,
        trainer=summary.trainer,
        cooldown=held,
        new_labels=labels,
    )
    return Window(measured, drift, rollback)


def _histograms(
    parts: MonitorParts, conn: psycopg.Connection, profile: ReferenceProfile, summary: RunSummary
) -> WindowCounts:
    """The window's counts per reference bin (from SQL) and, with DRIFT_MIN_ROWS rows, the PSI."""
    settings = parts.settings
    assert summary.window_start is not None and summary.window_end is not None
    now = summary.window_end
    counts = window_counts(
        conn,
        profile,
        summary.window_start,
        now,
        now=now,
        retention=timedelta(hours=2 * settings.drift_window_hours),
    )
    conn.commit()
    summary.rows = counts.rows
    summary.details["histograms"] = {**counts.details, "scanned_rows": counts.scanned}
    _note_restore(parts, summary, "histograms", counts.restored)
    if counts.rows >= settings.drift_min_rows:
        summary.psi = {name: psi(profile.bins[name].expected, counts.counts[name]) for name in FEATURE_NAMES}
    parts.stages.say(f"{counts.rows} rows ({counts.scanned} read)", end=" ")
    return counts


def _note_restore(parts: MonitorParts, summary: RunSummary, sums: str, reason: str | None) -> None:
    """Say in the log, the run's output and its report (``details.database_restored``) that kept sums
    were recounted because the database was restored into another server."""
    if reason is None:
        return
    summary.details.setdefault("database_restored", {})[sums] = reason
    log.warning("database restored: the kept %s were recounted: %s", sums, reason)
    parts.stages.say(f"database restored: {sums} recounted", end=" ")


def _sample_drift(
    parts: MonitorParts,
    conn: psycopg.Connection,
    profile: ReferenceProfile,
    counts: WindowCounts,
    summary: RunSummary,
) -> tuple[WindowSample | None, WindowDrift | None]:
    """A random sample of the window and the preset's drift tests on it (None: too few rows)."""
    settings, stages = parts.settings, parts.stages
    if counts.rows < settings.drift_min_rows:
        stages.say("skipped: too few rows", end=" ")
        return None, None
    assert summary.window_start is not None and summary.window_end is not None
    sample = sample_window(
        conn,
        summary.window_start,
        summary.window_end,
        rows=settings.drift_sample_rows,
        window_rows=counts.rows,
    )
    drift = drift_of(profile, sample.x, settings.drift_share_threshold)
    summary.drift_share = drift.tests.drift_share
    summary.details["sample"] = {"rows": len(sample), "plan": sample.plan, "tests": drift.computed_by}
    stages.say(f"{len(sample)} rows ({sample.plan}), drifted share {drift.tests.drift_share:.2f}", end=" ")
    return sample, drift


def _errors(
    parts: MonitorParts,
    conn: psycopg.Connection,
    champion: Champion,
    sample: WindowSample | None,
    summary: RunSummary,
) -> tuple[RollbackFigures | None, float | None]:
    """The live MAE into ``summary``; the rollback check's figures, and the predecessor's estimate while
    the labels cannot judge the rollback yet."""
    settings = parts.settings
    assert summary.window_start is not None and summary.window_end is not None
    now = summary.window_end
    kept = kept_live_error(
        conn,
        champion.version,
        summary.window_start,
        now,
        now=now,
        retention=timedelta(hours=2 * settings.drift_window_hours),
    )
    live = kept.error
    summary.live_mae, summary.labelled_rows = live.mae, live.rows
    summary.details["live_error"] = kept.details
    _note_restore(parts, summary, "live_error", kept.restored)
    rollback = check_rollback(
        conn,
        champion.version,
        now=now,
        predictor=partial(load_predictor, parts.client, parts.trusted),
        limits=Limits.of(settings).rollback,
    )
    previous_estimate = None
    if rollback is not None and rollback.test.rows < settings.rollback_min_rows:
        previous_estimate = estimate_previous(parts, rollback.target, sample, summary)
    mae = live.mae if live.mae is not None else float("nan")
    parts.stages.say(f"MAE {mae:.3f} on {live.rows} rows", end=" ")
    return rollback, previous_estimate


def _new_labels(
    parts: MonitorParts, conn: psycopg.Connection, champion: Champion, summary: RunSummary
) -> int | None:
    """The labelled rows newer than any model trained on, counted up to RETRAIN_MIN_NEW_LABELS, into
    ``details.labels``; None when the rule is off or they cannot be counted (then the run waits)."""
    needed = parts.settings.retrain_min_new_labels
    if needed == 0:
        return None
    assert summary.window_end is not None
    try:
        with conn.transaction():  # a savepoint: a failed count leaves the run's transaction usable
            labels = new_labels(
                parts.client, conn, champion.version, champion.run_id, needed, summary.window_end
            )
    except (MlflowException, RegistryError, psycopg.Error, ValueError) as error:
        summary.details["labels"] = {"new": None, "needed": needed, "error": count_failure(error)}
        return None
    summary.details["labels"] = labels.as_dict()
    return labels.count


def drift_of(profile: ReferenceProfile, sample: npt.NDArray[np.float64], share: float) -> WindowDrift:
    """The preset's tests in numpy; Evidently itself only when it would choose tests we do not compute."""
    reference = np.asarray(profile.sample, dtype=np.float64)
    tests = drift_tests(reference, sample)
    if tests is not None:
        return WindowDrift(tests, sample)
    result = run_drift_preset(reference, sample, drift_share=share)
    return WindowDrift(DriftTests(result.tests, result.drift_share, result.drifted_columns), sample, result)


def estimate(champion: Champion, sample: WindowSample | None, summary: RunSummary) -> int:
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
    row_errors = champion.error_model.row_errors(x, served)
    summary.estimated_mae = champion.error_model.estimate_mae(x, served)
    summary.estimate_se = standard_error(row_errors) if summary.estimated_mae is not None else None
    summary.details["estimate"] = {
        "rows": len(x),
        "estimated_mae": summary.estimated_mae,
        "standard_error": summary.estimate_se,
        "band": champion.estimate_band.as_dict() if champion.estimate_band else champion.estimate_band_note,
    }
    if champion.error_model_note:
        summary.details["estimate"]["note"] = champion.error_model_note
    return len(x)


def concept(conn: psycopg.Connection, champion: Champion, summary: RunSummary) -> ConceptFigures | None:
    """Realized beside estimated on the window's labelled champion rows (``details.concept``)."""
    if champion.error_model is None or summary.labelled_rows == 0:
        return None
    assert summary.window_start is not None and summary.window_end is not None
    figures = measure_concept(
        conn, champion.version, champion.error_model, summary.window_start, summary.window_end
    )
    if figures is not None:
        summary.realized_to_estimated = figures.ratio
        summary.details["concept"] = figures.as_dict()
    return figures


def estimate_previous(
    parts: MonitorParts, version: int, sample: WindowSample | None, summary: RunSummary
) -> float | None:
    """The predecessor's estimated MAE on the champion's sample, while labels cannot judge the rollback."""
    if summary.estimated_mae is None or sample is None or len(sample) == 0:
        return None
    try:
        registered = get_version(parts.client, version)
        error_model, note = load_version_error_model(parts.client, parts.trusted, registered, role="previous")
        if error_model is None:
            summary.details["rollback_estimate"] = note
            return None
        estimate = error_model.estimate_mae(
            sample.x, load_predictor(parts.client, parts.trusted, version)(sample.x)
        )
    except ArtifactRefused:
        raise  # a version that does not check stops the run: nothing of it is judged
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
