"""The real parts a monitor run works with, built by the CLI (or a test) and handed down."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from mlflow.tracking import MlflowClient

from services.common.model_signing import TrustedKeys
from services.common.progress import Stages
from services.common.signing_keys import trusted_keys
from services.monitor.alerts import Channel
from services.monitor.launchers import Launcher
from services.monitor.settings import MonitorSettings

RUN_STAGES = 7  # the stages a run announces (the CLI's progress lines)


@dataclass
class MonitorParts:
    """The real parts a run works with, built by the CLI (or a test)."""

    settings: MonitorSettings
    database_url: str
    client: MlflowClient
    experiment_id: str
    launcher: Callable[[], Launcher]  # built on first use: a bad Kubernetes config fails only the launch
    channels: list[Channel] = field(default_factory=list)
    stages: Stages = field(default_factory=lambda: Stages(RUN_STAGES, quiet=True))
    keys: TrustedKeys | None = None  # whose signatures a loaded version must carry; None: from settings

    def __post_init__(self) -> None:
        if self.keys is None:
            self.keys = trusted_keys(self.settings)

    @property
    def trusted(self) -> TrustedKeys:
        assert self.keys is not None
        return self.keys
