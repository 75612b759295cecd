"""Roll-up facts: on a generated history recorded in a real memory (with a flaky registry kept beside it) the
facts read through the test-results and registry views equal what a plain count of the journal's events gives;
on small hand-made columns each definition (outcomes, flaky evidence, fixes, regressions, the registry) holds."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from rollup_helpers import FAILING, columns_from_events, journal_events, recorded as record_history
from rollup_helpers import reference_daily as _reference_daily

from com.analysis import rollup
from com.analysis.rollup import Registry
from com.model.errors import ComError
from com.model.result import ResultColumns
from com.model.text import signature
from com.ops import rollup as ops


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """(events of the journal, result columns through the view, test tags, registry, memory)."""
    root = tmp_path_factory.mktemp("rollup")
    _, memory = record_history(root)
    events = journal_events(memory)
    snapshot, cols, registry = ops._read(memory, None, None)
    tags = memory.results.test_tags(snapshot)
    results = [e for e in events if e["type"] == "test_result"]
    return results, cols, tags, registry, events, memory


def _day(ts: str) -> str:
    return ts[:10]


def test_daily_facts_match_a_plain_count_of_the_journal(recorded):
    results, cols, _, registry, events, _ = recorded
    days = sorted({_day(e["ts"]) for e in results})
    assert len(days) >= 8
    seen = defaultdict(int)
    for day in days:
        facts = rollup.daily_facts(cols, day, registry=registry)
        ref = _reference_daily(events, day)
        assert facts["period"]["label"] == day
        assert facts["runs"] == ref["runs"]
        assert facts["commits"] == ref["commits"]
        assert facts["tests"] == ref["tests"]
        assert {k: v for k, v in facts["results"].items() if v and k != "total"} == ref["results"]
        assert facts["results"]["total"] == sum(ref["results"].values())
        assert facts["pass_rate"] == ref["pass_rate"]
        assert facts["previous"]["pass_rate"] == ref["previous_pass_rate"]
        for key in ("new_failures", "still_failing", "flaky_failures", "fixed"):
            got = sorted(item["test_id"] for item in facts[key]["items"])
            assert facts[key]["count"] == len(ref[key]), (day, key)
            assert got == ref[key][:20] or set(got) <= set(ref[key]), (day, key)
            seen[key] += bool(ref[key])
        for sig in facts["top_signatures"]:
            assert sig["count"] == ref["signatures"][sig["signature"]]
        assert [s["count"] for s in facts["top_signatures"]] == sorted(ref["signatures"].values(), reverse=True)[:5]
        assert set(ref["marked_detected"]) <= set(facts["registry"]["became_flaky"]["items"])
        assert facts["healing"]["attempts"] == ref["healing_attempts"]
        assert facts["registry"]["healed"]["items"] == ref["healed"]
        seen["registry"] += bool(ref["marked_detected"]) + bool(ref["healed"])
        json.dumps(facts, allow_nan=False)  # serialisable, no NaN
    # The history exercises every list at least once, so the comparison above means something.
    assert all(seen[k] for k in ("new_failures", "still_failing", "flaky_failures", "fixed", "registry")), dict(seen)


def test_the_view_hands_over_exactly_the_journals_results(recorded):
    """Facts from the view's columns equal facts from columns built from the journal's own events."""
    results, cols, _, registry, _, _ = recorded
    direct = columns_from_events(results)
    for day in sorted({_day(e["ts"]) for e in results})[::3]:
        a = rollup.daily_facts(cols, day, registry=registry)
        b = rollup.daily_facts(direct, day, registry=registry)
        assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True), day


def test_weekly_trend_and_totals_equal_the_daily_facts(recorded):
    events, cols, _, registry, _, _ = recorded
    first = min(_day(e["ts"]) for e in events)
    week = rollup.weekly_facts(cols, first, registry=registry)
    assert week["kind"] == "weekly" and len(week["trend"]) == 7
    dailies = [rollup.daily_facts(cols, row["date"], registry=registry) for row in week["trend"]]
    for row, d in zip(week["trend"], dailies):
        assert (row["runs"], row["results"], row["pass_rate"]) == (d["runs"], d["results"]["total"], d["pass_rate"])
        assert row["failing"] == d["outcomes"]["failing"]
    assert week["results"]["total"] == sum(d["results"]["total"] for d in dailies)
    assert week["runs"] == sum(d["runs"] for d in dailies)  # a run lies within one day here
    assert week["healing"]["attempts"] == sum(d["healing"]["attempts"] for d in dailies)
    fail_days = defaultdict(set)
    for e in events:
        if e["data"]["status"] in FAILING and first <= _day(e["ts"]) < week["period"]["end"][:10]:
            fail_days[e["data"]["test_id"]].add(_day(e["ts"]))
    recurring = sorted(t for t, d in fail_days.items() if len(d) >= 2)
    assert week["recurring"]["tests"]["count"] == len(recurring)


def test_pattern_facts_of_a_test_match_its_events(recorded):
    events, cols, _, registry, _, _ = recorded
    failures = defaultdict(list)
    for e in events:
        if e["data"]["status"] in FAILING:
            failures[e["data"]["test_id"]].append(e["ts"])
    test_id = max(sorted(failures), key=lambda t: len(failures[t]))
    last_day = max(_day(e["ts"]) for e in events)
    facts = rollup.pattern_facts(cols, until=last_day, days=60, test=test_id, registry=registry)
    times = sorted(failures[test_id])
    assert facts["occurrences"] == len(times)
    assert facts["first_seen"] == times[0][:19] + "Z" and facts["last_seen"] == times[-1][:19] + "Z"
    assert facts["affected_tests"]["items"][0]["test_id"] == test_id
    assert facts["results"] == sum(1 for e in events if e["data"]["test_id"] == test_id)
    assert sum(d["occurrences"] for d in facts["by_day"]) == len(times)
    assert facts["hypothesis"]["cause"] in ("flaky", "regression", "mixed", "shared_cause", "environment", "unknown")


def test_pattern_by_signature_and_by_tag(recorded):
    events, cols, tags, registry, _, _ = recorded
    last_day = max(_day(e["ts"]) for e in events)
    timeouts = [e for e in events if e["data"]["status"] in FAILING
                and "timeout" in (signature(e["data"]) or "").lower()]
    facts = rollup.pattern_facts(cols, until=last_day, days=60, signature="TIMEOUT", registry=registry)
    assert facts["occurrences"] == len(timeouts) > 0
    marked = defaultdict(set)  # pytest markers recorded as a property, and event tags
    for e in events:
        props = e["data"].get("properties") or {}
        marked[e["data"]["test_id"]].update(m for m in str(props.get("markers", "")).split(",") if m)
        marked[e["data"]["test_id"]].update(e["tags"])
    assert {t: v for t, v in tags.items() if v} == {t: v for t, v in marked.items() if v}
    occurrences = 0
    for tag in ("smoke", "slow"):
        tagged = rollup.pattern_facts(cols, until=last_day, days=60, tag=tag, test_tags=tags)
        assert tagged["occurrences"] == sum(1 for e in events if tag in marked[e["data"]["test_id"]]
                                            and e["data"]["status"] in FAILING), tag
        occurrences += tagged["occurrences"]
    assert occurrences > 0
    with pytest.raises(ComError, match="exactly one"):
        rollup.pattern_facts(cols, until=last_day, test="a", tag="b")


def test_facts_are_deterministic(recorded):
    _, cols, _, registry, _, _ = recorded
    day = rollup.day_of(int(np.median(cols.ts_us)))
    a = json.dumps(rollup.daily_facts(cols, day, registry=registry), sort_keys=True)
    perm = np.random.default_rng(3).permutation(len(cols.test))  # rows "in no particular order"
    shuffled = cols.take(perm)
    assert json.dumps(rollup.daily_facts(shuffled, day, registry=registry), sort_keys=True) == a


# -- definitions on hand-made columns -------------------------------------------------------------------
T0 = datetime(2026, 3, 2, 9, tzinfo=timezone.utc)


def _cols(rows: list[tuple]) -> ResultColumns:
    """rows: (test, hours after T0, status, attempt, duration_ms, run, commit, signature or None)."""
    tests, runs, commits, sigs = {}, {}, {}, {}
    out = defaultdict(list)
    for test, hours, status, attempt, ms, run, commit, sig in rows:
        out["test"].append(tests.setdefault(test, len(tests)))
        out["ts"].append(rollup.to_us(T0 + timedelta(hours=hours)))
        out["status"].append(rollup.STATUS_NAMES.index(status))
        out["attempt"].append(attempt)
        out["ms"].append(np.nan if ms is None else ms)
        out["run"].append(runs.setdefault(run, len(runs)))
        out["commit"].append(commits.setdefault(commit, len(commits)) if commit else -1)
        out["sig"].append(sigs.setdefault(sig, len(sigs)) if sig else -1)
    return ResultColumns(np.array(out["test"], np.int32), list(tests), np.array(out["ts"], np.int64),
                         np.array(out["status"], np.int8), np.array(out["attempt"], np.int16),
                         np.array(out["ms"], np.float64), np.array(out["run"], np.int32), list(runs),
                         np.array(out["commit"], np.int32), list(commits), np.array(out["sig"], np.int32), list(sigs))


def test_a_retry_that_passes_is_a_passing_outcome_and_flaky_evidence():
    cols = _cols([
        ("t::a", 0, "failed", 1, 10, "r1", "c1", "Timeout"),
        ("t::a", 0.1, "passed", 2, 10, "r1", "c1", None),
        ("t::b", 0, "passed", 1, 10, "r1", "c1", None),
    ])
    f = rollup.daily_facts(cols, "2026-03-02")
    assert f["results"]["total"] == 3 and f["results"]["failed"] == 1
    assert f["outcomes"] == {"total": 2, "executed": 2, "failing": 0, "retried": 1}
    assert f["pass_rate"] == 1.0
    assert f["flaky_failures"]["count"] == 1 and f["flaky_failures"]["items"][0]["evidence"] == ["pass_on_retry"]
    assert f["new_failures"]["count"] == 0


def test_a_broken_test_is_new_then_still_failing_then_fixed_never_flaky():
    rows = []
    for day, commit, status in ((0, "c1", "passed"), (1, "c2", "failed"), (2, "c2", "failed"), (3, "c3", "passed")):
        for k in range(2):
            rows.append(("t::broken", 24 * day + k, status, 1, 5, f"r{day}{k}", commit,
                         "AssertionError: assert 1 == 2" if status == "failed" else None))
    cols = _cols(rows)
    days = [rollup.daily_facts(cols, (T0 + timedelta(days=d)).date()) for d in range(4)]
    assert [d["new_failures"]["count"] for d in days] == [0, 1, 0, 0]
    assert [d["still_failing"]["count"] for d in days] == [0, 0, 1, 0]
    assert [d["fixed"]["count"] for d in days] == [0, 0, 0, 1]
    assert all(d["flaky_failures"]["count"] == 0 for d in days)
    assert days[1]["new_failures"]["items"][0]["commit"] == "c2"
    assert days[1]["pass_rate_change_pts"] == -100.0 and days[3]["pass_rate_change_pts"] == 100.0
    pattern = rollup.pattern_facts(cols, until=(T0 + timedelta(days=3)).date(), days=7, test="t::broken")
    assert pattern["hypothesis"]["cause"] == "regression" and pattern["hypothesis"]["commit"] == "c2"
    assert pattern["evidence"]["failing_streaks"][0]["fixed_by"] == "c3"


def test_pass_and_fail_on_one_commit_is_flaky_and_the_registry_counts_too():
    cols = _cols([
        ("t::f", 0, "passed", 1, 5, "r1", "c1", None),
        ("t::f", 1, "failed", 1, 5, "r2", "c1", "Failed: Timeout >30.0s"),
        ("t::g", 1, "failed", 1, 5, "r2", "c1", "element not found"),
    ])
    changes = [{"test_id": "t::g", "ts": "2026-03-02T08:00:00Z", "status": "detected"}]
    attempts = [{"test_id": "t::g", "ts": "2026-03-02T12:00:00Z", "strategy": "stabilise_selector",
                 "outcome": "failure"}]
    f = rollup.daily_facts(cols, "2026-03-02", registry=Registry(changes, attempts))
    ev = {i["test_id"]: i["evidence"] for i in f["flaky_failures"]["items"]}
    assert ev == {"t::f": ["same_commit"], "t::g": ["registry"]}
    assert f["registry"]["became_flaky"]["items"] == ["t::g"]
    assert f["healing"]["attempts"] == 1 and f["healing"]["success_rate"] == 0.0
    assert {s["category"] for s in f["top_signatures"]} == {"timeout", "selector"}
    pattern = rollup.pattern_facts(cols, until="2026-03-02", days=1, test="t::f")
    assert pattern["hypothesis"]["cause"] == "flaky"


def test_duration_regression_needs_a_real_slowdown():
    rows = [("t::slow", 24 * d + k, "passed", 1, 100 + k, f"r{d}{k}", "c1", None) for d in range(7) for k in range(2)]
    rows += [("t::slow", 24 * 7 + k, "passed", 1, 400, f"r7{k}", "c1", None) for k in range(2)]
    rows += [("t::noisy", 24 * d + k, "passed", 1, 100 + 10 * d, f"r{d}{k}", "c1", None) for d in range(8) for k in range(2)]
    f = rollup.daily_facts(_cols(rows), (T0 + timedelta(days=7)).date())
    assert [r["test_id"] for r in f["duration_regressions"]] == ["t::slow"]
    assert f["duration_regressions"][0]["ratio"] == 3.98 and f["slowest"][0]["test_id"] == "t::slow"


def test_empty_columns_and_bad_input():
    empty = _cols([])
    f = rollup.daily_facts(empty, "2026-03-02")
    assert f["runs"] == 0 and f["pass_rate"] is None and f["pass_rate_change_pts"] is None
    assert rollup.iso_week("2026-W02")[0].isoformat() == "2026-01-05"
    assert rollup.weekly_facts(empty, "2026-01-05")["period"]["label"] == "2026-W02"
    with pytest.raises(ComError, match="ISO week"):
        rollup.iso_week("2026-13")
    with pytest.raises(ComError, match="not a date"):
        rollup.daily_facts(empty, "yesterday")
    with pytest.raises(ComError, match="outcome must be"):
        Registry(attempts=[{"test_id": "a", "ts": "2026-03-02", "outcome": "ok"}])


def test_the_registry_follows_the_lifecycle_and_committed_detections():
    cols = _cols([("t::a", 24 * d, "failed", 1, 5, f"r{d}", f"c{d}", "Timeout") for d in range(4)]
                 + [("t::b", 24 * d, "passed", 1, 5, f"r{d}", f"c{d}", None) for d in range(4)])
    day = lambda d: (T0 + timedelta(days=d)).date().isoformat()  # noqa: E731
    registry = Registry(
        changes=[{"test_id": "t::a", "ts": day(0) + "T10:00:00Z", "status": "quarantined"},
                 # not allowed from quarantined (a merge brought it in): counts for nothing
                 {"test_id": "t::a", "ts": day(0) + "T11:00:00Z", "status": "detected"}],
        attempts=[{"test_id": "t::a", "ts": day(1) + "T10:00:00Z", "strategy": "mock_network", "outcome": "success"}],
        detections=[{"ts": day(2) + "T20:00:00Z", "flaky": [{"test_id": "t::a"}, {"test_id": "t::b"}]},
                    {"ts": day(3) + "T20:00:00Z", "flaky": ["t::a"]}])
    facts = [rollup.daily_facts(cols, day(d), registry=registry) for d in range(4)]
    reg = [f["registry"] for f in facts]
    assert reg[0]["quarantined"]["items"] == ["t::a"] and reg[0]["became_flaky"]["count"] == 0
    assert reg[0]["changes"] == 1  # the refused change is not one
    assert reg[1]["healed"]["items"] == ["t::a"] and facts[1]["healing"]["succeeded"] == 1
    assert reg[2]["became_flaky"]["items"] == ["t::a", "t::b"] and reg[2]["detections"] == 1
    assert reg[3]["no_longer_flaky"]["items"] == ["t::b"] and reg[3]["became_flaky"]["count"] == 0
    # Quarantined (open) on day 0, healed on day 1, listed again by the detection of day 2: flaky, not broken.
    assert [bool(f["flaky_failures"]["count"]) for f in facts] == [True, False, True, True]
    assert facts[1]["new_failures"]["count"] + facts[1]["still_failing"]["count"] == 1
    assert registry.known_flaky(rollup.to_us(day(4))) == {"t::a"}
