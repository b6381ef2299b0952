"""The shared vocabulary agrees with the schema that stores it and with the monitor's report contract."""

from __future__ import annotations

import re
from pathlib import Path

from services.common.vocabulary import Action, ModelEvent, Role, RunStatus
from services.monitor import report

MIGRATIONS = Path(__file__).resolve().parents[2] / "services" / "common" / "migrations"


def _checked_values(column: str) -> set[str]:
    """The values a ``CHECK (column IN (...))`` of the migrations allows."""
    text = "\n".join(path.read_text(encoding="utf-8") for path in sorted(MIGRATIONS.glob("*.sql")))
    found = re.findall(rf"CHECK \({column} IN \(([^)]*)\)\)", text)
    assert found, f"no CHECK on {column} in the migrations"
    return set(re.findall(r"'([^']+)'", found[-1]))


def test_model_events_allow_exactly_the_model_event_names() -> None:
    assert _checked_values("event") == set(ModelEvent)


def test_predictions_roles_are_roles_that_serve() -> None:
    assert _checked_values("role") == {Role.CHAMPION, Role.CHALLENGER}


def test_members_are_their_strings() -> None:
    assert Role.CHAMPION == "champion" and f"{Role.CHAMPION}" == "champion"
    assert str(Action.TRAINER_LAUNCHED) == "trainer_launched"


def test_the_report_contract_names_every_stored_status_and_action() -> None:
    contract = report.__doc__ or ""
    for value in [*report.STORED_STATUSES, *Action]:
        assert f"``{value}``" in contract, value
    assert RunStatus.LOCKED not in report.STORED_STATUSES
