"""Settings every service reads from the environment (12-factor), declared once with types.

Each service extends :class:`CommonSettings` with its own fields. Settings are read once, at the
edge (the CLI), and passed down; nothing below the CLI reads the environment.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.common.logs import LogFormat


class CommonSettings(BaseSettings):
    """Where the shared state lives: Postgres, the MLflow registry, the local working folder."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", case_sensitive=False)

    database_url: SecretStr | None = Field(
        default=None,
        description="Postgres URL (postgresql://...). Unset: an embedded Postgres under HOUSING_HOME.",
    )
    mlflow_tracking_uri: str | None = Field(
        default=None,
        description="MLflow tracking/registry URI. Unset: a sqlite store under HOUSING_HOME/mlflow.",
    )
    housing_home: Path = Field(
        default=Path(".housing"),
        description="Folder for local state: embedded Postgres, MLflow store, spool, reports, locks.",
    )
    model_verify_keys: str | None = Field(
        default=None,
        description="Public keys (base64 Ed25519, comma-separated: several while a rotation runs) whose "
        "signature a model version must carry to be loaded (`housing keys new` makes a pair). Unset with "
        "MLFLOW_TRACKING_URI unset: the local pair under HOUSING_HOME/signing (made on first use); unset "
        "otherwise: every version is refused.",
    )
    log_level: str = Field(default="INFO", description="Python log level.")
    log_format: LogFormat = Field(
        default="text",
        description="text: readable lines; json: one JSON object per line (time, level, logger, message, "
        "request_id), for a log collector.",
    )

    @field_validator("database_url")
    @classmethod
    def _postgres_only(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith(("postgresql://", "postgres://")):
            raise ValueError(
                "DATABASE_URL must start with postgresql:// (e.g. postgresql://user:pw@host:5432/db)"
            )
        return value

    @field_validator("model_verify_keys")
    @classmethod
    def _public_keys(cls, value: str | None) -> str | None:
        from services.common.model_signing import TrustedKeys

        TrustedKeys.from_text(value)  # BadKey (a ValueError) names the setting and the fix
        return value

    @field_validator("log_format", mode="before")
    @classmethod
    def _format_lowercase(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return level


class MaintenanceSettings(CommonSettings):
    """What ``housing db maintain`` keeps: the prediction log's days and the monitor's state."""

    prediction_retention_days: int = Field(
        default=30,
        ge=1,
        description="Days of predictions (and their feedback) kept; older day partitions are dropped whole.",
    )
    partition_days_ahead: int = Field(
        default=3,
        ge=2,
        description="Day partitions made ahead of today (rows of a missing day wait in DEFAULT).",
    )
    drift_report_retention_days: int = Field(
        default=180, ge=1, description="Days of drift_reports rows kept (model_events are always kept)."
    )
    monitor_histogram_retention_days: int = Field(
        default=7,
        ge=1,
        description="Days of kept monitor histogram buckets (each monitor run also trims to 2 x its window).",
    )
    alert_state_retention_days: int = Field(
        default=30, ge=1, description="Days an inactive alert kind's state (its last alert) is kept."
    )
    report_retention_days: int = Field(
        default=14,
        ge=1,
        description="Days of monitor reports kept: MLflow monitor runs (with artifacts), REPORTS_DIR's HTML.",
    )
    reports_dir: Path | None = Field(
        default=None, description="Folder for the Evidently HTML reports. Default: HOUSING_HOME/reports."
    )
    maintenance_lock_timeout_seconds: float = Field(
        default=2.0,
        gt=0,
        description="Longest wait for a partition lock; the writers queued behind it wait at most this long.",
    )

    @property
    def reports_folder(self) -> Path:
        return self.reports_dir or self.housing_home / "reports"
