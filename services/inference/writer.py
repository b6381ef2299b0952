"""The prediction writer: every served prediction reaches ``predictions``, never on the request path.

Requests hand rows to :meth:`PredictionWriter.put` (non-blocking, bounded). One background thread
COPYs them in batches: as soon as ``batch_rows`` wait, or ``flush_seconds`` after the first one
arrived. When Postgres fails, batches go to the on-disk :class:`~services.inference.spool.Spool`
and, once a write succeeds again, the spool is replayed oldest first before newer rows, so rows
arrive in the order they were served. Replays insert with ``ON CONFLICT (id, created_at) DO NOTHING`` (the
primary key of the partitioned table holds its partition key; a replayed row keeps both): a batch whose
commit was written but not acknowledged is not written twice. While Postgres takes writes, the writer
also replays (every ``adopt_seconds``) the spools that stopped servers left in the shared spool root,
so rows a deleted pod spooled are not stranded with its folder. A row is lost only when the queue or
the spool is full (or Postgres refuses the row itself), and each loss is counted.

A batch holding rows made more than ``LATE_AFTER`` before it is written (a replay, a queue that
waited) also records their time range in ``prediction_late_rows``, in the same transaction: the
monitor recounts the 10-minute buckets it already kept there (see ``services.monitor.histograms``).
Fresh batches, the normal case, pay one ``min()`` over their timestamps in Python and nothing in SQL.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from datetime import UTC, datetime, timedelta

import psycopg

from services.common.database import DatabaseUnavailable, connect, first_line
from services.inference.metrics import Metrics
from services.inference.rows import COLUMN_TYPES, COLUMNS, PredictionRow
from services.inference.spool import Spool, SpooledBatch

log = logging.getLogger(__name__)

_COLUMN_LIST = ", ".join(COLUMNS)
_COPY = f"COPY predictions ({_COLUMN_LIST}) FROM STDIN (FORMAT BINARY)"
_STAGE = "CREATE TEMP TABLE predictions_incoming (LIKE predictions) ON COMMIT DROP"
_COPY_STAGED = f"COPY predictions_incoming ({_COLUMN_LIST}) FROM STDIN (FORMAT BINARY)"
_MERGE = (
    f"INSERT INTO predictions ({_COLUMN_LIST}) SELECT {_COLUMN_LIST} FROM predictions_incoming"
    " ON CONFLICT (id, created_at) DO NOTHING"
)
# A write that takes longer is abandoned (and spooled): the writer must not hang on a stuck server.
_STATEMENT_TIMEOUT = "SET LOCAL statement_timeout = '15s'"
_LATE = "INSERT INTO prediction_late_rows (first_at, last_at, rows) VALUES (%s, %s, %s)"
# Rows older than this when written are recorded as late. With the 15 s statement timeout they are
# committed within 75 s of being made, inside the monitor's settling time (2 minutes) with a margin
# for the clocks of two pods.
LATE_AFTER = timedelta(minutes=1)
_UNAVAILABLE = (psycopg.OperationalError, psycopg.InterfaceError, DatabaseUnavailable)


class PredictionWriter:
    """A bounded queue of prediction rows and the thread that writes them to Postgres.

    Args:
        database_url: where ``predictions`` lives.
        spool: where batches wait while Postgres is down.
        metrics: the app's metrics (queue depth, rows written, errors, spool bytes, drops).
        batch_rows: write as soon as this many rows wait.
        flush_seconds: write at the latest this long after the first row arrived.
        queue_rows: rows held in memory at most; rows beyond are dropped and counted.
        retry_seconds: after a failure, spool for this long before trying Postgres again.
        drain_seconds: how long :meth:`stop` waits for the queue to be written or spooled.
        adopt_seconds: how often the spool root is searched for the spools of stopped servers.
        connector: opens a connection (tests may hand in their own).
    """

    def __init__(
        self,
        database_url: str,
        spool: Spool,
        metrics: Metrics,
        *,
        batch_rows: int = 500,
        flush_seconds: float = 0.2,
        queue_rows: int = 100_000,
        retry_seconds: float = 2.0,
        drain_seconds: float = 20.0,
        adopt_seconds: float = 10.0,
        connector: Callable[[str], psycopg.Connection] = connect,
    ) -> None:
        self._url = database_url
        self._spool = spool
        self._metrics = metrics
        self._batch_rows = batch_rows
        self._flush_seconds = flush_seconds
        self._queue_rows = queue_rows
        self._retry_seconds = retry_seconds
        self._drain_seconds = drain_seconds
        self._adopt_seconds = adopt_seconds
        self._adopt_at = 0.0  # the first replay also looks for orphans
        self._connector = connector
        self._pending: list[list[PredictionRow]] = []
        self._queued = 0
        self._first_at = 0.0
        self._busy = False
        self._stopping = False
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._conn: psycopg.Connection | None = None
        self._retry_at = 0.0
        # Read when scraped rather than set on every put: the gauge's lock was one more per request.
        metrics.log_queue_rows.set_function(lambda: self._queued)

    # -- the request side -------------------------------------------------------------------------

    def put(self, rows: list[PredictionRow]) -> None:
        """Queue rows for writing; never blocks. Rows that do not fit are dropped and counted."""
        with self._cond:
            if self._stopping or self._queued + len(rows) > self._queue_rows:
                self._metrics.log_rows_dropped.inc(len(rows))
                log.error("prediction log queue full (%d rows): dropped %d rows", self._queued, len(rows))
                return
            if not self._queued:
                self._first_at = time.monotonic()
            self._pending.append(rows)
            self._queued += len(rows)
            if self._queued >= self._batch_rows or len(self._pending) == 1:
                self._cond.notify()

    # -- life cycle -------------------------------------------------------------------------------

    def start(self) -> None:
        """Open the spool and start the writing thread (it first replays what an earlier process spooled).

        Raises:
            SpoolLocked: another server uses the spool folder.
        """
        self._spool.open()
        self._metrics.log_spool_bytes.set(self._spool.bytes)
        self._metrics.log_spool_capacity_bytes.set(self._spool.max_bytes)
        self._thread = threading.Thread(target=self._run, name="prediction-writer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Refuse new rows, write or spool every queued row (within ``drain_seconds``), close.

        Says where every row went: all in Postgres, or how much waits in the spool for the next server
        on the root (never "drained" while rows are only on disk).
        """
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(self._drain_seconds)
            if self._thread.is_alive():
                with self._cond:
                    lost = self._queued
                self._metrics.log_rows_dropped.inc(lost)
                log.error(
                    "the prediction writer did not drain within %.0f s: %d rows lost",
                    self._drain_seconds,
                    lost,
                )
        if self._conn is not None:
            with suppress(psycopg.Error):
                self._conn.close()
        if self._spool.bytes:
            log.warning(
                "stopped with %d batches (%d bytes) of prediction rows in the spool %s: not yet in Postgres;"
                " the next server on the spool root %s replays them once Postgres takes writes",
                len(self._spool),
                self._spool.bytes,
                self._spool.folder,
                self._spool.root or self._spool.folder,
            )
        else:
            log.warning("stopped: every prediction row this server took is in Postgres or counted as dropped")
        self._spool.close()

    @property
    def spooled_bytes(self) -> int:
        """Bytes of rows in this server's own spool (not yet in Postgres)."""
        return self._spool.bytes

    def idle(self) -> bool:
        """True when nothing waits: queue empty, no write in flight, spool empty."""
        with self._cond:
            return not self._queued and not self._busy and self._spool.bytes == 0

    def wait_idle(self, timeout: float) -> bool:
        """Wait until :meth:`idle` (for tests and the benchmark); False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.idle():
                return True
            time.sleep(0.02)
        return self.idle()

    # -- the writing thread -----------------------------------------------------------------------

    def _take(self) -> tuple[list[PredictionRow], bool]:
        """Wait for a batch to be due; return (rows, stopping)."""
        with self._cond:
            while True:
                if self._stopping:
                    break
                if self._queued:
                    due = self._first_at + self._flush_seconds
                    now = time.monotonic()
                    if self._queued >= self._batch_rows or now >= due:
                        break
                    self._cond.wait(due - now)
                else:
                    # Wake now and then to replay the spool once Postgres is back, and to look for
                    # the spools of stopped servers.
                    self._cond.wait(self._flush_seconds if self._spool.bytes else self._adopt_seconds)
                    if not self._queued and (self._spool.bytes or time.monotonic() >= self._adopt_at):
                        break
            rows = [row for batch in self._pending for row in batch]
            self._pending.clear()
            self._queued = 0
            self._busy = True
            return rows, self._stopping

    def _run(self) -> None:
        self._replay()
        while True:
            rows, stopping = self._take()
            try:
                if rows:
                    self._write_or_spool(rows)
                if not stopping:
                    self._replay()
            except Exception:  # the thread must live on: whatever it is, say so and go on
                log.exception("the prediction writer failed unexpectedly")
            finally:
                with self._cond:
                    self._busy = False
            if stopping:
                with self._cond:
                    if not self._queued:
                        return

    def _write_or_spool(self, rows: list[PredictionRow]) -> None:
        if self._spool.bytes or time.monotonic() < self._retry_at:
            self._to_spool(rows)  # keep the order: older rows are waiting in the spool
            return
        try:
            self._copy(rows, staged=False)
        except psycopg.IntegrityError:
            self._copy_or_drop(rows)
        except (psycopg.Error, DatabaseUnavailable) as error:  # down, or e.g. no table yet: keep the rows
            self._failed(error)
            self._to_spool(rows)

    def _copy_or_drop(self, rows: list[PredictionRow]) -> None:
        try:
            self._copy(rows, staged=True)
        except _UNAVAILABLE as error:
            self._failed(error)
            self._to_spool(rows)
        except psycopg.Error as error:
            self._failed(error)
            self._metrics.log_rows_dropped.inc(len(rows))
            log.error("Postgres refused %d prediction rows (%s): dropped", len(rows), first_line(error))

    def _replay(self) -> None:
        """Write this server's spool, then (when due) orphaned spools, oldest first, until a write fails."""
        if self._spool.bytes and self._replay_spool(self._spool):
            log.warning("the spool is replayed: Postgres has every prediction again")
        if self._spool.bytes or time.monotonic() < max(self._retry_at, self._adopt_at):
            return
        self._adopt_at = time.monotonic() + self._adopt_seconds
        for orphan in self._spool.orphans():
            try:
                rows = sum(len(batch.rows) for batch in orphan.batches())
                if not self._replay_spool(orphan):
                    return  # Postgres failed again: the orphan stays for the next try (or another server)
                log.warning("replayed %d prediction rows a stopped server left in %s", rows, orphan.folder)
                orphan.discard()
            finally:
                orphan.close()

    def _replay_spool(self, spool: Spool) -> bool:
        """Write ``spool``'s batches oldest first; True when it is empty, False when a write failed."""
        own = spool is self._spool
        while spool.bytes and time.monotonic() >= self._retry_at:
            batch: SpooledBatch | None = spool.oldest()
            if batch is None:
                break
            try:
                self._copy(batch.rows, staged=True)
            except _UNAVAILABLE as error:
                self._failed(error)
                return False
            except psycopg.Error as error:
                self._failed(error)
                self._metrics.log_rows_dropped.inc(len(batch.rows))
                log.error(
                    "Postgres refused %d spooled rows (%s): dropped", len(batch.rows), first_line(error)
                )
            spool.remove(batch)
            if own:
                self._metrics.log_spool_bytes.set(spool.bytes)
        return not spool.bytes

    def _to_spool(self, rows: list[PredictionRow]) -> None:
        try:
            stored = self._spool.append(rows)
        except OSError as error:
            log.error("cannot spool prediction rows to %s: %s", self._spool.folder, error)
            stored = False
        if stored:
            self._metrics.log_spool_bytes.set(self._spool.bytes)
        else:
            self._metrics.log_rows_dropped.inc(len(rows))
            log.error(
                "the spool in %s is full (%d bytes): dropped %d rows",
                self._spool.folder,
                self._spool.bytes,
                len(rows),
            )

    def _failed(self, error: BaseException) -> None:
        self._metrics.log_write_errors.inc()
        if self._retry_at <= time.monotonic():
            log.warning(
                "cannot write prediction rows (%s); spooling to %s", first_line(error), self._spool.folder
            )
        self._retry_at = time.monotonic() + self._retry_seconds
        if self._conn is not None:
            with suppress(psycopg.Error):
                self._conn.close()
            self._conn = None

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = self._connector(self._url)
        return self._conn

    def _copy(self, rows: list[PredictionRow], *, staged: bool) -> None:
        late = late_range(rows, datetime.now(UTC) - LATE_AFTER)
        conn = self._connection()
        try:
            with conn.transaction():
                conn.execute(_STATEMENT_TIMEOUT)
                if late is not None:
                    conn.execute(_LATE, late)
                if staged:
                    conn.execute(_STAGE)
                with conn.cursor().copy(_COPY_STAGED if staged else _COPY) as copy:
                    copy.set_types(COLUMN_TYPES)
                    for row in rows:
                        copy.write_row(row)
                if staged:
                    conn.execute(_MERGE)
        except psycopg.Error:
            if conn.broken:
                self._conn = None
            raise
        self._metrics.log_rows_written.inc(len(rows))


def late_range(rows: list[PredictionRow], before: datetime) -> tuple[datetime, datetime, int] | None:
    """(oldest, newest, count) of the rows made before ``before``; None when there are none."""
    if not rows or min(row[1] for row in rows) >= before:
        return None
    late = [row[1] for row in rows if row[1] < before]
    return min(late), max(late), len(late)
