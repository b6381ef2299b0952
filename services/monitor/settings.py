"""The monitor's settings: the drift window and thresholds, alerts, metrics and the trainer launcher."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from services.common.settings import CommonSettings
from services.common.vocabulary import RetrainSignal

# Where Kubernetes mounts the pod's service-account namespace.
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def _pod_namespace(fallback: str = "default") -> str:
    try:
        return SERVICE_ACCOUNT_NAMESPACE.read_text(encoding="utf-8").strip() or fallback
    except OSError:
        return fallback


class MonitorSettings(CommonSettings):
    """What a monitor run looks at, when it calls drift, whom it tells and how it starts the trainer."""

    drift_window_hours: float = Field(
        default=24,
        gt=0,
        description="Longest window of predictions a run judges. The window also starts no earlier than the "
        "champion's promotion and the end of the last report that launched the trainer or rolled back.",
    )
    drift_min_rows: int = Field(
        default=500,
        ge=1,
        description="Predictions a window needs before drift is judged (else insufficient_data).",
    )
    psi_threshold: float = Field(default=0.2, gt=0, description="Drift when any feature's PSI reaches this.")
    drift_share_threshold: float = Field(
        default=0.5, gt=0, le=1, description="Drift when Evidently finds this share of columns drifted."
    )
    # 5,000: the smallest size that keeps the per-column false positives where 5,000 has them (steady
    # held-out windows, 1,000 seeds: any column drifted 0.2% at 5,000, 1.5% at 3,000, 3.9% at 2,000,
    # 13.8% at 1,000; dataset drift 0% from 1,000 up; MedInc x1.1 caught 100% from 2,000 up). The tests
    # run in numpy in milliseconds at any of these sizes, so a smaller sample would save no time
    # (python -m benchmarks.drift_sample; the table is in docs/benchmarks.md).
    drift_sample_rows: int = Field(
        default=5000,
        ge=100,
        description="Rows of the window drawn at random (in SQL) for Evidently's report.",
    )
    live_mae_tolerance: float = Field(
        default=0.25,
        ge=0,
        description="Degraded when the champion's live MAE exceeds its holdout MAE by this fraction.",
    )
    estimated_mae_tolerance: float = Field(
        default=0.20,
        ge=0,
        description="For a champion registered without an estimate band (estimate.band tag) only: degraded "
        "(trigger estimated_degradation) when the label-free MAE estimate of a window with DRIFT_MIN_ROWS "
        "rows exceeds its holdout MAE by this fraction. With a band, the band decides.",
    )
    retrain_on: str = Field(
        default="drift,estimated_degradation,live_degradation",
        description="Comma-separated signals that launch the trainer (drift, estimated_degradation, "
        "live_degradation); the others only alert.",
    )
    # 667 = ceil(GATE_MIN_RECENT_ROWS 200 / TRAIN_RECENT_HOLDOUT_FRACTION 0.3): the trainer keeps the
    # newest 30% of the labelled rows for the gate, which lets them decide with 200 of them
    # (services/monitor/decide/labels.py).
    retrain_min_new_labels: int = Field(
        default=667,
        ge=0,
        description="A signal launches the trainer only when this many labelled production rows are newer "
        "than any model trained on (the champion, a refused candidate); else the run alerts and waits. "
        "0 launches without new labels.",
    )
    rollback_min_rows: int = Field(
        default=200,
        ge=1,
        description="Labelled predictions a model needs before its live error can degrade, and before the "
        "rollback test may speak.",
    )
    # The rollback test (services/monitor/sequential.py): mSPRT on the paired |error| differences of the
    # champion and the model before its episode. Measured by tests/model/test_rollback_sequential.py on
    # simulated weeks of 672 runs with 50-500 labels per run: A/A false rollbacks 0.2 % of 1,000 weeks at
    # alpha 0.01; a champion 10 % worse rolled back within 500 labels in 98 % (per-row differences SD
    # 0.10) to 56 % (SD 0.17, two different fits), within 1,000 in 95 %.
    rollback_alpha: float = Field(
        default=0.01,
        gt=0,
        lt=1,
        description="The rollback test's error rate: a champion as good as the model before its episode is "
        "rolled back with at most this probability, however many runs look.",
    )
    rollback_min_effect: float = Field(
        default=0.10,
        gt=0,
        description="The smallest live MAE increase, as a fraction of the restored model's MAE, the rollback "
        "test is tuned for (its mixing SD); a champion shown not worse by this much is kept and the test "
        "ends. Also the margin of the label-free estimated_regression alert.",
    )
    rollback_horizon_labels: int = Field(
        default=5000,
        ge=1,
        description="Labelled rows after which a champion's rollback test ends as inconclusive and it stays "
        "(at 5,000 a champion about 5 % worse is still caught).",
    )
    # 1,000: the labels at which the rollback test catches a champion 10 % worse in 95 % of trials, so a
    # candidate trained after the cool-down can be judged on that much new evidence.
    rollback_cooldown_labels: int = Field(
        default=1000,
        ge=0,
        description="After an automatic rollback, the monitor launches no trainer until this many new labels "
        "have arrived (recorded with the rollback in model_events.figures.cooldown_labels).",
    )
    alert_cooldown_minutes: float = Field(
        default=60, ge=0, description="At most one alert per kind in this time; one per episode of drift."
    )
    alert_webhook_url: str | None = Field(default=None, description="POST a JSON alert here (optional).")
    telegram_bot_token: SecretStr | None = Field(default=None, description="Telegram bot token (optional).")
    telegram_chat_id: str | None = Field(
        default=None, description="Telegram chat to alert (with the bot token)."
    )
    telegram_api_url: str = Field(
        default="https://api.telegram.org", description="Telegram Bot API base URL (a stand-in in tests)."
    )
    alert_timeout_seconds: float = Field(
        default=5, gt=0, description="Timeout of one alert request; each channel is tried up to 3 times."
    )
    pushgateway_url: str | None = Field(
        default=None, description="Prometheus Pushgateway to push the run's metrics to (optional)."
    )
    housing_release: str = Field(
        default="local",
        min_length=1,
        description="Release name in the Pushgateway grouping key (the chart sets its release name).",
    )
    housing_namespace: str = Field(
        default_factory=lambda: _pod_namespace("local"),
        min_length=1,
        description="Namespace in the Pushgateway grouping key. Default: the pod's service-account "
        "namespace, else local.",
    )
    trainer_launcher: Literal["local", "kubernetes"] = Field(
        default="local",
        description="How to start the trainer: a child process, or a Job through the Kubernetes API.",
    )
    trainer_job_template: Path = Field(
        default=Path("/etc/housing/trainer-job.yaml"),
        description="The trainer Job template (a batch/v1 Job YAML mounted from the chart's ConfigMap).",
    )
    trainer_namespace: str = Field(
        default_factory=_pod_namespace,
        description="Namespace for trainer Jobs. Default: the pod's service-account namespace, else default.",
    )
    reports_dir: Path | None = Field(
        default=None, description="Folder for the Evidently HTML reports. Default: HOUSING_HOME/reports."
    )
    report_every_hours: float = Field(
        default=24,
        gt=0,
        description="A run that finds nothing logs its report to MLflow only when the last logged one is "
        "older than this; a run that finds drift, degradation or a rollback always logs it.",
    )

    @model_validator(mode="after")
    def _telegram_pair(self) -> MonitorSettings:
        if bool(self.telegram_bot_token) != bool(self.telegram_chat_id):
            raise ValueError("TELEGRAM_BOT_TOKEN and TELEGRAM_CHAT_ID go together: set both or neither")
        return self

    @model_validator(mode="after")
    def _rollback_horizon(self) -> MonitorSettings:
        if self.rollback_min_rows > self.rollback_horizon_labels:
            raise ValueError(
                f"ROLLBACK_MIN_ROWS ({self.rollback_min_rows}) must not exceed ROLLBACK_HORIZON_LABELS "
                f"({self.rollback_horizon_labels}): the rollback test would end before it may speak"
            )
        return self

    @field_validator("retrain_on")
    @classmethod
    def _known_signals(cls, value: str) -> str:
        known = {signal.value for signal in RetrainSignal}
        unknown = sorted({word.strip() for word in value.split(",") if word.strip()} - known)
        if unknown:
            raise ValueError(f"unknown RETRAIN_ON signals {unknown}; known: {', '.join(sorted(known))}")
        return value

    @property
    def retrain_signals(self) -> frozenset[RetrainSignal]:
        return frozenset(RetrainSignal(word.strip()) for word in self.retrain_on.split(",") if word.strip())

    @property
    def reports_folder(self) -> Path:
        return self.reports_dir or self.housing_home / "reports"
