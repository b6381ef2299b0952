"""Signed model versions: the manifest of a version's loaded files, its Ed25519 signature, and the keys.

A model version's artifacts are pickles (the pipeline's ``model.pkl``, the error model's joblib) and
treelite checkpoints: loading one runs whatever its writer put in it. Anyone who can write to the
registry could register a version and point ``@champion`` at it, so nothing is loaded unless the
trainer vouched for it: at registration, once every artifact a reader opens is logged, the trainer
digests each of those files (SHA-256) into a *manifest* ``{artifact path: digest}`` and signs it with
its private key (``MODEL_SIGNING_KEY``). Readers (inference, monitor, trainer) hold only public keys
(``MODEL_VERIFY_KEYS``, several while a rotation runs), check the signature, then check each file they
downloaded against its digest before opening it (:mod:`services.common.signed_artifacts`).

Each file is digested alone, not the whole run folder: a file logged into the run later (a monitor
report) changes nothing that is signed. The signed bytes name the model and the version too, so a
signature copied onto another version is refused.

Keys are base64 of the raw 32 bytes (``housing keys new`` prints a pair); a key's id is the first 16
hex digits of the SHA-256 of its public bytes, stored beside the signature so a reader knows which key
to try and an operator knows which one signed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from services.common.registry import MODEL_NAME, RegistryError

# Model version tags written at registration.
TAG_MANIFEST = "signing.manifest"  # canonical JSON {artifact path: sha256 hex}
TAG_SIGNATURE = "signing.signature"  # base64 Ed25519 signature of signed_bytes()
TAG_KEY_ID = "signing.key_id"
SIGNING_TAGS = (TAG_MANIFEST, TAG_SIGNATURE, TAG_KEY_ID)
FORMAT = "cali-housing-model-manifest/1"  # in the signed bytes: a later format cannot be confused with it

Manifest = dict[str, str]  # artifact path → sha256 hex


class ModelRefused(RegistryError):
    """A model version that is unsigned, signed by an unknown key, badly signed or altered: never loaded."""

    def __init__(self, version: int | str, reason: str) -> None:
        super().__init__(f"model version {version} refused: {reason}")
        self.version = int(version)
        self.reason = reason


class BadKey(ValueError):
    """A key setting that is not base64 of 32 bytes; the message names the setting and the fix."""


def _raw(value: str, setting: str) -> bytes:
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError) as error:
        raise BadKey(f"{setting} is not base64 ({error}); make a pair with `housing keys new`") from error
    if len(raw) != 32:
        raise BadKey(
            f"{setting} holds {len(raw)} bytes, not the 32 of an Ed25519 key; make a pair with "
            "`housing keys new`"
        )
    return raw


def key_id(public: Ed25519PublicKey) -> str:
    """The first 16 hex digits of the SHA-256 of the raw public key."""
    return hashlib.sha256(public.public_bytes(Encoding.Raw, PublicFormat.Raw)).hexdigest()[:16]


def public_text(public: Ed25519PublicKey) -> str:
    return base64.b64encode(public.public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


@dataclass(frozen=True)
class KeyPair:
    """A fresh pair as the settings hold them: base64 of the raw 32 bytes each."""

    private: str
    public: str
    key_id: str


def new_keypair() -> KeyPair:
    private = Ed25519PrivateKey.generate()
    raw = private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    return KeyPair(
        base64.b64encode(raw).decode(), public_text(private.public_key()), key_id(private.public_key())
    )


class Signer:
    """The trainer's private key: signs a version's manifest."""

    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private
        self.key_id = key_id(private.public_key())

    @classmethod
    def from_text(cls, value: str, setting: str = "MODEL_SIGNING_KEY") -> Signer:
        return cls(Ed25519PrivateKey.from_private_bytes(_raw(value, setting)))

    @property
    def public(self) -> str:
        return public_text(self._private.public_key())

    def tags(self, version: int | str, manifest: Mapping[str, str]) -> dict[str, str]:
        """The model version tags that vouch for ``manifest`` as ``version``'s files."""
        signature = self._private.sign(signed_bytes(version, manifest))
        return {
            TAG_MANIFEST: canonical_manifest(manifest),
            TAG_SIGNATURE: base64.b64encode(signature).decode(),
            TAG_KEY_ID: self.key_id,
        }


class TrustedKeys:
    """The public keys a reader accepts signatures from (none: every version is refused)."""

    def __init__(self, keys: Iterable[Ed25519PublicKey] = ()) -> None:
        self._keys = {key_id(key): key for key in keys}

    @classmethod
    def from_text(cls, value: str | None, setting: str = "MODEL_VERIFY_KEYS") -> TrustedKeys:
        """Comma-separated base64 public keys (several while a rotation runs)."""
        parts = [part.strip() for part in (value or "").split(",") if part.strip()]
        return cls(Ed25519PublicKey.from_public_bytes(_raw(part, setting)) for part in parts)

    @property
    def ids(self) -> list[str]:
        return sorted(self._keys)

    def __bool__(self) -> bool:
        return bool(self._keys)

    def verified_manifest(self, version: int | str, tags: Mapping[str, str]) -> Manifest:
        """The manifest a trusted key signed for ``version``; ModelRefused saying why not."""
        missing = [tag for tag in SIGNING_TAGS if not tags.get(tag)]
        if missing:
            raise ModelRefused(
                version,
                f"it is not signed (no {', '.join(missing)} tag): only versions the trainer registered "
                "with MODEL_SIGNING_KEY are loaded",
            )
        if not self._keys:
            raise ModelRefused(version, "no MODEL_VERIFY_KEYS are configured, so no signature can be checked")
        public = self._keys.get(tags[TAG_KEY_ID])
        if public is None:
            raise ModelRefused(
                version,
                f"it is signed by key {tags[TAG_KEY_ID]}, which is not among MODEL_VERIFY_KEYS "
                f"({', '.join(self.ids)})",
            )
        try:
            manifest = parse_manifest(tags[TAG_MANIFEST])
            public.verify(
                base64.b64decode(tags[TAG_SIGNATURE], validate=True), signed_bytes(version, manifest)
            )
        except (InvalidSignature, ValueError, binascii.Error):
            raise ModelRefused(
                version, f"its signature does not match its manifest under key {tags[TAG_KEY_ID]}"
            ) from None
        return manifest


def canonical_manifest(manifest: Mapping[str, str]) -> str:
    return json.dumps(dict(manifest), sort_keys=True, separators=(",", ":"))


def parse_manifest(text: str) -> Manifest:
    """The manifest of a tag; ValueError when it is not a JSON object of strings."""
    value = json.loads(text)
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ValueError("the manifest is not an object of artifact paths to digests")
    return value


def signed_bytes(version: int | str, manifest: Mapping[str, str]) -> bytes:
    """What is signed: the format, the model's name, the version and the manifest, as canonical JSON."""
    document = {"format": FORMAT, "model": MODEL_NAME, "version": str(version), "files": dict(manifest)}
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_files(version: int | str, folder: Path, manifest: Mapping[str, str]) -> None:
    """Every file under ``folder`` is in ``manifest`` with its digest; ModelRefused naming the first that
    is not (a reader downloads only signed files, so an extra one means something else wrote there)."""
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        relative = path.relative_to(folder).as_posix()
        expected = manifest.get(relative)
        if expected is None:
            raise ModelRefused(version, f"{relative} is not in its signed manifest")
        if file_digest(path) != expected:
            raise ModelRefused(
                version, f"{relative} does not match its signed digest (altered after signing?)"
            )
