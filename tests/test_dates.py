"""Dates: `--at DATE` follows the memory's own first-parent history, and `--at`, `--since`, `--until` take what
git's date parser takes (`yesterday`, `2.weeks.ago`, `2026-11-01 10:00`), naive times in UTC; a bad date is one
line and exit 2."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from conftest import git


def ok(r):
    assert r.exit_code == 0, r.stderr
    return json.loads(r.stdout) if r.stdout.startswith("{") else r


def note(com, mem, text: str, ts: str | None = None, when: datetime | None = None, monkeypatch=None):
    if when is not None:
        monkeypatch.setenv("GIT_COMMITTER_DATE", when.strftime("%Y-%m-%dT%H:%M:%SZ"))
    args = ["--memory", mem, "ingest", "-p", "shop", "-t", "note", "-d", json.dumps({"text": text}), "--json"]
    if ts:
        args += ["--ts", ts]
    out = ok(com(*args))
    monkeypatch.delenv("GIT_COMMITTER_DATE", raising=False) if monkeypatch else None
    return out


def texts(com, mem, *args) -> set[str]:
    return {e["data"]["text"] for e in ok(com("--memory", mem, "events", "--limit", "0", "--json", *args))["events"]}


def at(h: int, m: int = 0) -> datetime:
    return datetime(2026, 11, 1, h, m, tzinfo=timezone.utc)


def test_at_a_date_follows_the_memorys_own_first_parent_history(com, tmp_path, monkeypatch):
    bare = tmp_path / "remote.git"
    git("init", "-q", "--bare", bare)
    a, b = tmp_path / "a" / ".com", tmp_path / "b" / ".com"
    ok(com("--memory", a, "init"))
    ok(com("--memory", a, "remote", "add", "origin", bare.as_uri()))
    note(com, a, "base", "2026-11-01T08:00:00Z", at(9), monkeypatch)
    ok(com("--memory", a, "push"))
    ok(com("clone", bare.as_uri(), b))
    note(com, a, "local", "2026-11-01T09:59:00Z", at(10), monkeypatch)  # recorded here at 10:00
    note(com, b, "theirs", "2026-11-01T10:29:00Z", at(10, 30), monkeypatch)  # recorded elsewhere at 10:30
    ok(com("--memory", b, "push"))
    monkeypatch.setenv("GIT_COMMITTER_DATE", at(11).strftime("%Y-%m-%dT%H:%M:%SZ"))
    assert ok(com("--memory", a, "pull", "--json"))["status"] == "merged"
    monkeypatch.delenv("GIT_COMMITTER_DATE")
    # At 10:45 this memory held its own event and had not yet pulled the other's.
    assert texts(com, a, "--at", "2026-11-01T10:45:00Z") == {"base", "local"}
    assert texts(com, a, "--at", "2026-11-01T09:30:00Z") == {"base"}
    assert texts(com, a, "--at", "2026-11-01T11:00:00Z") == {"base", "local", "theirs"}
    r = com("--memory", a, "events", "--at", "2026-11-01T08:00:00Z")
    assert r.exit_code == 2 and "no journal commit at or before" in r.stderr


@pytest.fixture
def recent(com, memory, monkeypatch):
    """Commits three days and one hour ago; events at those times and at fixed dates around 2026-11-01 10:00."""
    now = datetime.now(timezone.utc).replace(microsecond=0)
    old, new = now - timedelta(days=3), now - timedelta(hours=1)
    note(com, memory.root, "three days ago", old.isoformat(), old, monkeypatch)
    note(com, memory.root, "an hour ago", new.isoformat(), new, monkeypatch)
    note(com, memory.root, "nine", "2026-11-01T09:00:00Z", new, monkeypatch)
    note(com, memory.root, "eleven", "2026-11-01T11:00:00Z", new, monkeypatch)
    return memory


def test_at_since_until_take_gits_dates(com, recent):
    mem = recent.root
    assert texts(com, mem, "--at", "yesterday") == {"three days ago"}
    assert texts(com, mem, "--at", "2.days.ago") == {"three days ago"}
    assert texts(com, mem, "--at", "now") == {"three days ago", "an hour ago", "nine", "eleven"}
    assert texts(com, mem, "--since", "2.days.ago") == {"an hour ago"}
    assert texts(com, mem, "--since", "2.weeks.ago") == {"three days ago", "an hour ago"}
    assert texts(com, mem, "--until", "yesterday", "--since", "2.weeks.ago") == {"three days ago"}
    # A naive time is UTC, as everywhere in com.
    assert texts(com, mem, "--until", "2026-11-01 10:00") == {"nine"}
    assert texts(com, mem, "--since", "2026-11-01 10:00", "--until", "2026-11-01 12:00") == {"eleven"}
    assert texts(com, mem, "--until", "2026-11-01") == {"nine", "eleven"}  # a bare date: the end of that day


@pytest.mark.parametrize("option", ["--at", "--since", "--until"])
@pytest.mark.parametrize("value", ["not a date", "tomorrow", "never", "2026-13-45", "all", "--help"])
def test_a_bad_date_is_one_line_and_exit_2(com, recent, option, value):
    r = com("events", f"{option}={value}")
    assert r.exit_code == 2, (r.exit_code, r.stdout, r.stderr)
    [line] = r.stderr.strip().splitlines()
    assert line.startswith(f"com: error: {option}: ") and ("date" in line or "revision" in line), line
