"""Flaky detection over result columns: generated histories with known ground truth recorded in a real memory
and read back through the test-results view, and the rules one by one."""

from __future__ import annotations

import numpy as np
import pytest

from flaky_helpers import T0_US, bernoulli, columns, pattern_rows, recorded_history

from com.analysis.flaky import DAY_US, FlakyState, Priors, detect_flaky, flake_rate, severity
from com.model.errors import ComError


def by_id(detection):
    return {f.test_id: f for f in detection.flaky}


# -- generated histories with known ground truth ------------------------------------------------------------
@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """150 tests x 24 commits x 2 runs, many flaky tests and breakages (break rate 0.6)."""
    history, _, cols = recorded_history(tmp_path_factory.mktemp("flaky"), seed=21, tests=150, commits=24,
                                        runs_per_commit=2, flaky_fraction=0.1, break_rate=0.6)
    return history, cols


def test_generated_history_flaky_found_and_broken_tests_never_flaky(generated):
    history, cols = generated
    truth = history.truth
    det = detect_flaky(cols, min_runs=10)
    found = set(by_id(det))
    planted = set(truth["flaky"])
    broken_only = {t for b in truth["breakages"] for t in b["tests"]} - planted
    assert broken_only, "the history should have broken tests"
    assert found & broken_only == set()
    precision = len(found & planted) / len(found)
    recall = len(found & planted) / len(planted)
    assert precision >= 0.95 and recall >= 0.90, (precision, recall)
    # Every breakage of a test that is not flaky is reported at the commit that broke it.
    reported = {(b.test_id, b.since_commit) for b in det.broken}
    for b in truth["breakages"]:
        for t in b["tests"]:
            if t not in planted:
                assert (t, b["commit"]) in reported, (t, b["id"])
                fixed = [r for r in det.broken if r.test_id == t and r.since_commit == b["commit"]][0]
                assert fixed.fixed_commit == b["fixed_by"]


def test_generated_history_severity_within_one_band_of_the_planted_rate(generated):
    history, cols = generated
    det = detect_flaky(cols, min_runs=10)
    order = ("intermittent", "moderate", "high", "severe")
    for test_id, f in by_id(det).items():
        planted = severity(flake_rate(history.truth["flaky"][test_id]["rate"]))
        assert abs(order.index(planted) - order.index(f.severity)) <= 1, (test_id, planted, f.severity)


def test_incremental_state_gives_the_same_answer(generated):
    _, cols = generated
    full = detect_flaky(cols, min_runs=10)
    cut = int(np.median(cols.ts_us))
    state = FlakyState.from_columns(cols.take(cols.ts_us <= cut))
    state.update(cols.take(cols.ts_us > cut))
    inc = state.detect(min_runs=10)
    assert [f.test_id for f in inc.flaky] == [f.test_id for f in full.flaky]
    assert [f.flake_rate for f in inc.flaky] == [f.flake_rate for f in full.flaky]
    assert {(b.test_id, b.since_commit, b.fixed_commit) for b in inc.broken} == \
        {(b.test_id, b.since_commit, b.fixed_commit) for b in full.broken}


def test_row_order_does_not_matter(generated):
    _, cols = generated
    shuffled = cols.take(np.random.default_rng(3).permutation(len(cols)))
    a, b = detect_flaky(cols), detect_flaky(shuffled)
    assert [f.to_json() for f in a.flaky] == [f.to_json() for f in b.flaky]
    assert [x.to_json() for x in a.broken] == [x.to_json() for x in b.broken]


# -- broken is not flaky ------------------------------------------------------------------------------------
def test_a_broken_test_is_reported_broken_with_its_commit_never_flaky():
    rows = pattern_rows({
        "t_regressed": "." * 20 + "x" * 20 + "." * 20,     # commits 10..19 fail, commit 20 fixes it
        "t_still_broken": "." * 50 + "x" * 10,           # broken at commit 25, never fixed
        "t_broken_from_the_start": "x" * 60,
        "t_fine": "." * 60,
    })
    det = detect_flaky(columns(rows))
    assert det.flaky == []
    broken = {b.test_id: b for b in det.broken}
    assert set(broken) == {"t_regressed", "t_still_broken", "t_broken_from_the_start"}
    assert broken["t_regressed"].since_commit == "c0010" and broken["t_regressed"].fixed_commit == "c0020"
    assert broken["t_regressed"].runs == 20 and broken["t_regressed"].commits == 10
    assert not broken["t_regressed"].ongoing
    assert broken["t_still_broken"].since_commit == "c0025" and broken["t_still_broken"].ongoing
    assert broken["t_broken_from_the_start"].since_commit == "c0000"


