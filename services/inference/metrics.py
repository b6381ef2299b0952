"""The service's Prometheus metrics, on a registry each app owns (no process-wide state).

The names are a contract: the chart's alerts and the Grafana dashboard query them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge

from services.inference.plain_metrics import LabelledCounter, LabelledHistogram

# Seconds; dense below 50 ms where a healthy server answers.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# The request counter's ``inc`` and the latency histogram's ``observe`` of one route and status.
Answered = tuple[Callable[[], None], Callable[[float], None]]
# 100k USD; the data set's target is capped at 5.00001.
PRICE_BUCKETS = (0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 6.0, 8.0)


@dataclass
class Metrics:
    """Every metric the service exports, registered on ``registry``."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self._answered: dict[tuple[str, str, int], Answered] = {}
        self._http_and_predictions(self.registry)
        self._model(self.registry)
        self._prediction_log(self.registry)

    def _http_and_predictions(self, r: CollectorRegistry) -> None:
        # Fed on every request: plain counts (services.inference.plain_metrics), not prometheus_client's.
        self.requests = LabelledCounter(
            "http_requests",
            "HTTP requests answered, by route, method and status.",
            ["route", "method", "status"],
            registry=r,
        )
        self.request_seconds = LabelledHistogram(
            "http_request_duration_seconds",
            "Time to answer an HTTP request, by route.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.prediction_value = LabelledHistogram(
            "prediction_value", "Predicted prices served (100,000 USD).", buckets=PRICE_BUCKETS, registry=r
        ).labels()
        self.predict_batch_rows = LabelledHistogram(
            "predict_batch_rows",
            "Rows per model call (requests coalesced by the micro-batcher).",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
            registry=r,
        ).labels()
        self.shadow_rows_skipped = Counter(
            "shadow_rows_skipped", "Rows the challenger did not score because its queue was full.", registry=r
        )

    def _model(self, r: CollectorRegistry) -> None:
        self.model_info = Gauge(
            "model_info", "The served champion (value 1).", ["version", "run_id"], registry=r
        )
        self.model_loaded = Gauge("model_loaded", "1 when a champion is loaded and served.", registry=r)
        self.model_swaps = Counter("model_swaps", "Champion models swapped in without a restart.", registry=r)
        self.registry_errors = Counter(
            "model_registry_errors",
            "Failed registry polls or model loads (the last good model is kept).",
            registry=r,
        )
        # A version an alias points at whose signature or files do not check (common/model_signing.py).
        self.model_refused = Gauge(
            "model_refused",
            "The version @champion or @challenger points at that was refused (unsigned, unknown key, bad "
            "signature, altered file); 0 when none is.",
            ["role"],
            registry=r,
        )
        self.model_refusals = Counter(
            "model_refusals", "Model versions refused before loading, by alias.", ["role"], registry=r
        )

    def _prediction_log(self, r: CollectorRegistry) -> None:
        self.log_queue_rows = Gauge(
            "prediction_log_queue_rows", "Prediction rows waiting for the writer.", registry=r
        )
        self.log_rows_written = Counter(
            "prediction_log_rows_written", "Prediction rows written to Postgres.", registry=r
        )
        self.log_write_errors = Counter(
            "prediction_log_write_errors", "Failed writes of a batch of prediction rows.", registry=r
        )
        self.log_spool_bytes = Gauge(
            "prediction_log_spool_bytes",
            "Bytes of prediction rows spooled on disk, waiting for Postgres.",
            registry=r,
        )
        self.log_spool_capacity_bytes = Gauge(
            "prediction_log_spool_capacity_bytes",
            "Most bytes this server's spool may hold (SPOOL_MAX_BYTES); rows beyond are dropped.",
            registry=r,
        )
        self.log_rows_dropped = Counter(
            "prediction_log_rows_dropped",
            "Prediction rows lost: spool or queue full, or refused by Postgres.",
            registry=r,
        )

    def answered(self, route: str, method: str, status: int) -> Answered:
        """The request counter's ``inc`` and the latency histogram's ``observe`` of one route and status.

        Looked up once per (route, method, status): ``labels`` on every request was ~4 % of a one-row
        /predict's event-loop time under wrk -c16 (with prometheus_client's, which also took a lock).
        """
        key = (route, method, status)
        found = self._answered.get(key)
        if found is None:
            found = (
                self.requests.labels(route, method, str(status)).inc,
                self.request_seconds.labels(route).observe,
            )
            self._answered[key] = found
        return found
