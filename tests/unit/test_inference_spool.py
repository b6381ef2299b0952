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
