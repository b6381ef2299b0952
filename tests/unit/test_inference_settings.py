"""Inference settings from the environment."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from services.inference.settings import InferenceSettings

SECRET = "3f9c1e0b7a5d4c2e8f6a1b3c5d7e9f0a"
OTHER = "0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d"


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
    monkeypatch.setenv("FEEDBACK_TOKEN", SECRET)
    monkeypatch.setenv("SPOOL_DIR", "/var/spool/housing")
    settings = InferenceSettings()
    assert settings.shadow_challenger is True
    assert settings.feedback_token is not None and settings.feedback_token.get_secret_value() == SECRET
    assert settings.feedback_tokens == (SECRET.encode(),)
    assert SECRET not in repr(settings)
    assert settings.spool_folder == Path("/var/spool/housing")


@pytest.mark.parametrize(
    ("value", "refusal"),
    [
        ("", "set but empty: put a token in it"),
        ("  ,  ", "set but empty"),
        ("changeme", "placeholder"),
        ("a-short-password", "has 16 characters, fewer than 32"),
        (f"{SECRET},", "token 2 of FEEDBACK_TOKEN is empty: remove the stray comma"),
        (f"{SECRET},too-short", "token 2 of FEEDBACK_TOKEN has 9 characters"),
    ],
)
def test_a_token_that_protects_nothing_is_refused(
    monkeypatch: pytest.MonkeyPatch, value: str, refusal: str
) -> None:
    """An empty Secret key once meant "no token": /feedback then served anyone, with one log line."""
    monkeypatch.setenv("FEEDBACK_TOKEN", value)
    with pytest.raises(ValidationError, match=refusal):
        InferenceSettings()


def test_several_tokens_during_a_rotation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEEDBACK_TOKEN", f" {SECRET} , {OTHER}")
    assert InferenceSettings().feedback_tokens == (SECRET.encode(), OTHER.encode())
