"""Rolling the champion back to the previous version, recorded in the registry and in ``model_events``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mlflow.tracking import MlflowClient

from services.common.database import connect
from services.common.events import record_event
from services.common.registry import move_aliases, rollback, tag_decision
from services.common.vocabulary import GateDecision, ModelEvent, Role


def roll_back(
    client: MlflowClient,
    database_url: str,
    *,
    actor: str,
    reasons: Sequence[str],
    figures: Mapping[str, Any] | None = None,
) -> tuple[int, int]:
    """Champion ← previous; the bad version is tagged ``rolled_back``. Returns (bad, restored).

    The event row commits only when the aliases have moved; when the commit fails the aliases are
    moved back, so the registry and the event log never disagree.
    """
    with connect(database_url) as conn:
        bad, good = rollback(client, dry_run=True)
        record_event(
            conn,
            ModelEvent.ROLLED_BACK,
            good,
            actor=actor,
            previous_version=bad,
            reasons=reasons,
            figures=figures,
        )
        rollback(client)
        try:
            conn.commit()
        except Exception:
            move_aliases(client, {Role.CHAMPION: bad, Role.PREVIOUS: good})
            raise
    tag_decision(client, bad, GateDecision.ROLLED_BACK, list(reasons))
    return bad, good
