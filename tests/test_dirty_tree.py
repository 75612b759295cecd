"""A run on uncommitted changes is not a run of HEAD's code: a test that passed on the commit and fails on the
edited work tree is a regression, never "flaky: passed and failed on one commit" (the README's quick start:
change something, run the tests again). Runs on a clean tree keep that evidence."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import git, run_com

TEST_FILE = """\
import os
from shop import price

def test_price():
    assert price() == 1

def test_env():
    assert not os.environ.get("SHOP_FAIL")
"""


def pytest_com(root: Path, **env):
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider",
                           "--com"], cwd=root, env={**os.environ, **env}, capture_output=True, text=True, timeout=300)


def diff_summary(root: Path) -> dict:
    r = run_com("diff", "HEAD~1", "--json", cwd=root)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)["summary"]


def test_a_failure_on_uncommitted_changes_is_a_regression_and_a_clean_flip_is_flaky(tmp_path):
    root = tmp_path / "shop"
    root.mkdir()
    (root / "shop.py").write_text("def price():\n    return 1\n")
    (root / "test_shop.py").write_text(TEST_FILE)
    git("init", "-q", "-b", "main", cwd=root)
    git("add", "-A", cwd=root)
    git("commit", "-q", "-m", "shop", cwd=root)
    assert run_com("init", cwd=root).returncode == 0

    assert pytest_com(root).returncode == 0
    # Same commit, clean tree, the environment makes one test fail: nondeterminism seen on one commit.
    assert pytest_com(root, SHOP_FAIL="1").returncode == 1
    summary = diff_summary(root)
    assert summary["newly_failing"] == []
    assert [(f["test_id"], f["why"]) for f in summary["flaky"]] == [("test_shop.py::test_env", "same_commit")]

    # An edit not committed breaks test_price: HEAD is the same commit, the code is not.
    (root / "shop.py").write_text("def price():\n    return 2\n")
    assert pytest_com(root).returncode == 1
    summary = diff_summary(root)
    assert summary["newly_failing"] == ["test_shop.py::test_price"]
    assert "test_shop.py::test_price" not in {f["test_id"] for f in summary["flaky"]}

    r = run_com("events", "--test", "test_shop.py::test_price", "--json", "-n", "0", cwd=root)
    runs = [(e["data"]["status"], e["data"].get("code_dirty")) for e in json.loads(r.stdout)["events"]]
    assert runs == [("failed", True), ("passed", None), ("passed", None)]  # newest first; clean runs say nothing
