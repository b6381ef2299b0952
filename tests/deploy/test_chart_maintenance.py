"""The maintenance CronJob (`housing db maintain`): on a schedule that keeps partitions ahead, one run
at a time with a deadline, the monitor's hardened pod without its API token, egress to DNS, the
database and the MLflow registry only, its settings from values under the names the code reads."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import yaml

from services.common.settings import MaintenanceSettings

from .helpers import CHART, REQUIRED_SETS, Rendered, helm_template
from .test_chart import env_of, pod_spec
from .test_chart_safety import DATABASE, DNS, allowed, egress_rules, pod_labels, ports, render

CRONJOB = "-maintain"
# values key -> the environment variable the settings class reads
SETTINGS = {
    "predictionRetentionDays": "PREDICTION_RETENTION_DAYS",
    "partitionDaysAhead": "PARTITION_DAYS_AHEAD",
    "driftReportRetentionDays": "DRIFT_REPORT_RETENTION_DAYS",
    "monitorHistogramRetentionDays": "MONITOR_HISTOGRAM_RETENTION_DAYS",
    "alertStateRetentionDays": "ALERT_STATE_RETENTION_DAYS",
    "reportRetentionDays": "REPORT_RETENTION_DAYS",
    "lockTimeoutSeconds": "MAINTENANCE_LOCK_TIMEOUT_SECONDS",
}


def maintain_container(r: Rendered) -> dict[str, Any]:
    (c,) = pod_spec(r.one("CronJob", CRONJOB))["containers"]
    return c


def _field(text: str, low: int, high: int) -> list[int]:
    """The values of one cron field (``*``, ``*/n``, ``a``, ``a-b``, ``a,b``)."""
    out: set[int] = set()
    for part in text.split(","):
        base, _, step = part.partition("/")
        if base == "*":
            first, last = low, high
        elif "-" in base:
            first, last = (int(x) for x in base.split("-"))
        else:
            first = last = int(base)
        out.update(range(first, last + 1, int(step or 1)))
    return sorted(out)


def longest_gap(schedule: str) -> timedelta:
    """Longest time between two runs of a schedule that runs every day (day fields all ``*``)."""
    minute, hour, *days = schedule.split()
    assert days == ["*", "*", "*"], f"{schedule}: the gap check reads daily schedules only"
    runs = [h * 60 + m for h in _field(hour, 0, 23) for m in _field(minute, 0, 59)]
    gaps = [b - a for a, b in zip(runs, [*runs[1:], runs[0] + 24 * 60], strict=True)]
    return timedelta(minutes=max(gaps))


def test_the_parser_of_the_schedule_reads_steps_lists_and_ranges() -> None:
    assert longest_gap("23 */6 * * *") == timedelta(hours=6)
    assert longest_gap("0 3 * * *") == timedelta(hours=24)
    assert longest_gap("*/15 1-2,20 * * *") == timedelta(hours=17, minutes=15)


def test_one_run_at_a_time_with_a_deadline(rendered: dict[str, Rendered]) -> None:
    for name in ("default", "staging", "prod"):
        cj = rendered[name].one("CronJob", CRONJOB)
        spec = cj["spec"]
        assert spec["concurrencyPolicy"] == "Forbid", name
        assert spec["startingDeadlineSeconds"] > 0, name
        job = spec["jobTemplate"]["spec"]
        assert 0 < job["activeDeadlineSeconds"] <= 3600, name
        assert job["ttlSecondsAfterFinished"] > 0 and job["backoffLimit"] >= 1, name
        assert pod_spec(cj)["restartPolicy"] == "Never"
        assert maintain_container(rendered[name])["command"] == ["housing", "db", "maintain", "--json"]


def test_the_schedule_keeps_two_days_of_partitions_ahead(rendered: dict[str, Rendered]) -> None:
    """A run makes PARTITION_DAYS_AHEAD days past its own day; until the next run starts (and ends,
    at worst its deadline later) the day two ahead of any moment must already exist, even when one
    run in between fails."""
    for name in ("default", "staging", "prod"):
        r = rendered[name]
        cj = r.one("CronJob", CRONJOB)
        ahead = int(env_of(maintain_container(r))["PARTITION_DAYS_AHEAD"]["value"])
        deadline = timedelta(seconds=cj["spec"]["jobTemplate"]["spec"]["activeDeadlineSeconds"])
        start = timedelta(seconds=cj["spec"]["startingDeadlineSeconds"])
        # Two runs apart (one failed), plus the late start and the run's own time.
        worst = 2 * longest_gap(cj["spec"]["schedule"]) + start + deadline
        assert worst <= timedelta(days=ahead - 2), (name, worst, ahead)


def test_the_monitors_hardened_pod_without_its_api_token(rendered: dict[str, Rendered]) -> None:
    for name in ("default", "staging", "prod"):
        r = rendered[name]
        pod = pod_spec(r.one("CronJob", CRONJOB))
        monitor = pod_spec(r.one("CronJob", "-monitor"))
        assert pod["securityContext"] == monitor["securityContext"], name
        (c,) = pod["containers"]
        assert c["securityContext"] == monitor["containers"][0]["securityContext"], name
        assert c["securityContext"]["readOnlyRootFilesystem"] is True
        # Scratch space, and the monitor's reports claim (which it prunes).
        assert {v["name"] for v in pod["volumes"]} == {"housing-home", "tmp", "reports"}
        assert all("emptyDir" in v for v in pod["volumes"] if v["name"] != "reports")
        # Postgres only: no Kubernetes API token, its own ServiceAccount without a Role.
        assert pod["automountServiceAccountToken"] is False
        assert pod["serviceAccountName"] == "cali-housing-maintain"
        assert r.one("ServiceAccount", "-maintain")["automountServiceAccountToken"] is False
        assert all(
            s["name"] != "cali-housing-maintain" for rb in r.kind("RoleBinding") for s in rb["subjects"]
        )
        # The image that migrates the schema.
        assert "/cali-housing-trainer:" in c["image"]
        assert c["resources"]["requests"] and c["resources"]["limits"]["memory"]


def test_egress_only_to_dns_the_database_and_the_registry(rendered: dict[str, Rendered]) -> None:
    for name in ("default", "staging", "prod", "ci/hosted-registry-s3-values.yaml"):
        r = rendered[name]
        got = ports(allowed(egress_rules(r, pod_labels(r)["maintain"])))
        # The in-chart MLflow server (5000, which proxies the artifacts), else a hosted one over HTTPS.
        registry = {(443, "TCP")} if name.startswith("ci/hosted") else {(5000, "TCP")}
        assert got == DNS | DATABASE | registry, (name, got)
        policy = r.one("NetworkPolicy", "-maintain-egress")
        assert policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "maintain"


def test_settings_come_from_values_under_the_names_the_code_reads(tool: Callable[[str], str]) -> None:
    fields = {name.upper() for name in MaintenanceSettings.model_fields}
    assert set(SETTINGS.values()) <= fields
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())["maintenance"]
    r = render(
        tool("helm"),
        "--set",
        "maintenance.predictionRetentionDays=7",
        "--set",
        "maintenance.env.LOG_LEVEL=DEBUG",
    )
    env = env_of(maintain_container(r))
    for key, variable in SETTINGS.items():
        want = "7" if key == "predictionRetentionDays" else str(defaults[key])
        assert env[variable]["value"] == want, variable
    assert env["DATABASE_URL"]["valueFrom"]["secretKeyRef"]["key"] == "DATABASE_URL"
    # The chart's defaults are the code's (one source of truth for a fresh install).
    for key, variable in SETTINGS.items():
        assert float(defaults[key]) == float(MaintenanceSettings.model_fields[variable.lower()].default), key


def _reports_mount(r: Rendered, cronjob: str) -> tuple[str, str | None]:
    """(REPORTS_DIR, the claim mounted there or None) of one CronJob's pod."""
    pod = pod_spec(r.one("CronJob", cronjob))
    (c,) = pod["containers"]
    folder = env_of(c)["REPORTS_DIR"]["value"]
    mounted = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    # The folder is writable in every case: its own claim, or inside the pod's housing home.
    name = mounted.get(folder)
    if name is None:
        assert any(folder.startswith(path + "/") for path in mounted), (cronjob, folder, mounted)
        return folder, None
    return folder, volumes[name]["persistentVolumeClaim"]["claimName"]


