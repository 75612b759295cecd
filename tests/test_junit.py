"""`com ingest --junit`: real reports from pytest, jest-junit, Playwright, Surefire and gotestsum become
exact test_result events with the code revision they ran against; bad reports write nothing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from typer.testing import CliRunner

from com.cli.app import app
from com.memory import Memory
from com.model.errors import ComError
from com.ingest import junit
from conftest import FIXTURES, git

JUNIT = FIXTURES / "junit"
SHA = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(autouse=True)
def no_ci(monkeypatch):
    """This suite may itself run in CI: the CI's own commit and branch variables must not leak in."""
    from com.code import repo as cr

    for name in cr.COMMIT_VARS + cr.BRANCH_VARS:
        monkeypatch.delenv(name, raising=False)


def ingest(name: str, **kw) -> list[dict]:
    kw.setdefault("project", "shop")
    kw.setdefault("commit", SHA)
    return junit.events_from_reports([str(JUNIT / name)], warn=lambda m: None, **kw)


def rows(events):
    return [(e["data"]["test_id"], e["data"]["status"], e["data"]["duration_ms"], e["data"]["attempt"]) for e in events]


def code_repo(path: Path) -> str:
    """A real code repository with one commit; returns its HEAD sha."""
    path.mkdir(parents=True, exist_ok=True)
    git("init", "-q", "-b", "main", cwd=path)
    (path / "app.py").write_text("x = 1\n")
    git("add", "app.py", cwd=path)
    git("commit", "-q", "-m", "code", cwd=path)
    return git("rev-parse", "HEAD", cwd=path).strip()


def journal_commits(work: Path) -> int:
    out = git("--git-dir", str(work / ".com" / "journal.git"), "rev-list", "--all", "--count", check=False)
    return int(out.strip() or 0)


# -- each producer, exactly -------------------------------------------------------------------
PYTEST_ROWS = [
    ("test_sample.py::test_pass", "passed", 0, 1),
    ("test_sample.py::test_failure", "failed", 0, 1),
    ("test_sample.py::test_setup_error", "error", 0, 1),
    ("test_sample.py::test_skipped", "skipped", 0, 1),
    ("test_sample.py::test_output_captured", "passed", 0, 1),
    ("test_sample.py::test_param[a-1]", "passed", 0, 1),
    ("test_sample.py::test_param[b-2]", "passed", 0, 1),
    ("test_sample.py::test_param[c-3]", "failed", 0, 1),
    ("test_sample.py::TestGroup::test_in_class_pass", "passed", 0, 1),
    ("test_sample.py::TestGroup::test_in_class_fail", "failed", 0, 1),
    ("test_sample.py::TestGroup::test_in_class_xfail", "xfailed", 0, 1),
]


@pytest.mark.parametrize("report", ["pytest-xunit1.xml", "pytest-xunit2.xml"])
def test_pytest_reports_give_node_ids_for_both_junit_families(report):
    events = ingest(report)
    assert rows(events) == PYTEST_ROWS
    by_id = {e["data"]["test_id"]: e for e in events}
    assert {e["source"] for e in events} == {"pytest"}
    failure = by_id["test_sample.py::test_failure"]["data"]
    assert failure["error_message"] == "AssertionError: sum should be 3\nassert 2 == 3"
    assert failure["error_type"] == "AssertionError"
    assert failure["trace"].splitlines()[0] == "def test_failure():"
    assert failure["trace"].splitlines()[-1] == "test_sample.py:18: AssertionError"
    setup = by_id["test_sample.py::test_setup_error"]["data"]
    # pytest's 'failed on setup with "..."' wrapper is not part of the error: the phase says it.
    assert setup["error_message"] == "RuntimeError: could not open resource"
    assert setup["error_type"] == "RuntimeError"
    assert setup["phase"] == "setup"
    assert "phase" not in failure
    assert by_id["test_sample.py::test_skipped"]["data"]["skip_reason"] == "not implemented yet"
    assert by_id["test_sample.py::test_skipped"]["data"]["skip_type"] == "pytest.skip"
    assert by_id["test_sample.py::TestGroup::test_in_class_xfail"]["data"]["xfail_reason"] == "known bug"
    assert by_id["test_sample.py::TestGroup::test_in_class_fail"]["data"]["classname"] == "test_sample.TestGroup"
    assert {e["data"]["suite"] for e in events} == {"pytest"}
    stamp = "2026-11-27T11:15:03.428541Z" if report.endswith("1.xml") else "2026-11-27T11:15:03.652515Z"
    assert {e["ts"] for e in events} == {stamp}
    if report == "pytest-xunit1.xml":  # xunit1 carries the file and line; xunit2 does not
        assert {e["data"]["file"] for e in events} == {"test_sample.py"}
        # pytest writes its 0-based location; com stores 1-based lines, as the pytest plugin does.
        assert by_id["test_sample.py::test_failure"]["data"]["line"] == 16
        source = (FIXTURES / "junit_sources" / "pytest" / "test_sample.py").read_text().splitlines()
        assert source[16 - 1] == "def test_failure():"
    else:
        assert not any("file" in e["data"] for e in events)


