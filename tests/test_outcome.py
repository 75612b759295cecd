"""com.ingest.outcome: the one definition of what a pytest result means, as pure functions."""

from __future__ import annotations

import pytest

from com.ingest import outcome


@pytest.mark.parametrize("nodeid, parts", [
    ("tests/test_x.py::test_y", ("tests/test_x.py", [], "test_y")),
    ("tests/test_x.py::TestA::TestB::test_y[p]", ("tests/test_x.py", ["TestA", "TestB"], "test_y[p]")),
    ("tests/test_x.py::test_y[a::b.c/d]", ("tests/test_x.py", [], "test_y[a::b.c/d]")),  # '::' in a parameter
    ("tests/test_x.py::TestA::test_y[x::Cls::z]", ("tests/test_x.py", ["TestA"], "test_y[x::Cls::z]")),
    ("tests/test_broken.py", ("tests/test_broken.py", [], "tests/test_broken.py")),  # a collection error
])
def test_split_node_id_keeps_parameters_whole(nodeid, parts):
    assert outcome.split_node_id(nodeid) == parts


def test_junit_classname_is_pytests():
    assert outcome.junit_classname("tests/unit/test_x.py::TestA::test_y[a::b]") == "tests.unit.test_x.TestA"
    assert outcome.junit_classname("tests/test_x.py") is None


@pytest.mark.parametrize("status, expected", [
    (dict(setup="failed", teardown="failed"), ("error", "setup", True)),
    (dict(setup="skipped"), ("skipped", None, False)),
    (dict(setup="xfailed"), ("xfailed", None, False)),
    (dict(setup="passed", crashed=True), ("failed", "crash", False)),
    (dict(setup="passed", call="failed", teardown="failed"), ("failed", None, True)),
    (dict(setup="passed", call="passed", teardown="passed", subtests_failed=2), ("failed", "subtest", False)),
    (dict(setup="passed", call="passed", teardown="failed"), ("error", "teardown", False)),
    (dict(setup="passed", call="xpassed", teardown="passed"), ("xpassed", None, False)),
    (dict(setup="passed", call="xfailed", teardown="passed"), ("xfailed", None, False)),
    (dict(setup="passed"), (None, None, False)),  # never finished: not a result, certainly not a pass
    (dict(collect_failed=True), ("error", "collect", False)),
])
def test_attempt_status(status, expected):
    assert outcome.attempt_status(**status) == expected


def test_messages_lose_pytests_wrappers():
    assert outcome.unwrap_fixture_message('failed on teardown with "OSError: x"') == ("teardown", "OSError: x")
    assert outcome.unwrap_fixture_message("AssertionError") == (None, "AssertionError")
    assert outcome.strip_shortened_note("A\nB\n[+3 more lines; full report in element text]") == "A\nB"
    trace = "def f():\n>   assert 0\nE   AssertionError: no\nE   assert 0\n\nt.py:2: AssertionError"
    assert outcome.message_from_trace(trace) == "AssertionError: no\nassert 0"


def test_run_counts_tests_then_reruns_and_what_pytest_counts():
    counts = outcome.RunCounts()
    for data in [
        {"test_id": "a", "status": "failed", "rerun": True},
        {"test_id": "a", "status": "passed"},
        {"test_id": "b", "status": "failed", "teardown_error": "OSError: x"},
        {"test_id": "c", "status": "failed", "phase": "subtest", "subtests_passed": 1,
         "subtests": [{"status": "failed"}]},
        {"test_id": "d", "status": "passed"},
    ]:
        counts.add(data, pytest_parent_failed=False)
    assert counts.summary() == (
        "4 tests: 2 passed, 2 failed; subtests: 1 passed, 1 failed; 1 teardown error after a failure; "
        "1 rerun, 1 passed on rerun (flaky) [pytest counts 2 failed, 3 passed, 1 error, 1 subtests passed, 1 rerun]"
    )
    plain = outcome.RunCounts()
    for data in [{"test_id": "a", "status": "failed", "rerun": True}, {"test_id": "a", "status": "failed"},
                 {"test_id": "b", "status": "passed"}]:
        plain.add(data)
    assert plain.summary() == "2 tests: 1 passed, 1 failed; 1 rerun"  # pytest: "1 failed, 1 passed, 1 rerun"
    assert plain.pytest_counts() == outcome.parse_pytest_summary("==== 1 failed, 1 passed, 1 rerun in 0.12s ====")


def test_parse_pytest_summary_leaves_out_what_is_not_a_result():
    assert outcome.parse_pytest_summary("= 2 failed, 5 passed, 3 deselected, 1 xfailed, 2 warnings, 1 error in 1.20s =") == {
        "failed": 2, "passed": 5, "xfailed": 1, "error": 1}
