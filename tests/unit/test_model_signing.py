"""Signed manifests of model versions: what is refused, and why (services/common/model_signing.py)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from services.common.model_signing import (
    TAG_KEY_ID,
    TAG_MANIFEST,
    TAG_SIGNATURE,
    BadKey,
    ModelRefused,
    Signer,
    TrustedKeys,
    check_files,
    file_digest,
    new_keypair,
)
from services.common.settings import CommonSettings
from services.common.signing_keys import SigningKeyMissing, local_keypair, signer, trusted_keys

FILES = {
    "model/MLmodel": b"flavors: {}\n",
    "model/model.pkl": b"\x80\x05pickled trees",
    "compiled/model.tl": b"tl",
}


def _folder(root: Path, files: dict[str, bytes] = FILES) -> Path:
    for name, content in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(content)
    return root


def _manifest(folder: Path) -> dict[str, str]:
    return {name: file_digest(folder / name) for name in FILES}


def test_a_signed_manifest_verifies_under_its_key_and_its_files_check(tmp_path: Path) -> None:
    pair = new_keypair()
    folder = _folder(tmp_path)
    tags = Signer.from_text(pair.private).tags(7, _manifest(folder))
    assert tags[TAG_KEY_ID] == pair.key_id and len(base64.b64decode(tags[TAG_SIGNATURE])) == 64
    manifest = TrustedKeys.from_text(f"{new_keypair().public}, {pair.public}").verified_manifest(7, tags)
    assert manifest == _manifest(folder)
    check_files(7, folder, manifest)  # no error: every file is signed and unchanged


def test_one_altered_byte_is_refused_naming_the_file(tmp_path: Path) -> None:
    pair = new_keypair()
    folder = _folder(tmp_path)
    manifest = TrustedKeys.from_text(pair.public).verified_manifest(
        7, Signer.from_text(pair.private).tags(7, _manifest(folder))
    )
    pickle = folder / "model/model.pkl"
    pickle.write_bytes(pickle.read_bytes()[:-1] + b"X")
    with pytest.raises(ModelRefused) as refused:
        check_files(7, folder, manifest)
    assert str(refused.value) == (
        "model version 7 refused: model/model.pkl does not match its signed digest (altered after signing?)"
    )
    assert (refused.value.version, refused.value.reason.split(" ")[0]) == (7, "model/model.pkl")


def test_an_extra_file_is_refused(tmp_path: Path) -> None:
    pair = new_keypair()
    folder = _folder(tmp_path)
    manifest = TrustedKeys.from_text(pair.public).verified_manifest(
        3, Signer.from_text(pair.private).tags(3, _manifest(folder))
    )
    (folder / "model" / "extra.pkl").write_bytes(b"\x80\x05anything")
    with pytest.raises(ModelRefused, match=r"model version 3 refused: model/extra\.pkl is not in its signed"):
        check_files(3, folder, manifest)


def test_an_unknown_key_is_refused_naming_both_key_ids() -> None:
    signer_pair, reader_pair = new_keypair(), new_keypair()
    tags = Signer.from_text(signer_pair.private).tags(2, {"model/model.pkl": "0" * 64})
    with pytest.raises(ModelRefused) as refused:
        TrustedKeys.from_text(reader_pair.public).verified_manifest(2, tags)
    assert f"signed by key {signer_pair.key_id}, which is not among MODEL_VERIFY_KEYS" in str(refused.value)
    assert reader_pair.key_id in str(refused.value)


@pytest.mark.parametrize("missing", [TAG_MANIFEST, TAG_SIGNATURE, TAG_KEY_ID])
def test_a_missing_tag_is_unsigned(missing: str) -> None:
    pair = new_keypair()
    tags = Signer.from_text(pair.private).tags(4, {"model/model.pkl": "0" * 64})
    del tags[missing]
    with pytest.raises(
        ModelRefused, match=f"model version 4 refused: it is not signed \\(no {missing} tag\\)"
    ):
        TrustedKeys.from_text(pair.public).verified_manifest(4, tags)


def test_a_changed_manifest_or_another_version_breaks_the_signature() -> None:
    pair = new_keypair()
    keys = TrustedKeys.from_text(pair.public)
    tags = Signer.from_text(pair.private).tags(5, {"model/model.pkl": "0" * 64})
    forged = {**tags, TAG_MANIFEST: json.dumps({"model/model.pkl": "1" * 64})}
    for version, candidate in ((5, forged), (6, tags)):  # a digest swapped; the tags copied onto v6
        with pytest.raises(ModelRefused, match=f"model version {version} refused: its signature does not"):
            keys.verified_manifest(version, candidate)


def test_no_trusted_keys_refuse_everything() -> None:
    pair = new_keypair()
    tags = Signer.from_text(pair.private).tags(1, {})
    with pytest.raises(ModelRefused, match="no MODEL_VERIFY_KEYS are configured"):
        TrustedKeys().verified_manifest(1, tags)


@pytest.mark.parametrize("value", ["not base64!", base64.b64encode(b"short").decode()])
def test_a_bad_key_setting_names_the_command(value: str) -> None:
    with pytest.raises(BadKey, match="housing keys new"):
        TrustedKeys.from_text(value)
    with pytest.raises(ValidationError, match="housing keys new"):
        CommonSettings(model_verify_keys=value)


def test_the_local_pair_is_made_once_and_used_only_without_a_tracking_uri(tmp_path: Path) -> None:
    local = CommonSettings(housing_home=tmp_path, model_verify_keys=None, mlflow_tracking_uri=None)
    pair = local_keypair(tmp_path)
    assert local_keypair(tmp_path) == pair  # the same pair on every later use
    assert (tmp_path / "signing" / "model-signing.key").stat().st_mode & 0o777 == 0o600
    assert trusted_keys(local).ids == [pair.key_id]
    assert signer(local, None).key_id == pair.key_id
    deployed = CommonSettings(
        housing_home=tmp_path, model_verify_keys=None, mlflow_tracking_uri="http://m:5000"
    )
    assert not trusted_keys(deployed)
    with pytest.raises(SigningKeyMissing, match="housing keys new"):
        signer(deployed, None)
    other = new_keypair()
    assert signer(deployed, SecretStr(other.private)).key_id == other.key_id


def test_housing_keys_new_prints_a_pair_and_the_lines_that_install_it(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from services.cli import app

    out = tmp_path / "signing.key"
    result = CliRunner().invoke(
        app, ["keys", "new", "--namespace", "ns-x", "--secret", "s-x", "--env", "staging", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert out.stat().st_mode & 0o777 == 0o600
    pair = Signer.from_text(out.read_text())
    assert out.read_text() not in result.output  # written, not printed
    assert f"public key:  {pair.public}" in result.output and f"key id:      {pair.key_id}" in result.output
    assert f"kubectl -n ns-x create secret generic s-x --from-file=MODEL_SIGNING_KEY={out}" in result.output
    assert "kubectl -n ns-x patch secret s-x" in result.output
    assert "values-staging.yaml" in result.output and f'publicKeys: ["{pair.public}"]' in result.output
