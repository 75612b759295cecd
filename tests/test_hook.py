"""`com hook install`: the pre-push hook in a real repository, with real pushes to a local bare remote."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import ROOT, git

RUNNER = f"{sys.executable} -m pytest -q -p no:randomly -p no:cacheprovider"


def write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))


def commit(root: Path, message: str) -> str:
    git("add", "-A", cwd=root)
    git("commit", "-q", "-m", message, cwd=root)
    return git("rev-parse", "HEAD", cwd=root).strip()


@pytest.fixture
def project(isolated, monkeypatch):
    """A code repository with two tested modules, its history recorded once, pushed to a bare remote."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    root = isolated / "calc"
    root.mkdir()
    git("init", "-q", "-b", "main", cwd=root)
    write(root, "pyproject.toml", """\
        [tool.pytest.ini_options]
        pythonpath = ["src"]
        """)
    write(root, "src/calc/__init__.py", "")
    write(root, "src/calc/arith.py", """\
        def add(a, b):
            return a + b


        def mul(a, b):
            return a * b
        """)
    write(root, "src/calc/text.py", """\
        def shout(s):
            return s.upper() + "!"
        """)
    write(root, "tests/test_arith.py", """\
        from calc.arith import add, mul


        def test_add():
            assert add(2, 3) == 5


        def test_mul():
            assert mul(2, 3) == 6
        """)
    write(root, "tests/test_text.py", """\
        from calc.text import shout


        def test_shout():
            assert shout("hi") == "HI!"
        """)
    commit(root, "calc")
    memory = isolated / "mem"
    monkeypatch.setenv("COM_DIR", str(memory))
    from com.memory import Memory

    Memory.init(memory)
    out = subprocess.run([*RUNNER.split(), "--com"], cwd=root, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    remote = isolated / "remote.git"
    git("init", "-q", "--bare", remote)
    git("remote", "add", "origin", str(remote), cwd=root)
    git("push", "-q", "origin", "main", cwd=root)
    return root, remote, memory


def push(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "push", "origin", "main"], cwd=root, capture_output=True, text=True)


def remote_head(remote: Path) -> str:
    return git("--git-dir", remote, "rev-parse", "main").strip()


def results_of(memory: Path, test: str) -> list[str]:
    from com.memory import Memory
    from com.model.filter import EventFilter

    mem = Memory(memory)
    snap = mem.snapshot()
    return [e["data"]["status"] for e in snap.events(EventFilter.create(types=["test_result"], test=test))]


def test_pre_push_blocks_a_breaking_change_and_lets_a_harmless_one_through(project, com):
    root, remote, memory = project
    before = subprocess.run([sys.executable, "-c", "from com.cli import main; main()", "hook", "install",
                             "--runner", RUNNER, "--repo", str(root)], cwd=root, capture_output=True, text=True)
    assert before.returncode == 0, before.stderr
    hook = root / ".git" / "hooks" / "pre-push"
    assert hook.is_file() and os.access(hook, os.X_OK)

    # harmless: a refactor of mul that keeps it right; only test_mul runs, it passes, the push goes through
    write(root, "src/calc/arith.py", """\
        def add(a, b):
            return a + b


        def mul(a, b):
            return sum(a for _ in range(b))
        """)
    good = commit(root, "mul by addition")
    out = push(root)
    assert out.returncode == 0, out.stderr
    assert remote_head(remote) == good
    assert "1 passed" in out.stdout + out.stderr  # test_mul only: add's and shout's tests were not selected
    assert results_of(memory, "tests/test_arith.py::test_mul").count("passed") == 2  # recorded by the plugin
    assert results_of(memory, "tests/test_text.py::test_shout").count("passed") == 1

    # breaking: shout loses its "!"; the selected test fails, the push is blocked, the remote keeps its commit
    write(root, "src/calc/text.py", """\
        def shout(s):
            return s.upper()
        """)
    commit(root, "shout quietly")
    out = push(root)
    assert out.returncode != 0
    assert remote_head(remote) == good
    assert "push blocked" in out.stderr
    assert "failed" in results_of(memory, "tests/test_text.py::test_shout")


def test_an_existing_hook_is_kept_and_runs_first(project, com):
    root, remote, memory = project
    hooks = root / ".git" / "hooks"
    marker = root.parent / "chained-ran"
    (hooks / "pre-push").write_text(f"#!/bin/sh\ncat > '{marker}'\nexit 0\n")
    (hooks / "pre-push").chmod(0o755)
    r = com("hook", "install", "--runner", RUNNER, "--repo", root)
    assert r.exit_code == 0, r.stderr
    assert (hooks / "pre-push.com-chained").is_file()
    write(root, "README.md", "docs only\n")
    sha = commit(root, "docs")
    out = push(root)
    assert out.returncode == 0, out.stderr
    assert marker.read_text().split()[1] == sha  # the earlier hook got git's input
    assert "no test selected" in out.stderr
    assert remote_head(remote) == sha
    # installing again updates com's hook and keeps the chained one
    r = com("hook", "install", "--runner", RUNNER, "--repo", root)
    assert r.exit_code == 0 and "Updated" in r.stdout
    assert (hooks / "pre-push.com-chained").is_file()


