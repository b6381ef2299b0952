"""A local Kubernetes control plane on loopback: ``housing cluster up | down | status`` and the tests.

``up`` starts, from the binaries ``make tools`` builds from source into ``.tools/bin``:

- etcd (plain HTTP on 127.0.0.1, ``--unsafe-no-fsync``: the data is thrown away at ``down``);
- kube-apiserver: TLS and ServiceAccount keys made on the spot (:mod:`services.local.cluster_pki`),
  ``--authorization-mode=Node,RBAC``, no anonymous requests, and the admission plugins a k3s server
  runs (the defaults, PodSecurity, ValidatingAdmissionPolicy, ServiceAccount and ResourceQuota among
  them, plus NodeRestriction);
- kube-controller-manager and kube-scheduler (no HTTPS port of their own, no leader election);
- kwok, which plays the kubelet of two Nodes: it marks them Ready, marks their Pods Ready, finishes
  Pods owned by a Job (Succeeded) and removes deleted Pods (its Stage files, copied from the kwok
  module by ``make tools``);
- two StorageClasses (``local-path``, the default, and ``local-path-stable``, as the k3s node
  Terraform provisions has) with ``kubernetes.io/no-provisioner`` and a pool of hostPath
  PersistentVolumes each, so a chart's claims bind at once.

Network: every address is on loopback. The API server advertises 127.0.0.1 with
``--endpoint-reconciler-type=none`` (a loopback address in the ``kubernetes`` Endpoints is refused);
the Nodes' InternalIPs are 127.0.0.2 and 127.0.0.3; the Service and Pod CIDRs are data only: no
container runs, so nothing ever listens on (or connects to) a ClusterIP or a Pod IP. Ports are
picked free at each ``up`` and kept in ``state.json``.

``up`` returns once ``/readyz`` is ok, both Nodes are Ready and the ``default`` ServiceAccount
exists (the ServiceAccount admission plugin refuses Pods until it does), ~10 s from built binaries.
A stale cluster (a killed ``up``, processes left behind, an old data folder) is stopped and wiped
first: processes are ours when their command line names this cluster's folder.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.local.cluster_pki import Pki, make_pki, write_kubeconfig

BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "kwok")
# Start order; `down` stops them in reverse.
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
NODES = {"kwok-node-1": "127.0.0.2", "kwok-node-2": "127.0.0.3"}
STORAGE_CLASSES = ("local-path", "local-path-stable")
VOLUMES_PER_CLASS = 16
VOLUME_SIZE = "32Gi"
SERVICE_CIDR = "10.96.0.0/16"
POD_CIDR = "10.244.0.1/16"
# kwok's Stage files (kustomize/stage in its module): node-initialize and heartbeat; pod-ready,
# pod-complete (Pods owned by a Job only) and pod-delete (without it deleted Pods never go).
STAGES = (
    "node/fast/node-initialize.yaml",
    "node/heartbeat/node-heartbeat.yaml",
    "pod/fast/pod-ready.yaml",
    "pod/fast/pod-complete.yaml",
    "pod/fast/pod-delete.yaml",
)
BUILD_HINT = (
    "run `make tools` (it builds Kubernetes from source with Go 1.26+; the first build is long,"
    " see docs/operations.md)"
)


class ClusterError(RuntimeError):
    """The cluster cannot start, or an operation on it failed; the message names the fix."""


class ClusterRunning(ClusterError):
    """``up`` while a cluster of this folder already runs."""


@dataclass(frozen=True)
class Layout:
    """Where a cluster lives (``home``) and where its binaries are (``tools``: .tools/bin)."""

    home: Path
    tools: Path

    @property
    def kubeconfig(self) -> Path:
        return self.home / "kubeconfig"

    @property
    def state(self) -> Path:
        return self.home / "state.json"

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    @property
    def data(self) -> Path:
        return self.home / "data"

    @property
    def pki(self) -> Pki:
        return Pki(self.home / "pki")

    @property
    def stages(self) -> Path:
        # ci/build-cluster.sh copies them beside the binaries' folder.
        return self.tools.parent / "kwok-stages"

    def binary(self, name: str) -> Path:
        return self.tools / name


@dataclass(frozen=True)
class Status:
    """What runs: the API server's address and each component's pid (None when it is not running)."""

    server: str | None
    pids: dict[str, int | None]
    ready: bool
    kubeconfig: Path
    started_seconds: float | None = None

    @property
    def running(self) -> list[str]:
        return [name for name, pid in self.pids.items() if pid is not None]


@dataclass
class _Ports:
    etcd: int
    etcd_peer: int
    apiserver: int

    @classmethod
    def free(cls) -> _Ports:
        with contextlib.ExitStack() as stack:
            ports = []
            for _ in range(3):
                sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
                sock.bind(("127.0.0.1", 0))
                ports.append(sock.getsockname()[1])
        return cls(*ports)


@dataclass
class Cluster:
    """One local cluster in ``layout.home``. ``tie_to_parent`` (tests): children die with this process."""

    layout: Layout
    tie_to_parent: bool = False
    log: Callable[[str], None] = field(default=lambda message: None)
    # The processes this object started: polled (and so reaped) rather than read from /proc.
    _children: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict, init=False, repr=False)

    # --- what runs

    def status(self) -> Status:
        state = self._read_state()
        pids = {name: self._alive(state.get("pids", {}).get(name)) for name in COMPONENTS}
        server = state.get("server")
        ready = bool(server) and all(pids.values()) and self._readyz(str(server))
        return Status(server if pids["kube-apiserver"] else None, pids, ready, self.layout.kubeconfig)

    # --- up

    def up(self, timeout: float = 90.0) -> Status:
        """Start the cluster; returns once /readyz is ok, the Nodes are Ready and Pods can be admitted.

        Raises:
            ClusterError: a binary is missing (names `make tools`), or a component did not start in time
                (names its log).
            ClusterRunning: this folder's cluster already runs.
        """
        self._clear_the_way()
        started = time.monotonic()
        deadline = started + timeout
        for folder in (self.layout.home, self.layout.logs, self.layout.data):
            folder.mkdir(parents=True, exist_ok=True)
        pki = make_pki(self.layout.home / "pki")
        ports = _Ports.free()
        server = f"https://127.0.0.1:{ports.apiserver}"
        kubeconfigs = {
            name: write_kubeconfig(self.layout.home / f"{name}.kubeconfig", server, pki, name)
            for name in ("controller-manager", "scheduler", "kwok")
        }
        pids: dict[str, int] = {}
        state: dict[str, Any] = {"server": server, "pids": pids, "ports": vars(ports)}
        try:
            pids["etcd"] = self._start("etcd", self._etcd_args(ports))
            self._write_state(state)
            pids["kube-apiserver"] = self._start("kube-apiserver", self._apiserver_args(ports, pki))
            self._write_state(state)
            self._wait("kube-apiserver", lambda: self._readyz(server), deadline)
            pids["kube-controller-manager"] = self._start(
                "kube-controller-manager",
                self._controller_manager_args(kubeconfigs["controller-manager"], pki),
            )
            pids["kube-scheduler"] = self._start(
                "kube-scheduler",
                ["--kubeconfig", str(kubeconfigs["scheduler"]), "--leader-elect=false", "--secure-port=0"],
            )
            pids["kwok"] = self._start("kwok", self._kwok_args(kubeconfigs["kwok"]))
            self._write_state(state)
            write_kubeconfig(self.layout.kubeconfig, server, pki, "admin")
            self._kubectl(["apply", "--server-side", "-f", "-"], stdin=self._bootstrap_objects())
            self._wait("the kwok nodes", self._nodes_ready, deadline)
            self._wait("the default ServiceAccount", self._default_service_account, deadline)
        except BaseException:
            self._stop_pids(list(pids.values()))
            raise
        state["started_seconds"] = round(time.monotonic() - started, 1)
        self._write_state(state)
        status = self.status()
        return Status(status.server, status.pids, status.ready, status.kubeconfig, time.monotonic() - started)

    def _clear_the_way(self) -> None:
        """Refuse to start without the binaries and Stage files or beside a running cluster; stop and remove
        what a stale one left (processes, folder).

        Raises:
            ClusterError: a binary or the Stage files are missing, or the stale folder cannot be removed.
            ClusterRunning: this folder's cluster already runs.
        """
        missing = [name for name in BINARIES if not os.access(self.layout.binary(name), os.X_OK)]
        if missing:
            raise ClusterError(f"{', '.join(missing)} not found in {self.layout.tools}: {BUILD_HINT}")
        if not self.layout.stages.is_dir():
            raise ClusterError(f"kwok's Stage files are not in {self.layout.stages}: {BUILD_HINT}")
        current = self.status()
        if current.ready:
            raise ClusterRunning(
                f"a cluster already runs at {current.server} (kubeconfig {current.kubeconfig}); "
                "`housing cluster down` stops it"
            )
        stale = self.leftovers()
        if stale or self.layout.data.exists():
            self.log(f"recovering a stale cluster in {self.layout.home}: stopping {len(stale)} process(es)")
            self._stop_pids(stale)
            shutil.rmtree(self.layout.home, ignore_errors=True)
            if self.layout.home.exists():
                raise ClusterError(
                    f"cannot remove the stale cluster folder {self.layout.home}: remove it by hand"
                )

    # --- down

    def down(self) -> list[str]:
        """Stop every process of this cluster and remove its folder; returns what was running."""
        state = self._read_state()
        named = {pid: name for name, pid in state.get("pids", {}).items()}
        leftovers = self.leftovers()
        # Reverse start order: the node stand-in and controllers before the API server and etcd.
        order = {name: i for i, name in enumerate(COMPONENTS)}
        leftovers.sort(key=lambda pid: -order.get(named.get(pid, ""), len(COMPONENTS)))
        running = [named.get(pid, f"pid {pid}") for pid in leftovers]
        self._stop_pids(leftovers)
        shutil.rmtree(self.layout.home, ignore_errors=True)
        return running

    # --- the processes

    def _start(self, name: str, args: Sequence[str]) -> int:
        log = (self.layout.logs / f"{name}.log").open("ab")
        with log:
            process = subprocess.Popen(
                [str(self.layout.binary(name)), *args],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.layout.home,
                start_new_session=True,
                preexec_fn=_die_with_parent if self.tie_to_parent else None,
            )
        self._children[process.pid] = process
        self.log(f"started {name} (pid {process.pid}, log {self.layout.logs / (name + '.log')})")
        return process.pid

    def _etcd_args(self, ports: _Ports) -> list[str]:
        client = f"http://127.0.0.1:{ports.etcd}"
        peer = f"http://127.0.0.1:{ports.etcd_peer}"
        return [
            "--name=local",
            f"--data-dir={self.layout.data / 'etcd'}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=local={peer}",
            "--unsafe-no-fsync",
            "--log-level=warn",
        ]

    def _apiserver_args(self, ports: _Ports, pki: Pki) -> list[str]:
        return [
            f"--etcd-servers=http://127.0.0.1:{ports.etcd}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={ports.apiserver}",
            # A loopback address in the `kubernetes` Endpoints is refused: no reconciler (as kwokctl).
            "--endpoint-reconciler-type=none",
            f"--tls-cert-file={pki.cert('apiserver')}",
            f"--tls-private-key-file={pki.key('apiserver')}",
            f"--client-ca-file={pki.ca}",
            "--anonymous-auth=false",
            "--authorization-mode=Node,RBAC",
            # k3s turns NodeRestriction on beside the defaults (PodSecurity, ValidatingAdmissionPolicy,
            # ServiceAccount, LimitRanger, ResourceQuota, DefaultStorageClass, ...), and allows
            # privileged containers: what refuses one here is Pod Security, as on k3s.
            "--enable-admission-plugins=NodeRestriction",
            "--allow-privileged=true",
            f"--service-account-key-file={pki.service_account_public_key}",
            f"--service-account-signing-key-file={pki.service_account_key}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--profiling=false",
        ]

    def _controller_manager_args(self, kubeconfig: Path, pki: Pki) -> list[str]:
        return [
            f"--kubeconfig={kubeconfig}",
            "--leader-elect=false",
            "--secure-port=0",
            "--use-service-account-credentials=true",
            f"--root-ca-file={pki.ca}",
            f"--service-account-private-key-file={pki.service_account_key}",
            f"--cluster-signing-cert-file={pki.ca}",
            f"--cluster-signing-key-file={pki.ca_key}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--profiling=false",
        ]

    def _kwok_args(self, kubeconfig: Path) -> list[str]:
        stages = self.layout.home / "kwok-stages.yaml"
        parts = []
        for stage in STAGES:
            path = self.layout.stages / stage
            if not path.is_file():
                raise ClusterError(f"kwok Stage file {path} is missing: {BUILD_HINT}")
            parts.append(path.read_text().strip())
        stages.write_text("\n---\n".join(parts) + "\n")
        return [
            f"--kubeconfig={kubeconfig}",
            f"--config={stages}",
            "--manage-all-nodes=true",
            f"--cidr={POD_CIDR}",
            "--node-ip=127.0.0.2",
        ]

    def _stop_pids(self, pids: Sequence[int], grace: float = 10.0) -> None:
        alive = [pid for pid in pids if self._alive(pid)]
        _signal(alive, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while alive and time.monotonic() < deadline:
            time.sleep(0.05)
            alive = [pid for pid in alive if self._alive(pid)]
        _signal(alive, signal.SIGKILL)
        for pid in alive:
            child = self._children.get(pid)
            if child is not None:
                child.wait(5)

    def _alive(self, pid: object) -> int | None:
        """``pid`` when it runs and is one of this cluster's processes (its command line names our folder)."""
        if not isinstance(pid, int):
            return None
        child = self._children.get(pid)
        if child is not None:
            return pid if child.poll() is None else None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return None
        if stat.rsplit(")", 1)[-1].split()[0] == "Z":
            return None
        return pid if str(self.layout.home).encode() + b"/" in cmdline else None

    def leftovers(self) -> list[int]:
        """Every running process whose command line names this cluster's folder."""
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and int(entry.name) != os.getpid() and self._alive(int(entry.name)):
                found.append(int(entry.name))
        return found

    # --- the API

    def _readyz(self, server: str) -> bool:
        pki = self.layout.pki
        try:
            context = ssl.create_default_context(cafile=str(pki.ca))
            context.load_cert_chain(str(pki.cert("admin")), str(pki.key("admin")))
            with urllib.request.urlopen(f"{server}/readyz", timeout=2, context=context) as response:
                return bool(response.status == 200)
        except (OSError, urllib.error.URLError, ssl.SSLError):
            return False

    def _kubectl(self, args: Sequence[str], stdin: str | None = None) -> str:
        proc = subprocess.run(
            [str(self.layout.binary("kubectl")), "--kubeconfig", str(self.layout.kubeconfig), *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if proc.returncode != 0:
            raise ClusterError(f"kubectl {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc.stdout

    def _nodes_ready(self) -> bool:
        out = self._kubectl(
            [
                "get",
                "nodes",
                "-o",
                'jsonpath={range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\\n"}{end}',
            ]
        )
        return out.split() == ["True"] * len(NODES)

    def _default_service_account(self) -> bool:
        try:
            self._kubectl(["get", "serviceaccount", "default", "-n", "default", "-o", "name"])
        except ClusterError:
            return False
        return True

    def _bootstrap_objects(self) -> str:
        docs: list[dict[str, object]] = []
        for name, ip in NODES.items():
            docs.append(
                {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "metadata": {
                        "name": name,
                        "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
                        "labels": {
                            "kubernetes.io/hostname": name,
                            "kubernetes.io/os": "linux",
                            "type": "kwok",
                        },
                    },
                    # kwok's node-initialize keeps an InternalIP the Node already has.
                    "status": {
                        "addresses": [
                            {"type": "InternalIP", "address": ip},
                            {"type": "Hostname", "address": name},
                        ],
                        "allocatable": {"cpu": "8", "memory": "32Gi", "pods": "110"},
                        "capacity": {"cpu": "8", "memory": "32Gi", "pods": "110"},
                    },
                }
            )
        for i, storage_class in enumerate(STORAGE_CLASSES):
            annotations = {"storageclass.kubernetes.io/is-default-class": "true"} if i == 0 else {}
            docs.append(
                {
                    "apiVersion": "storage.k8s.io/v1",
                    "kind": "StorageClass",
                    "metadata": {"name": storage_class, "annotations": annotations},
                    "provisioner": "kubernetes.io/no-provisioner",
                    "volumeBindingMode": "Immediate",
                    "reclaimPolicy": "Retain",
                }
            )
            for n in range(VOLUMES_PER_CLASS):
                name = f"{storage_class}-{n:02d}"
                docs.append(
                    {
                        "apiVersion": "v1",
                        "kind": "PersistentVolume",
                        "metadata": {"name": name},
                        "spec": {
                            "storageClassName": storage_class,
                            "capacity": {"storage": VOLUME_SIZE},
                            "accessModes": ["ReadWriteOnce", "ReadWriteMany"],
                            "persistentVolumeReclaimPolicy": "Retain",
                            "hostPath": {
                                "path": str(self.layout.data / "volumes" / name),
                                "type": "DirectoryOrCreate",
                            },
                        },
                    }
                )
        return "\n".join(json.dumps(doc) for doc in docs)

    # --- state

    def _read_state(self) -> dict[str, Any]:
        try:
            data = json.loads(self.layout.state.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _write_state(self, state: dict[str, Any]) -> None:
        tmp = self.layout.state.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(self.layout.state)

    def _wait(self, what: str, check: Callable[[], bool], deadline: float) -> None:
        while time.monotonic() < deadline:
            if check():
                return
            for name, pid in self._read_state().get("pids", {}).items():
                if self._alive(pid) is None:
                    raise ClusterError(
                        f"{name} exited while waiting for {what}: see {self.layout.logs / name}.log"
                    )
            time.sleep(0.2)
        raise ClusterError(f"timed out waiting for {what}: see the logs in {self.layout.logs}")


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL when the parent dies (Linux PR_SET_PDEATHSIG), for the tests."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)


def _signal(pids: Sequence[int], sig: signal.Signals) -> None:
    """Signal each process and its group (each component leads its own session)."""
    for pid in pids:
        for send in (os.kill, os.killpg):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                send(pid, sig)


@contextlib.contextmanager
def running_cluster(layout: Layout, log: Callable[[str], None] = lambda message: None) -> Iterator[Status]:
    """A cluster for the length of a ``with`` block (the tests' fixture): always stopped and removed after."""
    cluster = Cluster(layout, tie_to_parent=True, log=log)
    try:
        yield cluster.up()
    finally:
        cluster.down()
