"""Retention of the monitor's reports: its MLflow runs (with their artifacts) and its HTML files.

Each monitor run logs one MLflow run tagged ``housing.kind = monitor`` in the project's experiment,
with the ~4 MB Evidently HTML as an artifact, and leaves the same HTML under ``REPORTS_DIR``
(``drift-report-<id>.html``). Past the retention both go:

- a run's artifacts are deleted first, through the artifact repository its ``artifact_uri`` names
  (the local folder, the tracking server's proxied store, S3), then the run is deleted. A run whose
  artifacts could not be deleted is kept (and found again by the next pass), so no run is ever
  deleted with its HTML left behind. MLflow's ``delete_run`` marks the run deleted; its few metric
  rows stay in the backend store until ``mlflow gc`` (the bytes were in the artifacts);
- report files are deleted by modification time; other files in the folder are not touched.

Idempotent: a second pass finds nothing (deleted runs are not searched again).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from mlflow.entities import Run, ViewType
from mlflow.exceptions import MlflowException
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
from mlflow.tracking import MlflowClient

log = logging.getLogger(__name__)

MONITOR_RUNS = "tags.`housing.kind` = 'monitor'"
REPORT_FILES = "drift-report-*.html"
PAGE = 200


@dataclass
class ReportPruning:
    """What one pass deleted, and the runs it had to leave for the next pass (with why)."""

    runs: list[str] = field(default_factory=list)
    kept: dict[str, str] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)


def prune_monitor_runs(
    client: MlflowClient, experiment_id: str, before: datetime, *, page_size: int = PAGE
) -> ReportPruning:
    """Delete the monitor runs of ``experiment_id`` that started before ``before``, artifacts first
    (listed ``page_size`` runs a request)."""
    done = ReportPruning()
    query = f"{MONITOR_RUNS} AND attributes.start_time < {int(before.timestamp() * 1000)}"
    # List every page first, then delete: deleting while paging would shift the pages under us, and
    # re-asking for the first page would find a run that could not be deleted again and again.
    runs: list[Run] = []
    token: str | None = None
    while True:
        page = client.search_runs(
            [experiment_id],
            query,
            run_view_type=ViewType.ACTIVE_ONLY,
            max_results=page_size,
            page_token=token,
        )
        runs.extend(page)
        token = page.token
        if not token:
            break
    for run in runs:
        run_id = run.info.run_id
        try:
            if run.info.artifact_uri:
                get_artifact_repository(run.info.artifact_uri).delete_artifacts()
            client.delete_run(run_id)
        except (MlflowException, OSError) as error:
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            log.warning("kept monitor run %s for the next pass: %s", run_id, reason)
            done.kept[run_id] = reason
            continue
        done.runs.append(run_id)
    return done


def prune_report_files(folder: Path, before: datetime) -> list[str]:
    """Delete the monitor's HTML reports in ``folder`` last modified before ``before``."""
    if not folder.is_dir():
        return []
    deleted = []
    cutoff = before.timestamp()
    for path in sorted(folder.glob(REPORT_FILES)):
        try:
            if path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink()
                deleted.append(path.name)
        except FileNotFoundError:  # another pass removed it
            continue
    return deleted


def prune_reports(
    client: MlflowClient | None, experiment_id: str | None, folder: Path, before: datetime
) -> ReportPruning:
    """Both halves: MLflow runs (when there is an experiment to look in) and the report files."""
    done = (
        prune_monitor_runs(client, experiment_id, before)
        if client is not None and experiment_id is not None
        else ReportPruning()
    )
    done.files = prune_report_files(folder, before)
    return done
