"""PrometheusRule groups parse with promtool and fire on synthetic series; the dashboard uses real metrics."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from .helpers import CHART, Rendered, helm_template, run

INFERENCE_METRICS = {
    "http_requests_total",
    "http_request_duration_seconds",
    "prediction_value",
    "model_info",
    "model_swaps_total",
    "model_registry_errors_total",
    "model_loaded",
    "model_refused",
    "model_refusals_total",
    "prediction_log_queue_rows",
    "prediction_log_rows_written_total",
    "prediction_log_write_errors_total",
    "prediction_log_spool_bytes",
    "prediction_log_spool_capacity_bytes",
    "prediction_log_rows_dropped_total",
}
MONITOR_METRICS = {
    "housing_drift_psi",
    "housing_drift_share",
    "housing_drift_detected",
    "housing_live_mae",
    "housing_reference_mae",
    "housing_estimated_mae",
    "housing_estimated_mae_se",
    "housing_monitor_last_run_timestamp_seconds",
    "housing_monitor_run_duration_seconds",
    "housing_trainer_failed",
    "housing_trainer_stalled_jobs",
    "housing_monitor_champion_version",
    "housing_prediction_log_partitions_end_timestamp_seconds",
}
# What Prometheus itself records about every scrape target.
SCRAPE_METRICS = {"up"}
# Kubernetes' own view, as kube-prometheus-stack scrapes it: kube-state-metrics and the kubelet.
CLUSTER_METRICS = {
    "kube_job_status_start_time",
    "kube_job_failed",
    "kube_job_owner",
    "kube_cronjob_status_last_successful_time",
    "kube_deployment_status_replicas_available",
    "kubelet_volume_stats_available_bytes",
    "kubelet_volume_stats_capacity_bytes",
}


def metric_names(expr: str) -> set[str]:
    names = set(re.findall(r"\b([a-z_][a-z0-9_]*)\s*(?:\{|\[)", expr))
    return {re.sub(r"_(bucket|sum|count)$", "", n) for n in names}


@pytest.fixture
def rules_file(rendered: dict[str, Rendered], tmp_path: Path) -> Path:
    groups = [g for d in rendered["prod"].kind("PrometheusRule") for g in d["spec"]["groups"]]
    assert groups
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump({"groups": groups}))
    return path


def test_promtool_check_rules(tool: Callable[[str], str], rules_file: Path) -> None:
    proc = run([tool("promtool"), "check", "rules", str(rules_file)])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


@pytest.mark.parametrize("tests", ["alerts.test.yml", "platform.test.yml"])
def test_promtool_unit_tests_fire_the_alerts(
    tool: Callable[[str], str], rules_file: Path, tests: str
) -> None:
    shutil.copy(Path(__file__).parent / "rules" / tests, rules_file.parent / tests)
    proc = run([tool("promtool"), "test", "rules", str(rules_file.parent / tests)])
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_rules_cover_the_issue_and_use_known_metrics(rendered: dict[str, Rendered]) -> None:
    rules = [
        r for d in rendered["prod"].kind("PrometheusRule") for g in d["spec"]["groups"] for r in g["rules"]
    ]
    names = {r["alert"] for r in rules}
    required = {
        "HousingDataDrift",
        "HousingLiveErrorHigh",
        "HousingEstimatedErrorHigh",
        "HousingHighErrorRate",
        "HousingHighPredictLatency",
        "HousingPredictionLogDropping",
        "HousingNoModelLoaded",
        "HousingModelRefused",
        "HousingPredictionSpoolFilling",
        "HousingInferenceNotScraped",
        "HousingMonitorMetricsAbsent",
        "HousingTrainerFailed",
        "HousingTrainerStalled",
        "HousingMaintenanceFailing",
        "HousingPartitionsRunningOut",
        "HousingMLflowDown",
        "HousingVolumeFilling",
    }
    assert required <= names, required - names
    for rule in rules:
        used = metric_names(rule["expr"]) - {
            "rate",
            "increase",
            "sum",
            "max",
            "clamp_min",
            "histogram_quantile",
            "by",
        }
        unknown = used - INFERENCE_METRICS - MONITOR_METRICS - SCRAPE_METRICS - CLUSTER_METRICS
        assert not unknown, f"{rule['alert']}: unknown metrics {unknown}"
        assert rule["labels"]["severity"] in {"warning", "critical"}
        # Pushed monitor series carry the grouping key: one release's alerts never see another's.
        for name in used & MONITOR_METRICS:
            for selector in re.findall(rf"\b{name}\{{([^}}]*)\}}", rule["expr"]):
                for label in ('job="housing-monitor"', 'namespace="cali-housing"', 'release="cali-housing"'):
                    assert label in selector, (rule["alert"], name, selector)


def test_grafana_dashboard(rendered: dict[str, Rendered]) -> None:
    cm = rendered["prod"].one("ConfigMap", "-dashboard")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    dash = json.loads(cm["data"]["cali-housing.json"])
    source = json.loads((CHART / "dashboards" / "cali-housing.json").read_text())
    assert dash["panels"] == source["panels"]
    # Fixed to this release (prod renders release cali-housing in namespace cali-housing).
    fixed = {v["name"]: v["query"] for v in dash["templating"]["list"] if v["type"] == "custom"}
    assert fixed == {
        "namespace": "cali-housing",
        "release": "cali-housing",
        "inference_job": "cali-housing-inference",
    }
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    # Every series is filtered to the release: inference by namespace and scrape job, the monitor's
    # pushed series by its grouping key.
    for expr in exprs:
        for selector in re.findall(r"\{([^}]*)\}", expr):
            assert 'namespace="$namespace"' in selector, expr
            assert 'job="$inference_job"' in selector or 'release="$release"' in selector, expr
    used = set().union(*(metric_names(e) for e in exprs)) - {"rate", "sum", "max", "histogram_quantile"}
    assert not used - INFERENCE_METRICS - MONITOR_METRICS, used - INFERENCE_METRICS - MONITOR_METRICS
    for needed in (
        "http_requests_total",
        "http_request_duration_seconds",
        "housing_drift_psi",
        "housing_live_mae",
        "model_info",
    ):
        assert needed in used, needed


def test_each_release_has_its_own_dashboard_uid(tool: Callable[[str], str]) -> None:
    """Staging and prod share the release name; their dashboards must not share a uid in one Grafana."""
    uids = set()
    for namespace, values in (
        ("cali-housing-staging", "values-staging.yaml"),
        ("cali-housing-prod", "values-prod.yaml"),
    ):
        proc = helm_template(tool("helm"), ["-f", str(CHART / values)], namespace=namespace)
        assert proc.returncode == 0, proc.stderr
        cm = next(
            d for d in yaml.safe_load_all(proc.stdout) if d and d["metadata"]["name"].endswith("-dashboard")
        )
        dash = json.loads(cm["data"]["cali-housing.json"])
        assert len(dash["uid"]) <= 40 and namespace in dash["title"]
        uids.add(dash["uid"])
    assert len(uids) == 2


def test_servicemonitor_scrapes_the_inference_service(rendered: dict[str, Rendered]) -> None:
    r = rendered["prod"]
    sm = r.one("ServiceMonitor", "-inference")
    svc = r.one("Service", "-inference")
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    assert sm["spec"]["endpoints"][0]["port"] == svc["spec"]["ports"][0]["name"]
    assert sm["spec"]["endpoints"][0]["path"] == "/metrics"
