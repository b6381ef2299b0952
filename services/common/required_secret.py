"""The release's Secret, checked before anything else runs: a missing Secret or key fails at once with
the command that fixes it, instead of pods waiting in CreateContainerConfigError until a deadline.

The chart's migration hook (the first pod of every sync) mounts the Secret as an optional volume and
names the keys the release's pods require; this module says which are absent or empty.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# What each key of the create-command example holds (anything else: a placeholder to fill in).
EXAMPLES = {
    "DATABASE_URL": "'postgresql://user:pass@host:5432/housing'",
    "FEEDBACK_TOKEN": '"$(openssl rand -hex 32)"',
    "MLFLOW_BACKEND_STORE_URI": "'postgresql+psycopg://user:pass@host:5432/mlflow'",
    "MLFLOW_FLASK_SERVER_SECRET_KEY": '"$(openssl rand -hex 32)"',
}


@dataclass(frozen=True)
class SecretRef:
    """A Secret by namespace and name, as ``namespace/name``."""

    namespace: str
    name: str

    @classmethod
    def parse(cls, text: str) -> SecretRef:
        namespace, _, name = text.partition("/")
        if not namespace or not name or "/" in name:
            raise ValueError(f"expected NAMESPACE/NAME, got {text!r}")
        return cls(namespace, name)


def missing_keys(folder: Path, required: list[str]) -> list[str]:
    """The required keys that the mounted Secret ``folder`` lacks or holds empty."""
    return [key for key in required if not _present(folder / key)]


def _present(path: Path) -> bool:
    try:
        return bool(path.read_bytes().strip())
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return False


def _visible_files(folder: Path) -> list[Path]:
    """The Secret's keys as mounted (the kubelet's own ``..data`` entries are hidden)."""
    if not folder.is_dir():
        return []
    return [path for path in folder.iterdir() if not path.name.startswith(".")]


def problem(secret: SecretRef, folder: Path, required: list[str]) -> str | None:
    """What is wrong with the Secret, with the command that fixes it (None: every key is there)."""
    missing = missing_keys(folder, required)
    if not missing:
        return None
    literals = " ".join(f"--from-literal={key}={EXAMPLES.get(key, '...')}" for key in missing)
    where = f"in namespace {secret.namespace}"
    if len(missing) == len(required) and not _visible_files(folder):
        return (
            f"the Secret {secret.name} {where} does not exist (or is empty); this release's pods need"
            f" the keys {', '.join(required)}. Create it, then let the sync retry:\n"
            f"  kubectl -n {secret.namespace} create secret generic {secret.name} {literals}"
        )
    patch = ",".join(f'"{key}":"..."' for key in missing)
    return (
        f"the Secret {secret.name} {where} lacks or holds empty {', '.join(missing)}; this release's pods"
        f" need them. Add them, then let the sync retry:\n"
        f"  kubectl -n {secret.namespace} patch secret {secret.name} --type merge"
        f" -p '{{\"stringData\":{{{patch}}}}}'"
    )