def test_a_short_breakage_with_a_new_error_inside_a_flaky_test_is_told_apart():
    flaky = bernoulli(0.1, 80, seed=1)
    flaky = flaky[:40] + "x" * 8 + flaky[48:]  # commits 20..23 broken
    rows = []
    for row in pattern_rows({"t": flaky}, message="Failed: Timeout >30.0s"):
        commit = int(row[1][1:])
        if 20 <= commit < 24:
            row = row[:6] + ("KeyError: 'currency'",)
        rows.append(row)
    det = detect_flaky(columns(rows))
    assert [f.test_id for f in det.flaky] == ["t"]
    assert [(b.since_commit, b.fixed_commit) for b in det.broken] == [("c0020", "c0024")]
    assert det.flaky[0].evidence["broken_runs"] == 8


def test_two_breakages_of_one_test_stay_breakages():
    rows = pattern_rows({"t": "." * 10 + "x" * 6 + "." * 20 + "x" * 4 + "." * 20})
    det = detect_flaky(columns(rows))
    assert det.flaky == []
    assert sorted(b.since_commit for b in det.broken) == ["c0005", "c0018"]


# -- the flake rate ---------------------------------------------------------------------------------------------
def test_half_failing_is_flakier_than_5_and_95_percent():
    rows = pattern_rows({"half": bernoulli(0.5, 200, 1), "rare": bernoulli(0.05, 200, 2),
                         "mostly": bernoulli(0.95, 200, 3)})
    f = by_id(detect_flaky(columns(rows)))
    assert set(f) == {"half", "rare", "mostly"}
    assert f["half"].flake_rate > f["rare"].flake_rate
    assert f["half"].flake_rate > f["mostly"].flake_rate
    assert f["half"].flake_rate == pytest.approx(1.0)
    assert f["rare"].flake_rate == pytest.approx(0.1) and f["mostly"].flake_rate == pytest.approx(0.1)
    assert f["half"].fail_rate == pytest.approx(0.5) and f["mostly"].fail_rate == pytest.approx(0.95)
    assert f["half"].severity == "severe" and f["rare"].severity == "intermittent"
    assert [x.test_id for x in detect_flaky(columns(rows)).flaky][0] == "half"  # flakiest first


@pytest.mark.parametrize("rate, band", [(0.0, "intermittent"), (0.2499, "intermittent"), (0.25, "moderate"),
                                        (0.4999, "moderate"), (0.5, "high"), (0.7499, "high"), (0.75, "severe"),
                                        (1.0, "severe")])
def test_severity_bands(rate, band):
    assert severity(rate) == band


@pytest.mark.parametrize("fail_rate, band", [(0.05, "intermittent"), (0.15, "moderate"), (0.3, "high"),
                                             (0.45, "severe"), (0.7, "high"), (0.9, "intermittent")])
def test_detected_severity_follows_the_flake_rate(fail_rate, band):
    det = detect_flaky(columns(pattern_rows({"t": bernoulli(fail_rate, 200, 7)})))
    assert det.flaky[0].severity == band
    assert det.flaky[0].flake_rate == pytest.approx(flake_rate(fail_rate))


def test_confidence_grows_with_runs():
    few = detect_flaky(columns(pattern_rows({"t": bernoulli(0.3, 20, 1)}))).flaky[0]
    many = detect_flaky(columns(pattern_rows({"t": bernoulli(0.3, 200, 1)}))).flaky[0]
    assert 0 < few.confidence < many.confidence < 1
    assert few.confidence == pytest.approx(20 / 30)


