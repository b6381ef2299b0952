"""The Kubernetes launcher: a trainer Job stamped from the chart's template, created through the API.

The template is a complete ``batch/v1`` Job (``metadata.generateName``, labels
``app.kubernetes.io/component: trainer`` and ``housing.io/release``). :func:`stamp_job` is a pure
function; :class:`KubernetesLauncher` takes a ``BatchV1Api`` so tests hand it one pointed at a
local HTTP server. It needs only ``list`` and ``create`` on jobs in its namespace.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from services.common.vocabulary import Action
from services.monitor.launchers import LauncherError, LaunchResult, StalledTrainer, TrainerOutcome

COMPONENT_LABEL = "app.kubernetes.io/component"
RELEASE_LABEL = "housing.io/release"
REPORT_LABEL = "housing.io/drift-report"
DEFAULT_TTL_SECONDS = 86_400
DEFAULT_BACKOFF_LIMIT = 1
# Bounded API calls: (connect, read) seconds.
REQUEST_TIMEOUT = (5.0, 20.0)
# Argo CD tracks what it manages with these; a Job carrying one would be pruned as out of sync.
ARGOCD_LABELS = ("app.kubernetes.io/instance", "argocd.argoproj.io/instance")
ARGOCD_ANNOTATION_PREFIX = "argocd.argoproj.io/"
# When an unfinished Job stops counting as a running trainer. The Job controller fails an active Job
# at its activeDeadlineSeconds, Pending pods included, so one alive this long past its deadline is
# one nobody will end: suspended and resumed, claimed by another controller, or a controller down.
DEADLINE_GRACE_SECONDS = 600
# No pod ready this long after the Job started: unschedulable, an image that does not pull, a quota
# that refuses the pod. A cold node pulls the trainer image (~1 GB) in a few minutes; 15 leave room
# and still alert well before the default deadline (3600 s) would end the Job.
PODS_START_SECONDS = 900
RESUME = json.dumps({"spec": {"suspend": False}})


class TemplateError(ValueError):
    """The trainer Job template is missing or is not a usable batch/v1 Job."""


def load_template(path: Path) -> dict[str, Any]:
    """Read and check the Job template YAML."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise TemplateError(
            f"cannot read the trainer Job template {path} ({error.strerror}); set TRAINER_JOB_TEMPLATE"
        ) from error
    except yaml.YAMLError as error:
        raise TemplateError(f"the trainer Job template {path} is not valid YAML ({error})") from error
    if not isinstance(data, dict) or data.get("apiVersion") != "batch/v1" or data.get("kind") != "Job":
        raise TemplateError(f"the trainer Job template {path} must be one batch/v1 Job")
    labels = (data.get("metadata") or {}).get("labels") or {}
    if labels.get(COMPONENT_LABEL) != "trainer" or not labels.get(RELEASE_LABEL):
        raise TemplateError(
            f"the trainer Job template {path} needs labels {COMPONENT_LABEL}: trainer"
            f" and {RELEASE_LABEL}: <release>"
        )
    return data


def selector(template: dict[str, Any]) -> str:
    """The label selector of this release's trainer Jobs."""
    release = template["metadata"]["labels"][RELEASE_LABEL]
    return f"{COMPONENT_LABEL}=trainer,{RELEASE_LABEL}={release}"


def stamp_job(template: dict[str, Any], report_id: int) -> dict[str, Any]:
    """The Job to create for drift report ``report_id``: a copy of the template, stamped.

    Adds the report label (on the Job and its pods), defaults ``ttlSecondsAfterFinished`` and
    ``backoffLimit``, makes sure a ``generateName`` is set (and no fixed ``name``), and strips any
    Argo CD tracking label or annotation.
    """
    job = copy.deepcopy(template)
    metadata = job.setdefault("metadata", {})
    name = metadata.pop("name", None)
    metadata.setdefault("generateName", f"{name or 'housing-trainer'}-")
    for meta in (metadata, job.setdefault("spec", {}).setdefault("template", {}).setdefault("metadata", {})):
        labels = meta.setdefault("labels", {})
        for label in ARGOCD_LABELS:
            labels.pop(label, None)
        labels[REPORT_LABEL] = str(report_id)
        annotations = meta.get("annotations") or {}
        kept = {k: v for k, v in annotations.items() if not k.startswith(ARGOCD_ANNOTATION_PREFIX)}
        if kept:
            meta["annotations"] = kept
        else:
            meta.pop("annotations", None)
    spec = job["spec"]
    spec.setdefault("ttlSecondsAfterFinished", DEFAULT_TTL_SECONDS)
    spec.setdefault("backoffLimit", DEFAULT_BACKOFF_LIMIT)
    return job


