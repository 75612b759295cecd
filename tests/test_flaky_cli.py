"""The flaky registry end to end on real journals: `com flaky detect|show|mark|heal|stats|report|quarantine`, the
registry's events (versioned, time-travelling, diffable between tags) and the flaky-aware `com diff`."""

from __future__ import annotations

import json

import pytest

from conftest import git

SHOP = "tests/test_shop.py::"
OK, FLAKY, BROKEN, LATE = SHOP + "test_ok", SHOP + "test_pay", SHOP + "test_total", SHOP + "test_search"
TIMEOUT = "TimeoutError: Timeout 30000ms exceeded waiting for selector #pay-{n}"
RESET = "ConnectionResetError: [Errno 104] Connection reset by peer (port {port})"
WRONG = "AssertionError: assert 500 == 200"


def sha(n: int) -> str:
    return f"{n + 1:040x}"


def run_lines(run: int, commit: int, outcomes: dict, day: str = "2026-03-01") -> str:
    """One CI run's results as JSONL: outcomes test -> error message (failed) or None (passed)."""
    ts = f"{day}T{run // 4:02d}:{(run % 4) * 15:02d}:00Z"
    lines = []
    for test, message in outcomes.items():
        data = {"test_id": test, "status": "failed" if message else "passed", "commit": sha(commit),
                "run_id": f"ci-{run}", "duration_ms": 100 + run}
        if message:
            data["error_message"] = message
        lines.append(json.dumps({"type": "test_result", "project": "shop", "ts": ts, "data": data}))
    return "\n".join(lines) + "\n"


def outcomes(run: int, commit: int, late_flaky: bool = False, pay_fixed: bool = False) -> dict:
    """test_ok passes; test_pay fails one run in three (a timeout or a connection reset, on both sides of the
    same commit); test_total breaks at commit 6 and stays broken; test_search turns flaky later."""
    out = {OK: None, FLAKY: None, BROKEN: WRONG if commit >= 6 else None, LATE: None}
    if run % 3 == 1 and not pay_fixed:
        out[FLAKY] = (TIMEOUT if run % 2 else RESET).format(n=run, port=40000 + run)
    if late_flaky and run % 2 == 1:
        out[LATE] = "AssertionError: results out of order: expected ['a', 'b']"
    return out


