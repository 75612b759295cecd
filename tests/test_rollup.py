"""Roll-up facts: on a generated, recorded history they equal what a plain count of the journal's events
gives; on small hand-made columns each definition (outcomes, flaky evidence, fixes, regressions) holds."""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
import gen_history  # noqa: E402
from rollup_columns import columns_from_events, signature_of  # noqa: E402  (temporary adapter)

from com.analysis import rollup  # noqa: E402
from com.analysis.rollup import ResultColumns  # noqa: E402
from com.errors import ComError  # noqa: E402

FAILING = ("failed", "error")


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """A week and a half of history (30 tests, 2 runs per commit, a commit every 8 hours or so), recorded."""
    from com.history import snapshot_events
    from com.memory import init_memory

    root = tmp_path_factory.mktemp("rollup")
    history = gen_history.generate(root / "gen", seed=4, tests=30, commits=30, runs_per_commit=2,
                                   flaky_fraction=0.15, break_rate=0.3, commit_gap_hours=8.0)
    memory, _ = init_memory(root / ".com")
    gen_history.ingest(history, memory)
    events = [e for e in snapshot_events(memory.journal()) if e["type"] == "test_result"]
    cols, tags = columns_from_events(events)
    return events, cols, tags


def _day(ts: str) -> str:
    return ts[:10]


def _reference_daily(events: list[dict], day: str) -> dict:
    """The daily facts counted the slow, obvious way, straight from the events (every attempt is 1 here)."""
    in_day = [e for e in events if _day(e["ts"]) == day]
    before = sorted((e for e in events if _day(e["ts"]) < day), key=lambda e: (e["ts"], e["data"]["test_id"]))
    upto = [e for e in events if _day(e["ts"]) <= day]
    prev_day = (datetime.fromisoformat(day) - timedelta(days=1)).date().isoformat()
    prev = [e for e in events if _day(e["ts"]) == prev_day]

    def rate(evs):
        executed = [e for e in evs if e["data"]["status"] != "skipped"]
        ok = [e for e in executed if e["data"]["status"] not in FAILING]
        return round(len(ok) / len(executed), 4) if executed else None

    state_before = {}
    for e in before:
        if e["data"]["status"] != "skipped":
            state_before[e["data"]["test_id"]] = e["data"]["status"] in FAILING
    mixed = defaultdict(set)
    for e in upto:
        if e["data"]["status"] != "skipped":
            mixed[(e["data"]["test_id"], e["data"]["commit"])].add(e["data"]["status"] in FAILING)
    flaky = {t for (t, _), kinds in mixed.items() if len(kinds) == 2}
    failing_today = {e["data"]["test_id"] for e in in_day if e["data"]["status"] in FAILING}
    last_today = {}
    for e in sorted(in_day, key=lambda e: e["ts"]):
        if e["data"]["status"] != "skipped":
            last_today[e["data"]["test_id"]] = e["data"]["status"] in FAILING
    sig_counts = defaultdict(int)
    for e in in_day:
        if e["data"]["status"] in FAILING:
            sig_counts[signature_of(e["data"].get("error_message"))] += 1
    statuses = defaultdict(int)
    for e in in_day:
        statuses[e["data"]["status"]] += 1
    return {
        "runs": len({e["data"]["run_id"] for e in in_day}),
        "commits": len({e["data"]["commit"] for e in in_day}),
        "tests": len({e["data"]["test_id"] for e in in_day}),
        "results": dict(statuses),
        "pass_rate": rate(in_day),
        "previous_pass_rate": rate(prev),
        "new_failures": sorted(t for t in failing_today if t not in flaky and not state_before.get(t, False)),
        "still_failing": sorted(t for t in failing_today if t not in flaky and state_before.get(t, False)),
        "flaky_failures": sorted(failing_today & flaky),
        "fixed": sorted(t for t, failing in last_today.items()
                        if not failing and state_before.get(t, False) and t not in flaky),
        "signatures": dict(sig_counts),
    }


def test_daily_facts_match_a_plain_count_of_the_events(recorded):
    events, cols, _ = recorded
    days = sorted({_day(e["ts"]) for e in events})
    assert len(days) >= 8
    seen = defaultdict(int)
    for day in days:
        facts = rollup.daily_facts(cols, day)
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
        json.dumps(facts, allow_nan=False)  # serialisable, no NaN
    # The history exercises every list at least once, so the comparison above means something.
    assert all(seen[k] for k in ("new_failures", "still_failing", "flaky_failures", "fixed")), dict(seen)


