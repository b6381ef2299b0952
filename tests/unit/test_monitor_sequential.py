"""The rollback's sequential test as a pure function of paired errors: a table of cases."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest

from services.common.vocabulary import RollbackState
from services.monitor.sequential import SequentialLimits, describe, msprt

LIMITS = SequentialLimits(alpha=0.01, min_effect=0.10, horizon=2000, min_rows=200)


def errors(rows: int, effect: float, spread: float = 0.15, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Target errors around MAE 0.3; the champion's differ per row by ``effect`` on average."""
    rng = np.random.default_rng(seed)
    target = np.abs(rng.laplace(0.0, 0.3, rows))
    return target + effect + spread * rng.standard_normal(rows), target


@dataclass(frozen=True)
class Case:
    rows: int
    effect: float
    spread: float
    state: RollbackState


CASES = {
    "too few labels: waiting, nothing computed": Case(199, 0.5, 0.15, RollbackState.WAITING),
    "a champion far worse: worse at the first look": Case(200, 0.3, 0.15, RollbackState.WORSE),
    "a champion 20 % worse: worse": Case(2000, 0.06, 0.15, RollbackState.WORSE),
    "a twin: not worse by the minimum effect": Case(2000, 0.0, 0.15, RollbackState.NOT_WORSE),
    "a better champion: not worse": Case(600, -0.05, 0.15, RollbackState.NOT_WORSE),
    "noisy and unclear before the horizon: open": Case(600, 0.015, 0.8, RollbackState.OPEN),
    "noisy and unclear at the horizon: inconclusive": Case(2000, 0.015, 0.8, RollbackState.INCONCLUSIVE),
}


@pytest.mark.parametrize("name", list(CASES))
def test_states(name: str) -> None:
    case = CASES[name]
    champion, target = errors(case.rows, case.effect, case.spread)
    test = msprt(champion, target, LIMITS)
    assert test.state is case.state, test
    assert test.rows == min(case.rows, LIMITS.horizon)
    if case.state is RollbackState.WAITING:
        assert test.effect is None and test.p_value is None and test.decided_at is None
        return
    assert test.lower is not None and test.upper is not None and test.effect is not None
    assert test.p_value is not None and 0 < test.p_value <= 1
    assert test.lower <= test.upper
    assert (test.p_value <= LIMITS.alpha) == (case.state is RollbackState.WORSE)
    assert (test.decided_at is None) == (case.state is RollbackState.OPEN)
    assert all(math.isfinite(value) for value in test.as_dict().values() if isinstance(value, float))


def test_identical_models_are_not_worse_and_never_divide_by_zero() -> None:
    target = np.full(500, 0.3)
    test = msprt(target, target, LIMITS)
    assert test.state is RollbackState.NOT_WORSE
    assert test.effect == 0 and test.p_value == 1


def test_rows_beyond_the_horizon_are_not_read() -> None:
    champion, target = errors(3000, 0.0, 0.8)
    champion[LIMITS.horizon :] += 10  # a disaster after the horizon changes nothing
    assert msprt(champion, target, LIMITS) == msprt(
        champion[: LIMITS.horizon], target[: LIMITS.horizon], LIMITS
    )


def test_the_earliest_decision_stands_when_later_rows_disagree() -> None:
    champion, target = errors(2000, 0.3, 0.15)
    first = msprt(champion[:300], target[:300], LIMITS)
    champion[300:] = target[300:]  # later the champion is as good: the rollback test already spoke
    later = msprt(champion, target, LIMITS)
    assert first.state is later.state is RollbackState.WORSE
    assert first.decided_at == later.decided_at


def test_rows_whose_error_is_not_finite_are_dropped() -> None:
    champion, target = errors(400, 0.3)
    champion[:10] = np.nan
    test = msprt(champion, target, LIMITS)
    assert test.rows == 390 and test.state is RollbackState.WORSE


def test_mismatched_errors_are_refused() -> None:
    with pytest.raises(ValueError, match="one length"):
        msprt(np.zeros(3), np.zeros(4), LIMITS)


def test_limits_refuse_nonsense_naming_the_settings() -> None:
    with pytest.raises(ValueError, match="ROLLBACK_ALPHA"):
        SequentialLimits(alpha=1.5)
    with pytest.raises(ValueError, match="ROLLBACK_HORIZON_LABELS"):
        SequentialLimits(horizon=100, min_rows=200)


def test_the_reason_states_n_the_p_value_and_the_effect_with_its_interval() -> None:
    champion, target = errors(600, 0.3)
    test = msprt(champion, target, LIMITS)
    reason = describe(test, 3, 1, LIMITS)
    assert reason.startswith("v3 is worse than v1: roll back")
    assert f"n={test.decided_at}" in reason and "always-valid p=" in reason and "99% interval [" in reason
    waiting = describe(msprt(champion[:50], target[:50], LIMITS), 3, 1, LIMITS)
    assert "50 of 200 labelled rows" in waiting
