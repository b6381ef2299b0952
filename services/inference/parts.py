"""The parts one inference app owns, built from settings: what the routes and the protocol handlers share.

``app.py`` builds the FastAPI app around them; ``open_inference`` and ``mlflow_scoring`` take them as
an argument. Keeping them here, below all three, is what keeps the three from importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mlflow.tracking import MlflowClient
from psycopg_pool import ConnectionPool

from services.common.signing_keys import trusted_keys
from services.inference.batcher import Batcher, RecentIds, ShadowScorer
from services.inference.bodies import body_limit
from services.inference.metrics import Metrics
from services.inference.model_holder import ModelHolder
from services.inference.settings import InferenceSettings
from services.inference.spool import Spool
from services.inference.writer import PredictionWriter


@dataclass
class Services:
    """The parts one app owns; ``app.state.services``."""

    settings: InferenceSettings
    database_url: str
    metrics: Metrics
    holder: ModelHolder
    writer: PredictionWriter
    batcher: Batcher
    recent: RecentIds
    shadow: ShadowScorer | None
    max_body: int
    pool: ConnectionPool | None = field(default=None)


def build_services(
    settings: InferenceSettings,
    *,
    database_url: str,
    client: MlflowClient,
    metrics: Metrics | None = None,
    holder: ModelHolder | None = None,
    writer: PredictionWriter | None = None,
) -> Services:
    """The real parts from settings; any of metrics, holder and writer may be handed in instead."""
    metrics = metrics or Metrics()
    holder = holder or ModelHolder(
        client,
        metrics,
        poll_seconds=settings.model_poll_seconds,
        shadow=settings.shadow_challenger,
        keys=trusted_keys(settings),
    )
    writer = writer or PredictionWriter(
        database_url,
        Spool.in_root(settings.spool_folder, max_bytes=settings.spool_max_bytes),
        metrics,
        batch_rows=settings.log_batch_rows,
        flush_seconds=settings.log_flush_seconds,
        queue_rows=settings.log_queue_rows,
        retry_seconds=settings.log_retry_seconds,
        drain_seconds=settings.log_drain_seconds,
    )
    recent = RecentIds()
    shadow = ShadowScorer(holder, writer, metrics) if settings.shadow_challenger else None
    batcher = Batcher(holder, writer, metrics, recent, shadow=shadow, max_rows=settings.predict_max_batch)
    return Services(
        settings,
        database_url,
        metrics,
        holder,
        writer,
        batcher,
        recent,
        shadow,
        body_limit(settings.predict_max_batch),
    )
