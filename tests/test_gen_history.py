"""The history generator: deterministic for a seed, its JUnit ingests cleanly, its ground truth is what the journal holds."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from conftest import ROOT, git

sys.path.insert(0, str(ROOT / "scripts"))
import gen_history  # noqa: E402

SMALL = dict(seed=11, tests=40, commits=12, runs_per_commit=2)


@pytest.fixture(scope="module")
def ingested(tmp_path_factory):
    """One history (60 tests, 16 commits, 3 runs each) recorded in a fresh memory through the Python API.

    Seed 2 was chosen because its history has every flaky manifestation, setup errors, and breakages
    both through imports and through a data file; the tests check that it still does."""
    from com.memory import Memory

    root = tmp_path_factory.mktemp("history")
    history = gen_history.generate(root / "gen", seed=2, tests=60, commits=16, runs_per_commit=3, flaky_fraction=0.15)
    memory, _ = Memory.init(root / ".com")
    warnings = []
    gen_history.ingest(history, memory, warn=warnings.append)
    assert warnings == []
    return history, memory


def _journal_results(memory):
    return [e for e in memory.snapshot().events() if e["type"] == "test_result"]


def test_same_seed_gives_the_same_bytes_and_commit_shas(tmp_path):
    a = gen_history.generate(tmp_path / "a", **SMALL)
    # The second copy comes from another process with another string-hash seed: no set order leaks in.
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    subprocess.run([sys.executable, ROOT / "scripts" / "gen_history.py", tmp_path / "b", "--seed", "11", "--tests", "40",
                    "--commits", "12", "--runs-per-commit", "2"], check=True, env=env, capture_output=True)
    b = gen_history.load(tmp_path / "b")
    reports_a = sorted(p.name for p in a.junit_dir.iterdir())
    assert reports_a == sorted(p.name for p in b.junit_dir.iterdir())
    assert len(reports_a) == 12 * 2
    for name in reports_a:
        assert (a.junit_dir / name).read_bytes() == (b.junit_dir / name).read_bytes(), name
    assert a.ground_truth_path.read_bytes() == b.ground_truth_path.read_bytes()
    log_a = git("log", "--format=%H %an %ad", cwd=a.code_repo)
    assert log_a == git("log", "--format=%H %an %ad", cwd=b.code_repo)
    assert len(log_a.splitlines()) == 12
    # The truth names the same commits the repository has.
    assert [c["sha"] for c in a.truth["commits"]] == [line.split()[0] for line in reversed(log_a.splitlines())]

    c = gen_history.generate(tmp_path / "c", **{**SMALL, "seed": 12})
    assert (c.junit_dir / reports_a[0]).read_bytes() != (a.junit_dir / reports_a[0]).read_bytes()


def test_reports_ingest_cleanly_with_com_ingest_junit(tmp_path, memory, com):
    history = gen_history.generate(tmp_path / "gen", **SMALL)
    for run in history.runs[:3]:
        r = com("ingest", "--junit", history.out_dir / run["junit"], "--commit", run["commit"],
                "--run-id", run["run_id"], "--branch", "main", "-p", "shop", "--json")
        assert r.exit_code == 0, r.stderr
        assert r.stderr == ""  # no warning: every report is JUnit the ingester understands
        assert json.loads(r.stdout)["added"] == run["results"] == 40
    events = json.loads(com("events", "--limit", "0", "--json").stdout)["events"]
    assert {e["data"]["test_id"] for e in events} == set(history.truth["tests"])
    assert {e["data"]["run_id"] for e in events} == {r["run_id"] for r in history.runs[:3]}
    assert all(e["data"]["commit"] == history.runs[0]["commit"] for e in events if e["data"]["run_id"] == "run-00001")


def test_the_journal_holds_exactly_the_failures_the_truth_implies(ingested):
    history, memory = ingested
    results = _journal_results(memory)
    truth = history.truth
    assert len(results) == truth["totals"]["results"] == 60 * 16 * 3
    assert truth["totals"]["failed"] and truth["totals"]["error"]  # both kinds of failing are exercised
    counts = defaultdict(Counter)
    for e in results:
        counts[e["data"]["test_id"]][e["data"]["status"]] += 1
    for test_id, expected in truth["expected"].items():
        assert {k: v for k, v in expected.items() if v} == dict(counts[test_id]), test_id
    # One journal commit per CI run, dated when the run ended.
    log = git("--git-dir", memory.journal_path, "log", "--format=%cI %s").splitlines()
    assert len(log) == len(history.runs)
    assert log[0].startswith(history.runs[-1]["end"].replace("Z", "+00:00"))


def test_flaky_tests_pass_and_fail_on_the_same_code_commit(ingested):
    history, memory = ingested
    flaky = history.truth["flaky"]
    assert flaky
    by_commit = defaultdict(lambda: defaultdict(set))
    for e in _journal_results(memory):
        by_commit[e["data"]["test_id"]][e["data"]["commit"]].add(e["data"]["status"])
    for test_id, profile in flaky.items():
        mixed = [c for c, statuses in by_commit[test_id].items() if "passed" in statuses and statuses & {"failed", "error"}]
        assert mixed, test_id
    # A test that is neither flaky nor broken by any breakage never fails.
    broken = {t for b in history.truth["breakages"] for t in b["tests"]}
    for test_id, statuses in by_commit.items():
        if test_id not in flaky and test_id not in broken:
            assert set().union(*statuses.values()) <= {"passed", "skipped"}, test_id


def test_flaky_failures_carry_their_manifestation(ingested):
    history, memory = ingested
    patterns = {
        "timeout": r"Timeout >30\.0s", "selector": r"waiting for locator", "connection_reset": r"Connection reset by peer",
        "timing": r"took \d\.\d\ds, budget 1\.00s",
    }
    broken_runs = set()
    commit_index = {c["sha"]: c["index"] for c in history.truth["commits"]}
    for b in history.truth["breakages"]:
        end = commit_index[b["fixed_by"]] if b["fixed_by"] else len(history.truth["commits"])
        broken_runs |= {(t, i) for t in b["tests"] for i in range(commit_index[b["commit"]], end)}
    assert {p["manifestation"] for p in history.truth["flaky"].values()} == set(patterns)
    seen = 0
    for e in _journal_results(memory):
        d = e["data"]
        profile = history.truth["flaky"].get(d["test_id"])
        if profile and d["status"] != "passed" and (d["test_id"], commit_index[d["commit"]]) not in broken_runs:
            assert re.search(patterns[profile["manifestation"]], d["error_message"]), d["error_message"]
            assert d["status"] == profile["status"]
            seen += 1
    assert seen


def _imports_in_repo(repo: Path, sha: str, path: str) -> set[str]:
    """Module paths a file imports, read from the real code repository with the git CLI."""
    text = git("show", f"{sha}:{path}", cwd=repo)
    out = set()
    for parent, leaf in re.findall(r"^from (shop[\w.]*) import (\w+)", text, re.M):
        out.add("src/" + parent.replace(".", "/") + "/" + leaf + ".py")
    return out


def test_breakages_are_caused_by_what_the_broken_tests_import_or_read(ingested):
    history, _ = ingested
    repo = history.code_repo
    breakages = history.truth["breakages"]
    assert any(b["via"] == "import" for b in breakages)
    assert any(b["via"] == "data" for b in breakages)
    for b in breakages:
        changed = git("show", "--name-only", "--format=", b["commit"], cwd=repo).split()
        assert b["file"] in changed
        if b["fixed_by"]:
            assert b["file"] in git("show", "--name-only", "--format=", b["fixed_by"], cwd=repo).split()
        for test_id in b["tests"]:
            test_file = test_id.split("::")[0]
            if b["via"] == "import":
                reached, todo = set(), list(_imports_in_repo(repo, b["commit"], test_file))
                while todo:
                    mod = todo.pop()
                    if mod not in reached:
                        reached.add(mod)
                        todo.extend(_imports_in_repo(repo, b["commit"], mod))
                assert b["file"] in reached, (test_id, b["file"])
            else:
                # No import reaches a data file: the test reads it by path.
                assert b["file"].startswith("data/")
                assert b["file"] in git("show", f"{b['commit']}:{test_file}", cwd=repo)


def test_broken_tests_fail_in_every_run_until_the_fix(ingested):
    history, memory = ingested
    commit_index = {c["sha"]: c["index"] for c in history.truth["commits"]}
    statuses = defaultdict(list)
    for e in _journal_results(memory):
        statuses[(e["data"]["test_id"], commit_index[e["data"]["commit"]])].append(e["data"]["status"])
    for b in history.truth["breakages"]:
        start = commit_index[b["commit"]]
        end = commit_index[b["fixed_by"]] if b["fixed_by"] else len(history.truth["commits"])
        for test_id in b["tests"]:
            for c in range(start, end):
                assert statuses[(test_id, c)] == ["failed"] * 3, (b["id"], test_id, c)
            if b["fixed_by"] and test_id not in history.truth["flaky"]:
                assert "failed" not in statuses[(test_id, end)]


def test_files_that_change_together_keep_doing_so(ingested):
    history, _ = ingested
    cluster_of = {}
    for n, cluster in enumerate(history.truth["clusters"]):
        for f in cluster:
            cluster_of.setdefault(f, set()).add(n)
    pairs = same = 0
    for commit in history.truth["commits"][1:]:
        files = commit["files"]
        for i, a in enumerate(files):
            for b in files[i + 1:]:
                pairs += 1
                same += bool(cluster_of.get(a, set()) & cluster_of.get(b, set()))
    assert pairs and same / pairs > 0.6


def test_run_times_follow_commit_order_and_durations_are_heavy_tailed(ingested):
    history, memory = ingested
    stamps = [r["ts"] for r in history.runs]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    commit_times = [c["time"] for c in history.truth["commits"]]
    assert commit_times == sorted(commit_times)
    medians = sorted(t["duration_ms"]["median"] for t in history.truth["tests"].values())
    assert medians[-1] > 50 * medians[len(medians) // 2]
    # --at a date reads the journal as it was: the last run recorded by then.
    run = history.runs[len(history.runs) // 2]
    journal = memory.journal
    assert run["run_id"] in journal.resolve(run["end"]).message


def test_cli_prints_json_and_refuses_to_overwrite(tmp_path):
    script = ROOT / "scripts" / "gen_history.py"
    out = tmp_path / "h"
    r = subprocess.run([sys.executable, script, out, "--tests", "12", "--commits", "3"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["tests"] == 12 and report["runs"] == 6 and report["results"] == 72
    again = subprocess.run([sys.executable, script, out, "--tests", "12"], capture_output=True, text=True)
    assert again.returncode == 2
    assert "already holds a generated history" in again.stderr
