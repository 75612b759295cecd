"""Concurrent writers lose nothing; a writer killed mid-batch leaves a valid journal and no partial batch."""

import json
import os
import signal
import subprocess
import sys
import time

from conftest import git, run_com

WRITER = r"""
import sys
from com.memory import Memory
from com.model.event import validate
worker, count = int(sys.argv[1]), int(sys.argv[2])
memory = Memory.find(sys.argv[3])
for n in range(count):
    event = validate({"type": "test_result", "project": "shop",
                      "data": {"test_id": f"t{worker}_{n}", "status": "passed", "run_id": f"w{worker}"}})
    memory.record([event])
"""


def count_events(memory):
    r = run_com("--memory", memory.root, "events", "--limit", "0", "--json")
    assert r.returncode == 0, r.stderr
    return len(json.loads(r.stdout)["events"])


def fsck(memory):
    return subprocess.run(["git", "--git-dir", memory.journal_path, "fsck", "--strict"], capture_output=True, text=True)


def test_eight_processes_writing_200_events_each_lose_nothing(memory):
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(w), "200", str(memory.root)], stderr=subprocess.PIPE, text=True)
        for w in range(8)
    ]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
    assert count_events(memory) == 1600
    # one commit per event: every write landed on top of the previous one, none was overwritten
    assert git("--git-dir", memory.journal_path, "rev-list", "--count", "HEAD").strip() == "1600"
    assert fsck(memory).returncode == 0


def test_concurrent_cli_ingests_of_jsonl_batches(memory, isolated):
    files = []
    for w in range(8):
        f = isolated / f"batch{w}.jsonl"
        f.write_text("".join(
            json.dumps({"type": "note", "project": "shop", "data": {"worker": w, "n": n}}) + "\n" for n in range(200)
        ))
        files.append(f)
    com = os.path.join(os.path.dirname(sys.executable), "com")
    procs = [subprocess.Popen([com, "ingest", "--file", str(f), "--json"], cwd=isolated, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for f in files]
    added = 0
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        added += json.loads(out)["added"]
    assert added == 1600
    assert count_events(memory) == 1600
    assert git("--git-dir", memory.journal_path, "rev-list", "--count", "HEAD").strip() == "8"


def test_kill_9_during_a_large_ingest_leaves_a_valid_journal(memory, isolated):
    big = isolated / "big.jsonl"
    big.write_text("".join(
        json.dumps({"type": "test_result", "project": "shop", "ts": f"2026-11-{1 + n % 20:02d}T10:00:00Z",
                    "data": {"test_id": f"tests/test_{n % 977}.py::test_{n}", "status": "passed", "duration_ms": n}}) + "\n"
        for n in range(150_000)
    ))
    first = run_com("ingest", "-p", "shop", "-t", "note", cwd=isolated)
    assert first.returncode == 0
    com = os.path.join(os.path.dirname(sys.executable), "com")
    objects = memory.journal_path / "objects"

    def object_count():
        return sum(len(files) for _, _, files in os.walk(objects))

    before = object_count()
    proc = subprocess.Popen([com, "ingest", "--file", str(big)], cwd=isolated, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # Kill it in the middle of writing: as soon as its first new object lands in the journal.
    deadline = time.monotonic() + 120
    while proc.poll() is None and object_count() == before and time.monotonic() < deadline:
        time.sleep(0.002)
    assert proc.poll() is None, "the ingest finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert object_count() > before  # it had started writing
    check = fsck(memory)
    assert check.returncode == 0, check.stderr
    assert count_events(memory) == 1  # the batch is atomic: none of it is visible
    done = run_com("ingest", "--file", big, "--json", cwd=isolated)
    assert done.returncode == 0, done.stderr
    assert count_events(memory) == 150_001
    assert fsck(memory).returncode == 0


def test_opening_a_store_waits_out_a_lock_sqlite_reports_without_waiting():
    """A process closing its last connection removes the WAL under an exclusive lock; an opener can then be told
    "database is locked" by `PRAGMA journal_mode` at once (seen once in eight concurrent writers; not
    reproducible on demand). FAKE: a connection that answers so twice, then opens; and one that always does."""
    import sqlite3

    import pytest

    from com.files import sqlite as sqlite_files

    class LockedAtFirst:  # fake: stands for SQLite's immediate SQLITE_BUSY
        def __init__(self, times):
            self.times, self.calls = times, 0

        def execute(self, sql):
            self.calls += 1
            if self.calls <= self.times:
                raise sqlite3.OperationalError("database is locked")

    db = LockedAtFirst(2)
    sqlite_files._wal(db)
    assert db.calls == 3
    other = LockedAtFirst(0)

    def broken(sql):
        raise sqlite3.OperationalError("disk I/O error")

    other.execute = broken
    with pytest.raises(sqlite3.OperationalError, match="disk I/O"):  # any other error is not waited out
        sqlite_files._wal(other)