def test_reports_outlive_the_monitors_pod_and_reach_the_maintenance(rendered: dict[str, Rendered]) -> None:
    """The monitor writes an HTML report every run; `housing db maintain` prunes them past
    REPORT_RETENTION_DAYS. Both pods see one claim at the REPORTS_DIR they are given, and the claim
    is kept on uninstall and on Argo CD prune."""
    for name in ("default", "staging", "prod"):
        r = rendered[name]
        folder, claim = _reports_mount(r, "-monitor")
        assert claim is not None and claim.endswith("-monitor-reports"), (name, claim)
        assert _reports_mount(r, CRONJOB) == (folder, claim), name
        pvc = r.one("PersistentVolumeClaim", "-monitor-reports")
        assert pvc["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
        assert pvc["metadata"]["annotations"]["argocd.argoproj.io/sync-options"].split(",") == [
            "Prune=false",
            "Delete=false",
        ]
    # The environments keep it on the node class that survives a re-created claim.
    for name in ("staging", "prod"):
        pvc = rendered[name].one("PersistentVolumeClaim", "-monitor-reports")
        assert pvc["spec"]["storageClassName"] == "local-path-stable", name


def test_reports_without_persistence_stay_in_the_pods_own_folder(tool: Callable[[str], str]) -> None:
    r = render(tool("helm"), "--set", "monitor.reports.persistence.enabled=false")
    assert not r.kind("PersistentVolumeClaim") or all(
        not d["metadata"]["name"].endswith("-monitor-reports") for d in r.kind("PersistentVolumeClaim")
    )
    assert _reports_mount(r, "-monitor")[1] is None
    assert _reports_mount(r, CRONJOB)[1] is None


def test_disabled_maintenance_renders_nothing_of_it(tool: Callable[[str], str]) -> None:
    r = render(tool("helm"), "--set", "maintenance.enabled=false")
    names = {d["metadata"]["name"] for d in r.docs}
    assert not {n for n in names if "maintain" in n}, names


def test_the_schema_refuses_too_few_days_ahead_and_unknown_keys(tool: Callable[[str], str]) -> None:
    helm = tool("helm")
    proc = helm_template(helm, [*REQUIRED_SETS, "--set", "maintenance.partitionDaysAhead=1"])
    assert proc.returncode != 0 and "partitionDaysAhead" in proc.stderr, proc.stderr
    proc = helm_template(helm, [*REQUIRED_SETS, "--set", "maintenance.retentionDays=7"])
    assert proc.returncode != 0 and "retentionDays" in proc.stderr, proc.stderr