def test_source_flag_does_not_change_pytest_node_ids():
    events = ingest("pytest-xunit2.xml", source="ci")
    assert {e["source"] for e in events} == {"ci"}
    assert rows(events) == PYTEST_ROWS


def test_pytest_node_id_for_packages_and_nested_classes():
    assert junit.pytest_node_id("tests.unit.test_x.TestA.TestB", "test_y[p.1]", None) == (
        "tests/unit/test_x.py::TestA::TestB::test_y[p.1]"
    )
    assert junit.pytest_node_id("tests.unit.test_x.TestA", "test_y", "tests/unit/test_x.py") == (
        "tests/unit/test_x.py::TestA::test_y"
    )


JEST_FILE_ROWS = [
    ("sample.test.js::Calculator adds numbers", "passed", 7, 1),
    ("sample.test.js::Calculator fails with a message", "failed", 2, 1),
    ("sample.test.js::Calculator is skipped", "skipped", 0, 1),
    ("sample.test.js::Calculator is a todo", "passed", 0, 1),  # jest-junit reports test.todo as a plain testcase
    ("sample.test.js::Calculator param [a-1]", "passed", 0, 1),
    ("sample.test.js::Calculator param [b-2]", "passed", 0, 1),
    ("sample.test.js::Calculator param [c-3]", "failed", 1, 1),
    ("sample.test.js::Calculator nested group deeper group passes deep inside", "passed", 0, 1),
    ("sample.test.js::Calculator nested group deeper group throws an unexpected error", "failed", 1, 1),
    ("sample.test.js::top level test without describe", "passed", 1, 1),
    ("other.test.js::Strings uppercases", "passed", 0, 1),
    ("other.test.js::Strings custom error message", "failed", 0, 1),
]


def test_jest_junit_with_file_attribute():
    events = ingest("jest-junit.xml")
    assert rows(events) == JEST_FILE_ROWS
    by_id = {e["data"]["test_id"]: e["data"] for e in events}
    failure = by_id["sample.test.js::Calculator fails with a message"]
    # jest-junit writes no message attribute: the first line of the trace is the message.
    assert failure["error_message"] == "Error: expect(received).toBe(expected) // Object.is equality"
    assert failure["error_type"] == "Error"
    assert len(failure["trace"].splitlines()) == 17  # the whole trace: shorter than the kept 20 lines
    assert failure["trace"].endswith("at runTest (/tmp/jestw/node_modules/jest-runner/build/runTest.js:444:34)")
    thrown = by_id["sample.test.js::Calculator nested group deeper group throws an unexpected error"]
    assert thrown["status"] == "failed"  # jest does not tell errors from failures
    assert thrown["error_type"] == "TypeError"
    assert by_id["other.test.js::Strings uppercases"]["suite"] == "Strings"
    assert {e["source"] for e in events} == {"jest"}
    assert {e["ts"] for e in events} == {"2026-11-27T11:13:54Z"}


