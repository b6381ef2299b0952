"""``housing``: one command line for the whole system.

Each service's commands live in its own ``cli.py``; this module only assembles them and turns the
domain errors every command may raise into one line on stderr and a non-zero exit.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from pydantic import ValidationError

if TYPE_CHECKING:
    from datetime import datetime

    from services.common.maintenance import MaintenanceReport
    from services.common.settings import MaintenanceSettings

from services.inference import cli as inference_cli
from services.local import cli as local_cli
from services.local import cluster_cli
from services.monitor import cli as monitor_cli
from services.trainer import cli as trainer_cli

app = typer.Typer(
    name="housing",
    help="Cali Housing MLOps: train, serve, monitor and roll back a California housing price model.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
db = typer.Typer(help="The Postgres schema and the embedded server.", no_args_is_help=True)
app.add_typer(db, name="db")
keys = typer.Typer(help="The trainer's key pair that signs model versions.", no_args_is_help=True)
app.add_typer(keys, name="keys")
keys.command("new")(trainer_cli.keys_new)
keys.command("sign")(trainer_cli.keys_sign)
app.add_typer(cluster_cli.app, name="cluster")

app.command()(trainer_cli.train)
app.command()(trainer_cli.promote)
app.command()(trainer_cli.rollback)
app.command()(trainer_cli.models)
app.command()(inference_cli.serve)
app.command()(monitor_cli.monitor)
app.command()(local_cli.simulate)
app.command()(local_cli.demo)


@app.command("mlflow-users")
def mlflow_users() -> None:
    """Make the MLflow server's users match the release Secret (idempotent; the chart's users hook).

    As the server's admin: the writer and monitor users with EDIT on the experiment and MANAGE on the
    registered model, the reader with the server's default READ; passwords from MLFLOW_*_PASSWORD."""
    from services.common.mlflow_users import MlflowUsersSettings, ensure_users

    changes = ensure_users(MlflowUsersSettings())  # type: ignore[call-arg]  # from the environment
    for change in changes:
        print(change)
    print(f"MLflow users up to date ({len(changes)} change(s))")


@db.command("migrate")
def db_migrate(
    secret: Annotated[
        str | None,
        typer.Option(
            help="NAMESPACE/NAME of the release's Secret, checked first (with --secret-dir).",
            envvar="HOUSING_SECRET_REF",
        ),
    ] = None,
    secret_dir: Annotated[
        Path | None,
        typer.Option(help="Where that Secret is mounted (an optional volume).", envvar="HOUSING_SECRET_DIR"),
    ] = None,
    require: Annotated[
        list[str] | None,
        typer.Option(
            help="A key the Secret must hold, non-empty (repeatable; the variable: separated by spaces).",
            envvar="HOUSING_SECRET_KEYS",
        ),
    ] = None,
) -> None:
    """Apply the schema migrations not yet applied (idempotent, safe from several processes).

    In the cluster the migration hook runs first in every sync: with --secret it refuses, at once and
    with the kubectl command that fixes it (exit 2), a Secret that is missing or lacks a required key."""
    from services.common.connections import embedded_postgres_url
    from services.common.database import migrate
    from services.common.required_secret import SecretRef, problem
    from services.common.settings import CommonSettings

    if secret is not None:
        if secret_dir is None or not require:
            raise typer.BadParameter("--secret needs --secret-dir and at least one --require")
        try:
            ref = SecretRef.parse(secret)
        except ValueError as error:
            raise typer.BadParameter(str(error), param_hint="--secret") from error
        if (wrong := problem(ref, secret_dir, require)) is not None:
            print(f"error: {wrong}", file=sys.stderr)
            raise typer.Exit(2)
    settings = CommonSettings()
    if settings.database_url is not None:
        url = settings.database_url.get_secret_value()
    else:
        url = embedded_postgres_url(settings.housing_home / "postgres")
        print(
            f"DATABASE_URL is not set: using the embedded Postgres in {settings.housing_home / 'postgres'}",
            file=sys.stderr,
        )
    applied = migrate(url)
    print(f"applied {', '.join(applied)}" if applied else "the schema is up to date", file=sys.stderr)


@db.command("maintain")
def db_maintain(
    json_output: Annotated[bool, typer.Option("--json", help="Print what was done as JSON.")] = False,
) -> None:
    """Make day partitions ahead and behind, drop the days past retention, trim the monitor's state."""
    import json
    from datetime import UTC, datetime, timedelta

    from services.common.connections import database_url
    from services.common.database import connect
    from services.common.maintenance import Retention, maintain
    from services.common.settings import MaintenanceSettings

    settings = MaintenanceSettings()
    retention = Retention(
        prediction_days=settings.prediction_retention_days,
        days_ahead=settings.partition_days_ahead,
        drift_report_days=settings.drift_report_retention_days,
        histogram_days=settings.monitor_histogram_retention_days,
        alert_state_days=settings.alert_state_retention_days,
        lock_timeout=timedelta(seconds=settings.maintenance_lock_timeout_seconds),
    )
    now = datetime.now(UTC)
    with connect(database_url(settings), autocommit=True) as conn:
        report = maintain(conn, retention, now=now)
    _prune_reports(settings, report, now - timedelta(days=settings.report_retention_days))
    if json_output:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        print("\n".join(report.lines()))
    if report.errors:
        raise typer.Exit(1)


