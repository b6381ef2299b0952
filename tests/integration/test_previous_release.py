"""The previous release's queries against the new schema: its own database tests, run on today's migrations.

Expand steps exist so that the release before the newest migration keeps working once that migration
has run (a rollout in progress, or a git revert of the app). That release is the parent of the commit
that added the newest migration file; its code comes out of git, today's migration files are put in
place of its own, and its tests of the SQL it runs (the writer's COPY, feedback, the monitor's histogram
and live-error queries, the late-row records, partitions, maintenance) run against the schema they
build. A migration that drops, renames or retypes what those queries read fails here.

Needs the repository's history (`git clone` without `--depth`; in GitHub Actions `fetch-depth: 0`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
from io import BytesIO
from pathlib import Path
from typing import NoReturn

import pytest

from services.common.database import migrations
from tests.conftest import ROOT
from tests.deploy.helpers import missing

pytestmark = pytest.mark.timeout(600)

MIGRATIONS = Path("services/common/migrations")
# The previous release's tests of its own SQL, where it has them (a file it lacks is left out).
DATABASE_TESTS = [
    "tests/integration/test_monitor_sql.py",
    "tests/integration/test_late_rows.py",
    "tests/integration/test_live_error_sums.py",
    "tests/integration/test_partitions.py",
    "tests/integration/test_maintain.py",
]


def git(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, timeout=60, check=False)


def previous_release() -> str:
    """The commit before the newest migration was added (its code ran on the schema before it)."""
    newest = MIGRATIONS / f"{migrations()[-1].version}.sql"
    added = git("log", "--diff-filter=A", "--format=%H", "--", str(newest))
    commits = added.stdout.decode().split()
    if added.returncode != 0 or not commits:
        fail_or_skip(f"git cannot tell when {newest} was added ({added.stderr.decode().strip()[:200]})")
    parent = git("rev-parse", "--verify", "--quiet", f"{commits[-1]}^")
    if parent.returncode != 0:
        fail_or_skip(f"the commit before {newest} was added is not in this clone (a shallow clone?)")
    return parent.stdout.decode().strip()


def fail_or_skip(why: str) -> NoReturn:
    missing(f"{why}: this test needs the repository's history (`git fetch --unshallow`)")


def test_the_previous_release_runs_its_queries_on_the_new_schema(tmp_path: Path) -> None:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        fail_or_skip("no git checkout")
    release = previous_release()
    archive = git("archive", "--format=tar", release, "services", "tests", "benchmarks")
    assert archive.returncode == 0, archive.stderr.decode()
    with tarfile.open(fileobj=BytesIO(archive.stdout)) as tar:
        tar.extractall(tmp_path, filter="data")
    old_migrations = tmp_path / MIGRATIONS
    shutil.rmtree(old_migrations)
    shutil.copytree(ROOT / MIGRATIONS, old_migrations)
    tests = [name for name in DATABASE_TESTS if (tmp_path / name).exists()]
    assert len(tests) >= 3, f"the release {release[:12]} has too few database tests here: {tests}"

    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    where = subprocess.run(
        [sys.executable, "-c", "import services; print(services.__file__)"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert where.stdout.strip().startswith(str(tmp_path)), "the old code must be what runs: " + where.stdout
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", *tests],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=540,
        check=False,
    )
    assert run.returncode == 0, (
        f"release {release[:12]}'s queries fail on today's schema ({migrations()[-1].version} is not an "
        f"expand step?):\n{run.stdout[-4000:]}\n{run.stderr[-2000:]}"
    )