def test_jest_junit_without_file_attribute_uses_the_title():
    events = ingest("jest-junit-nofile.xml")
    assert rows(events) == [
        ("Calculator adds numbers", "passed", 1, 1),
        ("Calculator fails with a message", "failed", 2, 1),
        ("Calculator is skipped", "skipped", 0, 1),
        ("Calculator is a todo", "passed", 0, 1),
        ("Calculator param [a-1]", "passed", 0, 1),
        ("Calculator param [b-2]", "passed", 1, 1),
        ("Calculator param [c-3]", "failed", 0, 1),
        ("Calculator nested group deeper group passes deep inside", "passed", 0, 1),
        ("Calculator nested group deeper group throws an unexpected error", "failed", 0, 1),
        ("top level test without describe", "passed", 2, 1),
        ("Strings uppercases", "passed", 0, 1),
        ("Strings custom error message", "failed", 0, 1),
    ]
    assert not any("file" in e["data"] for e in events)


def test_playwright_report():
    events = ingest("playwright-junit.xml")
    assert rows(events) == [
        ("page.spec.js::sample page › shows the title", "passed", 480, 1),
        ("page.spec.js::sample page › fails on wrong heading", "failed", 1261, 1),
        ("page.spec.js::sample page › is skipped", "skipped", None, 1),
        # Playwright's junit reporter shows a test that passed on retry as a plain pass: one attempt.
        ("page.spec.js::sample page › clicks › flaky: fails first, passes on retry", "passed", 2243, 1),
        ("page.spec.js::top level test outside describe", "passed", 130, 1),
    ]
    by_id = {e["data"]["test_id"]: e["data"] for e in events}
    failed = by_id["page.spec.js::sample page › fails on wrong heading"]
    assert failed["error_message"] == "heading should say Goodbye"
    assert failed["error_type"] == "expect.toHaveText"
    assert failed["trace"].startswith("  [chromium] › page.spec.js:21:3 › sample page › fails on wrong heading")
    assert failed["stdout"].startswith("[[ATTACHMENT|../test-results/")
    assert by_id["page.spec.js::sample page › is skipped"]["properties"] == {"skip": ""}
    assert by_id["page.spec.js::top level test outside describe"]["stdout"] == "hello from stdout"
    assert {d["file"] for d in by_id.values()} == {"page.spec.js"}
    assert {e["source"] for e in events} == {"playwright"}
    assert {e["ts"] for e in events} == {"2026-11-27T11:14:04.099000Z"}


def test_surefire_reruns_are_attempts_in_the_order_they_ran():
    events = ingest("surefire-TEST-com.example.CalculatorTest.xml")
    assert rows(events) == [
        ("com.example.CalculatorTest::alwaysFails", "failed", 0, 1),
        ("com.example.CalculatorTest::alwaysFails", "failed", None, 2),
        ("com.example.CalculatorTest::alwaysFails", "failed", None, 3),
        ("com.example.CalculatorTest::printsOutput", "passed", 0, 1),
        ("com.example.CalculatorTest::throwsUnexpectedException", "error", 0, 1),
        ("com.example.CalculatorTest::throwsUnexpectedException", "error", None, 2),
        ("com.example.CalculatorTest::throwsUnexpectedException", "error", None, 3),
        ("com.example.CalculatorTest::skippedTest", "skipped", 0, 1),
        ("com.example.CalculatorTest::addsNumbers", "passed", 0, 1),
    ]
    assert len({e["id"] for e in events}) == 9  # identical reruns are still distinct events
    assert [e["data"].get("retry") for e in events[:3]] == [None, "rerunFailure", "rerunFailure"]
    assert [e["data"].get("retry") for e in events[4:7]] == [None, "rerunError", "rerunError"]
    rerun = events[2]["data"]
    assert rerun["error_message"] == "sum should be 5 expected:<5> but was:<4>"
    assert rerun["error_type"] == "java.lang.AssertionError"
    assert rerun["trace"] == (
        "java.lang.AssertionError: sum should be 5 expected:<5> but was:<4>\n"
        "\tat com.example.CalculatorTest.alwaysFails(CalculatorTest.java:17)"
    )
    assert events[4]["data"]["error_type"] == "java.lang.NullPointerException"
    assert events[7]["data"]["skip_reason"] == "not implemented yet"
    # Surefire's 50 JVM system properties describe the suite, not a test: they are not copied to each event.
    assert not any("properties" in e["data"] for e in events)
    assert {e["source"] for e in events} == {"surefire"}