# -- evidence ---------------------------------------------------------------------------------------------------
def test_pass_on_retry_is_evidence_and_the_rate_counts_first_attempts():
    rows = []
    for n in range(30):  # one run per commit: no same-commit evidence possible
        ts = T0_US + n * 600_000_000
        if n in (7, 19):
            rows.append(("t", f"c{n}", f"r{n}", 1, 1, ts, "Failed: Timeout >30.0s"))
            rows.append(("t", f"c{n}", f"r{n}", 0, 2, ts + 1, None))
        else:
            rows.append(("t", f"c{n}", f"r{n}", 0, 1, ts, None))
        # a broken test fails its retries too: still broken, not flaky
        status = 1 if n >= 20 else 0
        rows.append(("b", f"c{n}", f"r{n}", status, 1, ts, "AssertionError: assert 1 == 2" if status else None))
        if status:
            rows.append(("b", f"c{n}", f"r{n}", 1, 2, ts + 1, "AssertionError: assert 1 == 2"))
    det = detect_flaky(columns(rows))
    f = by_id(det)
    assert set(f) == {"t"}
    assert f["t"].evidence["retry_passes"] == 2 and f["t"].evidence["strongest"] == "retry"
    assert f["t"].runs == 30 and f["t"].failures == 2
    assert f["t"].fail_rate == pytest.approx(2 / 30)
    assert f["t"].confidence == pytest.approx(30 / 40)
    assert [(b.test_id, b.since_commit) for b in det.broken] == [("b", "c20")]


def test_pass_and_fail_on_the_same_commit_is_evidence():
    rows = pattern_rows({"t": "." * 20 + ".x" + "." * 18})  # one failure, its commit's other run passed
    f = detect_flaky(columns(rows)).flaky
    assert [x.test_id for x in f] == ["t"]
    assert f[0].evidence["same_commit"] == 1 and f[0].evidence["strongest"] == "same_commit"
    assert f[0].first_seen_us == f[0].last_seen_us == T0_US + 21 * 600_000_000


def test_outcome_flips_without_a_change_are_window_evidence():
    # One run per commit: failures come and go at scattered commits, with the same error each time.
    pattern = "".join("x" if n in (3, 11, 12, 25, 31, 40, 47, 55) else "." for n in range(60))
    det = detect_flaky(columns(pattern_rows({"t": pattern}, runs_per_commit=1, message="Failed: Timeout >30.0s")))
    assert [f.test_id for f in det.flaky] == ["t"]
    ev = det.flaky[0].evidence
    assert ev["strongest"] == "window" and ev["same_commit"] == 0 and ev["flips"] == 14
    assert 0.5 < det.flaky[0].confidence < 60 / 70 + 1e-9
    # The same failures as one streak are a breakage.
    det = detect_flaky(columns(pattern_rows({"t": "." * 30 + "x" * 8 + "." * 22}, runs_per_commit=1)))
    assert det.flaky == [] and [b.since_commit for b in det.broken] == ["c0030"]


# -- options ----------------------------------------------------------------------------------------------------
def test_min_runs_holds_back_tests_with_too_few_runs():
    rows = pattern_rows({"t": ".x.x"})
    det = detect_flaky(columns(rows), min_runs=5)
    assert det.flaky == [] and det.too_few_runs == ["t"]
    assert [f.test_id for f in detect_flaky(columns(rows), min_runs=4).flaky] == ["t"]
    with pytest.raises(ComError):
        detect_flaky(columns(rows), min_runs=0)


def test_as_of_and_window():
    # Flaky during the first 40 runs (one commit per two runs, 10 minutes apart), clean afterwards.
    rows = pattern_rows({"t": ".x" * 10 + "." * 20 + "." * 60})
    cols = columns(rows)
    assert [f.test_id for f in detect_flaky(cols).flaky] == ["t"]
    as_of = T0_US + 39 * 600_000_000
    det = detect_flaky(cols, as_of_us=as_of)
    assert det.flaky[0].runs == 40 and det.as_of_us == as_of
    # A window of the last 10 hours (60 runs) only sees clean runs.
    late = detect_flaky(cols, window_days=10 / 24)
    assert late.flaky == [] and late.since_us == int(cols.ts_us.max()) - int(10 / 24 * DAY_US)
    with pytest.raises(ComError):
        detect_flaky(cols, window_days=0)


