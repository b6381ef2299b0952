"""Child processes of a local run: output in logs, bounded waits, and nothing left running."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from services.local.processes import ChildFailed, Children, housing_command, wait_for


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_stop_all_ends_children_and_their_own_children(tmp_path: Path) -> None:
    script = (
        "import subprocess, sys, time\n"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "print('started', flush=True)\n"
        "time.sleep(60)\n"
    )
    with Children(tmp_path / "logs", grace_seconds=5) as children:
        parent = children.start("sleeper", [sys.executable, "-c", script], env=dict(os.environ))
        wait_for(
            lambda: "started" in (tmp_path / "logs" / "sleeper.log").read_text() or None, timeout=20, what="x"
        )
        group = os.getpgid(parent.pid)
        assert group == parent.pid  # its own process group: a Ctrl-C in the terminal does not reach it
    assert parent.poll() is not None
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        pytest.fail("the grandchild outlived stop_all")


def test_run_returns_stdout_and_logs_stderr(tmp_path: Path) -> None:
    children = Children(tmp_path)
    code = "import sys; print('{\"ok\": true}'); print('progress', file=sys.stderr); sys.exit(3)"
    finished = children.run("job", [sys.executable, "-c", code], env=dict(os.environ), timeout=20)
    assert (finished.returncode, finished.stdout.strip()) == (3, '{"ok": true}')
    assert "progress" in finished.log.read_text()


def test_run_past_its_timeout_is_stopped(tmp_path: Path) -> None:
    children = Children(tmp_path, grace_seconds=2)
    with pytest.raises(ChildFailed, match="longer than 1 s"):
        children.run(
            "slow", [sys.executable, "-c", "import time; time.sleep(30)"], env=dict(os.environ), timeout=1
        )
    assert children.stop_all() == []


def test_wait_for_gives_up_and_notices_a_dead_process(tmp_path: Path) -> None:
    with pytest.raises(ChildFailed, match="after 0 s"):
        wait_for(lambda: None, timeout=0.2, what="nothing", interval=0.05)
    children = Children(tmp_path)
    quick = children.start("quick", [sys.executable, "-c", "pass"], env=dict(os.environ))
    with pytest.raises(ChildFailed, match="exited with code 0"):
        wait_for(lambda: None, timeout=20, what="a server", alive=quick)
    assert wait_for(lambda: 42, timeout=1, what="an answer") == 42


def test_housing_command_uses_this_interpreter() -> None:
    argv = housing_command("monitor", "--json")
    assert argv[-2:] == ["monitor", "--json"]
    assert Path(argv[0]).parent == Path(sys.executable).parent