def test_surefire_flaky_test_keeps_the_failed_attempt_before_the_pass():
    events = ingest("surefire-TEST-com.example.FlakyTest.xml")
    assert rows(events) == [
        ("com.example.FlakyTest::passesOnRerun", "failed", None, 1),
        ("com.example.FlakyTest::passesOnRerun", "passed", 2, 2),
    ]
    first = events[0]["data"]
    assert first["retry"] == "flakyFailure"
    assert first["error_message"] == "fails on attempt 1"
    assert first["trace"].splitlines()[1] == "\tat com.example.FlakyTest.passesOnRerun(FlakyTest.java:16)"


def test_surefire_nested_and_parameterized_classes():
    events = ingest("surefire-TEST-com.example.ParamTest.xml")
    assert rows(events) == [
        ("com.example.ParamTest$Inner::nestedPasses", "passed", 1, 1),
        ("com.example.ParamTest$Limits::valueBelowThree[0: a-1]", "passed", 1, 1),
        ("com.example.ParamTest$Limits::valueBelowThree[1: b-2]", "passed", 1, 1),
        ("com.example.ParamTest$Limits::valueBelowThree[2: c-3]", "failed", 1, 1),
        ("com.example.ParamTest$Limits::valueBelowThree[2: c-3]", "failed", None, 2),
        ("com.example.ParamTest$Limits::valueBelowThree[2: c-3]", "failed", None, 3),
    ]
    assert {e["data"]["suite"] for e in events} == {"com.example.ParamTest"}


def test_gotestsum_report():
    events = ingest("go-junit.xml")
    pkg = "example.com/sample::"
    assert rows(events) == [
        (pkg + "TestAddFail", "failed", 0, 1),
        (pkg + "TestTable/c-3", "failed", 0, 1),
        (pkg + "TestTable", "failed", 0, 1),
        (pkg + "TestSkipped", "skipped", 0, 1),
        (pkg + "TestNested/outer/inner_skip", "skipped", 0, 1),
        (pkg + "TestAddPass", "passed", 0, 1),
        (pkg + "TestTable/a-1", "passed", 0, 1),
        (pkg + "TestTable/b-2", "passed", 0, 1),
        (pkg + "TestNested/outer/inner_pass", "passed", 0, 1),
        (pkg + "TestNested/outer", "passed", 0, 1),
        (pkg + "TestNested", "passed", 0, 1),
    ]
    by_id = {e["data"]["test_id"]: e["data"] for e in events}
    # gotestsum's message is always "Failed": the test's own output line is the useful message.
    assert by_id[pkg + "TestAddFail"]["error_message"] == "calc_test.go:13: sum should be 3: Add(1, 1) = 2, want 3"
    assert by_id[pkg + "TestTable"]["error_message"] == "Failed"
    assert "error_type" not in by_id[pkg + "TestAddFail"]
    assert by_id[pkg + "TestSkipped"]["skip_reason"] == "calc_test.go:18: not implemented yet"
    assert {e["source"] for e in events} == {"go"}
    assert {e["ts"] for e in events} == {"2026-11-27T11:14:17Z"}


def test_rerun_elements_with_their_own_time_and_output():
    # Hand-written in the shape of Surefire 3 / Gradle merged reruns, which may carry a time and output.
    report = (
        '<testsuite name="S"><testcase classname="a.B" name="t" time="0.5">'
        '<flakyError message="boom" type="java.io.IOException" time="1.25">'
        "<stackTrace>java.io.IOException: boom</stackTrace><system-out>first try</system-out></flakyError>"
        '<flakyFailure message="nope" time="0.75"/>'
        "</testcase></testsuite>"
    ).encode()
    events = junit.parse_report(
        report, "x.xml", project="p", commit=None, branch=None, run_id=None, source=None,
        default_ts="2026-01-01T00:00:00Z", warn=lambda m: None,
    )
    assert [(e["data"]["status"], e["data"]["duration_ms"], e["data"]["attempt"]) for e in events] == [
        ("error", 1250, 1), ("failed", 750, 2), ("passed", 500, 3),
    ]
    assert events[0]["data"]["stdout"] == "first try"
    assert events[0]["data"]["error_type"] == "java.io.IOException"


