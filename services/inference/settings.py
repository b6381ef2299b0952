"""The inference service's settings, read once from the environment by ``housing serve``."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator

from services.common.settings import CommonSettings


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
        description="Bearer token POST /feedback requires; unset: feedback is open (development).",
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
    def _no_placeholder(cls, value: object) -> object:
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        if isinstance(text, str) and not text.strip():
            return None  # an empty variable (e.g. an optional Secret key) means no token
        if isinstance(text, str) and text.strip().lower() in {"changeme", "change-me", "secret", "token"}:
            raise ValueError("FEEDBACK_TOKEN is a placeholder: set a real secret or unset it")
        return value

    @property
    def spool_folder(self) -> Path:
        """The spool root: SPOOL_DIR, or HOUSING_HOME/spool."""
        return self.spool_dir if self.spool_dir is not None else self.housing_home / "spool"
