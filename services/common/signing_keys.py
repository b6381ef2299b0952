"""Which keys a process signs and verifies model versions with: the settings', or the local pair.

Deployed (MLFLOW_TRACKING_URI set) the keys come from the settings alone: the trainer's
MODEL_SIGNING_KEY from the release Secret, every reader's MODEL_VERIFY_KEYS from the chart's
``modelSigning.publicKeys``. On a laptop (MLFLOW_TRACKING_URI unset: the sqlite store under
HOUSING_HOME) a pair is made under ``HOUSING_HOME/signing`` on first use, so ``housing demo`` and
``housing train`` + ``housing serve`` need no set-up; ``housing up`` hands it to its children.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import SecretStr

from services.common.model_signing import KeyPair, Signer, TrustedKeys, new_keypair
from services.common.settings import CommonSettings

PRIVATE_FILE = "model-signing.key"
PUBLIC_FILE = "model-signing.pub"


class SigningKeyMissing(RuntimeError):
    """The trainer has no key to sign with; the message names the setting and the command."""


def local_keypair(home: Path) -> KeyPair:
    """The pair under ``home/signing``, made on first use (the private key readable by its owner only)."""
    folder = home / "signing"
    private_path, public_path = folder / PRIVATE_FILE, folder / PUBLIC_FILE
    if not private_path.exists():
        pair = new_keypair()
        folder.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(pair.private + "\n")
        public_path.write_text(pair.public + "\n")
    private = private_path.read_text().strip()
    signer = Signer.from_text(private, str(private_path))
    if not public_path.exists():
        public_path.write_text(signer.public + "\n")
    return KeyPair(private, signer.public, signer.key_id)


def _local(settings: CommonSettings) -> bool:
    return not settings.mlflow_tracking_uri


def trusted_keys(settings: CommonSettings) -> TrustedKeys:
    """MODEL_VERIFY_KEYS; the local pair's public key when both it and MLFLOW_TRACKING_URI are unset."""
    if settings.model_verify_keys:
        return TrustedKeys.from_text(settings.model_verify_keys)
    if _local(settings):
        return TrustedKeys.from_text(local_keypair(settings.housing_home).public)
    return TrustedKeys()


def signer(settings: CommonSettings, key: SecretStr | None) -> Signer:
    """The trainer's signer from ``key`` (MODEL_SIGNING_KEY), or the local pair's when it and
    MLFLOW_TRACKING_URI are unset; SigningKeyMissing otherwise."""
    if key is not None:
        return Signer.from_text(key.get_secret_value())
    if _local(settings):
        return Signer.from_text(local_keypair(settings.housing_home).private)
    raise SigningKeyMissing(
        "MODEL_SIGNING_KEY is not set: the trainer signs every version it registers and readers load "
        "nothing unsigned. Make a pair with `housing keys new` (the private key goes into the release "
        "Secret, the public one into modelSigning.publicKeys)"
    )