def test_repeated_testcases_in_one_report_are_successive_attempts():
    # Hand-written in the shape of Gradle's un-merged reruns: the same test twice in one report.
    report = (
        '<testsuites><testsuite name="S" timestamp="2026-01-02T03:04:05">'
        '<testcase classname="a.B" name="t" time="0.1"><failure message="x"/></testcase>'
        '<testcase classname="a.B" name="t" time="0.1"><failure message="x"/></testcase>'
        '<testcase classname="a.B" name="t" time="0.2"/>'
        "</testsuite></testsuites>"
    ).encode()
    events = junit.parse_report(
        report, "r.xml", project="p", commit=None, branch=None, run_id="R", source="gradle",
        default_ts="2026-01-01T00:00:00Z", warn=lambda m: None,
    )
    assert rows(events) == [("a.B::t", "failed", 100, 1), ("a.B::t", "failed", 100, 2), ("a.B::t", "passed", 200, 3)]
    assert len({e["id"] for e in events}) == 3
    assert {e["ts"] for e in events} == {"2026-01-02T03:04:05Z"}


def test_long_output_and_trace_are_bounded():
    trace = "\n".join(f"line {i}" for i in range(500))
    out = "o" * 5000 + "THE END"
    report = (
        f'<testsuite name="S"><testcase classname="a.B" name="t"><failure message="m">{trace}</failure>'
        f"<system-out>{out}</system-out><system-err>  warn  </system-err></testcase></testsuite>"
    ).encode()
    (event,) = junit.parse_report(
        report, "r.xml", project="p", commit=None, branch=None, run_id=None, source=None,
        default_ts="2026-01-01T00:00:00Z", warn=lambda m: None,
    )
    data = event["data"]
    assert data["trace"].splitlines() == [f"line {i}" for i in range(junit.TRACE_LINES)]
    assert len(data["stdout"]) < junit.OUTPUT_CHARS + 100
    assert data["stdout"].startswith("ooo") and data["stdout"].endswith("THE END")
    assert "characters cut" in data["stdout"]
    assert data["stderr"] == "warn"
    assert data["duration_ms"] is None


# -- the command: journal, idempotence, refusals ------------------------------------------------
def test_cli_ingests_reports_and_the_git_cli_reads_them(com, memory, isolated):
    head = code_repo(isolated)
    r = com("ingest", "--junit", JUNIT / "surefire-TEST-com.example.FlakyTest.xml", JUNIT / "go-junit.xml", "--json")
    assert r.exit_code == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["added"] == 13 and out["duplicates"] == 0
    journal = str(isolated / ".com" / "journal.git")
    assert git("--git-dir", journal, "rev-parse", "HEAD").strip() == out["commit"]
    files = git("--git-dir", journal, "ls-tree", "-r", "--name-only", "HEAD").split()
    # The project defaults to the code repository's folder name; days come from the suites' timestamps.
    assert all(f.startswith(f"events/{isolated.name}/") for f in files)
    lines = [json.loads(l) for f in files for l in git("--git-dir", journal, "show", f"HEAD:{f}").splitlines()]
    assert len(lines) == 13
    assert {l["data"]["commit"] for l in lines} == {head}
    assert {l["data"]["branch"] for l in lines} == {"main"}
    # The report's identity is its bytes, not its file name (a renamed copy adds nothing).
    assert "report" not in lines[0]["data"]
    assert len({l["data"]["report_digest"] for l in lines}) == 2
    assert len({l["data"]["run_id"] for l in lines}) == 2  # one run id per report


def test_many_report_paths_after_one_junit_flag(com, memory, isolated):
    """What a shell-expanded glob gives: `--junit a.xml b.xml c.xml`."""
    code_repo(isolated)
    reports = [JUNIT / "go-junit.xml", JUNIT / "jest-junit.xml", JUNIT / "playwright-junit.xml"]
    r = com("ingest", "--junit", *reports, "--json")
    assert r.exit_code == 0, r.stderr
    events = json.loads(com("events", "--limit", "0", "--json").stdout)["events"]
    assert len({e["data"]["report_digest"] for e in events}) == len(reports)
    assert json.loads(r.stdout)["added"] == len(events)


