"""What the test runner saw is what com records: the sample project tests/fixtures/pytest_samples/outcomes
(every outcome pytest reports, on purpose) run by the real pytest with --com and --junitxml, plain, with
pytest-rerunfailures and with pytest-xdist (a worker crash, a flaky test, subtests). The plugin's record
is checked result by result, against pytest's own summary line, and against `com ingest --junit` of the
same run's report (com.ingest.outcome.junit_differences)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from com.ingest import junit
from com.ingest.outcome import junit_differences, parse_pytest_summary
from conftest import FIXTURES, git, run_com

SAMPLE = FIXTURES / "pytest_samples" / "outcomes"
T = "tests/test_outcomes.py::"


@pytest.fixture
def project(tmp_path):
    """The sample as a code repository with a com memory."""
    root = tmp_path / "outcomes"
    shutil.copytree(SAMPLE, root)
    git("init", "-q", "-b", "main", cwd=root)
    git("add", "-A", cwd=root)
    git("commit", "-q", "-m", "sample", cwd=root)
    assert run_com("init", cwd=root).returncode == 0
    return root


def run(root: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    counter = root.parent / "counter"
    counter.unlink(missing_ok=True)
    full = {**os.environ, "SAMPLE_COUNTER": str(counter), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:randomly", *args], cwd=root, env=full,
        capture_output=True, text=True, errors="replace", timeout=600,
    )


def recorded(root: Path) -> list[dict]:
    r = run_com("events", "--json", "-n", "0", cwd=root)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)["events"]


def by_attempt(events) -> dict:
    return {(e["data"]["test_id"], e["data"]["attempt"]): e["data"] for e in events}


def pytest_line(output: str) -> dict:
    return parse_pytest_summary(output.strip().splitlines()[-1])


def com_line(output: str) -> str:
    (line,) = [l for l in output.splitlines() if l.startswith("com: recorded")]
    return line


def pytest_counts_said(line: str) -> dict:
    """The counts the plugin's line gives in pytest's terms: its bracket when it has one, else its tests."""
    m = re.search(r"\[pytest counts (.*)\]", line)
    if m:
        return parse_pytest_summary(m.group(1))
    head = line[len("com: recorded "):].split(" in journal commit")[0]
    counts = {}
    for part in re.split(r"[;:,] ", head.split(": ", 1)[1]):
        m = re.match(r"([\d,]+) (passed|failed|errors?|skipped|xfailed|xpassed|reruns?)\b", part)
        if m:
            key = "rerun" if m.group(2).startswith("rerun") else m.group(2).rstrip("s") if m.group(2) == "errors" else m.group(2)
            counts[key] = int(m.group(1).replace(",", ""))
    return counts


def junit_events(report: Path) -> list[dict]:
    return junit.events_from_reports([str(report)], project="outcomes", warn=lambda m: None)


def test_every_outcome_is_recorded_as_pytest_reported_it(project):
    r = run(project, "-q", "--com", "--junitxml=report.xml", "-o", "junit_family=xunit1",
            env={"SAMPLE_SURROGATE": "1"})
    assert r.returncode == 1, r.stdout + r.stderr
    events = recorded(project)
    rows = sorted((d["test_id"], d["attempt"], d["status"], d.get("phase")) for d in by_attempt(events).values())
    assert rows == sorted([
        (T + "test_pass", 1, "passed", None),
        (T + "test_fails", 1, "failed", None),
        (T + "test_flaky", 1, "failed", None),
        (T + "test_setup_error", 1, "error", "setup"),
        (T + "test_teardown_error", 1, "error", "teardown"),
        (T + "test_fails_then_teardown_error", 1, "failed", None),
        (T + "test_skipped", 1, "skipped", None),
        (T + "test_xfail", 1, "xfailed", None),
        (T + "test_xpass", 1, "xpassed", None),
        (T + "test_xpass_strict", 1, "failed", None),
        (T + "test_param[a::b]", 1, "passed", None),
        (T + "test_param[x.y/z]", 1, "passed", None),
        (T + "test_fixture_subtests", 1, "failed", "subtest"),
        (T + "test_fixture_subtests_pass", 1, "passed", None),
        (T + "TestUnit::test_subtests", 1, "failed", "subtest"),
        (T + "TestUnit::test_subtests_pass", 1, "passed", None),
        (T + "test_crash", 1, "passed", None),
        (T + "test_surrogate_message", 1, "failed", None),
    ])
    d = {k[0][len(T):]: v for k, v in by_attempt(events).items()}
    assert d["test_fails"]["error_message"].startswith("AssertionError: arithmetic is broken")
    assert d["test_fails"]["stdout"] == "about to fail: 2 × 2 ≠ 5"
    assert (d["test_setup_error"]["error_message"], d["test_setup_error"]["error_type"]) == (
        "RuntimeError: database is down", "RuntimeError")
    both = d["test_fails_then_teardown_error"]
    assert both["error_message"].startswith("AssertionError: call fails")
    assert (both["teardown_error"], both["teardown_error_type"]) == ("OSError: could not clean up", "OSError")
    assert (d["test_skipped"]["skip_reason"], d["test_skipped"]["skip_type"]) == ("not ready", "pytest.skip")
    assert d["test_xfail"]["xfail_reason"] == "known bug" and d["test_xpass"]["xfail_reason"] == "was a bug"
    assert d["test_xpass_strict"]["error_message"] == "[XPASS(strict)] must fail"
    param = d["test_param[a::b]"]
    assert (param["file"], param["classname"], param["name"]) == ("tests/test_outcomes.py", "tests.test_outcomes", "test_param[a::b]")
    # Each failed subtest with its own message, folded into the parent; the parent's error is the first.
    sub = d["test_fixture_subtests"]
    assert sub["subtests"] == [{"name": "[loop] (i=1)", "status": "failed", "error_type": "AssertionError",
                                "error_message": "AssertionError: one is bad\nassert 1 != 1"}]
    assert sub["subtests_passed"] == 2 and sub["error_message"].startswith("AssertionError: one is bad")
    unit = d["TestUnit::test_subtests"]
    assert [(s["name"], s["status"], s["error_message"]) for s in unit["subtests"]] == [
        ("(i=2)", "failed", "AssertionError: 2 == 2")]
    assert unit["subtests_passed"] == 2
    # pytest's progress letters for unittest subtests are not the test's output.
    assert "stdout" not in unit and "stdout" not in d["TestUnit::test_subtests_pass"]
    assert d["TestUnit::test_subtests_pass"]["subtests_passed"] == 3
    # A lone surrogate in a message is escaped; every other result of the session is there too.
    assert "cannot open caf\\xe9.txt" in d["test_surrogate_message"]["error_message"]
    source = (project / "tests" / "test_outcomes.py").read_text().splitlines()
    assert source[d["test_pass"]["line"] - 1] == "def test_pass():"  # 1-based, like an editor

    # The plugin's summary: tests first, and exactly what pytest's own line counts.
    line = com_line(r.stdout)
    assert line.startswith("com: recorded 18 tests: 6 passed, 7 failed, 2 errors, 1 skipped, 1 xfailed, 1 xpassed; "
                           "subtests: 9 passed, 2 failed; 1 teardown error after a failure [pytest counts ")
    assert pytest_counts_said(line) == pytest_line(r.stdout)
    # The same run through its JUnit report says the same, result for result.
    assert junit_differences(events, junit_events(project / "report.xml")) == []


def test_reruns_are_attempts_and_a_pass_on_rerun_is_flaky(project):
    r = run(project, "-q", "--com", "--reruns", "2", "--junitxml=report.xml",
            "-k", "pass or fails or flaky or subtests or error")
    assert r.returncode == 1, r.stdout + r.stderr
    events = recorded(project)
    attempts = by_attempt(events)
    statuses = {}
    for (test_id, attempt), data in sorted(attempts.items()):
        statuses.setdefault(test_id[len(T):], []).append((data["status"], bool(data.get("rerun"))))
    assert statuses["test_flaky"] == [("failed", True), ("passed", False)]
    assert statuses["test_fails"] == [("failed", True), ("failed", True), ("failed", False)]
    assert statuses["test_setup_error"] == [("error", True), ("error", True), ("error", False)]
    # Subtests reported before their attempt's own reports make no phantom attempt.
    assert statuses["test_fixture_subtests_pass"] == [("passed", False)]
    assert statuses["TestUnit::test_subtests_pass"] == [("passed", False)]
    assert statuses["test_fixture_subtests"] == [("failed", True), ("failed", True), ("failed", False)]
    # pytest-rerunfailures does not retry a test whose unittest subTest failed (pytest counts it passed).
    assert statuses["TestUnit::test_subtests"] == [("failed", False)]
    assert [attempts[(T + "test_fails_then_teardown_error", n)].get("teardown_error") for n in (1, 2, 3)] == [
        "OSError: could not clean up"] * 3

    line = com_line(r.stdout)
    assert "; 13 reruns, 1 passed on rerun (flaky) [pytest counts" in line, line
    assert pytest_counts_said(line) == pytest_line(r.stdout)
    # pytest junitxml writes each rerun attempt as an empty <testcase/>: read as a failed attempt, not a pass.
    assert junit_differences(events, junit_events(project / "report.xml")) == []


def test_xdist_worker_crash_with_reruns(project):
    r = run(project, "-q", "--com", "-n", "2", "--reruns", "2", "--junitxml=report.xml",
            "-k", "crash or flaky or subtests or teardown", env={"SAMPLE_CRASH": "1"})
    assert r.returncode == 1, r.stdout + r.stderr
    events = recorded(project)
    attempts = by_attempt(events)
    crash = [attempts[(T + "test_crash", n)] for n in (1, 2, 3)]
    assert [(c["status"], c["phase"], bool(c.get("rerun"))) for c in crash] == [
        ("failed", "crash", True), ("failed", "crash", True), ("failed", "crash", False)]
    assert re.match(r"worker 'gw\d+' crashed while running 'tests/test_outcomes.py::test_crash'",
                    crash[2]["error_message"])
    assert [attempts[(T + "test_flaky", n)]["status"] for n in (1, 2)] == ["failed", "passed"]
    assert (T + "test_fixture_subtests_pass", 2) not in attempts  # no phantom attempt
    assert pytest_counts_said(com_line(r.stdout)) == pytest_line(r.stdout)
    assert junit_differences(events, junit_events(project / "report.xml")) == []


def test_xdist_worker_crash_is_a_failure_not_a_pass(project):
    r = run(project, "-q", "--com", "-n", "2", "-k", "crash or test_pass", env={"SAMPLE_CRASH": "1"})
    assert r.returncode == 1, r.stdout + r.stderr
    attempts = by_attempt(recorded(project))
    assert (attempts[(T + "test_crash", 1)]["status"], attempts[(T + "test_crash", 1)]["phase"]) == ("failed", "crash")
    assert attempts[(T + "test_pass", 1)]["status"] == "passed"
    assert "com: recorded 2 tests: 1 passed, 1 failed in journal commit" in r.stdout
    assert pytest_counts_said(com_line(r.stdout)) == pytest_line(r.stdout)


@pytest.mark.parametrize("family", ["xunit1", "xunit2"])
def test_collection_error_has_one_id_in_every_path(project, family):
    (project / "tests" / "test_broken.py").write_text("import no_such_module\n")
    r = run(project, "-q", "--com", "--junitxml=report.xml", "-o", f"junit_family={family}",
            "--continue-on-collection-errors", "-k", "test_pass")
    assert r.returncode == 1
    events = [e for e in recorded(project) if e["data"].get("phase") == "collect"]
    (broken,) = [e["data"] for e in events]
    assert (broken["test_id"], broken["status"]) == ("tests/test_broken.py", "error")
    assert broken["error_message"] == "ModuleNotFoundError: No module named 'no_such_module'"
    (from_junit,) = [e["data"] for e in junit_events(project / "report.xml") if e["data"].get("phase") == "collect"]
    assert (from_junit["test_id"], from_junit["status"], from_junit["error_message"]) == (
        "tests/test_broken.py", "error", "ModuleNotFoundError: No module named 'no_such_module'")


def test_memory_option_space_form_is_warned_about_and_equals_form_is_quiet(project, tmp_path):
    memory = tmp_path / "elsewhere" / ".com"
    memory.parent.mkdir()
    assert run_com("init", cwd=memory.parent).returncode == 0
    spaced = run(project, "-q", "--com", "--com-memory", str(memory), "-k", "test_pass")
    assert "com: warning: pytest read the value of --com-memory as a test path" in spaced.stdout + spaced.stderr
    assert f"write --com-memory={memory}" in spaced.stdout + spaced.stderr
    joined = run(project, "-q", "--com", f"--com-memory={memory}", "-k", "test_pass")
    assert joined.returncode == 0, joined.stdout + joined.stderr
    assert "warning" not in joined.stdout + joined.stderr
    assert "com: recorded 1 test: 1 passed" in joined.stdout
    assert f"rootdir: {project}" in run(project, f"--com-memory={memory}", "-k", "test_pass").stdout


def test_random_seed_is_recorded_with_the_run(project):
    # A stand-in for pytest-randomly, which is not in this environment (scripts/conformance.py runs the
    # real one): it sets the seed option exactly as pytest-randomly does in pytest_configure.
    (project / "tests" / "conftest.py").write_text(
        (project / "tests" / "conftest.py").read_text()
        + "\n\ndef pytest_configure(config):\n    config.option.randomly_seed = 1234\n"
    )
    r = run(project, "-q", "--com", "-k", "test_pass")
    assert r.returncode == 0, r.stdout + r.stderr
    (event,) = recorded(project)
    assert (event["data"]["random_seed"], event["data"]["random_plugin"]) == (1234, "pytest-randomly")


def test_renamed_report_adds_nothing_and_a_different_run_is_kept(com, memory, isolated):
    """JUnit identity comes from the report's content, not its file name (issue 11)."""
    report = FIXTURES / "junit" / "pytest-xunit1.xml"
    first = isolated / "reports" / "run-1-junit.xml"
    first.parent.mkdir()
    shutil.copy(report, first)
    added = json.loads(com("ingest", "--junit", first, "-p", "shop", "--commit", "a" * 40, "--json").stdout)["added"]
    assert added == 11
    renamed = isolated / "reports" / "copy-of-run-junit.xml"
    shutil.copy(report, renamed)
    again = json.loads(com("ingest", "--junit", renamed, "-p", "shop", "--commit", "a" * 40, "--json").stdout)
    assert (again["added"], again["duplicates"]) == (0, 11)
    # Another run of the same tests: a report with other bytes (its timestamp and times differ).
    other = isolated / "reports" / "run-2-junit.xml"
    other.write_bytes(report.read_bytes().replace(b"2026-11-27T11:15:03", b"2026-11-27T12:15:03"))
    third = json.loads(com("ingest", "--junit", other, "-p", "shop", "--commit", "a" * 40, "--json").stdout)
    assert third["added"] == 11
    # Even under one --run-id (a matrix job naming its reports alike), two different reports are two.
    a = isolated / "reports" / "py310-junit.xml"
    b = isolated / "reports" / "py311-junit.xml"
    a.write_bytes(report.read_bytes().replace(b'timestamp="2026-11-27T11:15:03.428541+00:00" ', b""))
    b.write_bytes(a.read_bytes().replace(b'hostname="', b'hostname="x'))
    both = json.loads(com("ingest", "--junit", a, b, "-p", "shop", "--run-id", "build-7", "--json").stdout)
    assert both["added"] == 22
