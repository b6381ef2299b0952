"""MLflow's basic auth with the release's users, on a real ``mlflow server --app-name basic-auth``.

The server runs as the chart runs it: the auth app, ``default_permission = READ``, the user store in
the tracking store's own database (one sqlite file here, the backend Postgres in the cluster: the
auth tables and their ``alembic_version_auth`` do not collide with the tracking schema), the admin
from MLFLOW_AUTH_ADMIN_*. ``housing mlflow-users`` (the users hook) then runs as the admin, and real
MLflow clients, each logged in through MLFLOW_TRACKING_USERNAME/PASSWORD as the services are, check
who may do what. One server for the module (~40 s to start on an idle 2-core machine, over
2 min on a busy one).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from benchmarks.monitor_process import answers_health
from services.common.mlflow_users import MlflowUsersError, MlflowUsersSettings, ensure_users
from services.common.registry import EXPERIMENT_NAME, MODEL_NAME
from services.local.processes import ChildFailed, wait_for
from tests.integration.test_inference_support import free_port

HOUSING = str(Path(sys.executable).with_name("housing"))
ADMIN = ("admin", "admin-password-from-the-secret")
PASSWORDS = {
    "writer": "writer-password-from-the-secret",
    "monitor": "monitor-password-from-the-secret",
    "reader": "reader-password-from-the-secret",
}


@dataclass
class AuthServer:
    url: str
    log: Path


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthServer]:
    home = tmp_path_factory.mktemp("mlflow-auth")
    store = f"sqlite:///{home / 'mlflow.db'}"
    ini = home / "basic_auth.ini"
    ini.write_text(
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = {store}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )
    port = free_port()
    env = {
        **os.environ,
        "MLFLOW_AUTH_CONFIG_PATH": str(ini),
        "MLFLOW_AUTH_ADMIN_USERNAME": ADMIN[0],
        "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN[1],
        "MLFLOW_FLASK_SERVER_SECRET_KEY": "csrf-key-for-tests",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_URI"):
        env.pop(name, None)
    command = [
        str(Path(sys.executable).with_name("mlflow")),
        "server",
        "--app-name=basic-auth",
        f"--backend-store-uri={store}",
        f"--artifacts-destination={home / 'artifacts'}",
        "--serve-artifacts",
        "--host=127.0.0.1",
        f"--port={port}",
        "--workers=1",
    ]
    log = home / "server.log"
    with log.open("w") as out:
        server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=home)
    url = f"http://127.0.0.1:{port}"
    try:
        try:  # ~40 s alone, over 120 s on 2 cores shared with other runs
            wait_for(lambda: answers_health(url), timeout=300, what="the mlflow server", alive=server)
        except ChildFailed as error:
            raise RuntimeError(f"{error}:\n{log.read_text()[-3000:]}") from None
        yield AuthServer(url, log)
    finally:
        server.terminate()
        server.wait(30)


def users_env(server: AuthServer, **overrides: str) -> dict[str, str]:
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": server.url,
        "MLFLOW_ADMIN_USERNAME": ADMIN[0],
        "MLFLOW_ADMIN_PASSWORD": ADMIN[1],
        **{f"MLFLOW_{name.upper()}_PASSWORD": password for name, password in PASSWORDS.items()},
        "MLFLOW_USERS_WAIT_SECONDS": "10",
    }
    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        env.pop(name, None)
    env.update(overrides)
    return env


def run_users(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [HOUSING, "mlflow-users"], env=env, capture_output=True, text=True, timeout=300, check=False
    )


def login(monkeypatch: pytest.MonkeyPatch, server: AuthServer, user: str, password: str) -> MlflowClient:
    """A client as the services make one: MLflow reads the login from the environment per request."""
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", user)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)
    return MlflowClient(tracking_uri=server.url, registry_uri=server.url)


def denied(action: object) -> None:
    with pytest.raises(MlflowException) as caught:
        action()  # type: ignore[operator]
    assert caught.value.error_code == "PERMISSION_DENIED", caught.value


@pytest.fixture(scope="module")
def bootstrapped(auth_server: AuthServer) -> list[str]:
    done = run_users(users_env(auth_server))
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_the_hook_creates_the_users_the_experiment_and_the_model(bootstrapped: list[str]) -> None:
    text = "\n".join(bootstrapped)
    for user in PASSWORDS:
        assert f"created user {user}" in text
    assert (
        f"created experiment {EXPERIMENT_NAME}" in text and f"created registered model {MODEL_NAME}" in text
    )
    assert "granted writer EDIT on experiment" in text and "granted monitor MANAGE on experiment" in text
    for user in ("writer", "monitor"):
        assert f"granted {user} MANAGE on registered_model {MODEL_NAME}" in text
    assert "granted reader" not in text


def test_the_writer_registers_and_moves_the_champion_the_reader_only_reads(
    bootstrapped: list[str], auth_server: AuthServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    writer = login(monkeypatch, auth_server, "writer", PASSWORDS["writer"])
    experiment = writer.get_experiment_by_name(EXPERIMENT_NAME)
    assert experiment is not None
    run = writer.create_run(experiment.experiment_id)
    (tmp_path / "model.txt").write_text("weights")
    writer.log_artifact(run.info.run_id, str(tmp_path / "model.txt"), artifact_path="model")
    writer.set_terminated(run.info.run_id)
    source = f"runs:/{run.info.run_id}/model"
    version = writer.create_model_version(MODEL_NAME, source, run_id=run.info.run_id)
    writer.set_registered_model_alias(MODEL_NAME, "champion", version.version)
    writer.set_registered_model_alias(MODEL_NAME, "previous", version.version)
    writer.delete_registered_model_alias(MODEL_NAME, "previous")

    reader = login(monkeypatch, auth_server, "reader", PASSWORDS["reader"])
    assert reader.get_model_version_by_alias(MODEL_NAME, "champion").version == version.version
    fetched = reader.download_artifacts(run.info.run_id, "model", str(tmp_path / "down"))
    assert (Path(fetched) / "model.txt").read_text() == "weights"
    denied(lambda: reader.create_model_version(MODEL_NAME, source, run_id=run.info.run_id))
    denied(lambda: reader.set_registered_model_alias(MODEL_NAME, "champion", version.version))
    denied(lambda: reader.delete_registered_model_alias(MODEL_NAME, "champion"))
    denied(lambda: reader.create_run(experiment.experiment_id))

    # The writer may not delete runs; the monitor logs its report runs, prunes them (the maintenance
    # CronJob logs in as the monitor) and rolls back (moves the aliases).
    denied(lambda: writer.delete_run(run.info.run_id))
    monitor = login(monkeypatch, auth_server, "monitor", PASSWORDS["monitor"])
    report = monitor.create_run(experiment.experiment_id)
    monitor.set_terminated(report.info.run_id)
    monitor.delete_run(report.info.run_id)
    monitor.set_registered_model_alias(MODEL_NAME, "previous", version.version)
    monitor.delete_registered_model_alias(MODEL_NAME, "previous")
    monitor.set_model_version_tag(MODEL_NAME, version.version, "gate.decision", "rolled_back")

    # A wrong password is refused outright (401), not downgraded to the default READ.
    stranger = login(monkeypatch, auth_server, "reader", "not-the-password")
    with pytest.raises(MlflowException) as caught:
        stranger.get_registered_model(MODEL_NAME)
    assert "401" in str(caught.value) or caught.value.error_code == "UNAUTHENTICATED", caught.value


def test_the_writer_logs_and_registers_a_model_as_the_trainer_does_and_the_reader_loads_it(
    bootstrapped: list[str], auth_server: AuthServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MLflow 3's path: a logged model in the experiment, registered from it, loaded by alias."""
    import mlflow
    import numpy as np
    from sklearn.linear_model import LinearRegression

    before = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    mlflow.set_tracking_uri(auth_server.url)
    mlflow.set_registry_uri(auth_server.url)
    try:
        login(monkeypatch, auth_server, "writer", PASSWORDS["writer"])
        experiment = mlflow.get_experiment_by_name(EXPERIMENT_NAME)
        assert experiment is not None
        with mlflow.start_run(experiment_id=experiment.experiment_id):
            fitted = LinearRegression().fit(np.array([[0.0], [1.0]]), np.array([0.0, 2.0]))
            info = mlflow.sklearn.log_model(fitted, name="model")
        version = mlflow.register_model(info.model_uri, MODEL_NAME)
        MlflowClient().set_registered_model_alias(MODEL_NAME, "challenger", version.version)

        login(monkeypatch, auth_server, "reader", PASSWORDS["reader"])
        loaded = mlflow.sklearn.load_model(f"models:/{MODEL_NAME}@challenger")
        assert loaded.predict(np.array([[2.0]]))[0] == pytest.approx(4.0)
        denied(lambda: mlflow.register_model(info.model_uri, MODEL_NAME))
    finally:
        mlflow.set_tracking_uri(before[0])
        mlflow.set_registry_uri(before[1])


