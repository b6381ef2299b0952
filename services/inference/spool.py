"""A bounded on-disk spool of prediction rows that could not be written to Postgres.

Each batch is one file named by a growing sequence number, so replay keeps the order rows were
served in. A file is written to a temporary name and renamed, so a crash never leaves half a batch.
The folder is locked (``flock``) by its process for as long as it lives.

Servers share a spool *root* (``SPOOL_DIR``; in the cluster a persistent volume every replica
mounts): each spools in a folder of its own, ``<host>-<pid>``, and a server that writes to Postgres
again adopts the folders whose owner has stopped (their lock is free: the kernel drops an ``flock``
with its process), replays them and removes them. So rows spooled by a pod that is then deleted
(a rollout, a scale-down, a drain) reach Postgres through a replica that lives on, without a human.

Usage::

    spool = Spool.in_root(Path(".housing/spool"), max_bytes=1 << 30)
    spool.open()
    spool.append(rows)              # False when it would exceed max_bytes
    while (batch := spool.oldest()) is not None:
        write(batch.rows)
        spool.remove(batch)
    for orphan in spool.orphans():  # folders of stopped servers, locked for this process
        ...replay orphan as above..., then orphan.discard()
"""

from __future__ import annotations

import fcntl
import os
import socket
from collections.abc import Iterator
from contextlib import suppress
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
    """Batches on disk, oldest first, at most ``max_bytes`` in all.

    Args:
        folder: this spool's own folder.
        max_bytes: the most bytes it stores.
        root: the spool root shared with other servers (``folder`` lies in it); None: no sharing,
            :meth:`orphans` finds nothing.
    """

    def __init__(self, folder: Path, *, max_bytes: int, root: Path | None = None) -> None:
        self.folder = folder
        self.max_bytes = max_bytes
        self.root = root
        self.bytes = 0
        self._next = 0
        self._lock: IO[bytes] | None = None

    @classmethod
    def in_root(cls, root: Path, *, max_bytes: int) -> Spool:
        """This process's own folder in a shared root: ``<root>/<host>-<pid>`` (a pod's host is its name)."""
        return cls(root / f"{socket.gethostname()}-{os.getpid()}", max_bytes=max_bytes, root=root)

    def open(self) -> None:
        """Create and lock the folder; pick up what an earlier process left.

        Raises:
            SpoolLocked: another live process has the folder.
        """
        self.folder.mkdir(parents=True, exist_ok=True)
        if not self._try_lock():
            raise SpoolLocked(
                f"another server spools prediction rows in {self.folder}; give each server its own SPOOL_DIR"
            )
        self._load()

    def _try_lock(self) -> bool:
        try:
            lock = (self.folder / ".lock").open("wb")
        except FileNotFoundError:  # an orphan another server just finished and removed
            return False
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            return False
        self._lock = lock
        return True

    def _load(self) -> None:
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

    def orphans(self) -> Iterator[Spool]:
        """The spools of stopped servers in the shared root that hold batches, each locked for this process.

        The root itself counts too (servers before shared roots spooled straight into it). A spool is
        yielded open; the caller replays it and then calls :meth:`discard` (empty) or :meth:`close`.
        """
        if self.root is None:
            return
        candidates = [self.root, *sorted(p for p in self.root.iterdir() if p.is_dir())]
        for folder in candidates:
            if folder == self.folder or not any(folder.glob(f"*{_SUFFIX}")):
                continue
            orphan = Spool(folder, max_bytes=0)
            if orphan._try_lock():
                orphan._load()
                yield orphan

    def discard(self) -> None:
        """Remove an emptied orphan's folder (never the root), then release it."""
        if self.folder != self.root and not self._files():
            with suppress(OSError):
                (self.folder / ".lock").unlink()
                self.folder.rmdir()
        self.close()