def test_a_failing_chained_hook_blocks_before_any_test_runs(project, com):
    root, remote, memory = project
    hooks = root / ".git" / "hooks"
    (hooks / "pre-push").write_text("#!/bin/sh\nexit 3\n")
    (hooks / "pre-push").chmod(0o755)
    assert com("hook", "install", "--runner", RUNNER, "--repo", root).exit_code == 0
    write(root, "README.md", "docs\n")
    commit(root, "docs")
    out = push(root)
    assert out.returncode != 0 and "pre-push.com-chained failed (exit 3)" in out.stderr


def test_install_refuses_when_core_hooks_path_points_elsewhere(project, com):
    root, remote, memory = project
    git("config", "core.hooksPath", ".githooks", cwd=root)
    r = com("hook", "install", "--repo", root)
    assert r.exit_code == 2
    assert "core.hooksPath is set to .githooks" in r.stderr and "would never run" in r.stderr
    assert not (root / ".git" / "hooks" / "pre-push").exists()


def test_the_hook_script_quotes_every_value(tmp_path):
    from com.ops.hook import script

    text = script("pytest -q -k 'a and b'; rm -rf /", tmp_path / "it's $(here)", python="/usr/bin/python3")
    line = text.splitlines()[-1]
    argv = subprocess.run(["sh", "-c", f"printf '%s\\n' {line.removeprefix('exec ')}", "sh", "origin", "url"],
                          capture_output=True, text=True).stdout.splitlines()
    assert argv[argv.index("--memory") + 1] == str(tmp_path / "it's $(here)")
    assert argv[argv.index("--runner") + 1] == "pytest -q -k 'a and b'; rm -rf /"
    assert argv[-2:] == ["origin", "url"]


def test_pre_push_input_skips_deletions_and_uses_the_remote_sha(project, com):
    from com.memory import Memory
    from com.ops.hook import ZERO, run_pre_push

    root, remote, memory = project
    base = git("rev-parse", "HEAD", cwd=root).strip()
    write(root, "src/calc/text.py", "def shout(s):\n    return s.upper() + '!!'\n")
    head = commit(root, "louder")
    mem = Memory(memory)
    lines = f"refs/heads/gone {ZERO} refs/heads/gone {base}\nrefs/heads/main {head} refs/heads/main {base}\n"
    run = run_pre_push(mem, "origin", str(remote), lines, runner=RUNNER, repo_path=str(root))
    assert run.specs == [{"ref": "refs/heads/main", "spec": f"{base}..{head}", "why": None}]
    assert run.selected == ["tests/test_text.py::test_shout"] and run.exit_code == 1
    # a new branch (remote sha unknown): the base is where it leaves what the remote's branches hold
    run = run_pre_push(mem, "origin", str(remote), f"refs/heads/topic {head} refs/heads/topic {ZERO}\n",
                       runner=RUNNER, repo_path=str(root))
    assert run.specs[0]["spec"] == f"{base}..{head}"


def test_pre_commit_runs_it_with_the_range_in_its_variables(project):
    import yaml

    from com.memory import Memory
    from com.ops.hook import pre_commit_input, run_pre_push

    root, remote, memory = project
    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    assert hooks[0]["id"] == "com-select" and hooks[0]["stages"] == ["pre-push"]
    assert "--from-pre-commit" in hooks[0]["entry"]
    base = git("rev-parse", "HEAD", cwd=root).strip()
    write(root, "src/calc/arith.py", "def add(a, b):\n    return b + a\n\n\ndef mul(a, b):\n    return a * b\n")
    head = commit(root, "commutative")
    text = pre_commit_input({"PRE_COMMIT_FROM_REF": f"{head}^", "PRE_COMMIT_TO_REF": head,
                             "PRE_COMMIT_LOCAL_BRANCH": "refs/heads/main", "PRE_COMMIT_REMOTE_BRANCH": "refs/heads/main"})
    run = run_pre_push(Memory(memory), "origin", str(remote), text, runner=RUNNER, repo_path=str(root))
    assert run.specs[0]["spec"] == f"{base}..{head}"
    assert run.selected == ["tests/test_arith.py::test_add"] and run.exit_code == 0
