"""`pytest --com-quarantine` in real pytest runs (subprocesses, as CI runs them): quarantined tests still run and
are recorded, and their failures do not fail the session only when every failure is quarantined and the
session was recorded completely."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import git, run_com

from com.ingest.quarantine import judge

TESTS = """
    import os

    def test_ok():
        assert True

    def test_pay():
        # The quarantined flaky test: it fails in every session here.
        raise TimeoutError("Timeout 30000ms exceeded waiting for selector #pay")

    def test_total():
        assert os.environ.get("TOTAL_OK") == "1", "total is wrong"
"""
PAY, TOTAL = "tests/test_shop.py::test_pay", "tests/test_shop.py::test_total"


@pytest.fixture
def shop(tmp_path):
    root = tmp_path / "shop"
    (root / "tests").mkdir(parents=True)
    (root / "tests" / "test_shop.py").write_text(textwrap.dedent(TESTS).lstrip())
    (root / "pytest.ini").write_text("[pytest]\naddopts = -p no:cacheprovider\n")
    git("init", "-q", "-b", "main", cwd=root)
    git("add", "-A", cwd=root)
    git("commit", "-q", "-m", "shop", cwd=root)
    assert run_com("init", cwd=root).returncode == 0
    return root


def pytest_run(root: Path, *args: str, total_ok: bool = False):
    env = {**os.environ, "TOTAL_OK": "1" if total_ok else "0"}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", *args], cwd=root, env=env,
                          capture_output=True, text=True, timeout=300)


def com_json(root: Path, *args):
    r = run_com(*args, "--json", cwd=root)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_quarantined_failures_do_not_fail_the_session_but_are_recorded(shop):
    first = pytest_run(shop, "--com")
    assert first.returncode == 1 and "com: recorded 3 test results" in first.stdout
    r = run_com("flaky", "mark", PAY, "quarantined", "-m", "times out on the shared runner", cwd=shop)
    assert r.returncode == 0, r.stderr

    # Every failure is of a quarantined test: the session passes, and the failure is in the journal.
    passed = pytest_run(shop, "--com-quarantine", total_ok=True)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "1 failed, 2 passed" in passed.stdout  # pytest still says what happened
    assert f"com: quarantine: all 1 failure(s) are of quarantined tests ({PAY}); recorded, and the session passes" \
        in passed.stdout
    results = com_json(shop, "events", "--test", PAY)["events"]
    assert [e["data"]["status"] for e in results] == ["failed", "failed"]  # both sessions recorded it

    # Another test fails too: the session fails as it would have.
    mixed = pytest_run(shop, "--com-quarantine")
    assert mixed.returncode == 1
    assert f"com: quarantine: 1 of 2 failure(s) are of quarantined tests; 1 not (e.g. {TOTAL}): the session fails" \
        in mixed.stdout

    # Without the option nothing changes; once the test leaves quarantine, its failure counts again.
    assert pytest_run(shop, "--com", total_ok=True).returncode == 1
    assert run_com("flaky", "mark", PAY, "healed", cwd=shop).returncode == 0
    healed = pytest_run(shop, "--com-quarantine", total_ok=True)
    assert healed.returncode == 1 and "0 of 1 failure(s) are of quarantined tests" in healed.stdout
    assert len(com_json(shop, "events", "--test", PAY)["events"]) == 5


def test_no_quarantine_without_a_complete_record(shop, tmp_path):
    pytest_run(shop, "--com")
    assert run_com("flaky", "mark", PAY, "quarantined", cwd=shop).returncode == 0
    missing = tmp_path / "nowhere"
    r = pytest_run(shop, "--com-quarantine", f"--com-memory={missing}", total_ok=True)
    assert r.returncode == 1
    assert "com: warning: test results not recorded: no com memory at" in r.stdout
    assert "com: quarantine not applied: the session's results were not recorded completely" in r.stdout


def test_a_session_that_passes_or_fails_otherwise_is_left_alone(shop):
    assert run_com("flaky", "mark", PAY, "quarantined", cwd=shop).returncode == 2  # not recorded yet: unknown
    ok = pytest_run(shop, "--com-quarantine", "-k", "test_ok")
    assert ok.returncode == 0 and "com: quarantine" not in ok.stdout
    usage = pytest_run(shop, "--com-quarantine", "--no-such-option")
    assert usage.returncode == 4


@pytest.mark.parametrize("failed, answer, complete, verdict", [
    ({PAY}, {"quarantined": [PAY]}, True, True),
    ({PAY, TOTAL}, {"quarantined": [PAY]}, True, False),
    ({PAY}, {"quarantined": [PAY]}, False, False),
    ({PAY}, {"quarantined": []}, True, False),
])
def test_the_verdict(failed, answer, complete, verdict):
    assert judge(failed, answer, complete)[0] is verdict
