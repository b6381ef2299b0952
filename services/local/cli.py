"""``housing simulate`` (traffic against any inference URL) and ``housing demo`` (the loop on one machine).

Heavy imports (numpy, scikit-learn, MLflow, plotly) happen inside the commands: ``housing --help`` stays fast.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from services.local.simulator import SimulationSummary

SCENARIO_HELP = (
    "steady: the holdout's mix; covariate-shift: mostly high-income districts; concept-shift: prices +25%."
)


def simulate(
    url: Annotated[
        str, typer.Option(envvar="INFERENCE_URL", help="Base URL of the inference server.")
    ] = "http://127.0.0.1:8000",
    scenario: Annotated[str, typer.Option(help=SCENARIO_HELP)] = "steady",
    rows: Annotated[int, typer.Option(min=1, help="Rows to send.")] = 1000,
    rate: Annotated[
        float, typer.Option(min=0, help="Rows per second (0: as fast as the server answers).")
    ] = 100.0,
    feedback_delay: Annotated[
        float, typer.Option(min=0, help="Seconds between a prediction and its true price on /feedback.")
    ] = 2.0,
    no_feedback: Annotated[bool, typer.Option("--no-feedback", help="Send no true prices.")] = False,
    price_factor: Annotated[
        float | None,
        typer.Option(
            min=0.01, help="True price = recorded price x this (overrides the scenario's; 1.25 = +25%)."
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(envvar="FEEDBACK_TOKEN", help="Bearer token for /feedback.", show_default=False),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the row sampling (same seed, same rows).")] = 0,
    timeout: Annotated[float, typer.Option(min=0.1, help="Seconds one request may take.")] = 10.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON on stdout.")] = False,
) -> None:
    """Replay held-out rows of the data set against an inference URL and post their true prices later."""
    import numpy as np
    from rich.console import Console

    from services.common.dataset import load_dataset
    from services.local.scenarios import scenario_spec, scenario_traffic

    try:
        spec = scenario_spec(scenario, price_factor)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--scenario/--price-factor") from error
    console = Console(stderr=True)
    dataset = load_dataset()
    bodies, prices = scenario_traffic(
        dataset.x_holdout, dataset.y_holdout, spec, rows, np.random.default_rng(seed)
    )
    console.print(f"{spec.name}: {rows} rows ({spec.describe()}) to {url} at {rate or 'max'} rows/s")
    summary = _replay(
        console,
        url,
        bodies,
        prices,
        token=token,
        timeout=timeout,
        rate=rate,
        feedback_delay=-1.0 if no_feedback else feedback_delay,
    )
    if as_json:
        print(json.dumps({"scenario": spec.name, "url": url, **summary.as_dict()}, indent=2))
    _print_summary(console, summary)
    if summary.failed or summary.feedback_failed:
        raise typer.Exit(1)


def _replay(
    console: Console,
    url: str,
    bodies: Sequence[Mapping[str, float]],
    prices: Sequence[float],
    *,
    token: str | None,
    timeout: float,
    rate: float,
    feedback_delay: float,
) -> SimulationSummary:
    """Send ``bodies`` to ``url`` (and their ``prices`` to /feedback) behind a progress bar on ``console``."""
    import httpx
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from services.local.simulator import Simulator

    progress = Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        console=console,
    )

    def show(summary: SimulationSummary) -> None:
        detail = f"failed {summary.failed}, feedback {summary.feedback_posted}"
        progress.update(task, completed=summary.sent + summary.failed, detail=detail)

    with progress, httpx.Client(base_url=url.rstrip("/"), timeout=timeout) as client:
        task = progress.add_task("predict", total=len(bodies), detail="")
        return Simulator(client, token=token).run(
            bodies, prices, rate=rate, feedback_delay=feedback_delay, on_progress=show
        )


def _print_summary(console: Console, summary: SimulationSummary) -> None:
    """The run's counts, rows per model version that answered, and the errors it kept, on ``console``."""
    versions = ", ".join(f"v{version}: {count}" for version, count in sorted(summary.versions.items()))
    console.print(
        f"sent {summary.sent}, failed {summary.failed}, feedback posted {summary.feedback_posted}"
        f" (failed {summary.feedback_failed}) in {summary.seconds:.1f} s; model versions: {versions or '-'}"
    )
    for message in summary.errors:
        console.print(f"  [red]{message}[/red]")


def demo(
    output: Annotated[Path, typer.Option(help="Where the HTML report goes.")] = Path("reports/demo.html"),
    keep_postgres: Annotated[
        bool,
        typer.Option(
            "--keep-postgres",
            help="Leave the embedded Postgres running to look around (the files stay until the next run).",
        ),
    ] = False,
) -> None:
    """The closed loop on one machine: train, serve, drift, retrain, swap, bad model rolled back; a report."""
    import os

    # HistGradientBoosting's OpenMP threads fight the server's and each other's on a small machine
    # (a fit beside a server ran 10-20x slower); set before scikit-learn loads its OpenMP runtime.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from services.common.settings import CommonSettings
    from services.local.demo import run_demo

    settings = CommonSettings()
    code = run_demo(settings.housing_home / "demo", output, keep_postgres=keep_postgres)
    if code:
        raise typer.Exit(code)
