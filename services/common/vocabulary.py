"""The words the services share: roles, model events and decisions, monitor statuses, triggers, actions.

Each is a ``StrEnum``: a member is its string (``Role.CHAMPION == "champion"``), so it goes into SQL
parameters, JSON, MLflow aliases and tags unchanged, and a typo is a mypy error instead of a silent
mismatch between the service that writes a value and the one that reads it.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    """A model version's place in the loop: an MLflow alias, and ``predictions.role``."""

    CHAMPION = "champion"  # served; its predictions are the answers
    CHALLENGER = "challenger"  # registered, waiting for the gate (or shadowing the champion)
    PREVIOUS = "previous"  # the champion before the last promotion: where a rollback goes


class ModelEvent(StrEnum):
    """A lifecycle decision in ``model_events.event`` (and the gate's decision tag on a version)."""

    REGISTERED = "registered"
    PROMOTED = "promoted"
    REJECTED = "rejected"
    FORCED = "forced"
    ROLLED_BACK = "rolled_back"


class GateDecision(StrEnum):
    """The decision tag (``gate.decision``) on a model version: why it serves, or why it does not."""

    PASSED = "passed"
    REJECTED = "rejected"
    FORCED = "forced"
    ROLLED_BACK = "rolled_back"


class RunStatus(StrEnum):
    """What a monitor run found: ``drift_reports.status`` and the run summary's ``status``."""

    OK = "ok"  # enough rows, no drift, the error within tolerance
    DRIFT = "drift"  # a feature's PSI or Evidently's drifted share reached its threshold
    DEGRADED = "degraded"  # no drift, but the champion's error is beyond tolerance (or it was rolled back)
    INSUFFICIENT_DATA = "insufficient_data"  # too few rows to judge, or no champion yet
    ERROR = "error"  # the run could not judge; details.error says why
    LOCKED = "locked"  # another run held the lock: nothing judged, no report row


class Trigger(StrEnum):
    """Why a run acted or alerted: the report's ``details.triggers``."""

    PSI = "psi"  # a feature's PSI reached PSI_THRESHOLD
    DRIFT_SHARE = "drift_share"  # Evidently's drifted share reached DRIFT_SHARE_THRESHOLD
    LIVE_ERROR = "live_error"  # the live MAE is beyond LIVE_MAE_TOLERANCE of the training MAE
    ESTIMATED_DEGRADATION = "estimated_degradation"  # the label-free MAE estimate is beyond its tolerance
    ROLLBACK = "rollback"  # a fresh champion is worse live than its predecessor
    # Before enough labels, a fresh champion's estimated MAE is worse than its predecessor's on the same
    # rows: alerted, never rolled back on (a rollback needs labels).
    ESTIMATED_REGRESSION = "estimated_regression"
    TRAINER_FAILED = "trainer_failed"  # the newest finished trainer failed
    # Where the window has labels: realized ÷ estimated MAE on the same rows left [0.9, 1.1] (the prices
    # moved with the features unchanged: the estimate cannot see it). Alerted, never a launch by itself.
    CONCEPT_SHIFT = "concept_shift"


class Action(StrEnum):
    """What a run did: ``drift_reports.action``."""

    NONE = "none"
    TRAINER_LAUNCHED = "trainer_launched"
    TRAINER_ALREADY_RUNNING = "trainer_already_running"
    LAUNCH_FAILED = "launch_failed"
    ROLLED_BACK = "rolled_back"
    ROLLBACK_FAILED = "rollback_failed"


class AlertKind(StrEnum):
    """What an alert is about (``monitor_alert_state.kind`` and the alert's ``kind``)."""

    DRIFT = "drift"  # an episode: alerted once while it lasts
    LIVE_ERROR = "live_error"  # an episode
    ESTIMATED_DEGRADATION = "estimated_degradation"  # an episode
    ESTIMATED_REGRESSION = "estimated_regression"  # an episode
    CONCEPT_SHIFT = "concept_shift"  # an episode
    LAUNCH_FAILED = "launch_failed"  # an episode
    TRAINER_FAILED = "trainer_failed"  # an episode per failed trainer
    TRAINER_STALLED = "trainer_stalled"  # an episode per set of suspended or stuck trainer Jobs
    ROLLED_BACK = "rolled_back"  # an event: alerted every time
    ROLLBACK_FAILED = "rollback_failed"  # an event


class RetrainSignal(StrEnum):
    """What may launch the trainer (RETRAIN_ON); a signal left out only alerts."""

    DRIFT = "drift"  # the PSI or drifted-share triggers
    ESTIMATED_DEGRADATION = "estimated_degradation"  # the label-free estimate
    LIVE_DEGRADATION = "live_degradation"  # the live MAE on labelled predictions


class Plan(StrEnum):
    """What a run's verdict asks of it; the ``Action`` it stores says how that went."""

    NOTHING = "nothing"
    LAUNCH_TRAINER = "launch_trainer"
    # A signal would launch the trainer, but too few labelled rows are newer than any model trained on
    # (RETRAIN_MIN_NEW_LABELS): alerted once per episode, recorded, nothing launched.
    WAIT_FOR_LABELS = "wait_for_labels"
    ROLL_BACK = "roll_back"


class RollbackState(StrEnum):
    """Where a champion's rollback test stands (``details.rollback_check.state``)."""

    WAITING = "waiting"  # fewer than min_rows labelled rows: nothing is computed
    OPEN = "open"  # no decision yet
    WORSE = "worse"  # the champion is worse than the target: roll back
    NOT_WORSE = "not_worse"  # not worse by the minimum effect: the test is over, the champion stays
    INCONCLUSIVE = "inconclusive"  # the horizon passed without a decision: over, the champion stays

    @property
    def over(self) -> bool:
        """The test has ended and the champion stays: it vouches for the champion."""
        return self in (RollbackState.NOT_WORSE, RollbackState.INCONCLUSIVE)
