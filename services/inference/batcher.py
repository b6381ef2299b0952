"""Micro-batching: concurrent requests share one model call.

A model call and its bookkeeping cost less per row in a batch: scikit-learn's ``predict`` of the
150-tree pipeline ~0.7 ms for 1 row against ~1.3 ms for 64; the compiled trees (tree_walk) ~2 µs a call
plus ~4 µs a row, and scoring each request alone at c=16 gave 0.79x the req/s of coalescing them
(serving_ab, batches of 5.7 rows on average). So requests that arrive while the model is busy wait for
the next call and are scored together. Nothing waits for a batch to fill: a lone request is scored at
once, and batches grow only when the model is the bottleneck. A small batch of a compiled model is
scored on the event loop itself, any other on one dedicated predict thread.

Whoever scores a batch also stamps each row (id, time, version, latency) and hands the rows to the
prediction writer and to the shadow scorer; on the loop that bookkeeping waits until the answers are out.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt
from threadpoolctl import threadpool_limits

from services.common.compiled import RUNTIME_COMPILED
from services.common.features import TARGET_UNIT_USD
from services.inference.ids import new_ids
from services.inference.metrics import Metrics
from services.inference.model_holder import ModelHolder, ServedModel
from services.inference.rows import CHALLENGER_ROLE, CHAMPION_ROLE, PredictionRow
from services.inference.writer import PredictionWriter

log = logging.getLogger(__name__)

Matrix = npt.NDArray[np.float64]


# Most rows the pending requests may have in all to be scored on the event loop instead of the predict
# thread (compiled trees: ~2 µs a call plus ~4 µs a row, so 16 rows ~70 µs at most).
INLINE_MAX_ROWS = 16


class ModelNotReady(RuntimeError):
    """No champion is loaded yet."""


@dataclass(frozen=True)
class Scored:
    """The answer to one request: a price (USD) and an id per row, and the version that scored them."""

    prices_usd: list[float]
    ids: list[uuid.UUID]
    version: int


@dataclass
class _Job:
    matrix: Matrix
    arrived: float
    future: asyncio.Future[Scored]


class RecentIds(Mapping[uuid.UUID, datetime]):
    """The ids of the last ``size`` predictions served here and when each was made.

    Feedback may beat the writer to Postgres; the time files the truth under its prediction's day.
    """

    def __init__(self, size: int = 100_000) -> None:
        # Keyed by the id's 128-bit integer: ``uuid.UUID.__hash__`` is a Python method, hashing an int is not.
        self._made: OrderedDict[int, datetime] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def add(self, ids: list[uuid.UUID], created_at: datetime) -> None:
        with self._lock:
            made = self._made
            for one in ids:
                made[one.int] = created_at
            while len(made) > self._size:
                made.popitem(last=False)

    def __getitem__(self, key: uuid.UUID) -> datetime:
        with self._lock:
            return self._made[key.int]

    def __iter__(self) -> Iterator[uuid.UUID]:
        with self._lock:
            return iter([uuid.UUID(int=one) for one in self._made])

    def __len__(self) -> int:
        return len(self._made)


class ShadowScorer:
    """Scores champion rows with the challenger on its own thread; skips (and counts) when behind."""

    def __init__(
        self, holder: ModelHolder, writer: PredictionWriter, metrics: Metrics, *, backlog: int = 64
    ) -> None:
        self._holder = holder
        self._writer = writer
        self._metrics = metrics
        self._queue: queue.Queue[tuple[Matrix, list[uuid.UUID], int] | None] = queue.Queue(backlog)
        self._thread = threading.Thread(target=self._run, name="shadow-scorer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        try:
            self._queue.put(None, timeout=5)
        except queue.Full:
            return
        self._thread.join(10)

    def submit(self, matrix: Matrix, champion_ids: list[uuid.UUID], champion_version: int) -> None:
        challenger = self._holder.challenger
        if challenger is None or challenger.version == champion_version:
            return
        try:
            self._queue.put_nowait((matrix, champion_ids, champion_version))
        except queue.Full:
            self._metrics.shadow_rows_skipped.inc(len(champion_ids))

    def _run(self) -> None:
        with threadpool_limits(1):
            while (item := self._queue.get()) is not None:
                try:
                    self._score(*item)
                except Exception:  # a broken challenger must not stop shadowing the next one
                    log.exception("shadow scoring failed")

    def _score(self, matrix: Matrix, champion_ids: list[uuid.UUID], champion_version: int) -> None:
        challenger = self._holder.challenger
        if challenger is None or challenger.version == champion_version:
            return
        started = time.perf_counter()
        predictions = challenger.model.predict(matrix).tolist()
        latency_ms = (time.perf_counter() - started) * 1000.0
        created = datetime.now(UTC)
        rows: list[PredictionRow] = [
            (id_, created, challenger.version, CHALLENGER_ROLE, of, *features, price, latency_ms)
            for id_, of, features, price in zip(
                new_ids(len(champion_ids)), champion_ids, matrix.tolist(), predictions, strict=True
            )
        ]
        self._writer.put(rows)


class Batcher:
    """Coalesces concurrent ``score`` calls into one model call on a dedicated thread.

    Args:
        holder: the served models.
        writer: receives one row per prediction.
        metrics: prediction values and batch sizes.
        recent: remembers the ids served (for feedback).
        shadow: scores the same rows with the challenger, or None.
        max_rows: rows per model call at most (a batch request larger than this still goes alone).
    """

    def __init__(
        self,
        holder: ModelHolder,
        writer: PredictionWriter,
        metrics: Metrics,
        recent: RecentIds,
        *,
        shadow: ShadowScorer | None = None,
        max_rows: int = 1000,
    ) -> None:
        self._holder = holder
        self._writer = writer
        self._metrics = metrics
        self._recent = recent
        self._shadow = shadow
        self._max_rows = max_rows
        self._pending: list[_Job] = []
        self._running = False
        # The predict thread takes batches from this queue and hands each one's results back to the
        # loop with one call_soon_threadsafe. It replaced a one-thread ThreadPoolExecutor and
        # run_in_executor: their submit (locks, a work item, a concurrent future chained to an asyncio
        # one) was 7.3 % of the event loop's busy samples under wrk -c16 (py-spy, logging on).
        self._batches: queue.SimpleQueue[tuple[asyncio.AbstractEventLoop, list[_Job]] | None] = (
            queue.SimpleQueue()
        )
        self._thread: threading.Thread | None = None  # started with the first batch

    def close(self) -> None:
        """Score the batches already handed over, then end the predict thread."""
        if self._thread is not None:
            self._batches.put(None)
            self._thread.join()
            self._thread = None

    async def score(self, matrix: Matrix, arrived: float) -> Scored:
        """Predict prices for the rows of ``matrix`` (a request that arrived at ``arrived``, perf_counter).

        Raises:
            ModelNotReady: no champion is loaded.
        """
        if self._holder.champion is None:
            raise ModelNotReady
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Scored] = loop.create_future()
        job = _Job(matrix, arrived, future)
        self._pending.append(job)
        if self._running:
            return await future
        self._running = True
        # Let the requests that are ready run up to here first, then score them as one batch: on the
        # loop when it is small (compiled trees; a lone request at c=1, a few at c=16), else on the
        # predict thread. The loop spares the two thread hand-offs and the GIL traffic they bring: at
        # c=16 1.29x req/s against scoring only a lone request here (71 against 93 CPU µs per request;
        # serving_ab, 6 paired rounds).
        await asyncio.sleep(0)
        served = self._holder.champion
        if (
            served is not None
            and served.runtime == RUNTIME_COMPILED
            and sum(len(pending.matrix) for pending in self._pending) <= INLINE_MAX_ROWS
        ):
            jobs, self._pending = self._pending, []
            self._running = False
            try:
                results = self._score_jobs(jobs, served, record_later=True)
            except Exception as error:
                for other in jobs:
                    if other is not job and not other.future.done():
                        other.future.set_exception(error)
                raise
            mine = results[0]
            for other, result in zip(jobs, results, strict=True):
                if other is job:
                    mine = result
                elif not other.future.done():
                    other.future.set_result(result)
            return mine
        self._hand_over(loop)
        return await future

    def _hand_over(self, loop: asyncio.AbstractEventLoop) -> None:
        """Give the predict thread the next batch of the pending jobs (on the loop, while running)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._predict_thread, name="predict", daemon=True)
            self._thread.start()
        self._batches.put((loop, self._take()))

    def _predict_thread(self) -> None:
        # OpenMP threads inside a server fight the server's own (one-row predicts stalled ~1.2 s at
        # random with the default thread count): one, for this thread's life.
        with threadpool_limits(1):
            while (batch := self._batches.get()) is not None:
                loop, jobs = batch
                try:
                    answer: list[Scored] | BaseException = self._score_jobs(jobs)
                except Exception as error:
                    answer = error
                try:
                    loop.call_soon_threadsafe(self._answer, loop, jobs, answer)
                except RuntimeError:  # the loop closed under a shutdown: nobody waits for these
                    log.warning("predict thread: %d requests scored after the event loop closed", len(jobs))

    def _answer(
        self, loop: asyncio.AbstractEventLoop, jobs: list[_Job], answer: list[Scored] | BaseException
    ) -> None:
        """On the loop: settle the batch's futures, then hand over the next batch or stop running."""
        if isinstance(answer, BaseException):
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(answer)
        else:
            for job, result in zip(jobs, answer, strict=True):
                if not job.future.done():  # the client may have gone
                    job.future.set_result(result)
        if self._pending:
            self._hand_over(loop)
        else:
            self._running = False

    def _take(self) -> list[_Job]:
        taken, rows = 0, 0
        for job in self._pending:
            if taken and rows + len(job.matrix) > self._max_rows:
                break
            taken += 1
            rows += len(job.matrix)
        jobs, self._pending = self._pending[:taken], self._pending[taken:]
        return jobs

    def _score_jobs(
        self, jobs: list[_Job], served: ServedModel | None = None, *, record_later: bool = False
    ) -> list[Scored]:
        """Score ``jobs`` as one matrix; log, remember and count the rows now, or (``record_later``, on
        the loop) in the loop's next turn, after the answer went out."""
        served = served or self._holder.champion  # read once: the whole batch uses one model
        if served is None:
            raise ModelNotReady
        matrix = jobs[0].matrix if len(jobs) == 1 else np.concatenate([job.matrix for job in jobs])
        predictions = served.model.predict(matrix)
        done = time.perf_counter()
        created = datetime.now(UTC)
        values = predictions.tolist()
        ids = new_ids(len(values))  # right after ``created``: see services.inference.ids
        results: list[Scored] = []
        start = 0
        for job in jobs:
            end = start + len(job.matrix)
            results.append(
                Scored([v * TARGET_UNIT_USD for v in values[start:end]], ids[start:end], served.version)
            )
            start = end
        if record_later:
            # A lone request's answer is written before its log row, recent id and metrics are made
            # (one-row /predict at c=1: ~15 % of its time on the loop). The callback runs ahead of any
            # request that arrives later, so feedback for this id still finds it in ``recent``.
            asyncio.get_running_loop().call_soon(
                self._record, jobs, matrix, values, ids, created, done, served
            )
        else:
            self._record(jobs, matrix, values, ids, created, done, served)
        return results

    def _record(
        self,
        jobs: list[_Job],
        matrix: Matrix,
        values: list[float],
        ids: list[uuid.UUID],
        created: datetime,
        done: float,
        served: ServedModel,
    ) -> None:
        """The scored rows to the writer, their ids to ``recent``, the challenger and the metrics."""
        features = matrix.tolist()
        version = served.version
        rows: list[PredictionRow] = []
        start = 0
        for job in jobs:
            end = start + len(job.matrix)
            latency_ms = (done - job.arrived) * 1000.0
            rows.extend(
                (ids[i], created, version, CHAMPION_ROLE, None, *features[i], values[i], latency_ms)
                for i in range(start, end)
            )
            start = end
        self._writer.put(rows)
        self._recent.add(ids, created)
        if self._shadow is not None:
            self._shadow.submit(matrix, ids, version)
        self._metrics.prediction_value.observe_many(values)
        self._metrics.predict_batch_rows.observe(len(values))