def _final_condition(job: Any) -> Any | None:
    for condition in (getattr(job.status, "conditions", None) or []) if job.status else []:
        if condition.type in {"Complete", "Failed"} and condition.status == "True":
            return condition
    return None


def job_finished(job: Any) -> str | None:
    """'Complete' or 'Failed' when the Job has that condition, None while it may still run."""
    condition = _final_condition(job)
    return str(condition.type) if condition is not None else None


def job_outcome(job: Any) -> TrainerOutcome | None:
    """How a finished Job ended (``DeadlineExceeded``, ``BackoffLimitExceeded``: failed); None if running."""
    condition = _final_condition(job)
    if condition is None:
        return None
    if condition.type == "Complete":
        return TrainerOutcome(job.metadata.name, False, "completed")
    reason = condition.reason or "Failed"
    return TrainerOutcome(job.metadata.name, True, f"{reason}: {condition.message or 'no message'}")


def job_state(job: Any, now: datetime, default_deadline: int | None) -> tuple[str, str]:
    """(state, detail): ``complete``, ``failed``, ``running``, or ``suspended``/``stuck`` (stalled).

    ``default_deadline`` stands in for a Job without ``activeDeadlineSeconds`` (the template's).
    """
    finished = job_finished(job)
    if finished is not None:
        return finished.lower(), finished
    name, namespace = job.metadata.name, job.metadata.namespace
    what_to_do = (
        f"look at it (kubectl describe job {name} -n {namespace}) and delete it"
        f" (kubectl delete job {name} -n {namespace}); meanwhile it does not block new trainers"
    )
    if job.spec is not None and job.spec.suspend:
        return "suspended", (
            f"trainer Job {name} is suspended (spec.suspend: true), so no pod of it runs: resume it"
            f" (kubectl patch job {name} -n {namespace} -p '{RESUME}') or {what_to_do}"
        )
    status = job.status
    started = (status.start_time if status else None) or job.metadata.creation_timestamp
    age = (now - started).total_seconds() if isinstance(started, datetime) else 0.0
    deadline = (job.spec.active_deadline_seconds if job.spec else None) or default_deadline
    if deadline is not None and age > deadline + DEADLINE_GRACE_SECONDS:
        return "stuck", (
            f"trainer Job {name} is still active {age / 60:.0f} min after it started, past its deadline"
            f" of {deadline} s: nothing is ending it; {what_to_do}"
        )
    if not (status and status.ready) and age > PODS_START_SECONDS:
        return "stuck", (
            f"trainer Job {name} has had no running pod for {age / 60:.0f} min since it started"
            f" (unschedulable, an image that does not pull, or a quota refusing it); {what_to_do}"
        )
    return "running", "running"


def _finished_at(job: Any) -> datetime:
    condition = _final_condition(job)
    stamp = getattr(condition, "last_transition_time", None) or job.metadata.creation_timestamp
    return stamp if isinstance(stamp, datetime) else datetime.min.replace(tzinfo=UTC)


