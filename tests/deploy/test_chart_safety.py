"""Production safety of the chart: feedback needs a token, the spool outlives its pod, the shutdown
fits the grace period, egress by destination, no secret on a command line, the release fits the node."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import yaml

from .helpers import REQUIRED_SETS, Rendered, helm_notes, helm_template
from .test_chart import env_of, pod_spec


def inference_container(r: Rendered) -> dict[str, Any]:
    (c,) = pod_spec(r.one("Deployment", "-inference"))["containers"]
    return c


def render(helm: str, *args: str) -> Rendered:
    proc = helm_template(helm, [*REQUIRED_SETS, *args])
    assert proc.returncode == 0, proc.stderr
    return Rendered("custom", None, [d for d in yaml.safe_load_all(proc.stdout) if d])  # type: ignore[arg-type]


# --- 1. Feedback needs a token -------------------------------------------------------------------


def test_feedback_token_is_mandatory_by_default(rendered: dict[str, Rendered]) -> None:
    for name in ("default", "staging", "prod"):
        env = env_of(inference_container(rendered[name]))
        ref = env["FEEDBACK_TOKEN"]["valueFrom"]["secretKeyRef"]
        # Not optional: the kubelet refuses to start a pod whose Secret lacks the key.
        assert ref.get("optional", False) is False, name
        assert ref["key"] == "FEEDBACK_TOKEN" and ref["name"], name


def test_anonymous_feedback_drops_the_token_and_warns(tool: Callable[[str], str]) -> None:
    helm = tool("helm")
    anonymous = render(helm, "--set", "inference.feedback.allowAnonymous=true")
    assert "FEEDBACK_TOKEN" not in env_of(inference_container(anonymous))
    notes = helm_notes(helm, [*REQUIRED_SETS, "--set", "inference.feedback.allowAnonymous=true"])
    assert "WARNING: inference.feedback.allowAnonymous=true" in notes
    assert "poison" in notes and "rollback" in notes
    default_notes = helm_notes(helm, REQUIRED_SETS)
    assert "WARNING: inference.feedback.allowAnonymous" not in default_notes
    assert "FEEDBACK_TOKEN is mandatory" in default_notes


def test_missing_secret_message_names_the_feedback_token(tool: Callable[[str], str]) -> None:
    helm = tool("helm")
    proc = helm_template(helm, ["--set", "image.tag=0123abc"])
    assert proc.returncode != 0
    required = proc.stderr.split("(required)")[0]
    assert "FEEDBACK_TOKEN" in required, proc.stderr
    anonymous = helm_template(
        helm, ["--set", "image.tag=0123abc", "--set", "inference.feedback.allowAnonymous=true"]
    )
    assert "FEEDBACK_TOKEN" not in anonymous.stderr.split("(required)")[0], anonymous.stderr