def test_reingesting_the_same_report_adds_nothing(com, memory, isolated):
    code_repo(isolated)
    first = com("ingest", "--junit", JUNIT / "surefire-TEST-com.example.CalculatorTest.xml", "--json")
    assert json.loads(first.stdout)["added"] == 9
    # No timestamp in this Surefire report: the events get the ingest time, which is not part of their id.
    again = com("ingest", "--junit", JUNIT / "surefire-TEST-com.example.CalculatorTest.xml", "--json")
    assert again.exit_code == 0
    assert json.loads(again.stdout) == {"commit": None, "added": 0, "duplicates": 9, "ids": []}
    assert journal_commits(isolated) == 1


def test_run_id_defaults_to_a_hash_of_the_report_and_the_flag_overrides_it(tmp_path):
    a = ingest("go-junit.xml")
    b = ingest("go-junit.xml")
    assert [e["id"] for e in a] == [e["id"] for e in b]
    assert {e["data"]["run_id"] for e in a} == {"junit-" + __import__("hashlib").blake2b(
        (JUNIT / "go-junit.xml").read_bytes(), digest_size=8).hexdigest()}
    changed = tmp_path / "go-junit.xml"
    changed.write_bytes((JUNIT / "go-junit.xml").read_bytes().replace(b'time="1.160478"', b'time="1.2"'))
    c = junit.events_from_reports([str(changed)], project="shop", commit=SHA, warn=lambda m: None)
    assert {e["data"]["run_id"] for e in c}.isdisjoint({e["data"]["run_id"] for e in a})
    named = ingest("go-junit.xml", run_id="build-42")
    assert {e["data"]["run_id"] for e in named} == {"build-42"}


def test_truncated_report_is_refused_naming_file_and_line(com, memory, isolated):
    code_repo(isolated)
    r = com("ingest", "--junit", JUNIT / "go-junit.xml", JUNIT / "truncated.xml")
    assert r.exit_code == 2
    assert r.stderr.strip() == (
        f"com: error: {JUNIT / 'truncated.xml'}: line 12: malformed XML: unclosed token (column 280)"
    )
    assert journal_commits(isolated) == 0  # the good report next to it was not written either


def test_empty_file_is_malformed(com, memory, isolated):
    (isolated / "TEST-empty.xml").write_text("")
    r = com("ingest", "--junit", isolated / "TEST-empty.xml")
    assert r.exit_code == 2
    assert "TEST-empty.xml: line 1: malformed XML: no element found" in r.stderr


def test_not_junit_is_skipped_with_a_warning(com, memory, isolated):
    code_repo(isolated)
    r = com("ingest", "--junit", JUNIT / "not-junit-testng-results.xml", JUNIT / "go-junit.xml", "--json")
    assert r.exit_code == 0
    assert json.loads(r.stdout)["added"] == 11
    assert "not-junit-testng-results.xml: not a JUnit report (root element <testng-results>), skipped" in r.stderr


def test_only_non_junit_reports_is_an_error(com, memory, isolated):
    r = com("ingest", "--junit", JUNIT / "not-junit-testng-results.xml")
    assert r.exit_code == 2
    assert "no JUnit report found" in r.stderr and "1 file(s) skipped as not JUnit" in r.stderr
    assert journal_commits(isolated) == 0