def _prune_reports(settings: MaintenanceSettings, report: MaintenanceReport, before: datetime) -> None:
    """Prune the monitor's MLflow runs and report files older than ``before`` into ``report``."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from services.common.connections import tracking_uri
    from services.common.registry import EXPERIMENT_NAME
    from services.common.report_retention import ReportPruning, prune_report_files, prune_reports

    report.reports_kept_from = before.isoformat()
    try:
        client = MlflowClient(tracking_uri=tracking_uri(settings)[0])
        experiment = client.get_experiment_by_name(EXPERIMENT_NAME)
        experiment_id = str(experiment.experiment_id) if experiment is not None else None
        pruning = prune_reports(client, experiment_id, settings.reports_folder, before)
    except MlflowException as error:
        report.errors.append(f"the MLflow registry: {str(error).splitlines()[0]}")
        pruning = ReportPruning(files=prune_report_files(settings.reports_folder, before))
    report.mlflow_runs_deleted = pruning.runs
    report.mlflow_runs_kept = pruning.kept
    report.report_files_deleted = pruning.files


@db.command("restore-drill")
def db_restore_drill(
    hours: Annotated[
        float, typer.Option(help="The window whose live error the drill recounts on the restored copy.")
    ] = 24.0,
    json_output: Annotated[bool, typer.Option("--json", help="Print the drill's figures as JSON.")] = False,
) -> None:
    """Dump the prediction database, restore it into a scratch Postgres and check rows and counts agree.

    The source is only read. Exits 1 when the restored copy's rows or the monitor's kept live-error sums
    on it disagree with the source (docs/restore.md says what to do then)."""
    import json
    from datetime import UTC, datetime, timedelta

    from services.common.connections import database_url
    from services.common.settings import CommonSettings
    from services.local.restore_drill import DrillFailed, drill

    url = database_url(CommonSettings())
    try:
        report = drill(url, now=datetime.now(UTC), window=timedelta(hours=hours))
    except DrillFailed as error:
        print(f"error: {error}", file=sys.stderr)
        raise typer.Exit(1) from error
    print(json.dumps(report.as_dict(), indent=2) if json_output else "\n".join(report.lines()))
    if not report.ok:
        raise typer.Exit(1)


@db.command("stop")
def db_stop() -> None:
    """Stop the embedded Postgres under HOUSING_HOME, if it runs."""
    from services.common.connections import stop_embedded_postgres
    from services.common.settings import CommonSettings

    folder = CommonSettings().housing_home / "postgres"
    stopped = stop_embedded_postgres(folder)
    print(
        f"stopped the embedded Postgres in {folder}" if stopped else "no embedded Postgres runs",
        file=sys.stderr,
    )


def _settings_message(error: ValidationError) -> str:
    parts = []
    for item in error.errors():
        name = "_".join(str(part) for part in item["loc"]).upper() or "settings"
        parts.append(f"{name}: {item['msg']}")
    return "invalid settings from the environment: " + "; ".join(parts)


# MLflow's own defaults suit notebooks, not a command line or a server: seven HTTP retries with
# exponential backoff and a 120 s timeout make an unreachable registry look like a hang for minutes.
# A user's own setting of any of these wins.
MLFLOW_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "15",
    "MLFLOW_LOGGING_LEVEL": "WARNING",
    # Usage telemetry waits on the network in every process: ~4 s per command where there is none.
    "MLFLOW_DISABLE_TELEMETRY": "true",
    # MLflow finds uv.lock in the working folder and copies it (1.4 MB) and pyproject.toml into every
    # model it logs, and may run `uv export`: our models name their requirements themselves.
    "MLFLOW_UV_AUTO_DETECT": "false",
}


def main() -> None:
    """Entry point: run a command; known failures become ``error: ...`` and exit code 1."""
    for name, value in MLFLOW_DEFAULTS.items():
        os.environ.setdefault(name, value)
    # embedded-postgres asks platformdirs for a runtime folder; without XDG_RUNTIME_DIR it warns on every
    # command and falls back to /tmp, which is what we want anyway.
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR")
    from services.common.database import DatabaseUnavailable, MigrationFailed
    from services.common.dataset import DatasetUnavailable
    from services.common.signing_keys import SigningKeyMissing

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    known: tuple[type[Exception], ...] = (
        DatabaseUnavailable,
        DatasetUnavailable,
        MigrationFailed,
        SigningKeyMissing,
    )
    try:
        from services.common.registry import RegistryError

        known += (RegistryError,)
    except ImportError:  # pragma: no cover - every image has mlflow; kept for a clear message
        pass
    try:
        app()
    except ValidationError as error:
        print(f"error: {_settings_message(error)}", file=sys.stderr)
        sys.exit(1)
    except known as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
