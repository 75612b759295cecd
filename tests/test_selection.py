"""com.analysis.selection: scores with reasons, safety rules, budgets, durations, history statistics, metrics."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from com.analysis import selection as sel
from com.model.result import STATUS_CODE, ResultColumns


def from_rows(rows) -> ResultColumns:
    """Result columns from dicts with test_id, status and optionally ts (minutes), attempt, duration_ms, run_id,
    commit: what the test-results view hands to analyses."""
    tests, runs, commits = {}, {}, {}
    cols = {k: [] for k in ("test", "ts", "status", "attempt", "dur", "run", "commit")}
    for n, r in enumerate(rows):
        cols["test"].append(tests.setdefault(r["test_id"], len(tests)))
        cols["ts"].append(int(r.get("ts", n)) * 60_000_000)
        cols["status"].append(STATUS_CODE[r["status"]])
        cols["attempt"].append(int(r.get("attempt") or 0))
        cols["dur"].append(float("nan") if r.get("duration_ms") is None else float(r["duration_ms"]))
        cols["run"].append(runs.setdefault(r["run_id"], len(runs)) if r.get("run_id") else -1)
        cols["commit"].append(commits.setdefault(r["commit"], len(commits)) if r.get("commit") else -1)
    n = len(cols["test"])
    return ResultColumns(np.array(cols["test"], np.int32), list(tests), np.array(cols["ts"], np.int64),
                         np.array(cols["status"], np.int8), np.array(cols["attempt"], np.int16),
                         np.array(cols["dur"], np.float64), np.array(cols["run"], np.int32), list(runs),
                         np.array(cols["commit"], np.int32), list(commits), np.full(n, -1, np.int32), [])


def rows(*specs):
    """(test, run, status, attempt, duration_ms, commit) tuples -> result columns; runs ordered by number."""
    out = []
    for test, run, status, attempt, dur, commit in specs:
        out.append({"test_id": test, "run_id": f"r{run}", "status": status, "attempt": attempt, "duration_ms": dur,
                    "commit": commit, "ts": run})
    return from_rows(out)


def test_reruns_count_as_results_not_tests_and_flakiness_is_seen():
    cols = rows(("a", 1, "passed", 1, 10.0, "c1"),
                ("a", 2, "failed", 1, 12.0, "c2"), ("a", 2, "passed", 2, 11.0, "c2"),  # a rerun passed
                ("b", 1, "passed", 1, None, "c1"), ("b", 2, "failed", 1, None, "c2"))
    st = sel.test_stats(cols)
    assert set(st) == {"a", "b"}
    assert (st["a"].runs, st["a"].results, st["a"].fail_runs) == (2, 3, 0)
    assert st["a"].flaky_runs == 1 and st["a"].flake_rate == 0.5
    assert st["a"].duration_ms == 11.0  # the mean of its attempts
    assert st["b"].failed_in_latest_run and st["b"].last_fail_age == 0
    assert math.isnan(st["b"].duration_ms)
    assert not st["a"].failed_in_latest_run  # its last attempt passed


def test_durations_are_floored_and_missing_ones_take_the_median():
    d = sel.floor_durations({"a": 0.0, "b": None, "c": float("nan"), "d": 30.0, "e": 10.0}, "abcdef")
    assert d["d"] == 30.0 and d["e"] == 10.0
    assert d["a"] == d["b"] == d["c"] == d["f"] == 20.0
    assert sel.floor_durations({"a": None}, ["a"]) == {"a": sel.DURATION_FLOOR_MS}
    # a selection where every duration is zero or missing neither divides by zero nor selects nothing
    res = sel.select({"a": sel.Signals(direct=1.0, duration_ms=0.0), "b": sel.Signals(duration_ms=None)},
                     budget=sel.parse_budget("50%"))
    assert res.ids == ["a"] and res.suite_ms == 2 * sel.DURATION_FLOOR_MS


def test_scores_carry_signals_and_reasons_and_order_most_likely_first():
    signals = {
        "t_direct": sel.Signals(direct=1.0, direct_reason="uses pkg.core:mul", duration_ms=100),
        "t_module": sel.Signals(direct=0.5, direct_reason="imports module pkg.core", duration_ms=100),
        "t_cofail": sel.Signals(cofailure=0.6, cofailure_file="pkg/core.py", duration_ms=100),
        "t_flaky": sel.Signals(direct=1.0, direct_reason="uses pkg.core:add", flake_rate=0.9, duration_ms=100),
        "t_none": sel.Signals(duration_ms=100),
    }
    res = sel.select(signals, changed=["pkg/core.py"])
    assert res.ids[0] == "t_direct" and set(res.ids) == {"t_direct", "t_flaky", "t_module", "t_cofail"}
    assert res.ids.index("t_flaky") > 0  # a flaky test's score is lowered
    by = {t.test: t for t in res.tests}
    assert by["t_direct"].reasons == ["uses pkg.core:mul"]
    assert any("flaky" in r for r in by["t_flaky"].reasons)  # penalised, never dropped
    assert by["t_flaky"].selected
    assert "failed before after changes to pkg/core.py" in by["t_cofail"].reasons[0]
    assert not by["t_none"].selected
    assert set(by["t_direct"].signals) >= {"relation", "history", "criticality", "flake_rate", "efficiency"}
    assert res.to_json()["tests"][0]["test"] == "t_direct"


def test_safety_rules_never_seen_and_failed_latest_always_run():
    signals = {"new": sel.Signals(seen=False), "red": sel.Signals(failed_latest=True, latest_run="run-9"),
               "other": sel.Signals(direct=1.0, direct_reason="uses x", duration_ms=1000)}
    res = sel.select(signals, budget=sel.Budget(max_tests=1))
    by = {t.test: t for t in res.tests}
    assert by["new"].selected and by["new"].must_run and "never run before" in by["new"].reasons[0]
    assert by["red"].selected and "run-9" in by["red"].reasons[0]
    assert not by["other"].selected and "left out by the budget" in by["other"].reasons
    assert any("over the budget" in m for m in res.messages)


@pytest.mark.parametrize("path", ["conftest.py", "tests/conftest.py", "pyproject.toml", "requirements-dev.txt",
                                  "poetry.lock", "setup.cfg", ".github/workflows/ci.yml", "package-lock.json"])
def test_a_global_file_selects_everything_unless_told_not_to(path):
    signals = {"a": sel.Signals(), "b": sel.Signals()}
    res = sel.select(signals, changed=[path])
    assert res.ids == ["a", "b"] and res.mode == "all"
    assert "global change" in res.messages[0] and path in res.messages[0]
    res = sel.select(signals, changed=[path], fallback=False)
    assert res.ids == [] and any("--no-fallback" in m for m in res.messages)


def test_empty_selection_and_no_history_are_stated():
    res = sel.select({"a": sel.Signals()}, changed=["README.md"])
    assert res.ids == [] and "no test selected" in res.messages[0]
    res = sel.select({"a": sel.Signals(seen=False)}, changed=["x.py"], has_history=False)
    assert res.ids == ["a"] and "no test history" in res.messages[0]
    assert sel.select({}, changed=[]).messages == ["no test selected: nothing in this change maps to a test"]


def test_budgets_share_time_and_count():
    assert sel.parse_budget("30%") == sel.Budget(fraction=0.3)
    assert sel.parse_budget(time="5m").time_ms == 300_000
    assert sel.parse_budget(time="1h30m").time_ms == 5_400_000
    assert sel.parse_budget("90s").time_ms == 90_000
    assert sel.parse_budget(max_tests=3).max_tests == 3
    for bad in ("0%", "150%", "abc"):
        with pytest.raises(ValueError):
            sel.parse_budget(bad)
    with pytest.raises(ValueError):
        sel.parse_budget(time="5 minutes")
    signals = {f"t{i}": sel.Signals(direct=1.0 - i / 10, direct_reason="r", duration_ms=100.0) for i in range(10)}
    res = sel.select(signals, budget=sel.parse_budget("30%"))
    assert res.ids == ["t0", "t1", "t2"] and res.selected_ms == 300.0 and res.limit_ms == 300.0
    res = sel.select(signals, budget=sel.parse_budget(time="250ms"))
    assert res.ids == ["t0", "t1"]
    res = sel.select(signals, budget=sel.Budget(max_tests=4))
    assert len(res.ids) == 4


def test_cochange_and_cofailure_from_history():
    commit_files = {"c1": ("src/a.py", "tests/test_a.py"), "c2": ("src/a.py", "tests/test_a.py"),
                    "c3": ("src/a.py",), "c4": ("src/b.py", "tests/test_b.py")}
    cc = sel.cochange(commit_files, ["src/a.py"], {"tests/test_a.py::t": "tests/test_a.py",
                                                   "tests/test_b.py::t": "tests/test_b.py"})
    assert set(cc) == {"tests/test_a.py::t"} and cc["tests/test_a.py::t"] == (0.5, "src/a.py")
    cols = rows(("x", 1, "passed", 1, 1.0, "c1"), ("x", 2, "failed", 1, 1.0, "c3"), ("x", 3, "failed", 1, 1.0, "c4"),
                ("y", 1, "passed", 1, 1.0, "c1"), ("y", 2, "passed", 1, 1.0, "c3"))
    cf = sel.cofailure(cols, commit_files, ["src/a.py"])
    # x newly failed on c3 (which changed a.py); its still-failing run on c4 does not count again
    assert cf == {"x": (1 / 4, "src/a.py")}
    assert sel.cofailure(cols, commit_files, ["src/b.py"]) == {}


def test_history_only_prioritisation_orders_by_failure_likelihood():
    cols = rows(("old_fail", 1, "failed", 1, 5.0, None), ("old_fail", 2, "passed", 1, 5.0, None),
                ("old_fail", 3, "passed", 1, 5.0, None),
                ("recent_fail", 1, "passed", 1, 5.0, None), ("recent_fail", 2, "passed", 1, 5.0, None),
                ("recent_fail", 3, "failed", 1, 5.0, None),
                ("green", 1, "passed", 1, 5.0, None), ("green", 3, "passed", 1, 5.0, None))
    st = sel.test_stats(cols)
    res = sel.prioritise(st, ["green", "old_fail", "recent_fail", "brand_new"])
    assert [t.test for t in res.tests] == ["brand_new", "recent_fail", "old_fail", "green"]
    assert res.tests[0].reasons == ["never run before"]  # no history: prior 0.5, above a 0.41 density
    # per unit of time when asked: a slow likely failure goes after a quick one
    res = sel.prioritise(st, ["recent_fail", "old_fail"], durations={"recent_fail": 10_000, "old_fail": 1},
                         params=sel.HistoryParams(duration_power=1.0))
    assert [t.test for t in res.tests][0] == "old_fail"


def test_metrics_apfd_and_napfd():
    assert sel.apfd(["a", "b", "c", "d"], ["a"]) == pytest.approx(1 - 1 / 4 + 1 / 8)
    assert sel.apfd(["a", "b"], []) is None
    assert sel.apfd(["a", "b"], ["z"]) == pytest.approx(1 - 3 / 3 + 1 / 6)  # missing: ranked after the order
    assert sel.napfd([1, 1, 1, 1], [0, 1, 0, 1], 1.0) == pytest.approx(sel.apfd(["a", "b", "c", "d"], ["b", "d"]))
    # half the time: the second failure is not run -> p = 1/2
    assert sel.napfd([1, 1, 1, 1], [0, 1, 0, 1], 0.5) == pytest.approx(0.5 - 2 / 8 + 0.5 / 8)
    assert sel.napfd([1, 1], [0, 0]) is None


def test_stats_on_a_larger_random_history_are_consistent():
    rng = np.random.default_rng(3)
    specs = []
    for run in range(1, 30):
        for t in range(20):
            status = "failed" if rng.random() < 0.1 * (t % 3) else "passed"
            specs.append((f"t{t}", run, status, 1, float(rng.integers(0, 50)), f"c{run}"))
    st = sel.test_stats(rows(*specs))
    assert len(st) == 20
    for s in st.values():
        assert s.runs == 29 and 0.0 <= s.density <= 1.0 and s.fail_runs <= s.runs
    assert st["t0"].fail_runs == 0 and st["t2"].fail_runs > 0


def test_history_estimate_decays_over_a_tests_own_runs_and_keeps_a_prior():
    # "weekly" ran in runs 1 and 9 only and failed in 9; "daily" ran in every run and failed in run 1 only
    specs = [("weekly", 1, "passed", 1, 1.0, None), ("weekly", 9, "failed", 1, 1.0, None)]
    specs += [("daily", r, "failed" if r == 1 else "passed", 1, 1.0, None) for r in range(1, 10)]
    st = sel.test_stats(rows(*specs), half_life_runs=1.0)
    # own ages: weekly's run 9 is age 0 and run 1 age 1, however many runs of the history lie between them
    assert st["weekly"].own_fail == pytest.approx(1.0) and st["weekly"].own_weight == pytest.approx(1.5)
    assert st["daily"].own_fail == pytest.approx(0.5 ** 8)
    p = sel.history_probability(st, ["weekly", "daily", "new"], sel.HistoryParams(new_test_prior=0.4, prior_weight=1.0))
    assert p["weekly"] == pytest.approx((1.0 + 0.4) / (1.5 + 1.0))
    assert p["new"] == 0.4 and p["daily"] < 0.25
    # a test that passed twice is less surely green than one that passed fifty times
    many = [("green_long", r, "passed", 1, 1.0, None) for r in range(1, 51)]
    few = [("green_short", r, "passed", 1, 1.0, None) for r in (49, 50)]
    p = sel.history_probability(sel.test_stats(rows(*many, *few)), ["green_long", "green_short"])
    assert p["green_short"] > p["green_long"] > 0
    # under a time budget short of the suite: failures per second, or by P(fail) alone (duration_power 0)
    durations = {"weekly": 1000.0, "daily": 1.0}
    budget = sel.parse_budget("60%")
    assert [t.test for t in sel.prioritise(st, ["weekly", "daily"], durations=durations, budget=budget).tests] == [
        "daily", "weekly"]
    scores = {t.test: t.score for t in sel.prioritise(st, ["weekly", "daily"], durations=durations, budget=budget,
                                                      params=sel.HistoryParams(duration_power=0.0)).tests}
    assert scores["weekly"] > scores["daily"]
    # the history-wide decay is still there when asked
    p = sel.history_probability(st, ["weekly"], sel.HistoryParams(own_runs=False))
    assert p["weekly"] == pytest.approx(st["weekly"].density * (1 - 0.5 * st["weekly"].flake_rate))


def test_a_test_failing_whatever_the_change_runs_early_and_fills_a_budget_but_is_never_selected_by_it():
    signals = {
        "related": sel.Signals(direct=1.0, direct_reason="uses f", duration_ms=100.0),
        "often_red": sel.Signals(recent=0.8, flake_rate=0.5, duration_ms=100.0),  # fails most runs, flaky
        "green": sel.Signals(duration_ms=100.0),
        "green2": sel.Signals(duration_ms=100.0),
    }
    w = sel.Weights(relation=0.4, history=0.2, criticality=0.0, flakiness=0.0, efficiency=0.0, base=1.0)
    res = sel.select(signals, weights=w)  # no budget: only the related test is selected
    assert res.ids == ["related"]
    assert [t.test for t in res.tests][:2] == ["related", "often_red"]  # the rest: likeliest to fail first
    assert next(t for t in res.tests if t.test == "often_red").signals["base"] == pytest.approx(0.8)
    res = sel.select(signals, weights=w, budget=sel.parse_budget("50%"))  # room for one more test
    assert res.ids == ["often_red", "related"]  # it fills the budget and, likelier to fail, runs first
    filled = next(t for t in res.tests if t.test == "often_red")
    assert any("fails often whatever the change" in r for r in filled.reasons)
    # a test whose every failure is flaky says nothing about the change (history 0): only base runs it early
    signals["often_red"] = replace(signals["often_red"], flake_rate=1.0)
    assert sel.select(signals, weights=w, budget=sel.parse_budget("50%")).ids == ["often_red", "related"]
    assert sel.select(signals, weights=replace(w, base=0.0), budget=sel.parse_budget("50%")).ids == ["related"]
