"""Healing statistics and the flaky lifecycle: pure functions."""

from __future__ import annotations

import pytest

from com.analysis.healing import DEFAULT_STRATEGIES, recommend, success_rates
from com.analysis.lifecycle import (STATUSES, TRANSITIONS, LifecycleState, allowed, on_detection, quarantine, replay,
                                    transition)
from com.model.errors import ComError


def attempts(strategy, category, successes, failures, test="t_other"):
    return ([{"test_id": test, "strategy": strategy, "outcome": "success", "category": category, "ts": 1}] * successes
            + [{"test_id": test, "strategy": strategy, "outcome": "failure", "category": category, "ts": 2}] * failures)


HISTORY = (attempts("increase_timeout", "timeout", 9, 1) + attempts("lucky_guess", "timeout", 1, 0)
           + attempts("retry_with_backoff", "timeout", 0, 3) + attempts("retry_with_backoff", "network", 6, 2)
           + attempts("mock_network", "network", 3, 1))


def test_success_rates_by_strategy_and_category_are_not_zero():
    stats = success_rates(HISTORY)
    assert stats["overall"].attempts == 26 and stats["overall"].successes == 19
    assert stats["by_strategy"]["increase_timeout"].success_rate == pytest.approx(0.9)
    assert stats["by_strategy"]["retry_with_backoff"].to_json() == {"attempts": 11, "successes": 6,
                                                                    "success_rate": round(6 / 11, 4)}
    assert stats["by_category"]["timeout"].success_rate == pytest.approx(10 / 14)
    assert stats["by_category"]["network"].success_rate == pytest.approx(9 / 12)
    assert stats["by_category_strategy"]["network"]["mock_network"].success_rate == pytest.approx(0.75)
    assert all(r.success_rate > 0 for r in stats["by_strategy"].values() if r.successes)


def test_outcomes_are_checked():
    with pytest.raises(ComError, match="attempt 0: outcome"):
        success_rates([{"strategy": "s", "outcome": "maybe"}])
    with pytest.raises(ComError, match="strategy"):
        success_rates([{"outcome": "success"}])
    assert success_rates([{"strategy": "s", "outcome": "Succeeded"}])["overall"].successes == 1
    assert success_rates([])["overall"].success_rate is None


def test_recommendations_rank_by_smoothed_rate():
    recs = recommend(HISTORY, "timeout")
    names = [r.strategy for r in recs]
    # 9 of 10 beats one lucky success (raw 100 %), which beats a strategy that never worked for timeouts.
    assert names.index("increase_timeout") < names.index("lucky_guess") < names.index("retry_with_backoff")
    assert recs[0].strategy == "increase_timeout" and recs[0].attempts == 10 and recs[0].successes == 9
    assert all(0 < r.score < 1 for r in recs)
    # Defaults never tried start from the overall rate, not from 0.
    untried = [r for r in recs if r.attempts_overall == 0]
    assert {r.strategy for r in untried} >= set(DEFAULT_STRATEGIES["timeout"]) - {"increase_timeout",
                                                                                   "retry_with_backoff"}
    assert all(r.score == pytest.approx(20 / 28) for r in untried)
    # A strategy that did well elsewhere but was never tried on this category borrows its overall record.
    net = {r.strategy: r for r in recommend(HISTORY, "element_not_found")}
    assert net["mock_network"].attempts == 0 and net["mock_network"].score > net["wait_for_selector"].score * 0.9


def test_a_strategy_that_failed_on_this_test_goes_last():
    history = HISTORY + attempts("increase_timeout", "timeout", 0, 1, test="t")
    recs = recommend(history, "timeout", test_id="t")
    assert recs[-1].strategy == "increase_timeout" and recs[-1].tried_on_test == 1
    assert recommend(history, "timeout", limit=2)[0].strategy == "increase_timeout"
    with pytest.raises(ComError):
        recommend(history, "timeout", strength=0)


def test_recommend_without_any_history():
    recs = recommend([], "network")
    assert [r.strategy for r in recs] == sorted(DEFAULT_STRATEGIES["network"])
    assert all(r.score == pytest.approx(0.5) for r in recs)


# -- lifecycle ------------------------------------------------------------------------------------------------------
def test_transitions_table_covers_every_status():
    assert set(TRANSITIONS) == {None, *STATUSES}
    assert all(set(v) <= set(STATUSES) for v in TRANSITIONS.values())
    assert allowed("detected", "investigating") and not allowed("healed", "quarantined")
    assert not allowed(None, "healed")


def test_a_flaky_test_through_its_life():
    s = transition(LifecycleState(), "detected", at_us=1)
    s = transition(s, "quarantined", at_us=2, reason="blocks the release")
    assert s.quarantined and s.quarantined_since_us == 2 and s.open
    s = transition(s, "investigating", at_us=3)
    assert s.quarantined and s.quarantined_since_us == 2  # still out of CI's way while investigated
    s = transition(s, "healing_attempted", at_us=4)
    s = transition(s, "healing_attempted", at_us=5)  # a second attempt
    assert s.quarantined
    s = transition(s, "healed", at_us=6)
    assert not s.quarantined and not s.open and s.status == "healed"
    assert on_detection(s, flaky=True, at_us=7).status == "detected"  # flaky again: reopened
    assert on_detection(s, flaky=False) == s


def test_disallowed_changes_name_the_allowed_ones():
    s = transition(LifecycleState(), "detected")
    s = transition(s, "healed")
    with pytest.raises(ComError, match="cannot change a test from healed to quarantined .allowed: detected, investigating"):
        transition(s, "quarantined")
    with pytest.raises(ComError, match="unknown flaky status"):
        transition(s, "fixed")


def test_a_test_with_no_status_changes_as_a_detected_one():
    s = transition(LifecycleState(), "healed", at_us=5, reason="fixed the wait")
    assert (s.status, s.since_us, s.reason, s.quarantined) == ("healed", 5, "fixed the wait", False)
    assert replay([{"status": "healed", "ts_us": 1}]).state.status == "healed"
    # An attempt's implied change where the lifecycle does not allow it changes nothing, quietly.
    fp = transition(LifecycleState(), "false_positive")
    out = replay([{"status": "false_positive", "ts_us": 1}, {"status": "healed", "ts_us": 2, "implied": True}])
    assert out.state.status == fp.status and out.rejected == []


def test_false_positive_leaves_quarantine_and_detection_respects_it():
    s = transition(transition(LifecycleState(), "detected"), "quarantined")
    s = transition(s, "false_positive", reason="a broken CI runner")
    assert not s.quarantined and not s.open
    assert on_detection(s, flaky=True) == s  # a person's verdict stays until they change it
    assert on_detection(LifecycleState(), flaky=True).status == "detected"


def test_replay_sorts_by_time_and_skips_what_a_merge_made_invalid():
    changes = [{"status": "quarantined", "ts_us": 3}, {"status": "detected", "ts_us": 1},
               {"status": "healed", "ts_us": 4}, {"status": "quarantined", "ts_us": 5}]
    out = replay(changes)
    assert out.state.status == "healed" and not out.state.quarantined
    assert out.rejected == [{"status": "quarantined", "ts_us": 5}]
    states = {"a": replay(changes[:3]).state, "b": out.state,
              "c": replay([{"status": "quarantined", "ts_us": 1}, {"status": "investigating", "ts_us": 2}]).state}
    assert quarantine(states) == ["c"]