def test_a_second_run_changes_nothing_and_a_new_password_is_applied(
    bootstrapped: list[str], auth_server: AuthServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    again = run_users(users_env(auth_server))
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip().splitlines() == ["MLflow users up to date (0 change(s))"]

    rotated = "reader-password-rotated-in-the-secret"
    changed = run_users(users_env(auth_server, MLFLOW_READER_PASSWORD=rotated))
    assert changed.returncode == 0, changed.stderr
    assert changed.stdout.splitlines()[0] == "set the password of reader from the Secret"
    reader = login(monkeypatch, auth_server, "reader", rotated)
    assert reader.get_registered_model(MODEL_NAME).name == MODEL_NAME
    old = login(monkeypatch, auth_server, "reader", PASSWORDS["reader"])
    with pytest.raises(MlflowException):
        old.get_registered_model(MODEL_NAME)
    back = run_users(users_env(auth_server))  # the other tests' password again
    assert back.returncode == 0 and "set the password of reader" in back.stdout, back.stderr


def test_a_lost_grant_is_given_back(bootstrapped: list[str], auth_server: AuthServer) -> None:
    import requests

    admin = requests.Session()
    admin.auth = ADMIN
    revoked = admin.post(
        f"{auth_server.url}/api/3.0/mlflow/users/permissions/revoke",
        json={"username": "monitor", "resource_type": "registered_model", "resource_id": MODEL_NAME},
        timeout=10,
    )
    assert revoked.status_code == 200, revoked.text
    fixed = run_users(users_env(auth_server))
    assert fixed.returncode == 0, fixed.stderr
    assert f"granted monitor MANAGE on registered_model {MODEL_NAME} (was READ)" in fixed.stdout


def test_a_wrong_admin_password_names_the_fix(bootstrapped: list[str], auth_server: AuthServer) -> None:
    done = run_users(users_env(auth_server, MLFLOW_ADMIN_PASSWORD="not-the-admin-password"))
    assert done.returncode == 1
    assert "refused the admin login 'admin' (401)" in done.stderr and "MLFLOW_ADMIN_PASSWORD" in done.stderr
    assert "update-password" in done.stderr


def settings(server: AuthServer, **overrides: object) -> MlflowUsersSettings:
    values: dict[str, object] = {
        "mlflow_tracking_uri": server.url,
        "mlflow_admin_password": ADMIN[1],
        **{f"mlflow_{name}_password": password for name, password in PASSWORDS.items()},
        "mlflow_users_wait_seconds": 10,
    }
    values.update(overrides)
    return MlflowUsersSettings.model_validate(values)


def test_two_identities_on_one_user_are_refused(auth_server: AuthServer) -> None:
    with pytest.raises(MlflowUsersError, match="'reader' is given to two identities"):
        ensure_users(settings(auth_server, mlflow_monitor_username="reader"))


def test_an_unreachable_server_names_the_fix(auth_server: AuthServer) -> None:
    gone = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(MlflowUsersError) as caught:
        ensure_users(settings(auth_server, mlflow_tracking_uri=gone, mlflow_users_wait_seconds=1))
    assert f"the MLflow server at {gone} did not answer /health within 1 s" in str(caught.value)
