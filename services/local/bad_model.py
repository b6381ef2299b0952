"""A deliberately bad model for the demo: it prices every house at the training mean.

It is registered like any candidate (run, figures, reference profile, signature), so everything downstream
treats it as a real version; only ``housing promote --force`` lets it past the gate.
"""

from __future__ import annotations

from datetime import UTC, datetime

from mlflow.tracking import MlflowClient
from sklearn.dummy import DummyRegressor
from sklearn.pipeline import Pipeline

from services.common.database import connect
from services.common.dataset import Dataset
from services.common.events import record_event
from services.common.model_signing import Signer
from services.common.profile import build_profile
from services.common.vocabulary import ModelEvent
from services.trainer.evaluate import evaluate
from services.trainer.registration import TrainingRecord, register_candidate

REASON = "a deliberately bad model: it prices every house at the training mean"


def register_bad_model(
    client: MlflowClient, experiment_id: str, database_url: str, dataset: Dataset, signer: Signer
) -> int:
    """Fit and register the mean-price model (aliased ``challenger``), signed by the trainer's key: it is
    bad, not foreign (the monitor must judge and roll it back); returns its version."""
    model = Pipeline([("regressor", DummyRegressor(strategy="mean"))]).fit(dataset.x_train, dataset.y_train)
    holdout = evaluate(model, dataset.x_holdout, dataset.y_holdout)
    metrics = holdout.as_holdout_metrics()
    record = TrainingRecord(
        model=model,
        x_train=dataset.x_train,
        y_train=dataset.y_train,
        base_rows=len(dataset.y_train),
        labelled_rows=0,
        labelled_since=datetime.now(UTC),
        labelled_until=None,
        metrics=metrics,
        undefined=holdout.holdout_undefined(),
        profile=build_profile(dataset.x_train),
    )
    version, _ = register_candidate(client, experiment_id, record, signer)
    with connect(database_url) as conn:
        record_event(
            conn, ModelEvent.REGISTERED, version, actor="housing demo", reasons=[REASON], figures=metrics
        )
    return version
