"""MLServer, the anchor a KServe user gets for a scikit-learn model, as a serving baseline.

MLServer pins packages this project's virtual environment cannot hold, so it gets its own, under the
git-ignored ``.bench/mlserver``, made on first use (~25 s from a PyPI mirror). MLServer 1.7.1 fails to
start with uvloop 0.23 ("There is no current event loop in thread 'MainThread'"): ``uvloop<0.20``.
scikit-learn is pinned to the version that pickled the model. It serves the registered champion's own
pickle (``model.pkl`` of its MLflow model folder) with ``mlserver_sklearn.SKLearnModel`` and its
defaults; its V2 JSON codec takes the same request body as ``POST /v2/models/cali-housing/infer`` here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".bench" / "mlserver"
PINS = (
    "mlserver==1.7.1",
    "mlserver-sklearn==1.7.1",
    "uvloop<0.20",  # 1.7.1 does not start with newer uvloop
    f"scikit-learn=={metadata.version('scikit-learn')}",  # the version that pickled the model
)


def ensure_venv() -> Path:
    """The ``mlserver`` executable of the benchmark's own virtual environment, installed when missing."""
    stamp = VENV / ".installed"
    wanted = "\n".join(PINS)
    if stamp.is_file() and stamp.read_text() == wanted:
        return VENV / "bin" / "mlserver"
    print(f"installing MLServer into {VENV.relative_to(ROOT)} ({', '.join(PINS)}) ...", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
    pip = [str(VENV / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, *PINS], check=True)
    stamp.write_text(wanted)
    return VENV / "bin" / "mlserver"


def model_folder(folder: Path, model_pickle: Path, http_port: int, grpc_port: int, metrics_port: int) -> Path:
    """An MLServer model repository serving ``model_pickle`` as ``cali-housing``, on the given ports."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "settings.json").write_text(
        json.dumps(
            {
                "host": "127.0.0.1",
                "http_port": http_port,
                "grpc_port": grpc_port,
                "metrics_port": metrics_port,
            }
        )
    )
    (folder / "model-settings.json").write_text(
        json.dumps(
            {
                "name": "cali-housing",
                "implementation": "mlserver_sklearn.SKLearnModel",
                "parameters": {"uri": str(model_pickle)},
            }
        )
    )
    return folder
