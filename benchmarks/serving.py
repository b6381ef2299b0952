"""Serving speed: this service against MLServer, MLflow's scoring server and a no-op FastAPI, with wrk.

Starts, all at once on 127.0.0.1, in a temporary HOUSING_HOME (embedded Postgres, local MLflow
store, a freshly trained champion):

- ``housing serve`` logging every prediction to the real Postgres, on ``POST /predict`` and on the
  Open Inference Protocol's ``POST /v2/models/cali-housing/infer`` (alternating, in one process),
- the same app with logging off (a writer that discards rows),
- MLServer 1.7.1 with mlserver-sklearn and its defaults, serving the same registered model's pickle on
  its V2 endpoint, in its own virtual environment (see :mod:`benchmarks.mlserver`),
- ``mlflow models serve --env-manager local`` for the same registered model,
- a no-op FastAPI endpoint that parses the same body (the ceiling the serving goals are stated
  against),
- the same no-op as a bare ASGI app under uvicorn: the ceiling of ``/predict``'s own path, which is
  answered in front of FastAPI's stack (``services.inference.hot_path``),

drives each in turn (``ROUNDS`` rounds per concurrency, the order rotating) with the same one-row
request (each protocol's own body format: V2 JSON tensors for the V2 endpoints, MLflow's for MLflow)
at concurrency 1, 16 and 64 with wrk and a Lua POST script, and prints a markdown table with
requests/s, p50, p99 and the ratios the issues' goals are stated in.
wrk comes from Debian (``apt-get install wrk``); it is installed when missing and apt works.

Run: ``python -m benchmarks.serving`` (``BENCH_SECONDS``: seconds per target and concurrency, default 10).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from benchmarks import mlserver
from services.common.features import EXAMPLE, FEATURE_NAMES
from services.common.registry import MODEL_NAME
from services.common.vocabulary import Role

ROOT = Path(__file__).resolve().parents[1]
CONCURRENCY = (1, 16, 64)
SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))  # per target and concurrency, in ROUNDS turns
ROUNDS = 3
OURS = "housing serve (logging on)"
OURS_V2 = "housing serve (logging on), V2 infer"
MLSERVER = "MLServer 1.7.1 (V2 infer)"
NOOP_ASGI = "no-op ASGI"
# /predict's throughput against the bare ASGI no-op on the same uvicorn, at c=1 and c=16 (logging on).
ASGI_GOAL = 0.35
V2_PATH = f"/v2/models/{MODEL_NAME}/infer"


@dataclass(frozen=True)
class Result:
    server: str
    concurrency: int
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    print("wrk is missing: installing it from Debian (apt-get install wrk)", file=sys.stderr)
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=False, capture_output=True)
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("wrk is needed: apt-get install wrk (Debian/Ubuntu) or brew install wrk")
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def run_wrk(
    wrk: str, url: str, body: bytes, concurrency: int, seconds: int, folder: Path
) -> dict[str, float]:
    script = folder / "post.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = {json.dumps(body.decode())}\n"
    )
    threads = 1 if concurrency == 1 else 2  # wrk refuses fewer connections than threads
    output = subprocess.run(
        [wrk, f"-t{threads}", f"-c{concurrency}", f"-d{seconds}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", output, re.MULTILINE))
    total = re.search(r"(\d+) requests in", output)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),  # type: ignore[union-attr]
        "p50": _ms(latency["50"]) if "50" in latency else float("nan"),  # absent when every request timed out
        "p99": _ms(latency["99"]) if "99" in latency else float("nan"),
        "requests": float(total.group(1)) if total else 0.0,
        "errors": float(errors.group(1) if errors else 0)
        + (sum(map(int, socket_errors.groups())) if socket_errors else 0),
    }


@contextmanager
def running(
    command: list[str], env: dict[str, str], ready_url: str, log: Path, cwd: Path = ROOT
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``command`` in ``cwd`` until the block ends (SIGTERM, then kill); yields once ``ready_url``
    answers 200. ``python -c`` imports from ``cwd`` first, ahead of PYTHONPATH."""
    with log.open("w") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=cwd)
    try:
        deadline = time.monotonic() + 180
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{command[0]} exited: {log.read_text()[-2000:]}")
            try:
                if httpx.get(ready_url, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{' '.join(command)} never became ready: {log.read_text()[-2000:]}")
            time.sleep(0.3)
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def count_predictions(env: dict[str, str]) -> int:
    import psycopg

    from services.common.connections import database_url
    from services.common.settings import CommonSettings
    from services.common.vocabulary import Role

    url = database_url(CommonSettings(housing_home=Path(env["HOUSING_HOME"])))
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM predictions WHERE role = %s", (Role.CHAMPION,)).fetchone()
    return int(row[0]) if row else 0


def main() -> None:
    wrk = ensure_wrk()
    folder = Path(tempfile.mkdtemp(prefix="housing-bench-serving-"))
    folder.chmod(0o755)  # the embedded Postgres runs as another user under root
    env = _environment(folder)
    housing = [sys.executable, "-c", "from services.cli import main; main()"]
    try:
        print("training a champion in a temporary HOUSING_HOME ...", file=sys.stderr)
        trained = subprocess.run([*housing, "train"], env=env, cwd=ROOT, capture_output=True, text=True)
        if trained.returncode:
            raise SystemExit(f"housing train failed:\n{trained.stderr[-2000:]}")
        servers, mlserver_port = _servers(folder, env, housing)
        runs = _rotate(wrk, servers, mlserver_port, folder)
        served = sum(
            int(f["requests"] - f["errors"])
            for (label, _), done in runs.items()
            if label in (OURS, OURS_V2)
            for f in done
        )
        print(
            f"rows logged after drain: {count_predictions(env)} (timed runs served {served}, and warm-ups)",
            file=sys.stderr,
        )
        print(table(_results(runs)))
    finally:
        subprocess.run([*housing, "db", "stop"], env=env, check=False, capture_output=True, cwd=ROOT)
        shutil.rmtree(folder, ignore_errors=True)


# name, command ({port} filled in), environment, readiness path, then what wrk loads:
# (row name, path, body) per target, alternated at each concurrency
Server = tuple[str, list[str], dict[str, str], str, list[tuple[str, str, bytes]]]
Runs = dict[tuple[str, int], list[dict[str, float]]]


def _environment(folder: Path) -> dict[str, str]:
    """The servers' environment: HOUSING_HOME in ``folder``, one OpenMP thread, logs as the chart has them."""
    env = {
        **os.environ,
        "HOUSING_HOME": str(folder / "home"),
        "OMP_NUM_THREADS": "1",
        "LOG_LEVEL": "WARNING",
        "LOG_FORMAT": "json",  # as the chart runs it: every request gets a request id
    }
    # mlflow models serve execs `uvicorn` by name: the virtualenv's bin must be on PATH.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.pop("DATABASE_URL", None)
    env.pop("MLFLOW_TRACKING_URI", None)
    shared_data = (
        ROOT.parent / "shared" / "data" / "scikit_learn_data"
    )  # the offline copy, as the Makefile finds it
    if "SCIKIT_LEARN_DATA" not in env and shared_data.is_dir():
        env["SCIKIT_LEARN_DATA"] = str(shared_data)
    return env


# The one-row body each protocol takes.
ONE_ROW = json.dumps(EXAMPLE).encode()
MLFLOW_ROW = json.dumps({"dataframe_records": [EXAMPLE]}).encode()
V2_ROW = json.dumps(
    {
        "inputs": [
            {
                "name": "features",
                "datatype": "FP64",
                "shape": [1, len(FEATURE_NAMES)],
                "data": [EXAMPLE[name] for name in FEATURE_NAMES],
            }
        ]
    }
).encode()
CHAMPION_URI = f"models:/{MODEL_NAME}@{Role.CHAMPION}"
MLFLOW_SERVE = ["-m", "mlflow", "models", "serve", "-m", CHAMPION_URI, "--env-manager", "local"]


def _servers(folder: Path, env: dict[str, str], housing: list[str]) -> tuple[list[Server], int]:
    """Every server to start, and the port MLServer's model folder names (its command takes no port)."""
    store = folder / "home" / "mlflow" / "mlflow.db"
    mlflow_env = {**env, "MLFLOW_TRACKING_URI": f"sqlite:///{store}"}
    mlserver_bin = mlserver.ensure_venv()
    mlserver_ports = (free_port(), free_port(), free_port())
    mlserver_repo = mlserver.model_folder(
        folder / "mlserver", champion_pickle(f"sqlite:///{store}", folder / "champion"), *mlserver_ports
    )
    mlserver_env = {k: v for k, v in env.items() if k != "PYTHONPATH"}
    servers: list[Server] = [
        (
            "housing serve",
            [*housing, "serve", "--port", "{port}"],
            env,
            "/readyz",
            [(OURS, "/predict", ONE_ROW), (OURS_V2, V2_PATH, V2_ROW)],
        ),
        (
            "housing serve (logging off)",
            [sys.executable, "-m", "benchmarks.serving_apps", "nolog", "{port}"],
            env,
            "/readyz",
            [("housing serve (logging off)", "/predict", ONE_ROW)],
        ),
        (
            "MLServer",
            [str(mlserver_bin), "start", str(mlserver_repo)],
            mlserver_env,
            f"/v2/models/{MODEL_NAME}/ready",
            [(MLSERVER, V2_PATH, V2_ROW)],
        ),
        (
            "mlflow models serve",
            [sys.executable, *MLFLOW_SERVE, "-h", "127.0.0.1", "-p", "{port}"],
            mlflow_env,
            "/ping",
            [("mlflow models serve", "/invocations", MLFLOW_ROW)],
        ),
        (
            "no-op FastAPI",
            [sys.executable, "-m", "benchmarks.serving_apps", "noop", "{port}"],
            env,
            "/docs",
            [("no-op FastAPI", "/predict", ONE_ROW)],
        ),
        (
            "no-op ASGI",
            [sys.executable, "-m", "benchmarks.serving_apps", "asgi", "{port}"],
            env,
            "/ready",
            [(NOOP_ASGI, "/predict", ONE_ROW)],
        ),
    ]
    return servers, mlserver_ports[0]


def _rotate(wrk: str, servers: list[Server], mlserver_port: int, folder: Path) -> Runs:
    """Start every server, then drive each target in turn, ROUNDS rounds per concurrency: wrk's figures."""
    # Every server runs at once and the targets take turns in short rounds, so a change in the
    # machine's load (2 shared cores) falls on all of them alike instead of on whichever ran then.
    runs: Runs = {}
    with ExitStack() as stack:
        urls: list[tuple[str, str, bytes]] = []
        for name, template, server_env, ready, targets in servers:
            port = mlserver_port if name == "MLServer" else free_port()
            command = [part.replace("{port}", str(port)) for part in template]
            print(f"{name}: starting", file=sys.stderr)
            log = folder / f"{port}.log"
            stack.enter_context(running(command, server_env, f"http://127.0.0.1:{port}{ready}", log))
            urls.extend((label, f"http://127.0.0.1:{port}{path}", body) for label, path, body in targets)
        for _, url, body in urls:
            run_wrk(wrk, url, body, 16, 2, folder)  # warm-up
        seconds = max(2, round(SECONDS / ROUNDS))
        for concurrency in CONCURRENCY:
            for round_ in range(ROUNDS):
                turn = urls[round_ % len(urls) :] + urls[: round_ % len(urls)]
                for label, url, body in turn:
                    figures = run_wrk(wrk, url, body, concurrency, seconds, folder)
                    runs.setdefault((label, concurrency), []).append(figures)
            for label, _, _ in urls:
                done = runs[(label, concurrency)]
                print(
                    f"  {label}, c={concurrency}: {statistics.mean(f['rps'] for f in done):.0f} req/s,"
                    f" p99 {max(f['p99'] for f in done):.1f} ms",
                    file=sys.stderr,
                )
    return runs


def _results(runs: Runs) -> list[Result]:
    """One row per target and concurrency, in the table's order."""
    results = [
        Result(
            label,
            concurrency,
            statistics.mean(f["rps"] for f in done),
            statistics.median(f["p50"] for f in done),
            max(f["p99"] for f in done),
            int(sum(f["errors"] for f in done)),
            int(sum(f["requests"] for f in done)),
        )
        for (label, concurrency), done in runs.items()
    ]
    results.sort(key=lambda r: ORDER.index(r.server) if r.server in ORDER else len(ORDER))
    return results


def champion_pickle(registry_uri: str, folder: Path) -> Path:
    """The registered champion's own scikit-learn pickle (its MLflow model folder's ``model.pkl``)."""
    import mlflow.artifacts
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=registry_uri, registry_uri=registry_uri)
    version = client.get_model_version_by_alias(MODEL_NAME, Role.CHAMPION)
    source = client.get_model_version_download_uri(MODEL_NAME, version.version)
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=str(folder)))
    return next(local.rglob("model.pkl"))


