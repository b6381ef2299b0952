"""A traffic and ground-truth simulator: real rows to ``POST /predict``, true prices to ``/feedback`` later.

It talks to any inference URL (a laptop or a cluster alike) over the public API only. Rows go out in the
batch form (``{"instances": [...]}``) when the rate allows more than one row per tick, else one by one;
each answered row's true price is posted to ``/feedback`` once its delay has passed, by a second thread.

Example::

    with httpx.Client(base_url="http://127.0.0.1:8000", timeout=10) as client:
        summary = Simulator(client).run(rows, prices_usd, rate=200, feedback_delay=1.0)
"""

from __future__ import annotations

import heapq
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

TICK_SECONDS = 0.2
MAX_BATCH = 200
MAX_ERRORS_KEPT = 5
FEEDBACK_WORKERS = 4


@dataclass(frozen=True)
class BatchPlan:
    """How to send at a rate: ``size`` rows per request, one request every ``interval`` seconds."""

    size: int
    interval: float


def plan_batches(rate: float | None, *, tick: float = TICK_SECONDS, max_batch: int = MAX_BATCH) -> BatchPlan:
    """Rows per request and seconds between requests for ``rate`` rows/s (None or 0: as fast as possible).

    Below ``1 / tick`` rows per second every row is its own request; above, a request carries the rows
    of one tick (at most ``max_batch``) and requests come more often when that cap bites.
    """
    if rate is None or rate <= 0:
        return BatchPlan(max_batch, 0.0)
    size = max(1, min(max_batch, int(rate * tick)))
    return BatchPlan(size, size / rate)


@dataclass
class SimulationSummary:
    """What one simulation did; counts are rows, not requests."""

    sent: int = 0
    failed: int = 0
    feedback_posted: int = 0
    feedback_failed: int = 0
    versions: Counter[int] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    withheld: list[tuple[str, float]] = field(default_factory=list)  # (prediction id, price): labels to come

    def note_error(self, message: str) -> None:
        if len(self.errors) < MAX_ERRORS_KEPT:
            self.errors.append(message)

    def as_dict(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "failed": self.failed,
            "feedback_posted": self.feedback_posted,
            "feedback_failed": self.feedback_failed,
            "model_versions": {str(version): count for version, count in sorted(self.versions.items())},
            "errors": self.errors,
            "seconds": round(self.seconds, 2),
        }