def test_folder_discovery_and_globs(com, memory, isolated):
    code_repo(isolated)
    reports = isolated / "build"
    (reports / "target" / "surefire-reports").mkdir(parents=True)
    (reports / "web").mkdir()
    (reports / "node_modules" / "dep").mkdir(parents=True)
    shutil.copy(JUNIT / "surefire-TEST-com.example.FlakyTest.xml", reports / "target" / "surefire-reports" / "TEST-com.example.FlakyTest.xml")
    shutil.copy(JUNIT / "jest-junit.xml", reports / "web" / "jest-junit.xml")
    shutil.copy(JUNIT / "go-junit.xml", reports / "web" / "results.xml")  # not a report name: not discovered
    shutil.copy(JUNIT / "go-junit.xml", reports / "node_modules" / "dep" / "junit.xml")  # dependencies are pruned
    r = com("ingest", "--junit", reports, "--json")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["added"] == 2 + 12
    r = com("ingest", "--junit", str(reports / "web" / "*.xml"), "--json")
    assert json.loads(r.stdout)["added"] == 11  # the glob takes results.xml; jest-junit.xml is known already
    r = com("ingest", "--junit", str(reports / "**" / "nothing-*.xml"), "--json")
    assert r.exit_code == 2
    assert "matches no file" in r.stderr


def test_missing_path_is_an_error(com, memory):
    r = com("ingest", "--junit", "no/such/report.xml")
    assert r.exit_code == 2
    assert r.stderr.strip() == "com: error: no/such/report.xml: no such file or folder"


# -- commit, branch and project -------------------------------------------------------------------
def test_commit_from_flag_then_ci_variable_then_repository(isolated, monkeypatch):
    head = code_repo(isolated)
    assert {e["data"]["commit"] for e in ingest("go-junit.xml", commit=None)} == {head}
    monkeypatch.setenv("CI_COMMIT_SHA", "a" * 40)
    data = ingest("go-junit.xml", commit=None)[0]["data"]
    assert data["commit"] == "a" * 40
    assert data["branch"] is None  # the local branch is not the branch of another commit
    monkeypatch.setenv("GITHUB_SHA", "b" * 40)
    monkeypatch.setenv("GITHUB_HEAD_REF", "feature/x")
    data = ingest("go-junit.xml", commit=None)[0]["data"]
    assert (data["commit"], data["branch"]) == ("b" * 40, "feature/x")
    data = ingest("go-junit.xml", commit="c" * 40, branch="release")[0]["data"]
    assert (data["commit"], data["branch"]) == ("c" * 40, "release")


def test_commit_revision_is_resolved_in_the_code_repository(isolated):
    first = code_repo(isolated)
    (isolated / "app.py").write_text("x = 2\n")
    git("commit", "-q", "-am", "second", cwd=isolated)
    data = ingest("go-junit.xml", commit="HEAD~1")[0]["data"]
    assert data["commit"] == first
    assert data["branch"] is None
    with pytest.raises(ComError, match="unknown revision 'no-such-rev'") as caught:
        ingest("go-junit.xml", commit="no-such-rev")
    assert caught.value.param == "commit"  # the command line names it as its own flag:
    Memory.init(isolated / ".com")
    r = CliRunner().invoke(app, ["ingest", "--junit", str(JUNIT / "go-junit.xml"), "--commit", "no-such-rev"])
    assert r.exit_code == 2 and r.stderr.startswith("com: error: --commit: unknown revision 'no-such-rev'")


def test_jenkins_branch_loses_its_remote_prefix(isolated, monkeypatch):
    monkeypatch.setenv("GIT_COMMIT", "d" * 40)
    monkeypatch.setenv("GIT_BRANCH", "origin/main")
    data = ingest("go-junit.xml", commit=None)[0]["data"]
    assert (data["commit"], data["branch"]) == ("d" * 40, "main")


def test_repo_flag_names_the_code_repository(com, memory, isolated, tmp_path):
    other = tmp_path / "Other Service"
    head = code_repo(other)
    r = com("ingest", "--junit", JUNIT / "go-junit.xml", "--repo", other, "--json")
    assert r.exit_code == 0, r.stderr
    (event,) = [e for e in json.loads(com("events", "--json", "-n", "1").stdout)["events"]]
    assert event["data"]["commit"] == head
    assert event["project"] == "Other-Service"  # the folder name, made a valid project name


def test_no_code_repository_warns_and_records_no_commit(com, memory):
    r = com("ingest", "--junit", JUNIT / "go-junit.xml", "-p", "svc", "--json")
    assert r.exit_code == 0
    assert "no code commit known" in r.stderr
    events = json.loads(com("events", "--json", "-n", "0").stdout)["events"]
    assert len(events) == 11 and {e["data"]["commit"] for e in events} == {None}
    assert {e["project"] for e in events} == {"svc"}


