"""The demo's HTML report: PSI per feature per monitor run, rolling live error with the loop's events and
each run's label-free estimated MAE.

:func:`build_report` is a pure function of a :class:`DemoRecord` and returns one self-contained HTML page
(plotly.js is inlined from the installed package, so the page works offline).

Example::

    html = build_report(record)
    Path("reports/demo.html").write_text(html, encoding="utf-8")
"""

from __future__ import annotations

import bisect
import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from services.common.features import FEATURE_NAMES, TARGET_UNIT_USD
from services.local.timeline import Event, clock

if TYPE_CHECKING:
    import plotly.graph_objects as go

ROLLING_ROWS = 100
MARKER_COLOURS = {
    "drift": "#d62728",
    "retrain": "#9467bd",
    "promotion": "#2ca02c",
    "swap": "#17becf",
    "rollback": "#ff7f0e",
}


@dataclass(frozen=True)
class MonitorRun:
    """One ``housing monitor --json`` result, as the report needs it."""

    at: float
    label: str
    status: str
    action: str
    psi: dict[str, float]
    drift_share: float | None = None
    live_mae: float | None = None
    reference_mae: float | None = None
    estimated_mae: float | None = None  # the label-free estimate (None: no error model, too few rows)
    alerted: bool = False
    report_path: str | None = None
    triggers: tuple[str, ...] = ()
    labelled_rows: int = 0
    plan: str = ""  # what the verdict asked (wait_for_labels: a launch waits for new labels)
    detail: str = ""  # the run's line for people ("drift; waiting for labels: 0 of 334")
    new_labels: int | None = None  # labelled rows newer than any model trained on (counted up to needed)
    needed_labels: int | None = None  # RETRAIN_MIN_NEW_LABELS


@dataclass(frozen=True)
class ErrorPoint:
    """A labelled prediction: made ``at`` s after the start by ``version``, its absolute error (100k USD)."""

    at: float
    version: int
    abs_error: float


@dataclass
class DemoRecord:
    """Everything the report shows."""

    started: float  # epoch seconds
    total_seconds: float
    events: list[Event]
    runs: list[MonitorRun]
    errors: list[ErrorPoint]
    psi_threshold: float = 0.2
    evidently_report: str | None = None  # a path relative to the report, or None
    facts: dict[str, str] = field(default_factory=dict)  # headline figures, in order
    gate: list[str] = field(default_factory=list)  # the gate's decisions, each with its evidence


def rolling_mae(points: Sequence[ErrorPoint], window: int = ROLLING_ROWS) -> list[tuple[float, int, float]]:
    """(time, version, MAE of the last ``window`` rows of that version) for each point, in time order.

    Each model version gets its own rolling window, so a swap shows as a step, not a slow blend.
    """
    recent: dict[int, list[float]] = {}
    sums: dict[int, float] = {}
    out = []
    for point in sorted(points, key=lambda p: p.at):
        errors = recent.setdefault(point.version, [])
        errors.append(point.abs_error)
        sums[point.version] = sums.get(point.version, 0.0) + point.abs_error
        if len(errors) > window:
            sums[point.version] -= errors.pop(0)
        out.append((point.at, point.version, sums[point.version] / len(errors)))
    return out


def _psi_figure(runs: Sequence[MonitorRun], threshold: float) -> object:
    import plotly.graph_objects as go

    judged = [run for run in runs if run.psi]
    features = list(FEATURE_NAMES)
    z = [[run.psi.get(name) for run in judged] for name in features]
    labels = [f"#{i + 1} {run.label}<br>{clock(run.at)} · {run.status}" for i, run in enumerate(judged)]
    text = [["" if value is None else f"{value:.2f}" for value in row] for row in z]
    figure = go.Figure(
        go.Heatmap(
            z=z,
            x=labels,
            y=features,
            text=text,
            texttemplate="%{text}",
            zmin=0,
            zmax=max(2.5 * threshold, 0.5),
            colorscale=[[0.0, "#e8f5e9"], [0.4, "#fff59d"], [0.6, "#ff9800"], [1.0, "#b71c1c"]],
            colorbar={"title": "PSI"},
            hovertemplate="%{y}: PSI %{z:.3f}<extra>%{x}</extra>",
        )
    )
    figure.update_layout(
        title=f"PSI per feature per monitor run (drift at PSI ≥ {threshold:g}: orange and red)",
        height=420,
        margin={"l": 100, "r": 20, "t": 60, "b": 80},
        yaxis={"autorange": "reversed"},
    )
    return figure


