"""The inference service's settings, read once from the environment by ``housing serve``."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator

from services.common.settings import CommonSettings

# 32 characters: `openssl rand -hex 16`, 128 bits; a shorter token is a password a person typed.
MIN_TOKEN_CHARS = 32
PLACEHOLDERS = {"changeme", "change-me", "secret", "token"}


class InferenceSettings(CommonSettings):
    """Model polling, shadow scoring, the feedback token, batch limits, the prediction writer, its spool."""

    model_poll_seconds: float = Field(
        default=10.0,
        gt=0,
        description="How often the registry is asked where @champion (and @challenger) point.",
    )
    shadow_challenger: bool = Field(
        default=False,
        description="Also score every row with @challenger, off the request path; logged as role challenger.",
    )
    feedback_token: SecretStr | None = Field(
        default=None,
        description="Bearer token(s) POST /feedback accepts: one, or several separated by commas while a "
        f"rotation runs (add the new one, move the clients, drop the old one); each at least "
        f"{MIN_TOKEN_CHARS} characters. Unset: feedback is open (development; the server warns).",
    )
    predict_max_batch: int = Field(
        default=1000, ge=1, le=100_000, description="Most rows one POST /predict may carry in `instances`."
    )
    log_batch_rows: int = Field(
        default=500, ge=1, description="The writer COPYs as soon as this many prediction rows are waiting."
    )
    log_flush_seconds: float = Field(
        default=0.2, gt=0, le=60, description="...and at the latest this long after the first row waited."
    )
    log_queue_rows: int = Field(
        default=100_000,
        ge=1,
        description="Rows the in-memory queue holds before new rows are dropped (and counted); the writer "
        "moves rows to the spool long before, so this only bites when the disk is slower than the traffic.",
    )
    log_retry_seconds: float = Field(
        default=2.0,
        gt=0,
        description="After a failed write, the writer spools this long before trying Postgres again.",
    )
    http_shutdown_seconds: float = Field(
        default=10.0,
        ge=0,
        description="On shutdown (SIGTERM), how long the server waits for requests in flight before the "
        "writer drains; the pod's grace period must cover preStop + this + LOG_DRAIN_SECONDS.",
    )
    log_drain_seconds: float = Field(
        default=20.0,
        ge=0,
        description="On shutdown the writer then has this long to write or spool what is queued; "
        "keep it below the pod's terminationGracePeriodSeconds.",
    )
    spool_dir: Path | None = Field(
        default=None,
        description="Spool root shared by servers: each spools rows it could not write in a folder of its "
        "own and replays the folders of stopped servers when Postgres is back (in a cluster: a persistent "
        "volume every replica mounts); unset: HOUSING_HOME/spool.",
    )
    spool_max_bytes: int = Field(
        # ~217 bytes a spooled row: 1 GiB holds a 30-minute outage at ~2,700 one-row predictions/s,
        # the highest rate one server reached on a 2-core machine.
        default=1024 * 1024 * 1024,
        ge=0,
        description="Size limit of one server's spool; a batch that would exceed it is dropped and counted.",
    )

    @field_validator("feedback_token", mode="before")
    @classmethod
    def _real_tokens(cls, value: object) -> object:
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        if not isinstance(text, str):
            return value
        tokens = [token.strip() for token in text.split(",")]
        if not any(tokens):
            # An empty key in the Secret would otherwise open /feedback to anyone without a word.
            raise ValueError(
                "FEEDBACK_TOKEN is set but empty: put a token in it (`openssl rand -hex 16`), or unset it "
                "to run with open feedback (development; in the chart: inference.feedback.allowAnonymous)"
            )
        for number, token in enumerate(tokens, start=1):
            where = f"token {number} of FEEDBACK_TOKEN" if len(tokens) > 1 else "FEEDBACK_TOKEN"
            if not token:
                raise ValueError(f"{where} is empty: remove the stray comma")
            if token.lower() in PLACEHOLDERS:
                raise ValueError(f"{where} is a placeholder: set a real secret (`openssl rand -hex 16`)")
            if len(token) < MIN_TOKEN_CHARS:
                raise ValueError(
                    f"{where} has {len(token)} characters, fewer than {MIN_TOKEN_CHARS}: "
                    "use a random one (`openssl rand -hex 16`)"
                )
        return value

    @property
    def feedback_tokens(self) -> tuple[bytes, ...]:
        """The tokens POST /feedback accepts (empty: feedback is open)."""
        if self.feedback_token is None:
            return ()
        return tuple(token.strip().encode() for token in self.feedback_token.get_secret_value().split(","))

    @property
    def spool_folder(self) -> Path:
        """The spool root: SPOOL_DIR, or HOUSING_HOME/spool."""
        return self.spool_dir if self.spool_dir is not None else self.housing_home / "spool"
