"""What the OpenAPI document says about the bodies: built from the shared feature schema.

Requests are parsed by hand (:mod:`services.inference.bodies`); these schemas document the same
rules, with examples, so clients and schemathesis see exactly what the server accepts.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from services.common.features import EXAMPLE, FEATURES
from services.inference.bodies import MAX_PRICE_USD


def row_schema() -> dict[str, Any]:
    """One house: the 8 features, each a number within the schema's range, nothing else."""
    return {
        "title": "House",
        "type": "object",
        "properties": {
            f.name: {
                "type": "number",
                "minimum": f.minimum,
                "maximum": f.maximum,
                "description": f"{f.description} ({f.unit})",
                "example": f.example,
            }
            for f in FEATURES
        },
        "required": [f.name for f in FEATURES],
        "additionalProperties": False,
    }


def predict_body(max_batch: int) -> dict[str, Any]:
    """The ``requestBody`` of POST /predict: one house, or up to ``max_batch`` of them."""
    batch = {
        "title": "Batch",
        "type": "object",
        "properties": {
            "instances": {"type": "array", "items": row_schema(), "minItems": 1, "maxItems": max_batch}
        },
        "required": ["instances"],
        "additionalProperties": False,
    }
    return {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"oneOf": [row_schema(), batch]},
                "examples": {
                    "one house": {"value": EXAMPLE},
                    "a batch": {"value": {"instances": [EXAMPLE, {**EXAMPLE, "MedInc": 3.0}]}},
                },
            }
        },
    }


def feedback_body() -> dict[str, Any]:
    """The ``requestBody`` of POST /feedback."""
    return {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "title": "Feedback",
                    "type": "object",
                    "properties": {
                        "prediction_id": {"type": "string", "format": "uuid"},
                        "actual_price_usd": {"type": "number", "minimum": 0, "maximum": MAX_PRICE_USD},
                    },
                    "required": ["prediction_id", "actual_price_usd"],
                    "additionalProperties": False,
                },
                "example": {
                    "prediction_id": "0b0e6a3c-5d7e-4f6a-9c1b-2d3e4f5a6b7c",
                    "actual_price_usd": 452600.0,
                },
            }
        },
    }


class Prediction(BaseModel):
    predicted_price_usd: float = Field(description="Predicted median house value, USD.", examples=[452600.0])
    prediction_id: str = Field(description="Send it back with the true price to POST /feedback.")
    model_version: int = Field(description="The registry version that scored this row.")


class Predictions(BaseModel):
    predictions: list[Prediction]


class Error(BaseModel):
    detail: str = Field(description="What is wrong, in one sentence.")
    problems: list[str] = Field(default_factory=list, description="Each field and the rule it breaks.")


class FeedbackRecorded(BaseModel):
    prediction_id: str
    actual_price_usd: float
    status: str = Field(description="`recorded`, or `already recorded` for a repeated POST.")


class ModelInfo(BaseModel):
    version: int
    run_id: str
    runtime: str = Field(
        description="`treelite` when the version's compiled trees serve, `scikit-learn` for its pipeline."
    )
    loaded_at: str
    metrics: dict[str, float]
    tags: dict[str, str]
    challenger: dict[str, Any] | None = None
    registry_error: str | None = Field(default=None, description="The last registry failure, if it persists.")
    refused: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Versions an alias points at that were refused, not loaded (role, version, reason, at): "
        "unsigned, signed by an unknown key, badly signed, or a file altered after signing.",
    )
    last_poll_at: str | None = None


class Status(BaseModel):
    status: str
    model_version: int | None = None


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for error statuses, all of the :class:`Error` shape."""
    return {status: {"model": Error} for status in statuses}
