"""MLflow's basic-auth users of the release: who may read the registry and who may move it.

The in-chart MLflow server runs ``mlflow server --app-name basic-auth`` with ``default_permission =
READ``: any user that can log in reads everything, and only what is granted here may change the
project's experiment and registered model. The users hook (``housing mlflow-users``) logs in as the
server's admin and makes the server match the release Secret:

- ``writer`` (the trainer Job, the operator's ``housing promote``/``housing rollback``) gets EDIT on
  the experiment (create runs, log models) and MANAGE on the registered model (move and delete
  aliases: MLflow counts removing an alias as a delete);
- ``monitor`` (the monitor CronJob: its report runs and its automatic rollback; the maintenance
  CronJob: pruning those runs) gets MANAGE on both, deleting runs included;
- ``reader`` (inference) gets nothing beyond the default READ.

The experiment and the registered model are created here, as the admin, when missing: a user that
created them first would own them (MLflow gives a creator MANAGE), the reader included.

Every step is read before it is written, so a second run with the same Secret changes nothing, and a
password changed in the Secret is applied on the next run (the hook runs on every sync).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import requests
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.common.registry import EXPERIMENT_NAME, MODEL_NAME, RegistryError

# MLflow's auth REST API (mlflow/server/auth/routes.py). The per-user grant API replaced the
# experiments/permissions and registered-models/permissions endpoints in MLflow 3.17.
USERS_GET = "/api/2.0/mlflow/users/get"
USERS_CREATE = "/api/2.0/mlflow/users/create"
USERS_UPDATE_PASSWORD = "/api/2.0/mlflow/users/update-password"
USERS_CURRENT = "/api/2.0/mlflow/users/current"
PERMISSION_GET = "/api/3.0/mlflow/users/permissions/get"
PERMISSION_GRANT = "/api/3.0/mlflow/users/permissions/grant"
PERMISSION_REVOKE = "/api/3.0/mlflow/users/permissions/revoke"
EXPERIMENT_GET = "/api/2.0/mlflow/experiments/get-by-name"
EXPERIMENT_CREATE = "/api/2.0/mlflow/experiments/create"
MODEL_GET = "/api/2.0/mlflow/registered-models/get"
MODEL_CREATE = "/api/2.0/mlflow/registered-models/create"

EDIT = "EDIT"
MANAGE = "MANAGE"
# A Job pod may start before the server's new pod is Ready (Helm applies everything, then runs the
# hook): 30 s per request, and the server is waited for up to MLFLOW_USERS_WAIT_SECONDS.
REQUEST_SECONDS = 30.0


class MlflowUsersError(RegistryError):
    """The users could not be made to match the Secret; the message names the fix."""


class MlflowUsersSettings(BaseSettings):
    """The users hook's environment: the server, its admin login and each user's login."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", case_sensitive=False)

    mlflow_tracking_uri: str = Field(description="The MLflow server (http://...).")
    mlflow_admin_username: str = Field(default="admin", description="The server's admin user.")
    mlflow_admin_password: SecretStr = Field(description="Its password (the release Secret).")
    mlflow_writer_username: str = Field(
        default="writer", description="The trainer's and the admin CLI's user."
    )
    mlflow_writer_password: SecretStr = Field(description="Its password (the release Secret).")
    mlflow_monitor_username: str = Field(default="monitor", description="The monitor's user.")
    mlflow_monitor_password: SecretStr = Field(description="Its password (the release Secret).")
    mlflow_reader_username: str = Field(default="reader", description="Inference's user (read only).")
    mlflow_reader_password: SecretStr = Field(description="Its password (the release Secret).")
    mlflow_users_wait_seconds: float = Field(
        default=300.0, ge=0, description="How long to wait for the server to answer /health."
    )


@dataclass(frozen=True)
class Login:
    """A basic-auth identity."""

    username: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class Grant:
    """A permission of one user on one resource (MLflow's resource type and id)."""

    resource_type: str  # "experiment" (id) or "registered_model" (name)
    resource_id: str
    permission: str


@dataclass(frozen=True)
class UserSpec:
    """A user the release needs, with its password and what it must be granted beyond READ."""

    login: Login
    grants: tuple[Grant, ...] = ()


