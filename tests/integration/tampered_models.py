"""Model versions nobody should load, registered as an attacker with registry write access would.

Each one's ``model.pkl`` is a pickle whose ``__reduce__`` writes ``marker`` when unpickled: if the file
ever appears, something loaded it.
"""

from __future__ import annotations

import pickle
import tempfile
from pathlib import Path

import mlflow.artifacts
from mlflow.tracking import MlflowClient

from services.common.registry import MODEL_NAME
from services.common.signed_artifacts import sign_version
from services.common.vocabulary import Role
from tests.conftest import session_signer


class Payload:
    """Unpickling it runs ``exec`` of a line that writes the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return exec, (f"open({str(self.marker)!r}, 'w').write('unpickled')",)


def _copy_of_v1(client: MlflowClient, folder: Path) -> tuple[Path, Path]:
    """v1's model folder and run artifacts, downloaded into ``folder`` (model/, run/)."""
    v1 = client.get_model_version(MODEL_NAME, "1")
    model = Path(
        mlflow.artifacts.download_artifacts(
            artifact_uri=client.get_model_version_download_uri(MODEL_NAME, "1"),
            dst_path=str(folder / "model"),
        )
    )
    run = folder / "run"
    run.mkdir()
    client.download_artifacts(v1.run_id, "", str(run))
    return model, run


def _register(client: MlflowClient, experiment_id: str, model: Path, run_files: Path) -> tuple[int, Path]:
    """A new version whose source is a ``model`` folder logged into a new run; (version, model folder in
    the store)."""
    run = client.create_run(experiment_id)
    client.log_artifacts(run.info.run_id, str(run_files))
    client.log_artifacts(run.info.run_id, str(model), "served")
    client.set_terminated(run.info.run_id)
    source = f"{run.info.artifact_uri}/served"
    version = int(client.create_model_version(MODEL_NAME, source, run.info.run_id).version)
    return version, Path(source.removeprefix("file://"))


def register_unsigned_payload(client: MlflowClient, experiment_id: str, marker: Path) -> int:
    """v1's files with ``model.pkl`` replaced by the payload, registered without any signature and made
    ``@champion``."""
    with tempfile.TemporaryDirectory() as temporary:
        model, run = _copy_of_v1(client, Path(temporary))
        (model / "model.pkl").write_bytes(pickle.dumps(Payload(marker)))
        version, _ = _register(client, experiment_id, model, run)
    client.set_registered_model_alias(MODEL_NAME, Role.CHAMPION, str(version))
    return version


def register_altered_copy(client: MlflowClient, experiment_id: str, marker: Path) -> int:
    """v1's files registered and signed with the trainer's key, then ``model.pkl`` replaced in the store
    by the payload (what a write to the artifact bucket does); made ``@champion``."""
    with tempfile.TemporaryDirectory() as temporary:
        model, run = _copy_of_v1(client, Path(temporary))
        version, stored = _register(client, experiment_id, model, run)
    sign_version(client, version, session_signer())
    (stored / "model.pkl").write_bytes(pickle.dumps(Payload(marker)))
    client.set_registered_model_alias(MODEL_NAME, Role.CHAMPION, str(version))
    return version
