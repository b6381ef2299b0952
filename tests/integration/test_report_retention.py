"""The monitor's reports past REPORT_RETENTION_DAYS: MLflow monitor runs go with their artifacts,
other runs and younger ones stay, report files go by age; idempotent; a run whose artifacts cannot be
deleted is kept for the next pass. Against a real temporary MLflow store and through the command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlparse

import pytest

from services.common import report_retention
from services.common.report_retention import prune_monitor_runs, prune_report_files, prune_reports
from tests.conftest import Registry

NOW = datetime.now(UTC)
DAY_MS = 24 * 3600 * 1000


def _run(registry: Registry, tmp_path: Path, *, days_old: float, kind: str | None) -> str:
    """A run started ``days_old`` days ago with a report artifact, tagged ``housing.kind`` = kind."""
    client = registry.client
    tags = {"housing.kind": kind} if kind else {}
    start = int(NOW.timestamp() * 1000 - days_old * DAY_MS)
    run = client.create_run(registry.experiment_id, start_time=start, tags=tags)
    html = tmp_path / f"report-{run.info.run_id}.html"
    html.write_text("<html>report</html>")
    client.log_artifact(run.info.run_id, str(html), artifact_path="monitor")
    client.set_terminated(run.info.run_id)
    return str(run.info.run_id)


def _artifacts(registry: Registry, run_id: str) -> Path:
    uri = registry.client.get_run(run_id).info.artifact_uri
    return Path(urlparse(uri).path)


def _stage(registry: Registry, run_id: str) -> str:
    return str(registry.client.get_run(run_id).info.lifecycle_stage)


def test_old_monitor_runs_go_with_their_artifacts_and_the_rest_stays(
    registry: Registry, tmp_path: Path
) -> None:
    old = [_run(registry, tmp_path, days_old=days, kind="monitor") for days in (20, 15)]
    young = _run(registry, tmp_path, days_old=3, kind="monitor")
    training = _run(registry, tmp_path, days_old=30, kind=None)
    for run_id in (*old, young, training):
        assert (_artifacts(registry, run_id) / "monitor").is_dir()

    done = prune_monitor_runs(registry.client, registry.experiment_id, NOW - timedelta(days=14))

    assert sorted(done.runs) == sorted(old) and done.kept == {}
    for run_id in old:
        assert _stage(registry, run_id) == "deleted"
        assert not _artifacts(registry, run_id).exists(), "the report's bytes must go with the run"
    for run_id in (young, training):
        assert _stage(registry, run_id) == "active"
        assert (_artifacts(registry, run_id) / "monitor").is_dir()
    # Idempotent: nothing left to do.
    again = prune_monitor_runs(registry.client, registry.experiment_id, NOW - timedelta(days=14))
    assert again.runs == [] and again.kept == {}


def test_more_runs_than_a_page_are_all_pruned(registry: Registry, tmp_path: Path) -> None:
    old = [_run(registry, tmp_path, days_old=20 + i, kind="monitor") for i in range(5)]
    done = prune_monitor_runs(registry.client, registry.experiment_id, NOW - timedelta(days=14), page_size=2)
    assert sorted(done.runs) == sorted(old)


def test_a_run_whose_artifacts_cannot_be_deleted_is_kept_for_the_next_pass(
    registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store that refuses a delete (an object store's policy, say) cannot run here: the artifact
    repository of one run is replaced by one whose delete raises OSError."""
    stuck, fine = (_run(registry, tmp_path, days_old=20, kind="monitor") for _ in range(2))
    stuck_uri = registry.client.get_run(stuck).info.artifact_uri
    real = report_retention.get_artifact_repository

    def failing_store(uri: str):  # type: ignore[no-untyped-def]
        if uri == stuck_uri:
            raise OSError("the artifact store refused the delete")
        return real(uri)

    monkeypatch.setattr(report_retention, "get_artifact_repository", failing_store)
    # One run a page: the stuck run fills a page, and the pass must still end.
    done = prune_monitor_runs(registry.client, registry.experiment_id, NOW - timedelta(days=14), page_size=1)
    assert done.runs == [fine]
    assert list(done.kept) == [stuck] and "refused" in done.kept[stuck]
    assert _stage(registry, stuck) == "active" and (_artifacts(registry, stuck) / "monitor").is_dir()

    monkeypatch.setattr(report_retention, "get_artifact_repository", real)
    later = prune_monitor_runs(registry.client, registry.experiment_id, NOW - timedelta(days=14))
    assert later.runs == [stuck] and not _artifacts(registry, stuck).exists()