def test_weekly_trend_and_totals_equal_the_daily_facts(recorded):
    events, cols, _ = recorded
    first = min(_day(e["ts"]) for e in events)
    week = rollup.weekly_facts(cols, first)
    assert week["kind"] == "weekly" and len(week["trend"]) == 7
    dailies = [rollup.daily_facts(cols, row["date"]) for row in week["trend"]]
    for row, d in zip(week["trend"], dailies):
        assert (row["runs"], row["results"], row["pass_rate"]) == (d["runs"], d["results"]["total"], d["pass_rate"])
        assert row["failing"] == d["outcomes"]["failing"]
    assert week["results"]["total"] == sum(d["results"]["total"] for d in dailies)
    assert week["runs"] == sum(d["runs"] for d in dailies)  # a run lies within one day here
    fail_days = defaultdict(set)
    for e in events:
        if e["data"]["status"] in FAILING and first <= _day(e["ts"]) < week["period"]["end"][:10]:
            fail_days[e["data"]["test_id"]].add(_day(e["ts"]))
    recurring = sorted(t for t, d in fail_days.items() if len(d) >= 2)
    assert week["recurring"]["tests"]["count"] == len(recurring)


def test_pattern_facts_of_a_test_match_its_events(recorded):
    events, cols, _ = recorded
    failures = defaultdict(list)
    for e in events:
        if e["data"]["status"] in FAILING:
            failures[e["data"]["test_id"]].append(e["ts"])
    test_id = max(sorted(failures), key=lambda t: len(failures[t]))
    last_day = max(_day(e["ts"]) for e in events)
    facts = rollup.pattern_facts(cols, until=last_day, days=60, test=test_id)
    times = sorted(failures[test_id])
    assert facts["occurrences"] == len(times)
    assert facts["first_seen"] == times[0][:19] + "Z" and facts["last_seen"] == times[-1][:19] + "Z"
    assert facts["affected_tests"]["items"][0]["test_id"] == test_id
    assert facts["results"] == sum(1 for e in events if e["data"]["test_id"] == test_id)
    assert sum(d["occurrences"] for d in facts["by_day"]) == len(times)
    assert facts["hypothesis"]["cause"] in ("flaky", "regression", "mixed", "shared_cause", "environment", "unknown")


def test_pattern_by_signature_and_by_tag(recorded):
    events, cols, tags = recorded
    last_day = max(_day(e["ts"]) for e in events)
    timeouts = [e for e in events if e["data"]["status"] in FAILING
                and "timeout" in (signature_of(e["data"].get("error_message")) or "").lower()]
    facts = rollup.pattern_facts(cols, until=last_day, days=60, signature="TIMEOUT")
    assert facts["occurrences"] == len(timeouts)
    smoke = {t for t, ts in tags.items() if "smoke" in ts}
    tagged = rollup.pattern_facts(cols, until=last_day, days=60, tag="smoke", test_tags=tags)
    assert tagged["occurrences"] == sum(1 for e in events if e["data"]["test_id"] in smoke
                                        and e["data"]["status"] in FAILING)
    with pytest.raises(ComError, match="exactly one"):
        rollup.pattern_facts(cols, until=last_day, test="a", tag="b")


def test_facts_are_deterministic(recorded):
    _, cols, _ = recorded
    day = rollup.day_of(int(np.median(cols.ts_us)))
    a = json.dumps(rollup.daily_facts(cols, day), sort_keys=True)
    perm = np.random.default_rng(3).permutation(len(cols.test))  # rows "in no particular order"
    shuffled = ResultColumns(**{k: (v[perm] if isinstance(v, np.ndarray) else v) for k, v in vars(cols).items()})
    assert json.dumps(rollup.daily_facts(shuffled, day), sort_keys=True) == a


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
                 "outcome": "success"}]
    f = rollup.daily_facts(cols, "2026-03-02", registry_changes=changes, healing_attempts=attempts)
    ev = {i["test_id"]: i["evidence"] for i in f["flaky_failures"]["items"]}
    assert ev == {"t::f": ["same_commit"], "t::g": ["registry"]}
    assert f["registry"]["became_flaky"]["items"] == ["t::g"]
    assert f["healing"]["attempts"] == 1 and f["healing"]["success_rate"] == 1.0
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
        rollup.daily_facts(empty, "2026-03-02", healing_attempts=[{"test_id": "a", "ts": "2026-03-02", "outcome": "ok"}])
