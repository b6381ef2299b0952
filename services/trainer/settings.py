"""The trainer's settings: the labelled window and the gate's thresholds (all from the environment)."""

from __future__ import annotations

from pydantic import Field

from services.common.settings import CommonSettings


class TrainerSettings(CommonSettings):
    """Training data window and validation-gate thresholds."""

    train_labelled_window_hours: float = Field(
        default=720, gt=0, description="Labelled production rows younger than this are used (train + gate)."
    )
    train_recent_holdout_fraction: float = Field(
        default=0.3,
        gt=0,
        lt=1,
        description="Newest share of labelled rows kept out of training for the gate.",
    )
    train_recent_weight: float = Field(
        default=3.0, gt=0, description="Sample weight of a labelled production row against a base row."
    )
    gate_min_r2: float = Field(default=0.75, description="Floor: R² on the reference holdout.")
    gate_max_mae: float = Field(
        default=0.45, gt=0, description="Floor: MAE (100k USD) on the reference holdout."
    )
    gate_holdout_tolerance: float = Field(
        default=0.02,
        ge=0,
        description="Without enough recent rows: allowed relative MAE loss on the holdout.",
    )
    gate_shifted_holdout_tolerance: float = Field(
        default=0.25, ge=0, description="With enough recent rows: allowed relative MAE loss on the holdout."
    )
    error_model_folds: int = Field(
        default=5,
        ge=0,
        description="Folds of the out-of-fold errors the error model (the monitor's label-free MAE estimate) "
        "is fitted on; 0 registers versions without one.",
    )
    # The monitor's setting of the same name (same default): the trainer needs it for the estimate's band,
    # measured at registration on chunks of this many reference rows, the smallest window the monitor
    # judges. The chart passes monitor.driftMinRows to both.
    drift_min_rows: int = Field(
        default=500,
        ge=1,
        description="Rows per reference chunk of the label-free estimate's band (the monitor's smallest "
        "judged window; the same variable as the monitor's).",
    )
    gate_min_recent_rows: int = Field(
        default=200, ge=1, description="Recent labelled rows needed before they decide the gate."
    )