def _report_file(folder: Path, name: str, days_old: float) -> Path:
    path = folder / name
    path.write_text("<html></html>")
    stamp = time.time() - days_old * 86400
    os.utime(path, (stamp, stamp))
    return path


def test_report_files_go_by_age_and_other_files_stay(tmp_path: Path) -> None:
    old = _report_file(tmp_path, "drift-report-1.html", 20)
    young = _report_file(tmp_path, "drift-report-9.html", 1)
    other = _report_file(tmp_path, "demo.html", 20)
    assert prune_report_files(tmp_path, NOW - timedelta(days=14)) == ["drift-report-1.html"]
    assert not old.exists() and young.exists() and other.exists()
    assert prune_report_files(tmp_path, NOW - timedelta(days=14)) == []
    assert prune_report_files(tmp_path / "missing", NOW) == []


def test_no_experiment_yet_prunes_only_files(tmp_path: Path) -> None:
    _report_file(tmp_path, "drift-report-1.html", 20)
    done = prune_reports(None, None, tmp_path, NOW - timedelta(days=14))
    assert done.runs == [] and done.files == ["drift-report-1.html"]


def _maintain(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-c", "from services.cli import main; main()", "db", "maintain", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


def test_the_command_prunes_reports_and_says_so(
    database_url: str, registry: Registry, tmp_path: Path
) -> None:
    reports = tmp_path / "reports"
    reports.mkdir()
    _report_file(reports, "drift-report-1.html", 10)
    old = _run(registry, tmp_path, days_old=10, kind="monitor")
    young = _run(registry, tmp_path, days_old=1, kind="monitor")
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "MLFLOW_TRACKING_URI": registry.uri,
        "HOUSING_HOME": str(tmp_path / "home"),
        "REPORTS_DIR": str(reports),
        "REPORT_RETENTION_DAYS": "7",
    }
    first = _maintain(env, "--json")
    assert first.returncode == 0, first.stderr
    done = json.loads(first.stdout)
    assert done["mlflow_runs_deleted"] == [old] and done["report_files_deleted"] == ["drift-report-1.html"]
    assert done["errors"] == [] and done["reports_kept_from"]
    assert _stage(registry, young) == "active"
    second = _maintain(env)
    assert second.returncode == 0, second.stderr
    assert "deleted 0 MLflow monitor runs with their artifacts" in second.stdout
    assert "deleted 0 report files" in second.stdout


def test_an_unreachable_registry_fails_the_run_after_the_database_work(
    database_url: str, tmp_path: Path
) -> None:
    reports = tmp_path / "reports"
    reports.mkdir()
    _report_file(reports, "drift-report-1.html", 30)
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "MLFLOW_TRACKING_URI": "http://127.0.0.1:9",  # the discard port: connection refused
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "HOUSING_HOME": str(tmp_path / "home"),
        "REPORTS_DIR": str(reports),
    }
    proc = _maintain(env, "--json")
    assert proc.returncode == 1, proc.stderr
    done = json.loads(proc.stdout)
    assert done["created"], "the partitions are made whatever the registry does"
    assert done["report_files_deleted"] == ["drift-report-1.html"]
    assert len(done["errors"]) == 1 and "MLflow registry" in done["errors"][0]
