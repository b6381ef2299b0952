"""checkov over Terraform, the rendered chart, the Dockerfiles and the workflows: no unexplained failure.

Every suppression is inline with its reason (`#checkov:skip=ID:reason` in Terraform,
`checkov.io/skipN: ID=reason` annotations in the chart).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .helpers import REPO, Rendered, run


def parse_reports(text: str) -> list[dict[str, Any]]:
    """checkov prints one JSON document (an object or a list) per scanned folder, back to back."""
    decoder = json.JSONDecoder()
    reports: list[dict[str, Any]] = []
    pos = 0
    while pos < len(text):
        if text[pos].isspace():
            pos += 1
            continue
        data, pos = decoder.raw_decode(text, pos)
        reports.extend(data if isinstance(data, list) else [data])
    return reports


def test_checkov_no_failed_checks(
    tool: Callable[[str], str], rendered: dict[str, Rendered], rendered_dir: Path
) -> None:
    checkov = tool("checkov")
    tool("helm")
    # The kubernetes framework scans the rendered scenarios; the others scan the sources.
    # Not --quiet: the JSON must list skipped checks so their reasons can be checked.
    common = ["--skip-download", "--compact", "-o", "json"]
    commands = [
        # Sources: Terraform, the Dockerfiles, the workflows.
        [
            checkov,
            "-d",
            "terraform",
            "-d",
            "services",
            "-d",
            ".github",
            "--framework",
            "terraform",
            "dockerfile",
            "github_actions",
            *common,
        ],
        # The chart as rendered for every scenario.
        [checkov, "-d", str(rendered_dir), "--framework", "kubernetes", *common],
    ]
    with ThreadPoolExecutor(len(commands)) as pool:
        procs = list(pool.map(lambda cmd: run(cmd, timeout=300), commands))
    reports = []
    for proc in procs:
        assert proc.stdout.strip(), proc.stderr
        assert proc.returncode == 0 or '"failed_checks": [' in proc.stdout, proc.stderr[-2000:]
        reports.extend(parse_reports(proc.stdout))
    failed = [
        f"{r['check_type']}: {c['check_id']} {c['resource']} ({c['file_path']})"
        for r in reports
        for c in r.get("results", {}).get("failed_checks", [])
    ]
    assert not failed, "\n".join(failed)
    assert {r["check_type"] for r in reports} >= {"terraform", "kubernetes", "dockerfile", "github_actions"}
    for r in reports:
        for c in r.get("results", {}).get("skipped_checks", []):
            reason = (c.get("check_result") or {}).get("suppress_comment", "")
            assert len(reason) > 15, f"{c['check_id']} on {c['resource']}: suppression without a reason"
    assert all(p.returncode == 0 for p in procs), [p.stderr[-1000:] for p in procs]


def test_terraform_suppressions_carry_reasons() -> None:
    for path in (REPO / "terraform").rglob("*.tf"):
        for line in path.read_text().splitlines():
            if "checkov:skip" in line:
                assert re.search(r"#checkov:skip=CKV2?_\w+:\S.{15,}", line), f"{path}: {line.strip()}"
