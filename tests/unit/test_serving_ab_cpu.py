"""The A/B benchmark: its CPU reading (``/proc/<pid>/stat`` user + system time of a whole process), and
each ref served from its own tree."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from benchmarks.serving_ab import cpu_seconds, serve_command


def test_cpu_seconds_counts_this_process_work_and_not_its_sleep() -> None:
    start = cpu_seconds(os.getpid())
    time.sleep(0.3)
    slept = cpu_seconds(os.getpid()) - start
    busy_until = time.process_time() + 0.5
    while time.process_time() < busy_until:
        pass
    worked = cpu_seconds(os.getpid()) - start - slept
    assert slept < 0.2  # clock ticks (10 ms) of a sleeping process: nearly none
    assert 0.4 <= worked <= 1.5, worked


def test_a_ref_is_served_from_its_own_tree_not_from_this_checkout(tmp_path: Path) -> None:
    """The launch ``serving_ab`` uses, run against a tree whose ``services.cli`` names its own file: the
    process must import that tree, though this checkout has a ``services`` package too."""
    tree = tmp_path / "tree"
    (tree / "services").mkdir(parents=True)
    (tree / "services" / "__init__.py").write_text("")
    (tree / "services" / "cli.py").write_text("def main():\n    print(__file__)\n")
    command, env, cwd = serve_command(tree, 1, dict(os.environ))
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, check=True, timeout=30)
    assert Path(done.stdout.strip()) == tree / "services" / "cli.py"