class _FeedbackPoster:
    """Posts each true price once its time has come, from a few threads (each POST is a database write)."""

    def __init__(
        self, client: httpx.Client, headers: Mapping[str, str], summary: SimulationSummary, *, workers: int
    ) -> None:
        self._client = client
        self._headers = dict(headers)
        self._summary = summary
        self._due: list[tuple[float, int, str, float]] = []
        self._count = 0
        self._closing = False
        self._abandon = False
        self._wake = threading.Condition()
        self._counts = threading.Lock()
        self._threads = [
            threading.Thread(target=self._loop, name=f"feedback-{number}", daemon=True)
            for number in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    def schedule(self, at: float, prediction_id: str, price_usd: float) -> None:
        with self._wake:
            self._count += 1
            heapq.heappush(self._due, (at, self._count, prediction_id, price_usd))
            self._wake.notify_all()

    def close(self, *, abandon: bool = False) -> None:
        """Wait until every scheduled price is posted (or drop them with ``abandon``)."""
        with self._wake:
            self._closing = True
            self._abandon = abandon
            self._wake.notify_all()
        for thread in self._threads:
            thread.join()

    def _loop(self) -> None:
        while True:
            with self._wake:
                while True:
                    if self._abandon or (self._closing and not self._due):
                        return
                    wait = self._due[0][0] - time.monotonic() if self._due else None
                    if wait is not None and wait <= 0:
                        _, _, prediction_id, price = heapq.heappop(self._due)
                        break
                    self._wake.wait(wait)
            self._post(prediction_id, price)

    def _post(self, prediction_id: str, price: float) -> None:
        error = None
        try:
            response = self._client.post(
                "/feedback",
                json={"prediction_id": prediction_id, "actual_price_usd": round(price, 2)},
                headers=self._headers,
            )
            if not response.is_success:
                error = f"POST /feedback: HTTP {response.status_code} {response.text[:200]}"
        except httpx.HTTPError as failure:
            error = f"POST /feedback: {type(failure).__name__}: {failure}"
        with self._counts:
            if error is None:
                self._summary.feedback_posted += 1
            else:
                self._summary.feedback_failed += 1
                self._summary.note_error(error)


class Simulator:
    """Sends rows to an inference server and their true prices after a delay.

    Args:
        client: an ``httpx.Client`` whose ``base_url`` is the inference server (its timeout bounds a request).
        token: the bearer token ``/feedback`` requires (FEEDBACK_TOKEN), or None.
        max_batch: most rows in one ``/predict`` request.
        feedback_workers: threads posting true prices (each POST is one database write on the server).
    """

    def __init__(
        self,
        client: httpx.Client,
        *,
        token: str | None = None,
        max_batch: int = MAX_BATCH,
        feedback_workers: int = FEEDBACK_WORKERS,
    ) -> None:
        self._client = client
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._max_batch = max_batch
        self._feedback_workers = feedback_workers

    def run(
        self,
        rows: Sequence[Mapping[str, float]],
        prices_usd: Sequence[float],
        *,
        rate: float | None,
        feedback_delay: float,
        stop: threading.Event | None = None,
        on_progress: Callable[[SimulationSummary], None] | None = None,
        withhold: bool = False,
    ) -> SimulationSummary:
        """Send ``rows`` at ``rate`` rows/s; post ``prices_usd`` (in order) ``feedback_delay`` s after each.

        Returns when every row was sent (or ``stop`` was set) and every due feedback was posted. A request
        that fails counts its rows as failed; nothing is retried, so failures stay visible. With
        ``withhold`` no price is posted: the answered rows' (prediction id, price) wait in
        ``summary.withheld`` for :meth:`post_feedback`, as labels that arrive months later would.
        """
        if len(rows) != len(prices_usd):
            raise ValueError(f"{len(rows)} rows but {len(prices_usd)} prices")
        plan = plan_batches(rate, max_batch=self._max_batch)
        summary = SimulationSummary()
        feedback = (
            _FeedbackPoster(self._client, self._headers, summary, workers=self._feedback_workers)
            if feedback_delay >= 0 and not withhold
            else None
        )
        started = time.monotonic()
        abandoned = True
        try:
            for number, start in enumerate(range(0, len(rows), plan.size)):
                if stop is not None and stop.is_set():
                    break
                pause = started + number * plan.interval - time.monotonic()
                if pause > 0 and (stop.wait(pause) if stop is not None else _sleep(pause)):
                    break
                chunk = range(start, min(start + plan.size, len(rows)))
                answers = self._predict([rows[i] for i in chunk], summary)
                due = time.monotonic() + feedback_delay
                for i, answer in zip(chunk, answers, strict=True):
                    if answer is None:
                        continue
                    summary.versions[int(answer.get("model_version", -1))] += 1
                    if withhold:
                        summary.withheld.append((str(answer["prediction_id"]), float(prices_usd[i])))
                    elif feedback is not None:
                        feedback.schedule(due, str(answer["prediction_id"]), float(prices_usd[i]))
                if on_progress is not None:
                    on_progress(summary)
            abandoned = False
        finally:
            if feedback is not None:
                feedback.close(abandon=abandoned)
            summary.seconds = time.monotonic() - started
        if on_progress is not None:
            on_progress(summary)
        return summary

    def post_feedback(self, labels: Sequence[tuple[str, float]]) -> SimulationSummary:
        """Post withheld prices now: (prediction id, price in USD) pairs from ``summary.withheld``."""
        summary = SimulationSummary()
        started = time.monotonic()
        feedback = _FeedbackPoster(self._client, self._headers, summary, workers=self._feedback_workers)
        try:
            for prediction_id, price in labels:
                feedback.schedule(started, prediction_id, price)
        finally:
            feedback.close()
            summary.seconds = time.monotonic() - started
        return summary

    def _predict(
        self, batch: list[Mapping[str, float]], summary: SimulationSummary
    ) -> list[dict[str, Any] | None]:
        """One request for ``batch``; one answer per row (None for the rows of a failed request)."""
        body: dict[str, Any] = (
            dict(batch[0]) if len(batch) == 1 else {"instances": [dict(row) for row in batch]}
        )
        try:
            response = self._client.post("/predict", json=body)
        except httpx.HTTPError as error:
            return self._failed(batch, summary, f"POST /predict: {type(error).__name__}: {error}")
        if not response.is_success:
            return self._failed(
                batch, summary, f"POST /predict: HTTP {response.status_code} {response.text[:200]}"
            )
        payload = response.json()
        answers = [payload] if len(batch) == 1 else payload.get("predictions", [])
        if len(answers) != len(batch) or not all("prediction_id" in answer for answer in answers):
            return self._failed(batch, summary, f"POST /predict: unexpected answer {str(payload)[:200]}")
        summary.sent += len(batch)
        return list(answers)

    @staticmethod
    def _failed(
        batch: list[Mapping[str, float]], summary: SimulationSummary, message: str
    ) -> list[dict[str, Any] | None]:
        summary.failed += len(batch)
        summary.note_error(message)
        return [None] * len(batch)


def _sleep(seconds: float) -> bool:
    time.sleep(seconds)
    return False
