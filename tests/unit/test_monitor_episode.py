"""The episode a rollback undoes, as pure functions of ``model_events`` rows: a table of cases."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from services.common.vocabulary import ModelEvent
from services.monitor.episode import EventRow, reigns, restore_index

T0 = datetime(2026, 1, 1, tzinfo=UTC)
P, F, R = ModelEvent.PROMOTED, ModelEvent.FORCED, ModelEvent.ROLLED_BACK


def history(*steps: tuple[ModelEvent, int, int | None]) -> list[EventRow]:
    """Events an hour apart, oldest first."""
    return [EventRow(event, v, prev, T0 + timedelta(hours=i)) for i, (event, v, prev) in enumerate(steps)]


@dataclass(frozen=True)
class Case:
    events: list[EventRow]
    champion: int
    chain: list[int]  # versions, newest first
    vouched: list[bool]  # what the tests found (the first is the champion's, never read)
    restores: int | None  # None: nothing to test


CASES = {
    "the first champion has nothing to be judged against": Case(history((P, 1, None)), 1, [1], [False], None),
    "one promotion: the predecessor is restored": Case(
        history((P, 1, None), (P, 2, 1)), 2, [2, 1], [False, True], 1
    ),
    "a twin then a bad model: the model before the episode, two versions back": Case(
        history((P, 1, None), (P, 2, 1), (F, 3, 2)), 3, [3, 2, 1], [False, False, True], 1
    ),
    "the predecessor vouched for by its own test is restored": Case(
        history((P, 1, None), (P, 2, 1), (F, 3, 2)), 3, [3, 2, 1], [False, True, True], 2
    ),
    "a restored model ends the chain: it was the good one": Case(
        history((P, 1, None), (P, 2, 1), (R, 1, 2), (P, 3, 1)), 3, [3, 1], [False, True], 1
    ),
    "a champion restored by a rollback is not tested": Case(
        history((P, 1, None), (P, 2, 1), (R, 1, 2)), 1, [1], [False], None
    ),
    "a predecessor from before the event log is taken as vouched": Case(
        history((F, 2, 1)), 2, [2, 1], [False, True], 1
    ),
    "a version that served twice is judged on its latest reign": Case(
        history((P, 1, None), (P, 2, 1), (P, 3, 2), (R, 2, 3), (P, 4, 2)), 4, [4, 2], [False, True], 2
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_episodes(name: str) -> None:
    case = CASES[name]
    chain = reigns(list(reversed(case.events)), case.champion)  # any order
    assert [reign.version for reign in chain] == case.chain
    if case.restores is None:
        assert chain[0].vouched_without_test
        return
    assert not chain[0].vouched_without_test
    assert chain[-1].vouched_without_test  # the chain ends at a reign vouched for without a test
    assert chain[restore_index(chain, case.vouched)].version == case.restores


def test_reigns_end_where_the_next_began() -> None:
    chain = reigns(history((P, 1, None), (P, 2, 1), (F, 3, 2)), 3)
    assert chain[0].end is None
    assert [reign.end for reign in chain[1:]] == [reign.start for reign in chain[:-1]]


def test_a_long_chain_is_cut_at_the_depth_and_its_oldest_restored() -> None:
    events = history((P, 1, None), *[(P, v, v - 1) for v in range(2, 12)])
    chain = reigns(events, 11, depth=4)
    assert [reign.version for reign in chain] == [11, 10, 9, 8]
    assert chain[restore_index(chain, [False] * 4)].version == 8


def test_restore_needs_a_chain() -> None:
    with pytest.raises(ValueError, match="at least one before it"):
        restore_index(reigns(history((P, 1, None)), 1), [True])
