"""A/B of ``/predict`` against the bare ASGI no-op: this tree and earlier commits, served at once.

Each ``--ref`` is exported (``git archive``) into a temporary folder and served by its own ``housing
serve`` (logging on, ``LOG_FORMAT=json``, one embedded Postgres and champion for all); this tree's
``housing serve`` and the bare ASGI no-op of :mod:`benchmarks.serving_apps` run beside them. The
targets take turns in short wrk rounds, the order rotating, and each round's ``/predict`` figure is
divided by the no-op's of the same round, so the machine's load (2 shared cores) falls on both sides of
every ratio. Prints, per target and concurrency, the median req/s, the median of the per-round
ratios (issue 20's goal: >= 35 % at c=1 and c=16) and the median of this tree's req/s over the
target's in the same round (the A/B figure of the commits in between).

Beside the throughput, each round reads the CPU time each server's process spent (``/proc/<pid>/stat``:
user and system, every thread) and divides it by the requests answered: CPU µs per request does not
move with the load other programs put on the machine the way req/s does, and the no-op's CPU per
request over a target's is the share of the no-op that target would reach if both were CPU-bound on one
core. The Postgres backend the writer's COPY runs in is another process and is not counted.

Run: ``python -m benchmarks.serving_ab --ref HEAD~1 [--ref REF ...] [--concurrency 1,16] [--rounds 6]
[--seconds 3] [--home DIR]`` (``--home``: keep the trained HOUSING_HOME there and reuse it next time).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from benchmarks.serving import ONE_ROW, ROOT, ensure_wrk, free_port, run_wrk, running

NOOP = "no-op ASGI"


def _export(ref: str, folder: Path) -> Path:
    """The tree of ``ref`` in ``folder`` (``git archive``)."""
    folder.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", ref], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


def serve_command(tree: Path, port: int, env: dict[str, str]) -> tuple[list[str], dict[str, str], Path]:
    """The command, environment and folder that serve ``tree``'s code on ``port``.

    The folder is the tree itself: ``python -c`` puts its working folder first on ``sys.path``, ahead of
    PYTHONPATH, so a server started in this checkout runs this checkout's code whatever PYTHONPATH says
    (until this was fixed every ``--ref`` served this tree, and the A/B compared a tree with itself).
    """
    command = [sys.executable, "-c", "from services.cli import main; main()", "serve", "--port", str(port)]
    return command, {**env, "PYTHONPATH": str(tree)}, tree


def _environment(home: Path) -> dict[str, str]:
    env = {**os.environ, "HOUSING_HOME": str(home), "OMP_NUM_THREADS": "1"}
    env.update(LOG_LEVEL="WARNING", LOG_FORMAT="json")  # as the chart runs it
    env.pop("DATABASE_URL", None)
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def _train(env: dict[str, str], home: Path) -> None:
    if (home / "mlflow").is_dir():
        return
    print("training a champion ...", file=sys.stderr)
    done = subprocess.run(
        [sys.executable, "-c", "from services.cli import main; main()", "train"],
        env={**env, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if done.returncode:
        raise SystemExit(f"housing train failed:\n{done.stderr[-2000:]}")


@dataclass(frozen=True)
class Round:
    """One target's figures in one round."""

    rps: float
    share: float  # of the no-op's req/s in the same round
    cpu_us: float  # the server process's CPU time per request answered (user + system, all threads)


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of process ``pid`` so far, all its threads (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def measure(
    targets: dict[str, tuple[str, int]], concurrency: int, rounds: int, seconds: int, folder: Path
) -> dict[str, list[Round]]:
    """Per target (its URL and server pid): its figures in each round."""
    wrk = ensure_wrk()
    names = list(targets)
    figures: dict[str, list[Round]] = {name: [] for name in names}
    for round_ in range(rounds):
        turn = names[round_ % len(names) :] + names[: round_ % len(names)]
        rps: dict[str, float] = {}
        cpu: dict[str, float] = {}
        for name in turn:
            url, pid = targets[name]
            before = cpu_seconds(pid)
            got = run_wrk(wrk, url, ONE_ROW, concurrency, seconds, folder)
            if got["errors"]:
                raise SystemExit(f"{name} answered {got['errors']:.0f} errors at c={concurrency}")
            rps[name] = got["rps"]
            cpu[name] = (cpu_seconds(pid) - before) / max(got["requests"], 1.0) * 1e6
        for name in names:
            figures[name].append(Round(rps[name], rps[name] / rps[NOOP], cpu[name]))
    return figures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ref", action="append", default=[], help="a git ref to serve beside this tree")
    parser.add_argument("--concurrency", default="1,16")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--home", type=Path, help="a HOUSING_HOME to keep and reuse")
    args = parser.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="housing-bench-ab-"))
    folder.chmod(0o755)  # the embedded Postgres runs as another user under root
    home = args.home or folder / "home"
    env = _environment(home)
    try:
        _train(env, home)
        trees = {f"/predict @ {ref}": _export(ref, folder / f"tree{i}") for i, ref in enumerate(args.ref)}
        trees["/predict @ this tree"] = ROOT
        with ExitStack() as stack:
            targets: dict[str, tuple[str, int]] = {}
            for name, tree in trees.items():
                port = free_port()
                command, served_env, cwd = serve_command(tree, port, env)
                ready = f"http://127.0.0.1:{port}/readyz"
                server = stack.enter_context(running(command, served_env, ready, folder / f"{port}.log", cwd))
                targets[name] = (f"http://127.0.0.1:{port}/predict", server.pid)
            port = free_port()
            noop = [sys.executable, "-m", "benchmarks.serving_apps", "asgi", str(port)]
            server = stack.enter_context(
                running(
                    noop,
                    {**env, "PYTHONPATH": str(ROOT)},
                    f"http://127.0.0.1:{port}/ready",
                    folder / "noop.log",
                )
            )
            targets[NOOP] = (f"http://127.0.0.1:{port}/predict", server.pid)
            for url, _ in targets.values():  # warm-up
                run_wrk(ensure_wrk(), url, ONE_ROW, 16, 2, folder)
            print(
                f"| target | concurrency | req/s (median of {args.rounds}) | of the no-op (median) | rounds"
                " | this tree over it (median of the rounds) | CPU µs per request (median)"
                " | the no-op's CPU per request over it |"
            )
            print("| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: |")
            mine = "/predict @ this tree"
            for concurrency in (int(c) for c in args.concurrency.split(",")):
                figures = measure(targets, concurrency, args.rounds, args.seconds, folder)
                noop_cpu = statistics.median(r.cpu_us for r in figures[NOOP])
                for name, runs in figures.items():
                    ratios = ", ".join(f"{r.share:.0%}" for r in runs)
                    paired = statistics.median(
                        a.rps / b.rps for a, b in zip(figures[mine], runs, strict=True)
                    )
                    cpu = statistics.median(r.cpu_us for r in runs)
                    print(
                        f"| {name} | {concurrency} | {statistics.median(r.rps for r in runs):,.0f}"
                        f" | {statistics.median(r.share for r in runs):.1%} | {ratios} | {paired:.2f}x"
                        f" | {cpu:.0f} | {noop_cpu / cpu:.1%} |",
                        flush=True,
                    )
    finally:
        if args.home is None:
            subprocess.run(
                [sys.executable, "-c", "from services.cli import main; main()", "db", "stop"],
                env={**env, "PYTHONPATH": str(ROOT)},
                check=False,
                capture_output=True,
                cwd=ROOT,
            )
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
