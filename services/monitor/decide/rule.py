"""The terms every rule of the verdict shares: the figures a run measured, the limits it is judged
against, and what one rule finds."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from services.common.estimate_band import EstimateBand
from services.common.vocabulary import RetrainSignal, Trigger
from services.monitor.concept import ConceptFigures
from services.monitor.launchers import TrainerOutcome
from services.monitor.rollback_check import Cooldown, RollbackFigures
from services.monitor.sequential import SequentialLimits
from services.monitor.settings import MonitorSettings


@dataclass(frozen=True)
class Limits:
    """The thresholds a verdict is judged against (from MonitorSettings, read once by the CLI)."""

    drift_min_rows: int
    psi_threshold: float
    drift_share_threshold: float
    live_mae_tolerance: float
    rollback_min_rows: int
    estimated_mae_tolerance: float = 0.20
    retrain_on: frozenset[RetrainSignal] = frozenset(RetrainSignal)
    retrain_min_new_labels: int = 0  # 0: a signal launches the trainer without new labels
    rollback_alpha: float = 0.01
    rollback_min_effect: float = 0.10
    rollback_horizon_labels: int = 5000

    @property
    def rollback(self) -> SequentialLimits:
        """The rollback test's settings."""
        return SequentialLimits(
            self.rollback_alpha,
            self.rollback_min_effect,
            self.rollback_horizon_labels,
            self.rollback_min_rows,
        )

    @classmethod
    def of(cls, settings: MonitorSettings) -> Limits:
        return cls(
            drift_min_rows=settings.drift_min_rows,
            psi_threshold=settings.psi_threshold,
            drift_share_threshold=settings.drift_share_threshold,
            live_mae_tolerance=settings.live_mae_tolerance,
            rollback_min_rows=settings.rollback_min_rows,
            estimated_mae_tolerance=settings.estimated_mae_tolerance,
            retrain_on=settings.retrain_signals,
            rollback_alpha=settings.rollback_alpha,
            rollback_min_effect=settings.rollback_min_effect,
            rollback_horizon_labels=settings.rollback_horizon_labels,
            retrain_min_new_labels=settings.retrain_min_new_labels,
        )


@dataclass(frozen=True)
class Measured:
    """What a run measured on its window (a figure not measured is empty or None)."""

    rows: int  # predictions in the window
    psi: Mapping[str, float] = field(default_factory=dict)  # per feature, when the window was judged
    drift_share: float | None = None  # Evidently's drifted share, when it ran
    live_mae: float | None = None  # the champion's MAE on its labelled predictions in the window
    labelled_rows: int = 0
    reference_mae: float | None = None  # the champion's holdout MAE at training
    estimated_mae: float | None = None  # the error model's estimate on the window's sample (no labels)
    estimated_rows: int = 0  # the sample rows it averaged
    estimate_se: float | None = None  # its standard error: SD of the per-row estimated errors / √n
    estimate_band: EstimateBand | None = None  # the champion's band (None: registered without one)
    concept: ConceptFigures | None = None  # realized beside estimated on the window's labelled rows
    rollback: RollbackFigures | None = None  # None: no promotion over another version to test
    previous_estimated_mae: float | None = None  # the rollback target's estimate on the champion's sample
    cooldown: Cooldown | None = None  # None: the champion was not restored by the last rollback
    trainer: TrainerOutcome | None = None  # the newest finished trainer (None: none, or not seen)
    # Labelled rows newer than any model trained on, counted up to RETRAIN_MIN_NEW_LABELS (None: uncounted)
    new_labels: int | None = None


def enough_rows(measured: Measured, limits: Limits) -> bool:
    """Whether the window has the DRIFT_MIN_ROWS predictions that judging drift (and the estimate) needs."""
    return measured.rows >= limits.drift_min_rows


@dataclass(frozen=True)
class Finding:
    """What one rule found: whether its signal is up, the triggers it names and its reasons (in order)."""

    active: bool = False
    triggers: tuple[Trigger, ...] = ()
    reasons: tuple[str, ...] = ()