def ingest_runs(com, first: int, last: int, **changes) -> None:
    """Runs first..last, two per code commit, each its own journal commit (as CI records them)."""
    for run in range(first, last + 1):
        r = com("ingest", "-", input=run_lines(run, run // 2, outcomes(run, run // 2, **changes)))
        assert r.exit_code == 0, r.stderr


@pytest.fixture
def shop(com, memory):
    ingest_runs(com, 0, 19)  # commits 0..9
    return memory


def call(com, *args, code=0, input=None):
    r = com(*args, input=input)
    assert r.exit_code == code, (r.stdout, r.stderr)
    return r


def as_json(com, *args, code=0):
    return json.loads(call(com, *args, "--json", code=code).stdout)


def head(memory) -> str:
    return git("--git-dir", memory.journal_path, "rev-parse", "HEAD").strip()


def test_detect_tells_flaky_from_broken_with_the_promised_json(com, shop):
    out = as_json(com, "flaky", "detect")
    assert [f["test_id"] for f in out["flaky"]] == [FLAKY]
    f = out["flaky"][0]
    assert {"test_id", "flake_rate", "severity", "runs", "evidence"} <= set(f)
    assert f["runs"] == 20 and f["failures"] == 7 and f["severity"] == "high"  # fails 35 %: flake rate 0.7
    assert f["flake_rate"] == pytest.approx(0.7) and f["evidence"]["strongest"] == "same_commit"
    assert f["status"] == "detected" and f["quarantined"] is False
    assert [(b["test_id"], b["since_commit"], b["fixed_commit"]) for b in out["broken"]] == [(BROKEN, sha(6), None)]
    assert out["tests"] == 4 and out["commit"] is None and out["snapshot"] == head(shop)
    text = call(com, "flaky", "detect").stdout
    assert "1 flaky, 1 broken of 4 tests" in text and FLAKY in text and "still failing" in text
    # Time travel: before commit 6 nothing was broken; too few runs early on.
    early = as_json(com, "flaky", "detect", "--at", "HEAD~10")
    assert early["broken"] == [] and early["as_of"].startswith("2026-03-01T02:15")
    assert as_json(com, "flaky", "detect", "--min-runs", "50")["too_few_runs"] == [FLAKY]
    bad = call(com, "flaky", "detect", "--min-runs", "0", code=2)
    assert bad.stderr.strip() == "com: error: --min-runs: must be at least 1, not 0"


@pytest.mark.parametrize("command", ["detect", "report"])
def test_a_window_longer_than_any_time_is_the_whole_history(com, shop, command):
    """--days 1e9 reaches back past year 1 (found by the command-line property test: it was an internal error)."""
    listed = "flaky" if command == "detect" else "top"
    whole = as_json(com, "flaky", command)
    assert whole[listed]
    for days in ("1e9", "1e300"):
        out = as_json(com, "flaky", command, "--days", days)
        assert out["since"] is None and out[listed] == whole[listed] and out["broken"] == whole["broken"]
    assert as_json(com, "flaky", "detect", "--days", "1")["since"] is not None


def test_mark_is_a_versioned_event_and_unknown_tests_are_one_line(com, shop):
    before = head(shop)
    r = call(com, "flaky", "mark", SHOP + "test_nope", "quarantined", code=2)
    assert r.stderr.strip().startswith("com: error: unknown test 'tests/test_shop.py::test_nope'")
    assert len(r.stderr.strip().splitlines()) == 1 and "did you mean" in r.stderr
    r = call(com, "flaky", "mark", FLAKY, "sleepy", code=2)
    assert "unknown flaky status 'sleepy'" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert head(shop) == before  # nothing written

    out = as_json(com, "flaky", "mark", FLAKY, "investigating", "-m", "timeouts on the payment page")
    assert (out["previous"], out["status"], out["quarantined"]) == (None, "investigating", False)
    events = as_json(com, "events", "--type", "flaky_status")["events"]
    assert len(events) == 1 and events[0]["data"] == {"test_id": FLAKY, "status": "investigating", "by": "mark",
                                                      "previous": None, "reason": "timeouts on the payment page"}
    assert events[0]["project"] == "shop"
    r = call(com, "flaky", "mark", FLAKY, "false_positive")
    r = call(com, "flaky", "mark", FLAKY, "healing_attempted", code=2)
    assert "cannot change a test from false_positive to healing_attempted (allowed: detected, investigating)" in r.stderr
    # The registry time-travels with the journal.
    assert as_json(com, "flaky", "show", FLAKY, "--no-similar", "--no-embed", "--at", before)["status"]["status"] is None
    shown = as_json(com, "flaky", "show", FLAKY, "--no-similar", "--no-embed")
    assert shown["status"]["status"] == "false_positive"
    assert [c["status"] for c in shown["status_history"]] == ["investigating", "false_positive"]
    # A person's verdict stays: detection still lists it as flaky, with the status they gave it.
    assert as_json(com, "flaky", "detect")["flaky"][0]["status"] == "false_positive"


def test_quarantine_list_for_ci_and_its_history(com, shop):
    assert call(com, "flaky", "quarantine").stdout == ""
    call(com, "flaky", "mark", FLAKY, "quarantined", "-m", "blocks the release")
    quarantined_at = head(shop)
    call(com, "flaky", "mark", FLAKY, "investigating")  # still out of CI's way while investigated
    assert call(com, "flaky", "quarantine").stdout.split() == [FLAKY]
    out = as_json(com, "flaky", "quarantine")
    assert out["quarantined"][0]["test_id"] == FLAKY and out["quarantined"][0]["reason"] == "blocks the release"
    assert json.loads(call(com, "flaky", "quarantine", "--format", "json").stdout) == out
    call(com, "flaky", "mark", FLAKY, "healed", "-m", "waits for the iframe now")
    assert call(com, "flaky", "quarantine").stdout == ""
    assert call(com, "flaky", "quarantine", "--at", quarantined_at).stdout.split() == [FLAKY]
    assert call(com, "flaky", "quarantine", "--format", "yaml", code=2).stderr.startswith("com: error: --format:")


def test_heal_records_attempts_and_stats_are_not_zero(com, shop):
    r = call(com, "flaky", "heal", FLAKY, "--strategy", "increase_timeout", "--outcome", "maybe", code=2)
    assert r.stderr.strip() == "com: error: --outcome: must be success or failure, not 'maybe'"
    first = as_json(com, "flaky", "heal", FLAKY, "--strategy", "increase_timeout", "--outcome", "failure",
                    "-m", "still times out")
    assert first["category"] in ("element_not_found", "network") and first["status"] == "healing_attempted"
    done = as_json(com, "flaky", "heal", FLAKY, "--strategy", "wait_for_selector", "--outcome", "success")
    assert done["status"] == "healed"
    as_json(com, "flaky", "heal", BROKEN, "--strategy", "fix_the_code", "--outcome", "success",
            "--category", "other")
    stats = as_json(com, "flaky", "stats")
    assert stats["attempts"] == 3 and stats["overall"] == {"attempts": 3, "successes": 2, "success_rate": 0.6667}
    assert stats["by_strategy"]["wait_for_selector"]["success_rate"] == 1.0
    assert stats["by_strategy"]["increase_timeout"]["success_rate"] == 0.0
    assert stats["by_category"]["other"] == {"attempts": 1, "successes": 1, "success_rate": 1.0}
    assert sum(r["successes"] for r in stats["by_category"].values()) == 2
    assert "3 healing attempt(s), 2 succeeded" in call(com, "flaky", "stats").stdout
    shown = as_json(com, "flaky", "show", FLAKY, "--no-similar", "--no-embed")
    assert [a["strategy"] for a in shown["attempts"]] == ["increase_timeout", "wait_for_selector"]
    recs = [r["strategy"] for r in shown["recommendations"]]
    assert recs[-1] == "increase_timeout" or "increase_timeout" not in recs  # what failed here goes last
    # Its failures from before it was healed do not reopen it; a failure after does.
    assert as_json(com, "flaky", "detect")["reopened"] == []
    assert as_json(com, "flaky", "detect")["flaky"][0]["status"] == "healed"
    call(com, "ingest", "-", input=run_lines(1, 10, {FLAKY: TIMEOUT.format(n=1)}, day="2099-01-01"))
    again = as_json(com, "flaky", "detect")
    assert again["reopened"] == [FLAKY] and again["flaky"][0]["status"] == "detected"


def test_show_groups_two_error_kinds_with_the_real_model(com, shop):
    out = as_json(com, "flaky", "show", FLAKY, "--no-similar")
    groups = out["manifestations"]
    assert sorted((g["category"], g["count"]) for g in groups) == [("element_not_found", 4), ("network", 3)]
    assert out["notes"] == [] and out["flaky"]["flake_rate"] == pytest.approx(0.7)
    assert all("<num>" in g["signature"] for g in groups)
    assert any(g["example"].startswith("TimeoutError: Timeout 30000ms") for g in groups)
    assert out["history"]["runs"] == 20 and out["history"]["failures"] == 7
    assert out["recommendations"][0]["strategy"] in ("wait_for_selector", "stable_selector", "wait_for_network_idle",
                                                     "retry_with_backoff")
    text = call(com, "flaky", "show", FLAKY, "--no-similar").stdout
    assert "manifestations:" in text and "element_not_found" in text and "recommended strategies:" in text
    r = call(com, "flaky", "show", SHOP + "test_oka", code=2)
    assert "did you mean 'tests/test_shop.py::test_ok'" in r.stderr


def test_show_finds_similar_failures_that_were_healed_from_the_index(com, memory):
    lines = []
    for run in range(12):
        late = run % 2 == 1
        lines.append(run_lines(run, run // 2, {
            SHOP + "test_checkout": "TimeoutError: Timeout 30000ms exceeded waiting for selector #checkout" if late else None,
            SHOP + "test_cart": "TimeoutError: Timeout 30000ms exceeded waiting for selector #cart-total" if run % 3 == 0 else None,
            SHOP + "test_db": "sqlite3.OperationalError: database is locked" if run % 4 == 0 else None,
        }))
    for text in lines:
        call(com, "ingest", "-", input=text)
    call(com, "flaky", "heal", SHOP + "test_cart", "--strategy", "wait_for_selector", "--outcome", "success")
    call(com, "flaky", "heal", SHOP + "test_db", "--strategy", "isolate_resources", "--outcome", "success")
    out = as_json(com, "flaky", "show", SHOP + "test_checkout")
    similar = out["similar_healed"]
    assert similar and similar[0]["test_id"] == SHOP + "test_cart" and similar[0]["strategy"] == "wait_for_selector"
    assert all(s["test_id"] != SHOP + "test_db" or s["similarity"] < similar[0]["similarity"] for s in similar)
    assert out["recommendations"][0]["strategy"] == "wait_for_selector"  # it healed this category before


def test_report_in_markdown_and_json(com, shop):
    call(com, "flaky", "mark", FLAKY, "quarantined")
    text = call(com, "flaky", "report").stdout
    assert text.startswith("# Flaky test report") and "| high | 1 |" in text and f"`{FLAKY}`" in text
    assert "## Broken (still failing)" in text and "No healing attempts recorded." in text
    out = json.loads(call(com, "flaky", "report", "--format", "json").stdout)
    assert out["summary"]["by_severity"]["high"] == 1 and out["summary"]["by_status"]["quarantined"] == 1
    assert out["summary"]["quarantined"] == 1 and out["summary"]["broken"] == 1
    assert [f["test_id"] for f in out["top"]] == [FLAKY] and out["healing"]["attempts"] == 0


def test_diff_keeps_flaky_flips_apart_and_gates_on_regressions(com, shop):
    # Run 13 (commit 6, second run): test_pay failed on a commit whose other run passed; test_total broke at
    # commit 6 (run 12) and fails again.
    flips = as_json(com, "diff", "HEAD~7", "HEAD~6")  # run 12 -> run 13
    assert flips["summary"]["newly_failing"] == [] and flips["summary"]["fixed"] == []
    assert [(f["test_id"], f["now"], f["why"]) for f in flips["summary"]["flaky"]] == [(FLAKY, "failing", "same_commit")]
    assert flips["summary"]["flaky"][0]["flake_rate"] > 0
    call(com, "diff", "HEAD~7", "HEAD~6", "--exit-code")  # only a flaky flip: CI passes
    regression = as_json(com, "diff", "HEAD~8", "HEAD~7")  # run 11 -> run 12: the breakage
    assert regression["summary"]["newly_failing"] == [BROKEN]
    r = call(com, "diff", "HEAD~8", "HEAD~7", "--exit-code", code=1)
    assert f"newly failing (1):\n  {BROKEN}" in r.stdout
    text = call(com, "diff", "HEAD~7", "HEAD~6").stdout
    assert "flaky (1), not counted as failing or fixed:" in text and "same_commit" in text


def test_committed_detections_make_diff_between_tags_show_flaky_and_healed_tests(com, shop):
    first = as_json(com, "flaky", "detect", "--commit")
    assert first["commit"] == head(shop)
    event = as_json(com, "events", "--type", "flaky_registry")["events"][0]
    assert [f["test_id"] for f in event["data"]["flaky"]] == [FLAKY] and event["data"]["broken"][0]["test_id"] == BROKEN
    assert as_json(com, "flaky", "detect", "--commit")["commit"] is None  # the same detection: nothing new
    call(com, "tag", "v1")
    call(com, "flaky", "mark", FLAKY, "healed", "-m", "fixed the wait")
    ingest_runs(com, 20, 39, late_flaky=True, pay_fixed=True)  # test_search starts failing one run in two
    assert as_json(com, "flaky", "detect", "--commit")["commit"] is not None
    call(com, "tag", "v2")
    summary = as_json(com, "diff", "v1", "v2")["summary"]
    reg = summary["registry"]
    assert [f["test_id"] for f in reg["became_flaky"]] == [LATE] and reg["became_flaky"][0]["severity"] == "high"
    assert reg["healed"] == [FLAKY] and reg["status"] == [{"test_id": FLAKY, "from": None, "to": "healed",
                                                          "quarantined": False}]
    text = call(com, "diff", "v1", "v2").stdout
    assert f"became flaky (1):\n  {LATE}" in text and f"{FLAKY}: unregistered -> healed" in text
    back = as_json(com, "diff", "v2", "v1")["summary"]["registry"]
    assert back["no_longer_flaky"] == [LATE]
    assert call(com, "flaky", "detect", "--commit", "--at", "v1", code=2).stderr.startswith("com: error: --at:")


def test_diff_between_consecutive_runs_of_a_generated_history(tmp_path):
    """The issue's complaint: on a generated history, most tests `com diff` called newly failing or fixed were
    planted flaky tests. Now their flips are listed apart, and no flip of a broken test is called flaky."""
    import pygit2

    from flaky_helpers import recorded_history

    from com.ops.history import diff

    history, memory, _ = recorded_history(tmp_path, seed=11, tests=120, commits=16, runs_per_commit=2,
                                          flaky_fraction=0.1, break_rate=0.4)
    planted = set(history.truth["flaky"])
    broken = {t for b in history.truth["breakages"] for t in b["tests"]} - planted
    runs = [c for c in memory.journal.repo.walk(memory.journal.head().id,
                                                pygit2.GIT_SORT_TIME | pygit2.GIT_SORT_REVERSE)]
    flaky_apart = flaky_as_regression = broken_flips = 0
    for a, b in zip(runs, runs[1:]):
        s = diff(memory, str(a.id), str(b.id)).summary
        assert not {f["test_id"] for f in s.flaky} & broken
        flaky_apart += sum(f["test_id"] in planted for f in s.flaky)
        flaky_as_regression += sum(t in planted for t in s.newly_failing + s.fixed)
        broken_flips += sum(t in broken for t in s.newly_failing + s.fixed)
    assert broken_flips > 0 and flaky_apart > 20
    assert flaky_apart / (flaky_apart + flaky_as_regression) >= 0.9, (flaky_apart, flaky_as_regression)


def test_the_registry_view_is_derived_data(com, shop):
    call(com, "flaky", "mark", FLAKY, "quarantined", "-m", "noisy")
    call(com, "flaky", "heal", FLAKY, "--strategy", "mock_network", "--outcome", "failure")
    before = (as_json(com, "flaky", "quarantine"), as_json(com, "flaky", "stats"))
    shop.registry.reset()  # what `com fsck --repair` does to a damaged store
    assert not (shop.cache_path / "registry.sqlite").exists()
    assert (as_json(com, "flaky", "quarantine"), as_json(com, "flaky", "stats")) == before
    assert as_json(com, "fsck")["ok"] is True


def test_classifying_flips_from_the_flipped_tests_alone_equals_detection_over_everything(tmp_path):
    """`com diff` classifies its flips from the flipped tests' rows (less the runs judged mass failures over every
    test): the verdicts equal detection over the whole snapshot, with and without a machine-wide failure."""
    import numpy as np
    from flaky_helpers import recorded_history

    from com.analysis.flaky import detect_flaky
    from com.model.event import validate
    from com.ops.flaky import flipped_columns, results_columns

    history, memory, cols = recorded_history(tmp_path, seed=11, tests=120, commits=16, runs_per_commit=2,
                                             flaky_fraction=0.1, break_rate=0.4)

    def verdicts(found, tests):
        return {f.test_id: (f.evidence["strongest"], round(f.flake_rate, 9), round(f.confidence, 9), f.runs)
                for f in found if f.test_id in tests}

    def compare():
        snapshot = memory.snapshot()
        whole = detect_flaky(results_columns(memory, snapshot), min_runs=1)
        tests = sorted(cols.tests)
        for some in (tests[:7], tests[7:40], [f.test_id for f in whole.flaky], tests):
            part = detect_flaky(flipped_columns(memory, snapshot, some), min_runs=1, mass_failure=None)
            assert verdicts(part.flaky, set(some)) == verdicts(whole.flaky, set(some))
        return whole

    assert compare().flaky
    # One more CI run on the newest commit where the machine failed: nearly every test errors.
    last = cols.commits[int(cols.commit[np.argmax(cols.ts_us)])]  # a commit with runs that went normally
    events = [validate({"type": "test_result", "project": "shop", "ts": "2030-01-01T00:00:00Z",
                        "data": {"test_id": t, "status": "error" if n % 10 else "passed", "run_id": "outage",
                                 "commit": last, "error_message": "ConnectionRefusedError: [Errno 111]"}})
              for n, t in enumerate(cols.tests)]
    memory.record(events)
    whole = compare()
    assert whole.excluded_runs == ["outage"]
