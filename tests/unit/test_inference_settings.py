"""Inference settings from the environment."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from services.inference.settings import InferenceSettings


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "MODEL_POLL_SECONDS",
        "SHADOW_CHALLENGER",
        "FEEDBACK_TOKEN",
        "PREDICT_MAX_BATCH",
        "SPOOL_DIR",
    ):
        monkeypatch.delenv(name, raising=False)
    settings = InferenceSettings(housing_home=Path("/tmp/h"))
    assert settings.model_poll_seconds == 10
    assert settings.shadow_challenger is False
    assert settings.feedback_token is None
    assert settings.predict_max_batch == 1000
    assert settings.spool_folder == Path("/tmp/h/spool")


def test_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHADOW_CHALLENGER", "true")
    monkeypatch.setenv("FEEDBACK_TOKEN", "a-real-secret")
    monkeypatch.setenv("SPOOL_DIR", "/var/spool/housing")
    settings = InferenceSettings()
    assert settings.shadow_challenger is True
    assert (
        settings.feedback_token is not None and settings.feedback_token.get_secret_value() == "a-real-secret"
    )
    assert "a-real-secret" not in repr(settings)
    assert settings.spool_folder == Path("/var/spool/housing")


def test_an_empty_token_means_none_and_a_placeholder_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEEDBACK_TOKEN", "")
    assert InferenceSettings().feedback_token is None
    monkeypatch.setenv("FEEDBACK_TOKEN", "changeme")
    with pytest.raises(ValidationError, match="placeholder"):
        InferenceSettings()