def _error_figure(
    points: Sequence[ErrorPoint],
    events: Sequence[Event],
    reference_mae: float | None,
    runs: Sequence[MonitorRun] = (),
) -> object:
    """Rolling MAE against the labelled predictions in the order they were made (the quiet spells between
    traffic bursts, while the monitor works, take no room); the loop's events are marked where they fell,
    and each monitor run's label-free estimate where the run was made."""
    import plotly.graph_objects as go

    rolled = rolling_mae(points)
    times = [at for at, _, _ in rolled]
    figure = go.Figure()
    for version in sorted({version for _, version, _ in rolled}):
        series = [(index, at, mae) for index, (at, v, mae) in enumerate(rolled) if v == version]
        figure.add_trace(
            go.Scatter(
                x=[index for index, _, _ in series],
                y=[mae * TARGET_UNIT_USD / 1000 for _, _, mae in series],
                customdata=[clock(at) for _, at, _ in series],
                mode="markers",
                marker={"size": 3},
                name=f"model v{version}",
                hovertemplate="%{y:.1f} k USD at %{customdata}<extra>v" + str(version) + "</extra>",
            )
        )
    _add_estimates(figure, runs, times)
    if reference_mae is not None:
        figure.add_hline(
            y=reference_mae * TARGET_UNIT_USD / 1000,
            line={"dash": "dot", "color": "grey"},
            annotation_text="v1 holdout MAE",
            annotation_position="bottom left",
        )
    _add_event_marks(figure, events, times)
    figure.update_layout(
        title=f"Live error: rolling MAE of the last {ROLLING_ROWS} labelled predictions per model version",
        xaxis_title="labelled predictions, in the order they were made",
        yaxis_title="MAE (thousand USD)",
        height=480,
        margin={"l": 70, "r": 20, "t": 60, "b": 60},
        legend={"orientation": "h", "y": -0.2},
    )
    return figure


def _add_estimates(figure: go.Figure, runs: Sequence[MonitorRun], times: Sequence[float]) -> None:
    """Each monitor run's label-free estimated MAE as a diamond, between the predictions around it
    (``times``: when each rolled prediction was made)."""
    import plotly.graph_objects as go

    estimated = [run for run in runs if run.estimated_mae is not None]
    if estimated:
        figure.add_trace(
            go.Scatter(
                x=[bisect.bisect_left(times, run.at) - 0.5 for run in estimated],
                y=[(run.estimated_mae or 0.0) * TARGET_UNIT_USD / 1000 for run in estimated],
                customdata=[f"{clock(run.at)}, {run.label}" for run in estimated],
                mode="markers",
                marker={"size": 11, "symbol": "diamond", "color": "black"},
                name="estimated MAE at a monitor run (no labels)",
                hovertemplate="estimated %{y:.1f} k USD at %{customdata}<extra></extra>",
            )
        )


def _add_event_marks(figure: go.Figure, events: Sequence[Event], times: Sequence[float]) -> None:
    """A dashed line and a label for each marked event, between the predictions around it (labels on
    four staggered heights so neighbours do not overlap)."""
    marked = [event for event in events if event.mark]
    for number, event in enumerate(marked):
        x = bisect.bisect_left(times, event.at) - 0.5
        colour = MARKER_COLOURS.get(event.kind, "black")
        figure.add_vline(x=x, line={"dash": "dash", "color": colour, "width": 1.5})
        figure.add_annotation(
            x=x,
            y=1.0 - 0.07 * (number % 4),
            yref="paper",
            text=html.escape(event.mark or ""),
            hovertext=html.escape(f"{clock(event.at)} {event.title}"),
            showarrow=False,
            xanchor="left",
            font={"size": 11, "color": colour},
            bgcolor="rgba(255,255,255,0.8)",
        )


