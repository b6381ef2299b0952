"""What a local run shows on the terminal: steps, spinners, timed events, monitor runs, the timeline."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.table import Table

from services.common.features import FEATURE_NAMES, TARGET_UNIT_USD
from services.common.vocabulary import Plan, RunStatus
from services.local.report import MonitorRun
from services.local.timeline import Kind, Timeline, clock

STATUS_COLOURS: dict[str, str] = {RunStatus.OK: "green", RunStatus.DRIFT: "red", RunStatus.DEGRADED: "yellow"}
PSI_HOT = 0.2  # PSI_THRESHOLD's default: the table colours a feature red from here


def usd(value: float | None) -> str:
    """A price error in 100k USD as ``28.4 k USD``."""
    return "-" if value is None else f"{value * TARGET_UNIT_USD / 1000:.1f} k USD"


class DemoConsole:
    """A rich console bound to the run's timeline (events are recorded as they are printed)."""

    def __init__(self, console: Console, timeline: Timeline, logs: Path) -> None:
        self.console = console
        self.timeline = timeline
        self.logs = logs

    def rule(self, title: str) -> None:
        self.console.rule(f"[bold]{title}[/bold]  [dim]{clock(self.timeline.now())}[/dim]")

    def event(
        self, kind: Kind, title: str, detail: str = "", *, at: float | None = None, mark: str | None = None
    ) -> None:
        """Record an event on the timeline and print it."""
        event = self.timeline.add(kind, title, detail, at=at, mark=mark)
        self.console.print(
            f"[dim]{clock(event.at)}[/dim] {title}" + (f" [dim]({detail})[/dim]" if detail else "")
        )

    @contextmanager
    def status(self, text: str) -> Iterator[None]:
        """A spinner while the block runs, then the text with how long it took."""
        started = time.monotonic()
        with self.console.status(text):
            yield
        self.console.print(f"{text} [dim]... {time.monotonic() - started:.1f} s[/dim]")

    @contextmanager
    def quiet(self, name: str) -> Iterator[None]:
        """In-process MLflow and scikit-learn chatter (stderr, warnings, logs) goes to ``logs/NAME.log``."""
        import logging
        import warnings

        self.logs.mkdir(parents=True, exist_ok=True)
        with (
            (self.logs / f"{name}.log").open("a", encoding="utf-8") as log,
            contextlib.redirect_stderr(log),
            warnings.catch_warnings(),
        ):
            warnings.simplefilter("ignore")
            root, mlflow_logger = logging.getLogger(), logging.getLogger("mlflow")
            saved = (root.handlers[:], root.level, mlflow_logger.handlers[:], mlflow_logger.propagate)
            root.handlers = [logging.StreamHandler(log)]
            root.setLevel(logging.INFO)
            mlflow_logger.handlers, mlflow_logger.propagate = [], True
            try:
                yield
            finally:
                root.handlers, level, mlflow_logger.handlers, mlflow_logger.propagate = saved
                root.setLevel(level)

    def monitor_run(self, number: int, run: MonitorRun, seconds: float) -> None:
        """One monitor run's status, errors and action, and its PSI per feature as a table."""
        colour = STATUS_COLOURS.get(run.status, "white")
        live = f"live MAE {usd(run.live_mae)} (reference {usd(run.reference_mae)})" if run.live_mae else ""
        if run.estimated_mae is not None:
            live += (", " if live else "") + f"estimated MAE {usd(run.estimated_mae)} without labels"
        self.console.print(
            f"monitor #{number}: [{colour}]{run.status}[/{colour}]"
            + (f", drift share {run.drift_share:.2f}" if run.drift_share is not None else "")
            + (f", {live}" if live else "")
            + f", action [bold]{run.action}[/bold]"
            + (f" [yellow]({run.detail})[/yellow]" if run.plan == Plan.WAIT_FOR_LABELS else "")
            + (", alert sent" if run.alerted else "")
            + f" [dim]({seconds:.1f} s)[/dim]"
        )
        if run.psi:
            table = Table("feature", "PSI", "", box=None, padding=(0, 1))
            for name in FEATURE_NAMES:
                value = run.psi.get(name)
                if value is None:
                    continue
                bar = "█" * min(30, round(value * 20))
                colour = "red" if value >= PSI_HOT else "green"
                table.add_row(name, f"[{colour}]{value:.3f}[/]", f"[dim]{bar}[/dim]")
            self.console.print(table)

    def timeline_table(self) -> None:
        """Every event, one line each (details cut to the terminal's width; the report has them in full)."""
        table = Table("at", "kind", "what", "detail", title="timeline (details in full in the report)")
        room = max(16, self.console.width - 60)
        for event in self.timeline.events:
            detail = event.detail if len(event.detail) <= room else event.detail[: room - 1] + "…"
            table.add_row(clock(event.at), event.kind, event.title, detail)
        self.console.print(table)
