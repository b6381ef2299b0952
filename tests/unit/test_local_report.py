"""The demo's report builder: rolling live error, and one self-contained HTML page."""

from __future__ import annotations

import re

import pytest

from services.common.features import FEATURE_NAMES
from services.common.vocabulary import Action, RunStatus
from services.local.report import DemoRecord, ErrorPoint, MonitorRun, build_report, rolling_mae
from services.local.timeline import Event, Timeline, clock


def test_rolling_mae_keeps_a_window_per_version() -> None:
    points = [ErrorPoint(float(i), 1, float(i)) for i in range(5)]
    points.append(ErrorPoint(5.0, 2, 10.0))
    points.append(ErrorPoint(6.0, 1, 5.0))
    rolled = rolling_mae(points, window=3)
    assert [mae for _, v, mae in rolled if v == 1] == pytest.approx([0.0, 0.5, 1.0, 2.0, 3.0, 4.0])
    # a new version starts its own window: no blend with the old one's errors
    assert [(at, mae) for at, v, mae in rolled if v == 2] == [(5.0, 10.0)]


def test_rolling_mae_sorts_by_time() -> None:
    rolled = rolling_mae([ErrorPoint(2.0, 1, 4.0), ErrorPoint(1.0, 1, 2.0)], window=10)
    assert rolled == [(1.0, 1, 2.0), (2.0, 1, 3.0)]


def test_timeline_orders_events_and_formats_clock() -> None:
    timeline = Timeline()
    timeline.add("drift", "later", at=5.0, mark="drift")
    timeline.add("setup", "earlier", at=1.0)
    assert [event.title for event in timeline.events] == ["earlier", "later"]
    assert clock(75.25) == "1:15.2" and clock(-1) == "0:00.0"


def record() -> DemoRecord:
    psi_ok = dict.fromkeys(FEATURE_NAMES, 0.01)
    psi_drift = {**psi_ok, "MedInc": 0.45}
    return DemoRecord(
        started=1_700_000_000.0,
        total_seconds=151.0,
        events=[
            Event(10.0, "setup", "serving v1"),
            Event(40.0, "drift", "monitor #2: drift", "action trainer_launched", mark="drift → trainer"),
            Event(60.0, "swap", "server swapped to v2", "no restart", mark="v2 serves"),
            Event(
                90.0,
                "rollback",
                "monitor rolled back v3 → v2",
                "<script>alert(1)</script>",
                mark="rolled back",
            ),
        ],
        runs=[
            MonitorRun(20.0, "steady", RunStatus.OK, Action.NONE, psi_ok, 0.0, 0.27, 0.28),
            MonitorRun(
                40.0,
                "shifted",
                RunStatus.DRIFT,
                Action.TRAINER_LAUNCHED,
                psi_drift,
                0.38,
                0.55,
                0.28,
                estimated_mae=0.36,
                alerted=True,
            ),
            MonitorRun(
                90.0, "bad model", RunStatus.DEGRADED, Action.ROLLED_BACK, psi_ok, 0.0, 0.9, 0.9, alerted=True
            ),
        ],
        errors=[ErrorPoint(15.0 + i / 10, 1 if i < 300 else 2, 0.3) for i in range(400)],
        evidently_report="demo-evidently.html",
        facts={"total time": "2:31.0", "alerts received": "2"},
    )


def plots(page: str) -> int:
    """Figures drawn on the page (plotly.js itself mentions ``Plotly.newPlot(`` too)."""
    return len(re.findall(r'Plotly\.newPlot\(\s*"', page))


def test_report_is_one_self_contained_page() -> None:
    page = build_report(record())
    assert page.startswith("<!doctype html>") and page.rstrip().endswith("</html>")
    # plotly.js is inlined once, nothing is fetched from the network
    assert not re.search(r"<script[^>]+src=", page)
    assert plots(page) == 2
    assert len(re.findall(r"plotly\.js v\d", page)) == 1
    assert '<a href="demo-evidently.html">' in page


def test_report_shows_runs_timeline_and_facts() -> None:
    page = build_report(record())
    for text in ("#2 shifted", "trainer_launched", "rolled_back", "serving v1", "2:31.0", "v2 serves"):
        assert text in page
    assert '<td class="hot">0.450</td>' in page  # PSI over the threshold is highlighted
    assert "<td>36.0 k USD</td>" in page and "estimated MAE at a monitor run (no labels)" in page
    assert "<script>alert(1)</script>" not in page  # event text is escaped
    assert "&lt;script&gt;" in page


def test_report_without_monitor_runs_or_evidently() -> None:
    empty = record()
    empty.runs, empty.evidently_report = [], None
    page = build_report(empty)
    assert "No monitor run judged drift." in page and "No Evidently report" in page
    assert plots(page) == 1 and len(re.findall(r"plotly\.js v\d", page)) == 1


def test_report_shows_the_wait_for_labels_and_the_gate_evidence() -> None:
    from dataclasses import replace

    waiting = MonitorRun(
        30.0, "shifted, no prices", RunStatus.DRIFT, Action.NONE, {"MedInc": 0.45}, plan="wait_for_labels",
        detail="drift; waiting for labels: 0 of 334", new_labels=0, needed_labels=334,
    )  # fmt: skip
    shown = replace(record(), runs=[waiting], gate=["v2 promoted: recent: n=750, 95 % [-18.0 k, <b>]"])
    page = build_report(shown)
    assert "<td>0 of 334</td>" in page
    assert "<li>v2 promoted: recent: n=750, 95 % [-18.0 k, &lt;b&gt;]</li>" in page
    assert "No candidate reached the gate." in build_report(record())
