"""The Kubernetes launcher as a contract: the stamped Job validates, and the API calls are the right ones.

A local HTTP server answers as the API server would and records the requests: the exact calls, and
the error paths (403, unreachable) a real cluster does not produce on demand. Against a real API
server, tests/cluster/test_monitor_launch.py runs `housing monitor` as the monitor's ServiceAccount:
the Job created, none while one is active, its outcome read.
"""

from __future__ import annotations

import copy
import json
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import kubernetes_validate
import pytest
from kubernetes import client

from services.common.vocabulary import Action
from services.monitor.launchers.kubernetes import KubernetesLauncher, load_template, stamp_job

TEMPLATE: dict[str, Any] = {
    "apiVersion": "batch/v1",
    "kind": "Job",
    "metadata": {
        "generateName": "housing-trainer-",
        "labels": {
            "app.kubernetes.io/name": "cali-housing",
            "app.kubernetes.io/component": "trainer",
            "housing.io/release": "prod",
        },
    },
    "spec": {
        "template": {
            "metadata": {"labels": {"app.kubernetes.io/component": "trainer"}},
            "spec": {
                "restartPolicy": "Never",
                "serviceAccountName": "housing-trainer",
                "containers": [
                    {
                        "name": "trainer",
                        "image": "ghcr.io/owner/cali-housing-trainer:abc123",
                        "args": ["train", "--json"],
                        "envFrom": [{"secretRef": {"name": "housing-env"}}],
                    }
                ],
            },
        }
    },
}
SELECTOR = "app.kubernetes.io/component=trainer,housing.io/release=prod"
JOBS = "/apis/batch/v1/namespaces/housing/jobs"


def test_the_stamped_job_validates_and_carries_the_report() -> None:
    template = copy.deepcopy(TEMPLATE)
    template["metadata"]["labels"]["app.kubernetes.io/instance"] = "housing-prod"  # as if Argo CD tracked it
    template["metadata"]["annotations"] = {"argocd.argoproj.io/tracking-id": "x", "team": "ml"}
    job = stamp_job(template, 42)
    assert template["metadata"]["labels"]["app.kubernetes.io/instance"] == "housing-prod"  # pure: no mutation
    labels = job["metadata"]["labels"]
    assert labels["housing.io/drift-report"] == "42"
    assert job["spec"]["template"]["metadata"]["labels"]["housing.io/drift-report"] == "42"
    assert "app.kubernetes.io/instance" not in labels
    assert job["metadata"]["annotations"] == {"team": "ml"}
    assert job["metadata"]["generateName"] == "housing-trainer-" and "name" not in job["metadata"]
    assert job["spec"]["ttlSecondsAfterFinished"] > 0 and job["spec"]["backoffLimit"] >= 0
    kubernetes_validate.validate(job, "1.37.0", strict=True)


def test_stamping_keeps_values_the_template_sets() -> None:
    template = copy.deepcopy(TEMPLATE)
    template["spec"].update(ttlSecondsAfterFinished=600, backoffLimit=0)
    job = stamp_job(template, 1)
    assert (job["spec"]["ttlSecondsAfterFinished"], job["spec"]["backoffLimit"]) == (600, 0)


def test_a_template_without_the_trainer_labels_is_refused(tmp_path: Any) -> None:
    import yaml

    path = tmp_path / "job.yaml"
    broken = copy.deepcopy(TEMPLATE)
    del broken["metadata"]["labels"]["housing.io/release"]
    path.write_text(yaml.safe_dump(broken))
    with pytest.raises(ValueError, match=r"housing\.io/release"):
        load_template(path)
    path.write_text(yaml.safe_dump(TEMPLATE))
    assert load_template(path) == TEMPLATE


