"""A one-event `com ingest` from flags runs without typer (start-up is most of its cost) and answers exactly as the
typer command does; anything but the plain form is left to the typer command."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from com.cli import quick

from conftest import git, run_com


def imported_by(args, cwd) -> set[str]:
    code = f"import sys; sys.argv = ['com', *{list(args)!r}]; from com.cli import main; main()"
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", code], cwd=cwd, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    return {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in out.stderr.splitlines() if "|" in line}


def test_a_one_event_ingest_loads_neither_typer_nor_click(memory, isolated):
    loaded = imported_by(["ingest", "-p", "shop", "-t", "note", "-d", '{"text": "hi"}'], isolated)
    assert "pygit2" in loaded and not loaded & {"typer", "click", "numpy", "subprocess"}
    assert git("--git-dir", memory.journal_path, "rev-list", "--count", "HEAD").strip() == "1"


def test_the_quick_path_answers_as_the_typer_command(memory, isolated, com):
    args = ["-p", "shop", "-t", "test_result", "-s", "ci", "-i", "4", "--tag", "a", "--tag=b",
            "--data", '{"test_id": "t::x", "status": "failed"}', "--ts", "2026-03-01T10:00:00Z", "--json"]
    fast = run_com("ingest", *args, cwd=isolated)
    assert fast.returncode == 0, fast.stderr
    first = json.loads(fast.stdout)
    assert first["added"] == 1 and first["commit"]
    again = com("ingest", *args)  # the typer command, in-process: the same event is known
    assert json.loads(again.stdout) == {"commit": None, "added": 0, "duplicates": 1, "ids": []}
    assert json.loads(run_com("ingest", *args, cwd=isolated).stdout) == json.loads(again.stdout)
    human = run_com("ingest", "-p", "shop", "-t", "note", "-m", "by hand", cwd=isolated)
    assert human.returncode == 0 and human.stdout.startswith("added 1 event(s), 0 already known")
    assert git("--git-dir", memory.journal_path, "log", "-1", "--format=%s").strip() == "by hand"
    # the view took the result in at once, as the typer command's write does
    events = json.loads(run_com("events", "--test", "t::x", "--json", cwd=isolated).stdout)["events"]
    assert [e["tags"] for e in events] == [["a", "b"]]


def test_memory_flag_before_the_verb(memory, tmp_path):
    for form in (["--memory", str(memory.root)], [f"--memory={memory.root}"]):
        loaded = imported_by([*form, "ingest", "-p", "shop", "-t", "note", "--data", '{"form": 1}'], tmp_path)
        assert "pygit2" in loaded and not loaded & {"typer", "click"}, form  # the quick path, both forms
    out = run_com("--memory", memory.root, "ingest", "-p", "shop", "-t", "note", "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["added"] == 1
    assert json.loads(run_com(f"--memory={memory.root}", "ingest", "-p", "shop", "-t", "note", "--data", "{}",
                              "--json", cwd=tmp_path).stdout)["duplicates"] == 1


@pytest.mark.parametrize("args, message", [
    (["-t", "note"], "--project: field 'project': missing"),
    (["-p", "shop", "-t", "note", "-d", "[1]"], "--data: expected a JSON object"),
    (["-p", "shop", "-t", "note", "-i", "lots"], "'lots' is not a valid float"),
    (["-p", "shop", "-t", "Note"], "field 'type': expected a lowercase word"),
    (["-p", "shop"], "nothing to ingest"),
])
def test_refusals_are_said_by_the_typer_command(memory, isolated, args, message):
    out = run_com("ingest", *args, cwd=isolated)
    assert out.returncode == 2 and message in out.stderr, out.stderr
    assert memory.journal.head() is None


@pytest.mark.parametrize("argv", [
    ["ingest"], ["ingest", "-"], ["ingest", "--file", "x.jsonl"], ["ingest", "-h"], ["ingest", "-t", "note", "-t", "x"],
    ["ingest", "-pshop", "-t", "note"], ["ingest", "-t"], ["events", "ingest"], ["--memory"], ["ingest", "--bogus", "1", "-t", "n"],
])
def test_only_the_plain_form_is_read_quickly(argv):
    assert quick.parse(argv) is None


def test_the_plain_form_is_read():
    assert quick.parse(["--memory", "/m", "ingest", "-t", "note", "--tag", "a", "--tag=b", "-i", "2.5", "--json"]) == {
        "memory": "/m", "tag": ["a", "b"], "json": True, "type": "note", "importance": 2.5}


def test_quick_ingests_in_parallel_lose_nothing_and_leave_the_stores_whole(memory, isolated):
    """The quick path ends its process without closing the SQLite stores (no checkpoint): whatever the order,
    every event is recorded, every reader sees them, and fsck finds the derived data whole."""
    import os

    exe = os.path.join(os.path.dirname(sys.executable), "com")
    procs = [subprocess.Popen([exe, "ingest", "-p", "shop", "-t", "test_result", "-d",
                               json.dumps({"test_id": f"t::{n % 3}", "status": "failed" if n % 4 else "passed"}),
                               "--ts", f"2026-03-01T10:00:{n:02d}Z"], cwd=isolated, stdout=subprocess.DEVNULL)
             for n in range(12)]
    assert all(p.wait() == 0 for p in procs)
    events = json.loads(run_com("events", "--limit", "0", "--json", cwd=isolated).stdout)["events"]
    assert len(events) == 12
    assert len(json.loads(run_com("events", "--test", "t::1", "--limit", "0", "--json", cwd=isolated).stdout)["events"]) == 4
    report = json.loads(run_com("fsck", "--json", cwd=isolated).stdout)
    assert report["ok"], report["problems"]