def release_users(settings: MlflowUsersSettings, experiment_id: str) -> list[UserSpec]:
    """The release's users: writer and monitor may change the experiment and the model, reader may not."""
    model = Grant("registered_model", MODEL_NAME, MANAGE)
    writer = (Grant("experiment", experiment_id, EDIT), model)
    # The monitor also deletes runs: the maintenance CronJob logs in as it to prune the monitor's
    # report runs (services/common/report_retention.py), and MLflow asks MANAGE of a run's experiment.
    monitor = (Grant("experiment", experiment_id, MANAGE), model)
    return [
        UserSpec(
            Login(settings.mlflow_writer_username, settings.mlflow_writer_password.get_secret_value()), writer
        ),
        UserSpec(
            Login(settings.mlflow_monitor_username, settings.mlflow_monitor_password.get_secret_value()),
            monitor,
        ),
        UserSpec(Login(settings.mlflow_reader_username, settings.mlflow_reader_password.get_secret_value())),
    ]


class AuthApi:
    """MLflow's REST API as one login (explicit credentials: nothing read from the environment)."""

    def __init__(self, uri: str, login: Login) -> None:
        self.uri = uri.rstrip("/")
        self.login = login
        self.session = requests.Session()
        self.session.auth = (login.username, login.password)

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        try:
            return self.session.request(method, self.uri + path, timeout=REQUEST_SECONDS, **kwargs)
        except requests.RequestException as error:
            raise MlflowUsersError(
                f"the MLflow server at {self.uri} did not answer ({type(error).__name__}); "
                "check MLFLOW_TRACKING_URI, that the server is up and that the NetworkPolicy lets this pod in"
            ) from error

    def ok(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        answer = self.call(method, path, **kwargs)
        if answer.status_code == 401:
            raise MlflowUsersError(
                f"the MLflow server refused the admin login '{self.login.username}' (401): "
                "MLFLOW_ADMIN_PASSWORD in the release Secret differs from the admin's password on the "
                "server (MLflow sets it on its first start only: restore the old value, or change it on "
                "the server with POST /api/2.0/mlflow/users/update-password as the admin, then re-sync)"
            )
        if answer.status_code == 403:
            raise MlflowUsersError(
                f"the MLflow user '{self.login.username}' is not an admin of {self.uri} (403): "
                "set mlflow.users.admin to the server's admin user"
            )
        if answer.status_code >= 400:
            raise MlflowUsersError(
                f"{method} {path} failed with HTTP {answer.status_code}: {answer.text[:300]}"
            )
        body: dict[str, Any] = answer.json() if answer.content else {}
        return body


def wait_for_server(uri: str, seconds: float) -> None:
    """Return once the server answers /health; the hook may start before the server's pod is Ready."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            if requests.get(uri.rstrip("/") + "/health", timeout=5).status_code == 200:
                return
        except requests.RequestException:
            pass
        if time.monotonic() >= deadline:
            raise MlflowUsersError(
                f"the MLflow server at {uri} did not answer /health within {seconds:.0f} s; "
                "check its pod (kubectl logs deploy/<release>-mlflow) and MLFLOW_TRACKING_URI"
            )
        time.sleep(2)


def can_log_in(uri: str, login: Login) -> bool:
    """Whether the server accepts this login (200 on the current user), without changing anything."""
    answer = AuthApi(uri, login).call("GET", USERS_CURRENT)
    return answer.status_code == 200


def ensure_experiment(api: AuthApi) -> tuple[str, bool]:
    """(the project's experiment id, whether it was created now) as the admin."""
    answer = api.call("GET", EXPERIMENT_GET, params={"experiment_name": EXPERIMENT_NAME})
    if answer.status_code == 200:
        return str(answer.json()["experiment"]["experiment_id"]), False
    if answer.status_code != 404:
        api.ok("GET", EXPERIMENT_GET, params={"experiment_name": EXPERIMENT_NAME})  # raises with the fix
    created = api.ok("POST", EXPERIMENT_CREATE, json={"name": EXPERIMENT_NAME})
    return str(created["experiment_id"]), True


def ensure_registered_model(api: AuthApi) -> bool:
    """Create the project's registered model as the admin when missing; whether it was created."""
    answer = api.call("GET", MODEL_GET, params={"name": MODEL_NAME})
    if answer.status_code == 200:
        return False
    if answer.status_code != 404:
        api.ok("GET", MODEL_GET, params={"name": MODEL_NAME})
    api.ok("POST", MODEL_CREATE, json={"name": MODEL_NAME})
    return True


def ensure_user(api: AuthApi, spec: UserSpec) -> list[str]:
    """Make one user exist with the Secret's password and its grants; what was changed."""
    changes: list[str] = []
    name = spec.login.username
    found = api.call("GET", USERS_GET, params={"username": name})
    if found.status_code == 404:
        api.ok("POST", USERS_CREATE, json={"username": name, "password": spec.login.password})
        changes.append(f"created user {name}")
    else:
        api.ok("GET", USERS_GET, params={"username": name})  # any other failure names its fix
        if not can_log_in(api.uri, spec.login):
            api.ok("PATCH", USERS_UPDATE_PASSWORD, json={"username": name, "password": spec.login.password})
            changes.append(f"set the password of {name} from the Secret")
    for grant in spec.grants:
        changes += ensure_grant(api, name, grant)
    return changes


def ensure_grant(api: AuthApi, username: str, grant: Grant) -> list[str]:
    """Give ``username`` exactly ``grant.permission`` on the resource, unless it already has it."""
    where = {"username": username, "resource_type": grant.resource_type, "resource_id": grant.resource_id}
    current = api.ok("GET", PERMISSION_GET, params=where).get("permission")
    if current == grant.permission:
        return []
    answer = api.call("POST", PERMISSION_GRANT, json={**where, "permission": grant.permission})
    if answer.status_code == 400 and "RESOURCE_ALREADY_EXISTS" in answer.text:
        # A grant of another level exists: MLflow has no update for it, so replace it.
        api.ok("POST", PERMISSION_REVOKE, json=where)
        api.ok("POST", PERMISSION_GRANT, json={**where, "permission": grant.permission})
    elif answer.status_code >= 400:
        raise MlflowUsersError(
            f"granting {username} {grant.permission} on {grant.resource_type} {grant.resource_id} failed "
            f"with HTTP {answer.status_code}: {answer.text[:300]}"
        )
    return [
        f"granted {username} {grant.permission} on {grant.resource_type} {grant.resource_id} (was {current})"
    ]


def ensure_users(settings: MlflowUsersSettings) -> list[str]:
    """Make the server's users, passwords and grants match the settings; the changes (none on a re-run)."""
    uri = settings.mlflow_tracking_uri
    if not uri.startswith(("http://", "https://")):
        raise MlflowUsersError(
            f"MLFLOW_TRACKING_URI must be the MLflow server's http(s) address, not {uri!r}"
        )
    _distinct(
        [
            settings.mlflow_admin_username,
            settings.mlflow_writer_username,
            settings.mlflow_monitor_username,
            settings.mlflow_reader_username,
        ]
    )
    wait_for_server(uri, settings.mlflow_users_wait_seconds)
    admin = AuthApi(
        uri, Login(settings.mlflow_admin_username, settings.mlflow_admin_password.get_secret_value())
    )
    admin.ok("GET", USERS_CURRENT)  # a wrong admin password stops here, with its fix
    changes: list[str] = []
    experiment_id, created = ensure_experiment(admin)
    if created:
        changes.append(f"created experiment {EXPERIMENT_NAME} ({experiment_id})")
    if ensure_registered_model(admin):
        changes.append(f"created registered model {MODEL_NAME}")
    for spec in release_users(settings, experiment_id):
        changes += ensure_user(admin, spec)
    return changes


def _distinct(names: Iterable[str]) -> list[str]:
    """The names, refused when two identities share one (each component must log in as its own user)."""
    seen: list[str] = []
    for name in names:
        if not name:
            raise MlflowUsersError("an MLflow username is empty: set mlflow.users.* in the chart's values")
        if name in seen:
            raise MlflowUsersError(
                f"the MLflow username {name!r} is given to two identities: "
                "admin, writer, monitor and reader must be four different users (mlflow.users.*)"
            )
        seen.append(name)
    return seen
