"""``housing cluster up | status | down`` as a person runs it: a second cluster in a folder of its own.

It checks what the session fixture cannot: the command line, a second ``up`` while one runs, a
cluster whose API server was killed (``up`` stops what is left and starts afresh), and ``down``
leaving no process behind. The time ``up`` takes is printed (-s shows it), never asserted.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.local.cluster import BINARIES, COMPONENTS, Cluster, ClusterError, Layout
from services.local.processes import housing_command
from tests.deploy.helpers import REPO, missing

from .helpers import TOOLS


def housing(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HOUSING_HOME": str(home)}
    return subprocess.run(
        housing_command("cluster", *args, "--tools", str(TOOLS)),
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    if any(not os.access(TOOLS / name, os.X_OK) for name in BINARIES):
        missing("the cluster binaries are not in .tools/bin: run `make tools` (needs Go 1.26+)")
    yield tmp_path
    Cluster(Layout(tmp_path / "cluster", TOOLS)).down()


def test_without_binaries_up_names_the_command_that_builds_them(tmp_path: Path) -> None:
    with pytest.raises(ClusterError, match=r"run `make tools`"):
        Cluster(Layout(tmp_path / "cluster", tmp_path / "no-tools")).up()


def test_up_status_second_up_killed_api_server_and_down(home: Path) -> None:
    started = time.monotonic()
    up = housing(home, "up")
    print(f"housing cluster up: {time.monotonic() - started:.1f} s (command), {up.stderr.splitlines()[-1]}")
    assert up.returncode == 0, up.stderr
    kubeconfig = home / "cluster" / "kubeconfig"
    assert up.stdout.strip() == f"export KUBECONFIG={kubeconfig}"
    status = housing(home, "status")
    assert status.returncode == 0 and "ready at https://127.0.0.1:" in status.stdout, status.stdout

    again = housing(home, "up")
    assert again.returncode == 1 and "already runs" in again.stderr and "housing cluster down" in again.stderr

    # A crash: the API server dies, the rest stays. `status` says so; `up` recovers.
    layout = Layout(home / "cluster", TOOLS)
    pids = Cluster(layout).status().pids
    os.kill(pids["kube-apiserver"] or 0, signal.SIGKILL)
    time.sleep(0.5)
    broken = housing(home, "status")
    assert broken.returncode == 1 and "kube-apiserver           not running" in broken.stdout, broken.stdout
    recovered = housing(home, "up")
    assert recovered.returncode == 0 and "recovering a stale cluster" in recovered.stderr, recovered.stderr
    fresh = Cluster(layout).status()
    assert fresh.ready and not set(fresh.pids.values()) & set(pids.values())

    down = housing(home, "down")
    assert down.returncode == 0 and all(name in down.stderr for name in COMPONENTS), down.stderr
    assert not Cluster(layout).leftovers() and not layout.home.exists()
    assert "no cluster runs" in housing(home, "status").stdout
