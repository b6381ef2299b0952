"""The run's figures for Prometheus: pushed to a Pushgateway (a CronJob is never scraped)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

from services.common.finite import is_finite

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

log = logging.getLogger(__name__)

JOB = "housing-monitor"


def push_metrics(
    url: str,
    *,
    psi: Mapping[str, float],
    drift_share: float | None,
    drift_detected: bool,
    live_mae: float | None,
    reference_mae: float | None,
    trainer_failed: bool | None,
    finished_at: float,
    duration_seconds: float,
    grouping_key: Mapping[str, str],
    estimated_mae: float | None = None,
    estimated_mae_se: float | None = None,
    trainers_stalled: int | None = None,
    partitions_end: float | None = None,
    champion_version: int | None = None,
    timeout: float = 5.0,
) -> str | None:
    """Push the gauges under job="housing-monitor" and ``grouping_key`` (namespace, release: one group
    per deployment, so staging and prod do not overwrite each other); returns an error, never raises."""
    from prometheus_client import CollectorRegistry, push_to_gateway

    registry = CollectorRegistry()
    gauges = _run_gauges(
        drift_share=drift_share,
        drift_detected=drift_detected,
        live_mae=live_mae,
        reference_mae=reference_mae,
        estimated_mae=estimated_mae,
        estimated_mae_se=estimated_mae_se,
        trainer_failed=trainer_failed,
        trainers_stalled=trainers_stalled,
        champion_version=champion_version,
        finished_at=finished_at,
        partitions_end=partitions_end,
        duration_seconds=duration_seconds,
    )
    _set_gauges(registry, psi, gauges)
    try:
        push_to_gateway(url, job=JOB, registry=registry, grouping_key=dict(grouping_key), timeout=timeout)
    except OSError as error:  # URLError, timeouts, refused connections
        log.warning("could not push metrics to %s: %s", url, error)
        return f"could not push metrics to the Pushgateway ({error})"
    return None


def _run_gauges(
    *,
    drift_share: float | None,
    drift_detected: bool,
    live_mae: float | None,
    reference_mae: float | None,
    estimated_mae: float | None,
    estimated_mae_se: float | None,
    trainer_failed: bool | None,
    trainers_stalled: int | None,
    champion_version: int | None,
    finished_at: float,
    partitions_end: float | None,
    duration_seconds: float,
) -> dict[str, tuple[str, float | None]]:
    """The run's gauges other than PSI (they have no labels): name → (help text, figure; None: none)."""
    return {
        "housing_drift_share": ("Share of columns Evidently found drifted", drift_share),
        "housing_drift_detected": ("1 when the last run called drift", float(drift_detected)),
        "housing_live_mae": ("Champion's live MAE (100k USD) on labelled predictions", live_mae),
        "housing_reference_mae": ("Champion's holdout MAE at training (100k USD)", reference_mae),
        "housing_estimated_mae": (
            "Champion's MAE (100k USD) estimated without labels by its error model on the last window",
            estimated_mae,
        ),
        # Beside the estimate, so a panel or a rule can tell a move from noise (the band is +-3 SE wide
        # in the decision: services/monitor/decide/estimate.py).
        "housing_estimated_mae_se": (
            "Standard error of housing_estimated_mae (SD of the per-row estimated errors / sqrt(n))",
            estimated_mae_se,
        ),
        "housing_trainer_failed": (
            "1 when the newest finished trainer failed (or hit its deadline), 0 when it succeeded",
            None if trainer_failed is None else float(trainer_failed),
        ),
        "housing_trainer_stalled_jobs": (
            "Trainer Jobs that are suspended or stuck (no progress past their deadline, or no pod started)",
            None if trainers_stalled is None else float(trainers_stalled),
        ),
        "housing_monitor_champion_version": (
            "The champion version the run judged; 0: no champion yet (the monitor is training v1)",
            None if champion_version is None else float(champion_version),
        ),
        "housing_monitor_last_run_timestamp_seconds": ("When the last monitor run finished", finished_at),
        # Pushed by the monitor (every 10-15 minutes, already pushing) rather than by `housing db maintain`
        # (every 6 hours, no Pushgateway egress): the alert on it must still fire when maintenance fails.
        "housing_prediction_log_partitions_end_timestamp_seconds": (
            "When the prediction log's day partitions run out (the earliest over predictions and feedback)",
            partitions_end,
        ),
        "housing_monitor_run_duration_seconds": ("How long the last monitor run took", duration_seconds),
    }


def _set_gauges(
    registry: CollectorRegistry, psi: Mapping[str, float], gauges: Mapping[str, tuple[str, float | None]]
) -> None:
    """Set the PSI gauge per feature and each of ``gauges`` in ``registry``, finite figures only."""
    from prometheus_client import Gauge

    psi_gauge = Gauge(
        "housing_drift_psi", "PSI of a feature in the last window", ["feature"], registry=registry
    )
    # An undefined figure is left out rather than pushed as NaN: a NaN gauge compares false with every
    # alert rule's threshold, so the alert would silently never fire; a missing one shows as absent.
    for feature, value in psi.items():
        if is_finite(value):
            psi_gauge.labels(feature=feature).set(value)
    for name, (help_text, figure) in gauges.items():
        if figure is not None and is_finite(figure):
            Gauge(name, help_text, registry=registry).set(figure)