def _api_message(error: Any, namespace: str, verb: str) -> str:
    status = getattr(error, "status", None)
    reason = ""
    body = getattr(error, "body", None)
    if body:
        try:
            reason = json.loads(body).get("message", "")
        except (ValueError, AttributeError):
            reason = str(body)[:200]
    if status == 403:
        return (
            f"the Kubernetes API refused to {verb} jobs in namespace {namespace} (403 Forbidden: {reason}); "
            "the monitor's service account needs a Role with create and list on batch jobs in its "
            "namespace (the chart's monitor Role)"
        )
    return f"the Kubernetes API answered {status} to {verb} jobs in namespace {namespace}: {reason or error}"


class KubernetesLauncher:
    """Creates trainer Jobs from a template unless one of this release is active."""

    def __init__(self, batch: Any, namespace: str, template: dict[str, Any], clock: Any = None) -> None:
        self.batch = batch  # kubernetes.client.BatchV1Api
        self.namespace = namespace
        self.template = template
        self.clock = clock or (lambda: datetime.now(UTC))
        self.deadline: int | None = (template.get("spec") or {}).get("activeDeadlineSeconds")

    def _states(self, jobs: Any) -> dict[str, tuple[str, str]]:
        now = self.clock()
        return {job.metadata.name: job_state(job, now, self.deadline) for job in jobs.items}

    def _list(self) -> Any:
        """This release's trainer Jobs; LauncherError when the API refuses or is unreachable."""
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            return self.batch.list_namespaced_job(
                self.namespace, label_selector=selector(self.template), _request_timeout=REQUEST_TIMEOUT
            )
        except ApiException as error:
            raise LauncherError(_api_message(error, self.namespace, "list")) from error
        except (HTTPError, OSError) as error:
            raise LauncherError(f"the Kubernetes API is unreachable ({error})") from error

    def stalled(self) -> list[StalledTrainer]:
        """Trainer Jobs that are suspended or stuck (see :func:`job_state`), by name."""
        states = self._states(self._list())
        return [
            StalledTrainer(name, state, detail)
            for name, (state, detail) in sorted(states.items())
            if state in {"suspended", "stuck"}
        ]

    def last_finished(self) -> TrainerOutcome | None:
        """The newest finished trainer Job of this release (Jobs live ``ttlSecondsAfterFinished``)."""
        jobs = self._list()
        finished = [job for job in jobs.items if _final_condition(job) is not None]
        if not finished:
            return None
        return job_outcome(max(finished, key=_finished_at))

    def launch(self, report_id: int) -> LaunchResult:
        """Create the stamped Job unless one is running; a suspended or stuck Job does not count."""
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        info: dict[str, Any] = {"namespace": self.namespace, "selector": selector(self.template)}
        try:
            states = self._states(self._list())
        except LauncherError as error:
            return LaunchResult(Action.LAUNCH_FAILED, str(error), info)
        running = sorted(name for name, (state, _) in states.items() if state == "running")
        info["failed_jobs"] = sorted(name for name, (state, _) in states.items() if state == "failed")
        stalled = sorted(name for name, (state, _) in states.items() if state in {"suspended", "stuck"})
        if stalled:
            info["stalled_jobs"] = stalled
        if running:
            info["running"] = running
            return LaunchResult(
                Action.TRAINER_ALREADY_RUNNING, f"trainer Job {', '.join(running)} is still active", info
            )
        try:
            created = self.batch.create_namespaced_job(
                self.namespace, stamp_job(self.template, report_id), _request_timeout=REQUEST_TIMEOUT
            )
        except ApiException as error:
            return LaunchResult(Action.LAUNCH_FAILED, _api_message(error, self.namespace, "create"), info)
        except (HTTPError, OSError) as error:
            return LaunchResult(Action.LAUNCH_FAILED, f"the Kubernetes API is unreachable ({error})", info)
        info["job"] = created.metadata.name
        return LaunchResult(Action.TRAINER_LAUNCHED, f"created trainer Job {created.metadata.name}", info)


def batch_api() -> Any:
    """A BatchV1Api from the in-cluster config, else the kubeconfig; few retries so calls stay bounded."""
    from kubernetes import client, config

    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    configuration = client.Configuration.get_default_copy()
    configuration.retries = 1
    return client.BatchV1Api(client.ApiClient(configuration))