ORDER = (
    OURS,
    OURS_V2,
    "housing serve (logging off)",
    MLSERVER,
    "mlflow models serve",
    "no-op FastAPI",
    NOOP_ASGI,
)


def _ratio(ours: Result | None, other: Result | None) -> float | None:
    if ours is None or other is None or not other.requests_per_second:
        return None
    return ours.requests_per_second / other.requests_per_second


def table(results: list[Result]) -> str:
    """The markdown table, then the ratios at concurrency 16."""
    lines = [
        f"One-row requests, wrk, {ROUNDS} turns of {max(2, round(SECONDS / ROUNDS))} s per target and"
        f" concurrency (req/s: their mean; p50: median; p99: the worst), {os.cpu_count()} cores.",
        "",
        "| server | concurrency | req/s | p50 ms | p99 ms | errors |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        lines.append(
            f"| {r.server} | {r.concurrency} | {r.requests_per_second:,.0f} | {r.p50_ms:.1f} "
            f"| {r.p99_ms:.1f} "
            f"| {r.errors} |"
        )
    at16 = {r.server: r for r in results if r.concurrency == 16}
    ours, off = at16.get(OURS), at16.get("housing serve (logging off)")
    mlflow = at16.get("mlflow models serve")
    lines.append("")
    if ours and mlflow:
        lines.append(
            f"- c=16 vs MLflow: {ours.requests_per_second / mlflow.requests_per_second:.1f}x throughput "
            f"(goal >= 10x), p99 {ours.p99_ms / mlflow.p99_ms:.2f} of MLflow's (goal <= 0.10)"
        )
    at1 = {r.server: r for r in results if r.concurrency == 1}
    for at, goal in ((at1, 40), (at16, 60)):
        mine, fastapi, asgi = at.get(OURS), at.get("no-op FastAPI"), at.get(NOOP_ASGI)
        if mine and fastapi and asgi:
            lines.append(
                f"- c={mine.concurrency} vs the no-op FastAPI: {_ratio(mine, fastapi):.0%} (goal >= {goal}%);"
                f" vs the no-op ASGI app: {_ratio(mine, asgi):.0%} (goal >= {ASGI_GOAL:.0%})"
            )
    if ours and off:
        cost = 1 - ours.requests_per_second / off.requests_per_second
        lines.append(f"- logging on costs {cost:.0%} of throughput against logging off (goal <= 15%)")
    by = {(r.server, r.concurrency): r for r in results}
    for concurrency, goal in ((1, 2.5), (16, 3.5), (64, None)):
        versus = by.get((MLSERVER, concurrency))
        predict, v2 = (
            _ratio(by.get((OURS, concurrency)), versus),
            _ratio(by.get((OURS_V2, concurrency)), versus),
        )
        if predict is not None and v2 is not None:
            wanted = f" (goal >= {goal}x)" if goal else ""
            lines.append(
                f"- c={concurrency} vs MLServer: /predict {predict:.1f}x, V2 infer {v2:.1f}x"
                f" throughput{wanted}"
            )
    for concurrency in CONCURRENCY:
        v2_share = _ratio(by.get((OURS_V2, concurrency)), by.get((OURS, concurrency)))
        if v2_share is not None:
            lines.append(
                f"- c={concurrency}: V2 infer at {v2_share:.0%} of /predict's throughput (goal >= 90%)"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
