"""``housing cluster up | down | status``: a local Kubernetes control plane on loopback.

The binaries come from ``make tools`` (built from source into ``.tools/bin``); the cluster lives in
``HOUSING_HOME/cluster`` with its admin kubeconfig at ``HOUSING_HOME/cluster/kubeconfig``. See
:mod:`services.local.cluster` for what runs.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from services.local.cluster import Cluster

app = typer.Typer(
    help="A local Kubernetes control plane on loopback (etcd, API server, controllers, two kwok nodes).",
    no_args_is_help=True,
)
ToolsOption = Annotated[
    Path, typer.Option("--tools", help="Folder of the binaries `make tools` builds.", file_okay=False)
]


def _cluster(tools: Path) -> Cluster:
    from services.common.settings import CommonSettings
    from services.local.cluster import Cluster, Layout

    home = CommonSettings().housing_home.resolve() / "cluster"
    return Cluster(Layout(home, tools.resolve()), log=lambda message: print(message, file=sys.stderr))


@app.command("up")
def up(tools: ToolsOption = Path(".tools/bin")) -> None:
    """Start the cluster; returns once /readyz is ok and both nodes are Ready."""
    from services.local.cluster import ClusterError

    try:
        status = _cluster(tools).up()
    except ClusterError as error:
        print(f"error: {error}", file=sys.stderr)
        raise typer.Exit(1) from error
    print(f"cluster up at {status.server} in {status.started_seconds:.1f} s", file=sys.stderr)
    print(f"export KUBECONFIG={status.kubeconfig}")


@app.command("down")
def down(tools: ToolsOption = Path(".tools/bin")) -> None:
    """Stop every process of the cluster and remove its data."""
    stopped = _cluster(tools).down()
    print(f"stopped {', '.join(stopped)}" if stopped else "no cluster runs", file=sys.stderr)


@app.command("status")
def status(tools: ToolsOption = Path(".tools/bin")) -> None:
    """Say what runs (exit code 1 when the cluster is not ready)."""
    current = _cluster(tools).status()
    for name, pid in current.pids.items():
        print(f"{name:<24} {'pid ' + str(pid) if pid else 'not running'}")
    if current.ready:
        print(f"ready at {current.server}; KUBECONFIG={current.kubeconfig}")
        return
    print("not ready" if current.running else "no cluster runs: `housing cluster up` starts one")
    raise typer.Exit(1)
