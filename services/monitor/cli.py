"""``housing monitor``: one monitor run (the CronJob's command).

The monitor's edge: settings are read once here and the real parts wired (Postgres, the MLflow
registry, the trainer launcher, alert channels). Heavy imports happen inside the command.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from services.monitor.alerts import Channel
    from services.monitor.launchers import Launcher
    from services.monitor.settings import MonitorSettings


def monitor(
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the run's summary as JSON on stdout.")
    ] = False,
) -> None:
    """One monitor run: drift (PSI + Evidently), live error, report, alerts, trainer launch, rollback.

    Exits 0 when the run did its job (also with too little data, or when another run holds the lock),
    1 when it could not (database or registry down, no reference profile).
    """
    import logging
    import sys

    from services.common.connections import database_url, open_registry, tracking_uri
    from services.common.finite import dumps_summary
    from services.common.logs import configure as configure_logs
    from services.common.progress import Stages
    from services.common.registry import RegistryError
    from services.common.vocabulary import RunStatus
    from services.monitor.run import RUN_STAGES, MonitorFailed, MonitorParts, error_row, run_monitor
    from services.monitor.settings import MonitorSettings

    settings = MonitorSettings()
    configure_logs(settings.log_format)
    logging.getLogger("services").setLevel(settings.log_level)
    url = database_url(settings)
    uri, artifacts = tracking_uri(settings)
    try:
        client, experiment_id = open_registry(uri, artifacts)
    except RegistryError as error:  # the report row says so too; the exit code says the run failed
        error_row(url, str(error))
        raise
    parts = MonitorParts(
        settings,
        url,
        client,
        experiment_id,
        _launcher_factory(settings),
        _alert_channels(settings),
        Stages(RUN_STAGES),
    )
    try:
        summary = run_monitor(parts)
    except MonitorFailed as error:
        print(f"error: {error}", file=sys.stderr)
        if as_json:
            print(dumps_summary({"status": RunStatus.ERROR, "error": str(error)}))
        raise typer.Exit(1) from error
    if as_json:
        print(dumps_summary(summary.as_dict()))
    else:
        print(_describe(summary), file=sys.stderr)


def _launcher_factory(settings: MonitorSettings) -> Callable[[], Launcher]:
    """What starts a trainer (a Kubernetes Job or a local process), built only when a run launches one."""

    def launcher() -> Launcher:
        if settings.trainer_launcher == "kubernetes":
            from services.monitor.launchers.kubernetes import KubernetesLauncher, batch_api, load_template

            template = load_template(settings.trainer_job_template)
            return KubernetesLauncher(batch_api(), settings.trainer_namespace, template)
        from services.monitor.launchers.local import LocalLauncher

        return LocalLauncher(settings.housing_home)

    return launcher


def _alert_channels(settings: MonitorSettings) -> list[Channel]:
    """The alert channels the settings configure: a webhook, Telegram, both or none."""
    from services.monitor.alerts import TelegramChannel, WebhookChannel

    channels: list[Channel] = []
    if settings.alert_webhook_url:
        channels.append(WebhookChannel(settings.alert_webhook_url, settings.alert_timeout_seconds))
    if settings.telegram_bot_token and settings.telegram_chat_id:
        channels.append(
            TelegramChannel(
                settings.telegram_api_url,
                settings.telegram_bot_token.get_secret_value(),
                settings.telegram_chat_id,
                settings.alert_timeout_seconds,
            )
        )
    return channels


def _describe(summary: object) -> str:
    from services.common.vocabulary import RunStatus
    from services.monitor.run import RunSummary

    assert isinstance(summary, RunSummary)
    if summary.status == RunStatus.LOCKED:
        return "another monitor run holds the lock: this one did nothing"
    text = f"report {summary.report_id}: {summary.status}, action {summary.action}"
    if summary.psi:
        text += "\nPSI: " + ", ".join(f"{k} {v:.3f}" for k, v in summary.psi.items())
    if summary.drift_share is not None:
        text += f"\ndrifted share (Evidently): {summary.drift_share:.2f}"
    if summary.live_mae is not None:
        text += f"\nlive MAE {summary.live_mae:.3f} on {summary.labelled_rows} rows"
        text += f" (training {summary.reference_mae})"
    if summary.estimated_mae is not None:
        text += (
            f"\nestimated MAE {summary.estimated_mae:.3f} without labels (training {summary.reference_mae})"
        )
    if summary.detail:
        text += f"\n{summary.detail}"
    if summary.report_path:
        text += f"\nreport: {summary.report_path}"
    return text