def test_durations_as_tools_write_them():
    # Old Surefire versions wrote locale-formatted times; broken values become "unknown", not an error.
    times = ["1,234.5", "0,25", "0.0005", "inf", "nan", "-3", "abc", ""]
    cases = "".join(f'<testcase classname="a.B" name="t{i}" time="{t}"/>' for i, t in enumerate(times))
    events = junit.parse_report(
        f'<testsuite name="S">{cases}</testsuite>'.encode(), "r.xml", project="p", commit=None, branch=None,
        run_id=None, source=None, default_ts="2026-01-01T00:00:00Z", warn=lambda m: None,
    )
    assert [e["data"]["duration_ms"] for e in events] == [1234500, 250, 0.5, None, None, None, None, None]


# -- pytest's own encodings, read for what they mean --------------------------------------------------
def test_pytest_reruns_crash_and_teardown_encodings():
    """A real report of tests/fixtures/pytest_samples/outcomes under `-n 2 --reruns 2` with a worker crash."""
    events = ingest("pytest-reruns-xdist-xunit1.xml")
    t = "tests/test_outcomes.py::"
    got = {}
    for e in events:
        d = e["data"]
        got.setdefault(d["test_id"][len(t):], []).append((d["status"], d.get("phase"), bool(d.get("rerun"))))
    # Each rerun attempt is an empty <testcase/>: a failed attempt that was retried, never a pass.
    assert got["test_fails"] == [("failed", None, True), ("failed", None, True), ("failed", None, False)]
    assert got["test_flaky"] == [("failed", None, True), ("passed", None, False)]
    assert got["test_setup_error"][-1] == ("error", "setup", False)
    # A failure and the teardown error after it are two elements but one attempt.
    assert got["test_fails_then_teardown_error"][-1] == ("failed", None, False)
    last = [e["data"] for e in events if e["data"]["test_id"] == t + "test_fails_then_teardown_error"][-1]
    assert (last["attempt"], last["teardown_error"], last["teardown_error_type"]) == (3, "OSError: could not clean up", "OSError")
    # The crashed worker's report (a setup error in the XML) and the nameless elements of its reruns.
    assert got["test_crash"] == [("failed", "crash", True), ("failed", "crash", True), ("failed", "crash", False)]
    crash = [e["data"] for e in events if e["data"]["test_id"] == t + "test_crash"][-1]
    assert crash["error_message"] == "worker 'gw3' crashed while running 'tests/test_outcomes.py::test_crash'"
    # pytest's "contains 1 failed subtest" is not the error: the failed subtest is, listed with its message.
    sub = [e["data"] for e in events if e["data"]["test_id"] == t + "test_fixture_subtests"][-1]
    assert (sub["status"], sub["phase"]) == ("failed", "subtest")
    assert sub["subtests"] == [{"name": None, "status": "failed", "error_type": "AssertionError",
                                "error_message": "AssertionError: one is bad\nassert 1 != 1"}]
    assert got["test_xfail"] == [("xfailed", None, False)]
    assert got["test_xpass_strict"][-1] == ("failed", None, False)
    assert got["test_param[a::b]"] == [("passed", None, False)]  # '::' inside the parameter id
    assert len(events) == 33


def test_pytest_nameless_testcases_without_one_crashed_test_are_skipped_with_a_warning():
    report = (
        '<testsuites name="pytest tests"><testsuite name="pytest" timestamp="2026-01-02T03:04:05">'
        '<testcase time="0.000" /><testcase classname="tests.test_a" name="test_x" time="0.1" />'
        "</testsuite></testsuites>"
    ).encode()
    warnings = []
    events = junit.parse_report(
        report, "r.xml", project="p", commit=None, branch=None, run_id=None, source=None,
        default_ts="2026-01-01T00:00:00Z", warn=warnings.append,
    )
    assert rows(events) == [("tests/test_a.py::test_x", "passed", 100, 1)]
    assert warnings == ["r.xml: 1 testcase(s) without a name skipped (attempts pytest's junitxml could not name, "
                        "e.g. reruns of a test that crashed its pytest-xdist worker)"]
