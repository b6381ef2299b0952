"""Signing a registered version's loaded files, and fetching them back only when the signature holds.

The files signed are exactly those a reader opens (:data:`SIGNED_RUN_ARTIFACTS` and every file of the
version's model folder, ``model/...``); see :mod:`services.common.model_signing` for why and how.
A reader asks :func:`verified_files` for the paths it will open: they are downloaded one by one into a
fresh local folder, the signature is checked against the trusted keys and each file against its signed
digest, and only then does the reader load from that local copy. Nothing is unpickled from the store.
Cost, once per version and off the request path: ~70 ms to fetch and check the 8 files the server loads
(1.1 MB ``model.pkl``; local file store, median of 5), against ~28 ms for the unchecked download and load.

Usage::

    with verified_files(client, version, keys, ["model/"]) as folder:
        model = mlflow.sklearn.load_model(str(folder / "model"))
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from mlflow.entities.model_registry import ModelVersion
from mlflow.tracking import MlflowClient

from services.common.compiled import COMPILED_ARTIFACT
from services.common.database import first_line
from services.common.model_signing import (
    Manifest,
    ModelRefused,
    Signer,
    TrustedKeys,
    check_files,
    file_digest,
)
from services.common.registry import (
    ERROR_MODEL_ARTIFACT,
    ERROR_MODEL_COMPILED_ARTIFACT,
    MODEL_ARTIFACT,
    MODEL_NAME,
    PROFILE_ARTIFACT,
    RegistryError,
)

MODEL_FOLDER = f"{MODEL_ARTIFACT}/"  # the version's MLflow model folder (MLmodel, model.pkl, ...)
# The run's artifacts readers open, signed when the run has them.
SIGNED_RUN_ARTIFACTS = (
    COMPILED_ARTIFACT,
    ERROR_MODEL_ARTIFACT,
    ERROR_MODEL_COMPILED_ARTIFACT,
    PROFILE_ARTIFACT,
)


def _model_root(client: MlflowClient, version: int | str) -> str:
    return str(client.get_model_version_download_uri(MODEL_NAME, str(version))).rstrip("/")


def _download(client: MlflowClient, version: ModelVersion, path: str, into: Path) -> Path:
    """One signed path (``model/<file>`` or a run artifact) downloaded to ``into/<path>``."""
    import mlflow.artifacts

    target = into / path
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as staging:
        if path.startswith(MODEL_FOLDER):
            uri = f"{_model_root(client, version.version)}/{path.removeprefix(MODEL_FOLDER)}"
            got = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=staging)
        else:
            got = client.download_artifacts(version.run_id or "", path, staging)
        shutil.move(got, target)
    return target


def manifest_of(client: MlflowClient, version: ModelVersion) -> Manifest:
    """{path: sha256} of the version's model folder and of the run's :data:`SIGNED_RUN_ARTIFACTS`, as the
    store holds them now (read back, so the digests are of what readers will download)."""
    import mlflow.artifacts

    manifest: Manifest = {}
    with tempfile.TemporaryDirectory() as folder:
        local = Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=_model_root(client, version.version), dst_path=str(Path(folder) / "model")
            )
        )
        for path in sorted(p for p in local.rglob("*") if p.is_file()):
            manifest[MODEL_FOLDER + path.relative_to(local).as_posix()] = file_digest(path)
        run_id = version.run_id or ""
        for artifact in SIGNED_RUN_ARTIFACTS:
            listed = {item.path for item in client.list_artifacts(run_id, str(Path(artifact).parent))}
            if artifact in listed:
                manifest[artifact] = file_digest(_download(client, version, artifact, Path(folder) / "run"))
    return manifest


def sign_version(client: MlflowClient, version: int, signer: Signer) -> Manifest:
    """Digest the version's loaded files and tag it with the signed manifest; call it only once every
    artifact a reader opens is logged. Returns the manifest."""
    registered = client.get_model_version(MODEL_NAME, str(version))
    manifest = manifest_of(client, registered)
    for key, value in signer.tags(version, manifest).items():
        client.set_model_version_tag(MODEL_NAME, str(version), key, value)
    return manifest


def is_signed(version: ModelVersion, path: str, keys: TrustedKeys) -> bool:
    """Whether ``path`` is in the version's manifest (the signature is checked when it is fetched)."""
    try:
        return path in keys.verified_manifest(version.version, dict(version.tags or {}))
    except ModelRefused:
        return False


@contextmanager
def verified_files(
    client: MlflowClient, version: ModelVersion, keys: TrustedKeys, wanted: Sequence[str] | None = None
) -> Iterator[Path]:
    """A temporary local folder holding the ``wanted`` paths (``model/`` for the whole model folder;
    None: every signed file), each checked against the version's signed manifest.

    Raises:
        ModelRefused: unsigned, unknown key, bad signature, a wanted path not signed, a file altered.
        RegistryError: the store failed to hand a file over (a retry may succeed).
    """
    manifest = keys.verified_manifest(version.version, dict(version.tags or {}))
    paths: list[str] = list(manifest) if wanted is None else []
    for want in wanted or ():
        matching = [
            path for path in manifest if path == want or (want.endswith("/") and path.startswith(want))
        ]
        if not matching:
            raise ModelRefused(version.version, f"{want} is not in its signed manifest")
        paths.extend(matching)
    with tempfile.TemporaryDirectory(prefix="verified-") as temporary:
        folder = Path(temporary)
        try:
            for path in sorted(set(paths)):
                _download(client, version, path, folder)
        except Exception as error:  # MLflow raises many kinds; a missing file is refused by its digest
            raise RegistryError(
                f"cannot download the signed files of model version {version.version}: {first_line(error)}"
            ) from error
        check_files(version.version, folder, manifest)
        yield folder