def test_skips_and_results_without_a_commit():
    rows = pattern_rows({"t": ".s.x.s.x.s" * 4})
    rows = [r[:1] + (None,) + r[2:] for r in rows]  # no commit: each run is its own revision
    det = detect_flaky(columns(rows))
    assert det.flaky[0].runs == 28 and det.flaky[0].evidence["same_commit"] == 0


def test_results_without_a_run_id_recorded_at_one_time_are_one_run():
    cols = columns(pattern_rows({"t": ".x" * 10, "u": "." * 20}))
    cols.run, cols.runs = np.full(len(cols), -1, np.int32), []  # what the view gives for results without run_id
    det = detect_flaky(cols)
    assert [f.test_id for f in det.flaky] == ["t"] and det.flaky[0].runs == 20
    assert det.flaky[0].evidence["same_commit"] == 10


def test_priors_are_checked_and_json_is_plain():
    with pytest.raises(ComError):
        Priors(breakage=0)
    det = detect_flaky(columns(pattern_rows({"t": ".x" * 10, "b": "." * 10 + "x" * 10})))
    out = det.to_json()
    assert out["flaky"][0]["test_id"] == "t" and out["flaky"][0]["severity"] == "severe"
    assert out["flaky"][0]["first_seen"].endswith("Z") and set(out["flaky"][0]["evidence"]) == {
        "retry_passes", "same_commit", "flips", "broken_runs", "strongest"}
    assert out["broken"][0]["test_id"] == "b" and out["broken"][0]["since_commit"] == "c0005"


def test_empty_input():
    det = detect_flaky(columns([]))
    assert det.flaky == [] and det.broken == [] and det.tests == 0


def test_the_interval_of_the_flake_rate_narrows_with_runs():
    few = detect_flaky(columns(pattern_rows({"t": bernoulli(0.1, 20, 1)}))).flaky[0]
    many = detect_flaky(columns(pattern_rows({"t": bernoulli(0.1, 400, 1)}))).flaky[0]
    for f in (few, many):
        assert f.interval[0] <= f.flake_rate <= f.interval[1]
    assert many.interval[1] - many.interval[0] < few.interval[1] - few.interval[0]
    half = detect_flaky(columns(pattern_rows({"t": bernoulli(0.5, 40, 1)}))).flaky[0]
    assert half.interval[1] == 1.0


def test_a_run_where_most_tests_failed_is_the_machine_not_flakiness():
    patterns = {f"t{n}": "." * 60 for n in range(30)}
    patterns["real"] = bernoulli(0.2, 60, 4)
    rows = pattern_rows(patterns)
    # Run 33 (the second run of commit 16): 25 of 31 tests fail with a connection error.
    rows = [r[:3] + (1,) + r[4:6] + ("ConnectionRefusedError: [Errno 111]",)
            if r[2] == "run-00033" and r[0] not in ("t0", "t1", "t2", "t3", "t4", "t5") else r for r in rows]
    det = detect_flaky(columns(rows))
    assert [f.test_id for f in det.flaky] == ["real"] and det.excluded_runs == ["run-00033"]
    assert detect_flaky(columns(rows), mass_failure=None).flaky.__len__() > 20
    # Every run of a commit failing en masse is the code (a broken conftest): a breakage, kept.
    rows = pattern_rows({f"t{n}": "." * 30 + "xx" + "." * 28 for n in range(30)})
    det = detect_flaky(columns(rows))
    assert det.excluded_runs == [] and det.flaky == [] and len(det.broken) == 30


def test_analysis_imports_nothing_above_the_model():
    """com/analysis is pure: numpy, the standard library, com.model and itself."""
    import ast
    import sys

    from conftest import ROOT

    allowed = {"numpy", "com.model", "com.analysis", "__future__"}
    for path in sorted((ROOT / "com" / "analysis").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
            for name in names:
                top = name.split(".")[0]
                ok = top in sys.stdlib_module_names or any(name == a or name.startswith(a + ".") for a in allowed)
                assert ok, f"{path.name} imports {name}"
