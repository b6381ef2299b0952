"""The trainer, the gate, promotion and rollback against a real embedded Postgres and a real MLflow store.

No mocks: models are really trained, registered, loaded and judged; events are real rows.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import mlflow
import numpy as np
import pytest
from sklearn.compose import TransformedTargetRegressor
from sklearn.dummy import DummyRegressor
from sklearn.pipeline import Pipeline

from services.common import compiled
from services.common.database import connect
from services.common.dataset import Dataset
from services.common.error_model import load_error_model
from services.common.estimate_band import TAG_ESTIMATE_BAND, EstimateBand
from services.common.features import FEATURE_COLUMNS, FEATURE_NAMES
from services.common.model_signing import ModelRefused
from services.common.profile import ReferenceProfile, build_profile
from services.common.registry import (
    ERROR_MODEL_ARTIFACT,
    METRIC_ERROR_MODEL_OOF_MAE,
    PROFILE_ARTIFACT,
    TAG_DECISION,
    RegistryError,
    current_aliases,
    model_uri,
)
from services.common.rollback import roll_back
from services.common.vocabulary import GateDecision, Role
from services.trainer.lifecycle import force_promote, gate_version
from services.trainer.model import fit_model
from services.trainer.registration import TrainingRecord, register_candidate
from services.trainer.settings import TrainerSettings
from services.trainer.train import run_training
from tests.conftest import Registry, session_signer, signed


def events(url: str) -> list[tuple[str, int, int | None]]:
    with connect(url) as conn:
        rows = conn.execute(
            "SELECT event, model_version, previous_version FROM model_events ORDER BY id"
        ).fetchall()
    return [(e, v, p) for e, v, p in rows]


def register(
    registry: Registry,
    dataset: Dataset,
    model: Pipeline,
    trained_on: tuple[np.ndarray, np.ndarray] | None = None,
) -> int:
    """Register an arbitrary fitted pipeline as a candidate, the way the trainer does.

    ``trained_on``: the (x, y) it was fitted on, when not the base training rows (the training digest,
    which refuses twins of the champion, is taken of them).
    """
    x_train, y_train = trained_on or (dataset.x_train, dataset.y_train)
    record = TrainingRecord(
        model=model,
        x_train=x_train,
        y_train=y_train,
        base_rows=len(dataset.y_train),
        labelled_rows=0,
        labelled_since=datetime.now(UTC),
        labelled_until=None,
        metrics={},
        profile=build_profile(dataset.x_train[:1000]),
    )
    version, _ = register_candidate(registry.client, registry.experiment_id, record, session_signer())
    return version


def dummy(dataset: Dataset) -> Pipeline:
    return Pipeline([("regressor", DummyRegressor())]).fit(dataset.x_train, dataset.y_train)


def nan_model(dataset: Dataset) -> Pipeline:
    regressor = TransformedTargetRegressor(
        regressor=DummyRegressor(), func=lambda y: y, inverse_func=lambda y: y * np.nan, check_inverse=False
    )
    return Pipeline([("regressor", regressor)]).fit(dataset.x_train, dataset.y_train)


def test_first_training_registers_a_champion_that_reaches_the_bar(
    champion_registry: Registry, dataset: Dataset, tmp_path: Path
) -> None:
    client = champion_registry.client
    assert current_aliases(client) == {Role.CHAMPION: 1, Role.CHALLENGER: None, Role.PREVIOUS: None}
    version = client.get_model_version("cali-housing", "1")
    run = client.get_run(version.run_id)
    assert run.data.metrics["holdout_r2"] >= 0.84
    assert run.data.metrics["holdout_mae"] <= 0.31
    assert run.data.params["base_rows"] == str(len(dataset.y_train))
    assert run.inputs.dataset_inputs and run.inputs.dataset_inputs[0].dataset.digest
    assert version.tags[TAG_DECISION] == GateDecision.PASSED

    profile_path = mlflow.artifacts.download_artifacts(
        run_id=version.run_id, artifact_path=PROFILE_ARTIFACT, dst_path=str(tmp_path)
    )
    profile = ReferenceProfile.load(Path(profile_path))
    assert profile.features == list(FEATURE_NAMES) and len(profile.sample) == 5000

    info = mlflow.models.get_model_info(model_uri(1))
    assert info.signature.inputs.input_names() == list(FEATURE_NAMES)
    assert info.saved_input_example_info is not None

    model = mlflow.sklearn.load_model(model_uri(Role.CHAMPION))
    assert model.predict(dataset.x_holdout[:5]).shape == (5,)

    # The error model, fitted on out-of-fold errors of the training rows only, estimates the MAE on the
    # reference holdout without its prices.
    error_path = mlflow.artifacts.download_artifacts(
        run_id=version.run_id, artifact_path=ERROR_MODEL_ARTIFACT, dst_path=str(tmp_path)
    )
    error_model = load_error_model(Path(error_path))
    assert (error_model.folds, error_model.training_rows) == (5, len(dataset.y_train))
    assert run.data.metrics[METRIC_ERROR_MODEL_OOF_MAE] == pytest.approx(error_model.out_of_fold_mae)
    estimated = error_model.estimate_mae(dataset.x_holdout, model.predict(dataset.x_holdout))
    assert estimated == pytest.approx(run.data.metrics["holdout_mae"], rel=0.10)

    # The estimate's band: its spread over chunks of DRIFT_MIN_ROWS holdout rows, the realized MAE beside.
    band = EstimateBand.from_tag(version.tags[TAG_ESTIMATE_BAND])
    assert (band.reference, band.reference_rows) == ("holdout", len(dataset.y_holdout))
    assert band.chunk_rows == TrainerSettings().drift_min_rows and band.chunks >= 100
    assert band.realized_mean == pytest.approx(run.data.metrics["holdout_mae"], rel=0.02)
    assert band.mean == pytest.approx(estimated, rel=0.02)
    assert 0 < band.lower < band.mean < band.upper < band.mean * 1.15


def test_gate_rejects_a_dummy_and_a_nan_model(
    champion_registry: Registry, dataset: Dataset, database_url: str
) -> None:
    client = champion_registry.client
    settings = TrainerSettings()
    for model, words in ((dummy(dataset), "below the floor"), (nan_model(dataset), "not finite")):
        version = register(champion_registry, dataset, model)
        result = gate_version(client, database_url, dataset, settings, version, actor="test")
        assert not result.decision.passed
        assert any(words in reason for reason in result.decision.reasons), result.decision.reasons
        aliases = current_aliases(client)
        assert aliases[Role.CHAMPION] == 1 and aliases[Role.CHALLENGER] is None
        tags = client.get_model_version("cali-housing", str(version)).tags
        assert tags[TAG_DECISION] == "rejected" and json.loads(tags["gate.reasons"])
    assert [e for e, _, _ in events(database_url)] == ["rejected", "rejected"]


def test_a_twin_is_rejected_and_a_rollback_restores_a_forced_one(
    champion_registry: Registry, dataset: Dataset, database_url: str
) -> None:
    client = champion_registry.client
    summary = run_training(client, champion_registry.experiment_id, database_url, dataset, TrainerSettings())
    gate = summary.gate
    assert gate is not None and not gate.decision.passed, gate
    assert any("a twin never replaces the champion" in reason for reason in gate.decision.reasons)
    assert current_aliases(client) == {Role.CHAMPION: 1, Role.CHALLENGER: None, Role.PREVIOUS: None}
    assert events(database_url) == [("registered", 2, None), ("rejected", 2, 1)]

    force_promote(client, database_url, 2, actor="test", reason="twin on purpose")
    bad, good = roll_back(client, database_url, actor="test", reasons=["live error"])
    assert (bad, good) == (2, 1)
    assert current_aliases(client) == {Role.CHAMPION: 1, Role.CHALLENGER: None, Role.PREVIOUS: None}
    assert events(database_url)[-1] == ("rolled_back", 1, 2)
    assert client.get_model_version("cali-housing", "2").tags[TAG_DECISION] == "rolled_back"

    with pytest.raises(RegistryError, match="no previous version"):
        roll_back(client, database_url, actor="test", reasons=["again"])
    assert current_aliases(client)[Role.CHAMPION] == 1


def test_rollback_restores_a_version_several_promotions_back_and_retires_the_episode(
    champion_registry: Registry, dataset: Dataset, database_url: str
) -> None:
    client = champion_registry.client
    twin = register(champion_registry, dataset, dummy(dataset))
    bad = register(champion_registry, dataset, dummy(dataset))
    force_promote(client, database_url, twin, actor="test", reason="a twin")
    force_promote(client, database_url, bad, actor="test", reason="a bad model over the twin")
    assert current_aliases(client)[Role.PREVIOUS] == twin  # `previous` no longer reaches v1

    restored = roll_back(
        client,
        database_url,
        actor="test",
        reasons=["worse than v1"],
        figures={"cooldown_labels": 1000},
        to=1,
        retired=[bad, twin],
    )
    assert restored == (bad, 1)
    assert current_aliases(client) == {Role.CHAMPION: 1, Role.CHALLENGER: None, Role.PREVIOUS: None}
    assert events(database_url)[-1] == ("rolled_back", 1, bad)
    for version in (bad, twin):
        assert client.get_model_version("cali-housing", str(version)).tags[TAG_DECISION] == "rolled_back"
    with pytest.raises(RegistryError, match="already the champion"):
        roll_back(client, database_url, actor="test", reasons=["again"], to=1)
    with pytest.raises(RegistryError, match="does not exist"):
        roll_back(client, database_url, actor="test", reasons=["nowhere"], to=99)
    assert len(events(database_url)) == 3  # refused rollbacks record nothing


def test_forced_promotion_is_recorded(
    champion_registry: Registry, dataset: Dataset, database_url: str
) -> None:
    client = champion_registry.client
    version = register(champion_registry, dataset, dummy(dataset))
    assert force_promote(client, database_url, version, actor="test", reason="demo") == 1
    assert current_aliases(client) == {Role.CHAMPION: version, Role.CHALLENGER: None, Role.PREVIOUS: 1}
    assert events(database_url) == [("forced", version, 1)]


def test_unknown_version_and_no_champion(registry: Registry, dataset: Dataset, database_url: str) -> None:
    with pytest.raises(RegistryError, match="train one"):
        gate_version(registry.client, database_url, dataset, TrainerSettings(), 7, actor="test")
    with pytest.raises(RegistryError, match="no champion to roll back"):
        roll_back(registry.client, database_url, actor="test", reasons=["x"])
    assert events(database_url) == []


def insert_labelled(url: str, x: np.ndarray, y: np.ndarray, start: datetime) -> None:
    """Predictions with feedback, one second apart, as inference and /feedback would write them."""
    columns = ", ".join(FEATURE_COLUMNS)
    with connect(url) as conn, conn.cursor() as cur:
        with cur.copy(
            f"COPY predictions (id, created_at, model_version, role, {columns}, prediction, latency_ms)"
            " FROM STDIN"
        ) as copy:
            ids = []
            for i, row in enumerate(x):
                pid = f"00000000-0000-4000-8000-{i:012d}"
                ids.append(pid)
                copy.write_row([pid, start + timedelta(seconds=i), 1, Role.CHAMPION, *row.tolist(), 0.0, 1.0])
        with cur.copy("COPY feedback (prediction_id, predicted_at, actual) FROM STDIN") as copy:
            for i, (pid, actual) in enumerate(zip(ids, y, strict=True)):
                copy.write_row([pid, start + timedelta(seconds=i), float(actual)])


def test_retraining_on_shifted_prices_moves_predictions_that_way(
    champion_registry: Registry, dataset: Dataset, database_url: str
) -> None:
    """Production rows whose true prices are 25 % higher: the retrained model prices them higher."""
    client = champion_registry.client
    rows = slice(0, 3000)
    x, y = dataset.x_holdout[rows], dataset.y_holdout[rows] * 1.25
    insert_labelled(database_url, x, y, datetime.now(UTC) - timedelta(hours=2))
    summary = run_training(client, champion_registry.experiment_id, database_url, dataset, TrainerSettings())
    assert summary.labelled_train_rows == 2100 and summary.labelled_gate_rows == 900
    old = mlflow.sklearn.load_model(model_uri(1)).predict(x)
    new = mlflow.sklearn.load_model(model_uri(summary.version)).predict(x)
    assert new.mean() > old.mean() * 1.08
    gate = summary.gate
    assert gate is not None and gate.decision.passed, gate.decision.reasons
    assert gate.candidate.recent is not None and gate.candidate.recent.rows == 900
    assert any("the recent labelled rows decide" in reason for reason in gate.decision.reasons)
    # Its evidence: both comparisons, in the event's figures and as version tags.
    evidence = gate.as_dict()["evidence"]
    assert set(evidence) == {"recent", "holdout"} and evidence["recent"]["rows"] == 900
    assert evidence["recent"]["upper"] < -evidence["recent"]["margin"]
    with connect(database_url) as conn:
        (figures,) = conn.execute(
            "SELECT figures FROM model_events WHERE event = 'promoted' ORDER BY id DESC LIMIT 1"
        ).fetchone()
    assert figures["evidence"] == json.loads(json.dumps(evidence))
    tags = client.get_model_version("cali-housing", str(summary.version)).tags
    assert json.loads(tags["gate.evidence"]) == figures["evidence"]
    assert tags["gate.recent.rows"] == "900" and float(tags["gate.holdout.mde"]) > 0
    # The reference profile is the newest rows' world, the one the gate judged the model on.
    run_id = client.get_model_version("cali-housing", str(summary.version)).run_id
    profile_path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=PROFILE_ARTIFACT)
    assert ReferenceProfile.load(Path(profile_path)).rows == 900
    # ... and so is the estimate's band, recorded with the version and in its registered event.
    band = EstimateBand.from_tag(
        client.get_model_version("cali-housing", str(summary.version)).tags[TAG_ESTIMATE_BAND]
    )
    assert (band.reference, band.reference_rows) == ("recent", 900)
    with connect(database_url) as conn:
        row = conn.execute(
            "SELECT figures FROM model_events WHERE event = 'registered' AND model_version = %s",
            (summary.version,),
        ).fetchone()
    assert row is not None and row[0]["estimate_band"]["upper"] == pytest.approx(band.upper)
    # The holdout rows the candidate learned from are not used to judge it.
    assert gate.candidate.holdout is not None and gate.candidate.holdout.rows == len(dataset.y_holdout) - 2100


def test_a_version_is_registered_with_its_compiled_trees_and_the_gate_checks_them(
    champion_registry: Registry, dataset: Dataset, database_url: str, tmp_path: Path
) -> None:
    client = champion_registry.client
    first = client.get_model_version("cali-housing", "1")
    assert first.tags[compiled.TAG_COMPILED].startswith("treelite ")
    settings = TrainerSettings()
    summary = run_training(
        client, champion_registry.experiment_id, database_url, dataset, settings, promote=False
    )
    # Swap the candidate's compiled trees for another model's: what would serve is not what was judged.
    other = fit_model(dataset.x_train[:2000], dataset.y_train[:2000])
    path = compiled.save(compiled.compile_pipeline(other), tmp_path / "model.tl")
    client.log_artifact(summary.run_id, str(path), artifact_path="compiled")
    # Swapped after signing: the gate refuses to open it at all.
    with pytest.raises(ModelRefused, match=r"compiled/model\.tl does not match its signed digest"):
        gate_version(client, database_url, dataset, settings, summary.version, actor="test")
    # Signed as it is now (a trainer that compiled the wrong trees): the parity check catches it.
    signed(client, summary.version)
    result = gate_version(client, database_url, dataset, settings, summary.version, actor="test")
    assert not result.decision.passed
    assert any("compiled trees predict up to" in r for r in result.decision.reasons), result.decision.reasons
    assert result.compiled_max_abs_diff is not None and result.compiled_max_abs_diff > 1e-3
    # A faithful compiled form passes the same check.
    good = run_training(
        client, champion_registry.experiment_id, database_url, dataset, settings, promote=False
    )
    passed = gate_version(client, database_url, dataset, settings, good.version, actor="test")
    assert passed.compiled_max_abs_diff is not None and passed.compiled_max_abs_diff <= 1e-6
    assert not any("compiled" in r for r in passed.decision.reasons)
