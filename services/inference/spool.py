"""A bounded on-disk spool of prediction rows that could not be written to Postgres.

Each batch is one file named by a growing sequence number, so replay keeps the order rows were
served in. A file is written to a temporary name and renamed, so a crash never leaves half a batch.
The folder is locked (``flock``) by one process at a time; a server that restarts on the same
folder replays what the previous one left.

Usage::

    spool = Spool(Path(".housing/spool"), max_bytes=256 << 20)
    spool.open()
    spool.append(rows)              # False when it would exceed max_bytes
    while (batch := spool.oldest()) is not None:
        write(batch.rows)
        spool.remove(batch)
"""

from __future__ import annotations

import fcntl
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO
from uuid import UUID

import orjson

from services.inference.rows import PredictionRow

_SUFFIX = ".batch"


class SpoolLocked(RuntimeError):
    """Another live process owns the spool folder."""


@dataclass(frozen=True)
class SpooledBatch:
    path: Path
    size: int
    rows: list[PredictionRow]


def _encode(rows: list[PredictionRow]) -> bytes:
    return b"\n".join(
        orjson.dumps([str(r[0]), r[1].isoformat(), r[2], r[3], str(r[4]) if r[4] else None, *r[5:]])
        for r in rows
    )


def _decode(data: bytes) -> list[PredictionRow]:
    rows: list[PredictionRow] = []
    for line in data.splitlines():
        v = orjson.loads(line)
        rows.append(
            (UUID(v[0]), datetime.fromisoformat(v[1]), v[2], v[3], UUID(v[4]) if v[4] else None, *v[5:])
        )
    return rows


class Spool:
    """Batches on disk, oldest first, at most ``max_bytes`` in all."""

    def __init__(self, folder: Path, *, max_bytes: int) -> None:
        self.folder = folder
        self.max_bytes = max_bytes
        self.bytes = 0
        self._next = 0
        self._lock: IO[bytes] | None = None

    def open(self) -> None:
        """Create and lock the folder; pick up what an earlier process left.

        Raises:
            SpoolLocked: another live process has the folder.
        """
        self.folder.mkdir(parents=True, exist_ok=True)
        lock = (self.folder / ".lock").open("wb")
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as error:
            lock.close()
            raise SpoolLocked(
                f"another server spools prediction rows in {self.folder}; give each server its own SPOOL_DIR"
            ) from error
        self._lock = lock
        for leftover in self.folder.glob("*.tmp"):
            leftover.unlink()
        files = self._files()
        self._next = int(files[-1].stem) + 1 if files else 0
        self.bytes = sum(path.stat().st_size for path in files)

    def _files(self) -> list[Path]:
        return sorted(self.folder.glob(f"*{_SUFFIX}"))

    def __len__(self) -> int:
        return len(self._files())

    def append(self, rows: list[PredictionRow]) -> bool:
        """Store a batch after every other; False (nothing stored) when it would exceed ``max_bytes``."""
        data = _encode(rows)
        if self.bytes + len(data) > self.max_bytes:
            return False
        final = self.folder / f"{self._next:016d}{_SUFFIX}"
        temporary = final.with_suffix(".tmp")
        temporary.write_bytes(data)
        temporary.rename(final)
        self._next += 1
        self.bytes += len(data)
        return True

    def oldest(self) -> SpooledBatch | None:
        """The batch stored first, or None when the spool is empty."""
        files = self._files()
        if not files:
            return None
        data = files[0].read_bytes()
        return SpooledBatch(files[0], len(data), _decode(data))

    def batches(self) -> list[SpooledBatch]:
        """Every stored batch, oldest first (read, not removed)."""
        return [SpooledBatch(path, path.stat().st_size, _decode(path.read_bytes())) for path in self._files()]

    def remove(self, batch: SpooledBatch) -> None:
        """Forget a batch once it is written."""
        batch.path.unlink(missing_ok=True)
        self.bytes = max(0, self.bytes - batch.size)

    def close(self) -> None:
        """Release the folder for the next process."""
        if self._lock is not None:
            fcntl.flock(self._lock.fileno(), fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None