def _run_table(runs: Sequence[MonitorRun], threshold: float) -> str:
    head = "".join(f"<th>{name}</th>" for name in ("#", "at", "traffic", "status", "action", "alert"))
    head += "".join(f"<th>{name}</th>" for name in FEATURE_NAMES)
    head += "<th>drift share</th><th>live MAE</th><th>estimated MAE</th><th>new labels</th>"
    rows = []
    for number, run in enumerate(runs, 1):
        cells = [
            str(number),
            clock(run.at),
            html.escape(run.label),
            html.escape(run.status),
            html.escape(run.action),
        ]
        cells.append("yes" if run.alerted else "")
        row = "".join(f"<td>{cell}</td>" for cell in cells)
        for name in FEATURE_NAMES:
            value = run.psi.get(name)
            hot = ' class="hot"' if value is not None and value >= threshold else ""
            row += f"<td{hot}>{'' if value is None else f'{value:.3f}'}</td>"
        row += f"<td>{'' if run.drift_share is None else f'{run.drift_share:.2f}'}</td>"
        for figure in (run.live_mae, run.estimated_mae):
            row += f"<td>{'' if figure is None else f'{figure * TARGET_UNIT_USD / 1000:.1f} k USD'}</td>"
        labels = "" if run.new_labels is None else f"{run.new_labels} of {run.needed_labels}"
        row += f"<td>{html.escape(labels)}</td>"
        rows.append(f"<tr>{row}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _timeline_table(events: Sequence[Event]) -> str:
    rows = "".join(
        f'<tr class="{html.escape(e.kind)}"><td>{clock(e.at)}</td><td>{html.escape(e.kind)}</td>'
        f"<td>{html.escape(e.title)}</td><td>{html.escape(e.detail)}</td></tr>"
        for e in events
    )
    head = "<tr><th>at</th><th>kind</th><th>what</th><th>detail</th></tr>"
    return f"<table><thead>{head}</thead><tbody>{rows}</tbody></table>"


STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1200px; color: #222; }
h1 { margin-bottom: 0.2rem; } .sub { color: #666; margin-top: 0; }
.facts { display: flex; flex-wrap: wrap; gap: 0.8rem; margin: 1rem 0; }
.fact { background: #f4f6f8; border-radius: 6px; padding: 0.5rem 0.9rem; }
.fact b { display: block; font-size: 1.3rem; }
table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; font-size: 0.9rem; }
th, td { border-bottom: 1px solid #ddd; padding: 0.3rem 0.6rem; text-align: left; }
td.hot { background: #ffcdd2; font-weight: bold; }
tr.drift td, tr.rollback td { background: #fff3e0; } tr.promotion td, tr.swap td { background: #e8f5e9; }
"""


def build_report(record: DemoRecord) -> str:
    """The whole report as one HTML page (plotly.js inlined once)."""
    import plotly.io as pio

    reference = next((run.reference_mae for run in record.runs if run.reference_mae is not None), None)
    psi_html = (
        pio.to_html(_psi_figure(record.runs, record.psi_threshold), include_plotlyjs=True, full_html=False)
        if any(run.psi for run in record.runs)
        else "<p>No monitor run judged drift.</p>"
    )
    error_html = pio.to_html(
        _error_figure(record.errors, record.events, reference, record.runs),
        include_plotlyjs=not any(run.psi for run in record.runs),
        full_html=False,
    )
    facts = "".join(
        f'<div class="fact">{html.escape(name)}<b>{html.escape(value)}</b></div>'
        for name, value in record.facts.items()
    )
    evidently = (
        f'<p><a href="{html.escape(record.evidently_report)}">The Evidently data drift report</a> '
        "of the drift run "
        "(per-feature distributions and tests on a random sample of the window).</p>"
        if record.evidently_report
        else "<p>No Evidently report was written.</p>"
    )
    gate = (
        "<ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in record.gate) + "</ul>"
        if record.gate
        else "<p>No candidate reached the gate.</p>"
    )
    started = datetime.fromtimestamp(record.started, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Cali Housing: the closed loop, one run</title>
<style>{STYLE}</style></head><body>
<h1>The closed loop, one run</h1>
<p class="sub">Started {started}; took {clock(record.total_seconds)} (m:ss).</p>
<div class="facts">{facts}</div>
<h2>Drift</h2>
{psi_html}
{_run_table(record.runs, record.psi_threshold)}
{evidently}
<h2>The gate's evidence</h2>
<p>Per decision and comparison: the rows, the candidate - champion MAE (Δ, negative: the candidate is
better) with its 95 % bounds, the margin it had to clear and the smallest effect it could detect.</p>
{gate}
<h2>Live error</h2>
{error_html}
<h2>Timeline</h2>
{_timeline_table(record.events)}
</body></html>
"""
