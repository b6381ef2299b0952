"""The on-disk spool: order, size limit, a lock per folder, and what survives a restart."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

from services.common.features import EXAMPLE
from services.inference.rows import PredictionRow
from services.inference.spool import Spool, SpoolLocked


def _rows(n: int, shadow_of: uuid.UUID | None = None) -> list[PredictionRow]:
    now = datetime.now(UTC)
    return [(uuid.uuid4(), now, 3, "champion", shadow_of, *EXAMPLE.values(), 4.5, 1.25) for _ in range(n)]  # type: ignore[misc]


def test_batches_come_back_oldest_first_and_exactly(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20)
    spool.open()
    first, second = _rows(3), _rows(2, shadow_of=uuid.uuid4())
    assert spool.append(first) and spool.append(second)
    batch = spool.oldest()
    assert batch is not None and batch.rows == first
    spool.remove(batch)
    batch = spool.oldest()
    assert batch is not None and batch.rows == second
    spool.remove(batch)
    assert spool.oldest() is None and spool.bytes == 0


def test_a_full_spool_refuses_a_batch(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=500)
    spool.open()
    assert spool.append(_rows(1))
    assert not spool.append(_rows(5))
    assert len(spool) == 1


def test_a_restart_finds_what_was_spooled_and_keeps_the_order(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20)
    spool.open()
    rows = _rows(4)
    spool.append(rows[:2])
    spool.close()
    again = Spool(tmp_path, max_bytes=1 << 20)
    again.open()
    assert again.bytes > 0
    again.append(rows[2:])
    assert [row for batch in again.batches() for row in batch.rows] == rows


def test_one_process_per_folder(tmp_path: Path) -> None:
    import subprocess
    import sys

    spool = Spool(tmp_path, max_bytes=1 << 20)
    spool.open()
    # flock is per open file: a second process is refused while this one holds the folder.
    code = (
        "import sys; from pathlib import Path; from services.inference.spool import Spool, SpoolLocked\n"
        "try:\n    Spool(Path(sys.argv[1]), max_bytes=1).open()\nexcept SpoolLocked:\n    sys.exit(3)\n"
    )
    assert subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=False).returncode == 3
    spool.close()
    assert subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=False).returncode == 0
    assert SpoolLocked.__doc__


def test_each_server_spools_in_its_own_folder_of_the_shared_root(tmp_path: Path) -> None:
    one = Spool.in_root(tmp_path, max_bytes=1 << 20)
    one.open()
    assert one.folder.parent == tmp_path and one.root == tmp_path
    # A second server on the same root (another pod on the volume) gets a folder of its own.
    other = Spool(tmp_path / "inference-7f9c-1", max_bytes=1 << 20, root=tmp_path)
    other.open()
    assert one.append(_rows(1)) and other.append(_rows(1))
    assert list(one.orphans()) == []  # the other server lives: its folder is not an orphan
    one.close()
    other.close()


def test_a_stopped_servers_spool_is_adopted_replayed_in_order_and_removed(tmp_path: Path) -> None:
    stopped = Spool(tmp_path / "inference-old-1", max_bytes=1 << 20, root=tmp_path)
    stopped.open()
    first, second = _rows(3), _rows(2)
    stopped.append(first)
    stopped.append(second)
    stopped.close()  # the pod is gone: its flock went with it
    survivor = Spool.in_root(tmp_path, max_bytes=1 << 20)
    survivor.open()
    orphans = list(survivor.orphans())
    assert [o.folder for o in orphans] == [stopped.folder]
    orphan = orphans[0]
    assert [batch.rows for batch in orphan.batches()] == [first, second]
    assert list(survivor.orphans()) == []  # adopted: locked by this process, not offered twice
    for batch in orphan.batches():
        orphan.remove(batch)
    orphan.discard()
    assert not stopped.folder.exists()
    assert survivor.folder.exists() and list(survivor.orphans()) == []


def test_rows_spooled_straight_into_the_root_by_an_older_server_are_adopted(tmp_path: Path) -> None:
    legacy = Spool(tmp_path, max_bytes=1 << 20)  # the layout before shared roots
    legacy.open()
    rows = _rows(2)
    legacy.append(rows)
    legacy.close()
    survivor = Spool.in_root(tmp_path, max_bytes=1 << 20)
    survivor.open()
    (orphan,) = survivor.orphans()
    assert orphan.folder == tmp_path and orphan.oldest() is not None
    orphan.remove(orphan.batches()[0])
    orphan.discard()
    assert tmp_path.is_dir() and survivor.folder.is_dir()  # the root is never removed