class FakeApiServer:
    """Answers GET/POST on the jobs collection like the API server; ``status`` forces an error."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.jobs: list[dict[str, Any]] = []
        self.status = 200
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _record(self) -> dict[str, Any]:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                request = {
                    "method": self.command,
                    "path": parts.path,
                    "query": parse_qs(parts.query),
                    "body": body,
                }
                fake.requests.append(request)
                return request

            def _refuse(self) -> bool:
                if fake.status == 200:
                    return False
                self._answer(
                    fake.status,
                    {
                        "kind": "Status",
                        "apiVersion": "v1",
                        "status": "Failure",
                        "reason": "Forbidden",
                        "message": 'jobs.batch is forbidden: User "system:serviceaccount:housing:monitor"'
                        " cannot list",
                        "code": fake.status,
                    },
                )
                return True

            def do_GET(self) -> None:
                self._record()
                if not self._refuse():
                    self._answer(
                        200, {"kind": "JobList", "apiVersion": "batch/v1", "metadata": {}, "items": fake.jobs}
                    )

            def do_POST(self) -> None:
                request = self._record()
                if self._refuse():
                    return
                job = copy.deepcopy(request["body"])
                job["metadata"]["name"] = job["metadata"]["generateName"] + "x7k2q"
                job["status"] = {}
                self._answer(201, job)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def _batch(url: str) -> client.BatchV1Api:
    configuration = client.Configuration()
    configuration.host = url
    configuration.retries = 0
    return client.BatchV1Api(client.ApiClient(configuration))


@pytest.fixture
def api() -> Iterator[FakeApiServer]:
    server = FakeApiServer()
    yield server
    server.server.shutdown()


def _job(name: str, conditions: list[dict[str, str]] | None) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": TEMPLATE["metadata"]["labels"]},
        "spec": TEMPLATE["spec"],
        "status": {"conditions": conditions} if conditions is not None else {"active": 1},
    }


def test_it_lists_by_label_then_creates_the_stamped_job(api: FakeApiServer) -> None:
    api.jobs = [_job("housing-trainer-old", [{"type": "Complete", "status": "True"}])]
    result = KubernetesLauncher(_batch(api.url), "housing", TEMPLATE).launch(7)
    assert result.action == Action.TRAINER_LAUNCHED, result.detail
    assert result.info["job"] == "housing-trainer-x7k2q"
    listing, creation = api.requests
    assert (listing["method"], listing["path"]) == ("GET", JOBS)
    assert listing["query"]["labelSelector"] == [SELECTOR]
    assert (creation["method"], creation["path"]) == ("POST", JOBS)
    assert creation["body"] == stamp_job(TEMPLATE, 7)
    kubernetes_validate.validate(creation["body"], "1.37.0", strict=True)


def test_a_failed_job_does_not_block_but_is_named(api: FakeApiServer) -> None:
    api.jobs = [_job("housing-trainer-bad", [{"type": "Failed", "status": "True"}])]
    result = KubernetesLauncher(_batch(api.url), "housing", TEMPLATE).launch(9)
    assert result.action == Action.TRAINER_LAUNCHED
    assert result.info["failed_jobs"] == ["housing-trainer-bad"]


def test_rbac_refusal_is_a_clear_launch_failure(api: FakeApiServer) -> None:
    api.status = 403
    result = KubernetesLauncher(_batch(api.url), "housing", TEMPLATE).launch(10)
    assert result.action == Action.LAUNCH_FAILED
    assert "403" in result.detail and "service account" in result.detail and "housing" in result.detail
    assert [r["method"] for r in api.requests] == ["GET"]  # never a create after a refusal


def test_an_unreachable_api_is_a_clear_launch_failure() -> None:
    with socket.socket() as probe:  # a port with nobody listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = KubernetesLauncher(_batch(f"http://127.0.0.1:{port}"), "housing", TEMPLATE).launch(11)
    assert result.action == Action.LAUNCH_FAILED
    assert "unreachable" in result.detail


def test_the_newest_finished_job_tells_how_the_last_trainer_ended(api: FakeApiServer) -> None:
    def finished(kind: str, at: str, reason: str = "", message: str = "") -> list[dict[str, str]]:
        condition = {"type": kind, "status": "True", "lastTransitionTime": at}
        return [condition | ({"reason": reason, "message": message} if reason else {})]

    launcher = KubernetesLauncher(_batch(api.url), "housing", TEMPLATE)
    assert launcher.last_finished() is None  # no Job yet
    api.jobs = [
        _job("housing-trainer-ok", finished("Complete", "2026-12-01T10:00:00Z")),
        _job(
            "housing-trainer-slow",
            finished("Failed", "2026-12-01T12:00:00Z", "DeadlineExceeded", "Job was active longer than"),
        ),
        _job("housing-trainer-now", None),  # still running: not finished
    ]
    outcome = launcher.last_finished()
    assert outcome is not None and outcome.failed and outcome.trainer == "housing-trainer-slow"
    assert outcome.reason.startswith("DeadlineExceeded: Job was active")
    assert api.requests[-1]["query"]["labelSelector"] == [SELECTOR]
    api.jobs.append(_job("housing-trainer-fixed", finished("Complete", "2026-12-01T13:00:00Z")))
    outcome = launcher.last_finished()
    assert outcome is not None and not outcome.failed and outcome.trainer == "housing-trainer-fixed"


def test_a_refused_listing_of_trainers_is_an_error_naming_the_fix(api: FakeApiServer) -> None:
    from services.monitor.launchers import LauncherError

    api.status = 403
    with pytest.raises(LauncherError, match="needs a Role"):
        KubernetesLauncher(_batch(api.url), "housing", TEMPLATE).last_finished()


NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def _unfinished(name: str, *, started_min: float, ready: int = 1, **spec: Any) -> dict[str, Any]:
    """A Job that has not finished, started ``started_min`` minutes before NOW."""
    start = (NOW - timedelta(minutes=started_min)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "metadata": {"name": name, "namespace": "housing", "creationTimestamp": start},
        "spec": {**TEMPLATE["spec"], **spec},
        "status": {"active": 1, "ready": ready, "startTime": start},
    }


# (Job, its state): the deadline is the Job's own, else the template's (3600 s below).
STATES: list[tuple[dict[str, Any], str]] = [
    (_unfinished("fresh", started_min=1, ready=0), "running"),  # its pod is still being pulled
    (_unfinished("training", started_min=50), "running"),
    (_unfinished("pending-14-min", started_min=14, ready=0), "running"),
    (_unfinished("pending-16-min", started_min=16, ready=0), "stuck"),  # PODS_START_SECONDS: 15 min
    (_unfinished("deadline-plus-9", started_min=69, activeDeadlineSeconds=3600), "running"),
    (_unfinished("deadline-plus-11", started_min=71, activeDeadlineSeconds=3600), "stuck"),  # grace 10 min
    (_unfinished("short-deadline", started_min=22, activeDeadlineSeconds=600), "stuck"),
    (_unfinished("template-deadline", started_min=71), "stuck"),
    (_unfinished("suspended", started_min=0, ready=0, suspend=True), "suspended"),
    (_unfinished("suspended-long-ago", started_min=600, ready=0, suspend=True), "suspended"),
    (_job("done", [{"type": "Complete", "status": "True"}]), "complete"),
    (_job("broken", [{"type": "Failed", "status": "True"}]), "failed"),
]


@pytest.mark.parametrize(("job", "state"), STATES, ids=[job["metadata"]["name"] for job, _ in STATES])
def test_each_job_is_classified(api: FakeApiServer, job: dict[str, Any], state: str) -> None:
    api.jobs = [job]
    template = copy.deepcopy(TEMPLATE)
    template["spec"]["activeDeadlineSeconds"] = 3600
    launcher = KubernetesLauncher(_batch(api.url), "housing", template, clock=lambda: NOW)
    stalled = launcher.stalled()
    if state in {"suspended", "stuck"}:
        (found,) = stalled
        assert (found.trainer, found.state) == (job["metadata"]["name"], state)
        # The detail says what to do, with the Job's own name and namespace.
        assert f"kubectl delete job {found.trainer} -n housing" in found.detail
    else:
        assert stalled == []
    result = launcher.launch(3)
    blocked = state == "running"
    assert (result.action == Action.TRAINER_ALREADY_RUNNING) is blocked, result.detail
    if state in {"suspended", "stuck"}:
        assert result.info["stalled_jobs"] == [job["metadata"]["name"]]


def test_a_suspended_job_says_how_to_resume_it(api: FakeApiServer) -> None:
    api.jobs = [_unfinished("held", started_min=0, ready=0, suspend=True)]
    (stalled,) = KubernetesLauncher(_batch(api.url), "housing", TEMPLATE, clock=lambda: NOW).stalled()
    assert 'kubectl patch job held -n housing -p \'{"spec": {"suspend": false}}\'' in stalled.detail


def test_a_running_job_blocks_even_beside_a_stalled_one(api: FakeApiServer) -> None:
    api.jobs = [
        _unfinished("held", started_min=0, ready=0, suspend=True),
        _unfinished("training", started_min=5),
    ]
    result = KubernetesLauncher(_batch(api.url), "housing", TEMPLATE, clock=lambda: NOW).launch(4)
    assert result.action == Action.TRAINER_ALREADY_RUNNING
    assert result.info["running"] == ["training"] and result.info["stalled_jobs"] == ["held"]
    assert [r["method"] for r in api.requests] == ["GET"]
