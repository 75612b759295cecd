"""Every test gets its own memory and code repository in a temp dir; nothing touches the developer's own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """No COM_* setting, git identity or home directory leaks in from the developer's machine."""
    for name in list(os.environ):
        if name.startswith(("COM_", "GIT_")) or name in ("GITHUB_SHA", "CI_COMMIT_SHA", "GITHUB_REF_NAME"):
            monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_AUTHOR_NAME", "Tester")
    monkeypatch.setenv("GIT_AUTHOR_EMAIL", "tester@example.com")
    monkeypatch.setenv("GIT_COMMITTER_NAME", "Tester")
    monkeypatch.setenv("GIT_COMMITTER_EMAIL", "tester@example.com")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    yield work


@pytest.fixture
def memory(isolated, monkeypatch):
    """An initialised memory at <work>/.com, found by discovery from the working directory."""
    from com.memory import Memory

    mem, _ = Memory.init(isolated / ".com")
    return mem


@pytest.fixture
def journal(memory):
    return memory.journal


class ComRunner:
    """Runs the real CLI in-process (typer's CliRunner): exit code, stdout and stderr kept apart."""

    def __init__(self):
        self.runner = CliRunner()

    def __call__(self, *args, input=None, env=None):
        from com.cli.app import app

        return self.runner.invoke(app, [str(a) for a in args], input=input, env=env, catch_exceptions=False)


@pytest.fixture
def com():
    return ComRunner()


def run_com(*args, input=None, cwd=None, env=None, check=False):
    """The installed `com` as a separate process, for tests of the real entry point."""
    exe = Path(sys.executable).parent / "com"
    return subprocess.run(
        [str(exe), *map(str, args)], input=input, cwd=cwd, env=env, capture_output=True, text=True, check=check
    )


def git(*args, cwd=None, check=True) -> str:
    return subprocess.run(["git", *map(str, args)], cwd=cwd, capture_output=True, text=True, check=check).stdout
