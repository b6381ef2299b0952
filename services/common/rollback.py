"""Rolling the champion back, recorded in the registry and in ``model_events``.

The monitor restores the model that served before the episode (``to``: the last champion its own live
test vouched for, however many versions ago; see ``services.monitor.episode``); ``housing rollback``
without a version restores ``previous``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mlflow.tracking import MlflowClient

from services.common.database import connect
from services.common.events import record_event
from services.common.registry import current_aliases, move_aliases, rollback, tag_decision
from services.common.vocabulary import GateDecision, ModelEvent, Role


def roll_back(
    client: MlflowClient,
    database_url: str,
    *,
    actor: str,
    reasons: Sequence[str],
    figures: Mapping[str, Any] | None = None,
    to: int | None = None,
    retired: Sequence[int] = (),
) -> tuple[int, int]:
    """Champion ← ``to`` (default: ``previous``); the bad version and ``retired`` ones (the rest of the
    episode) are tagged ``rolled_back``. Returns (bad, restored).

    The event row commits only when the aliases have moved; when the commit fails the aliases are
    moved back, so the registry and the event log never disagree.
    """
    with connect(database_url) as conn:
        previous = current_aliases(client)[Role.PREVIOUS]
        bad, good = rollback(client, to=to, dry_run=True)
        record_event(
            conn,
            ModelEvent.ROLLED_BACK,
            good,
            actor=actor,
            previous_version=bad,
            reasons=reasons,
            figures=figures,
        )
        rollback(client, to=to)
        try:
            conn.commit()
        except Exception:
            move_aliases(client, {Role.CHAMPION: bad, Role.PREVIOUS: previous})
            raise
    for version in (bad, *[v for v in retired if v not in (bad, good)]):
        tag_decision(client, version, GateDecision.ROLLED_BACK, list(reasons))
    return bad, good
