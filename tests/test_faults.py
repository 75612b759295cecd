"""Faults and wrong exit codes: every case is one line and exit 2 with the real cause, or a warning when the data
is saved; never exit 3. Disk full is real: a small tmpfs mounted for the test (needs root; skipped otherwise)."""

from __future__ import annotations

import gc
import json
import os
import shutil
import sqlite3
import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest

from conftest import git, run_com


def one_line(r, code: int = 2) -> str:
    assert r.exit_code == code, (r.exit_code, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("com: error: "), r.stderr
    return lines[0]


def ingest(com, *events, args=()):
    r = com("ingest", "-", *args, input="\n".join(json.dumps(e) for e in events))
    assert r.exit_code == 0, r.stderr
    return r


def result(test_id, status="failed", ts="2026-03-01T10:00:00Z"):
    return {"type": "test_result", "project": "shop", "ts": ts,
            "data": {"test_id": test_id, "status": status, "error_message": f"Timeout in {test_id}"}}


# -- wrong exit codes --------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", ["evt_zz", "evt_", "zz", "evt_" + "g" * 24, "evt_" + "a" * 25])
def test_a_malformed_event_id_in_commit_is_one_line(com, memory, bad):
    ingest(com, result("t1"))
    line = one_line(com("commit", "-m", "why", "--event", bad))
    assert "--event" in line and "evt_" in line


def test_head_is_not_a_branch_name(com, memory):
    ingest(com, result("t1"))
    assert "reserved" in one_line(com("branch", "HEAD"))


def test_a_tag_may_not_shadow_a_branch_nor_a_branch_a_tag(com, memory):
    ingest(com, result("t1"))
    assert "branch" in one_line(com("tag", "main"))
    assert com("tag", "v1").exit_code == 0
    assert "tag" in one_line(com("branch", "v1"))
    assert "tag" in one_line(com("switch", "-c", "v1"))


@pytest.mark.parametrize("first, second", [(("branch", "0"), ("branch", "0/0")), (("branch", "a/b"), ("branch", "a")),
                                           (("tag", "t"), ("tag", "t/1")), (("tag", "t/1"), ("tag", "t", "-m", "m")),
                                           (("branch", "x"), ("switch", "-c", "x/y"))])
def test_a_name_that_is_also_a_folder_of_names_is_one_line(com, memory, first, second):
    """Found by the campaign: `com branch 0/0` beside a branch `0` was an OSError from libgit2 (exit 3)."""
    ingest(com, result("t1"))
    assert com(*first).exit_code == 0
    before = git("--git-dir", memory.journal_path, "for-each-ref")
    assert "clashes" in one_line(com(*second))
    assert git("--git-dir", memory.journal_path, "for-each-ref") == before


@pytest.mark.parametrize("value", ["@abc", "@", "not a date", "@1700000000 +zz00"])
def test_a_bad_git_committer_date_is_one_line(com, memory, monkeypatch, value):
    monkeypatch.setenv("GIT_COMMITTER_DATE", value)
    assert "GIT_COMMITTER_DATE" in one_line(com("ingest", "-p", "shop", "-t", "note"))  # noqa
    assert memory.journal.head() is None


@pytest.mark.parametrize("value", ["@1700000000", "@1700000000 +0200", "2026-11-01T10:00:00Z", "yesterday"])
def test_git_committer_date_takes_gits_forms(com, memory, monkeypatch, value):
    monkeypatch.setenv("GIT_COMMITTER_DATE", value)
    assert com("ingest", "-p", "shop", "-t", "note").exit_code == 0


# -- damaged derived data ------------------------------------------------------------------------------
def _truncate(path: Path) -> None:
    os.truncate(path, path.stat().st_size // 2)


def _garbage(path: Path) -> None:
    with path.open("r+b") as fh:
        fh.write(b"this is not a database at all")


@pytest.mark.parametrize("damage", [_truncate, _garbage])
@pytest.mark.parametrize("store", ["catalog.sqlite", "results.sqlite"])
def test_a_damaged_derived_store_is_rebuilt_from_the_journal(com, memory, damage, store):
    ingest(com, result("t1"), result("t2", "passed"))
    assert com("events", "--test", "t1").exit_code == 0  # the results view exists
    memory.close()
    gc.collect()  # SQLite handles of earlier in-process commands: the WAL goes into the file when the last closes
    db = sqlite3.connect(memory.cache_path / store)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    damage(memory.cache_path / store)
    for suffix in ("-wal", "-shm"):
        Path(str(memory.cache_path / store) + suffix).unlink(missing_ok=True)
    # The command that reads the store notices the damage, says so once and rebuilds it from the journal.
    if store == "catalog.sqlite":
        r = com("ingest", "-", "--json", input=json.dumps(result("t1")) + "\n" + json.dumps(result("t3")))
        assert r.exit_code == 0 and json.loads(r.stdout)["added"] == 1, r.stderr
    else:
        r = com("events", "--test", "t1", "--json")
        assert r.exit_code == 0, r.stderr
        assert [e["data"]["test_id"] for e in json.loads(r.stdout)["events"]] == ["t1"]
    assert "rebuilt" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    r = com("events", "--test", "t1", "--json")
    assert r.exit_code == 0 and r.stderr == "", r.stderr
    assert com("fsck").exit_code == 0


def test_damaged_search_index_files_are_rebuilt_or_named(com, memory):
    pytest.importorskip("lancedb")
    ingest(com, result("t1"), result("t2"))
    r = com("search", "Timeout", "--mode", "keyword", "--json")
    assert r.exit_code == 0, r.stderr
    lance = [p for p in memory.index_path.rglob("*.lance") if p.is_file()]
    assert lance
    for path in lance:
        _truncate(path)
    # A keyword search reads the row store alone (SQLite): the LanceDB texts table is not in its way.
    r = com("search", "Timeout", "--mode", "keyword", "--json")
    assert r.exit_code == 0, r.stderr
    assert {x["event"]["data"]["test_id"] for x in json.loads(r.stdout)["results"]} == {"t1", "t2"}
    # A new text has to go into the damaged table: the index is rebuilt from the journal, or the damage named.
    ingest(com, result("t3", ts="2026-03-02T10:00:00Z"))
    r = com("search", "Timeout", "--mode", "keyword", "--json")
    if r.exit_code == 0:
        assert {x["event"]["data"]["test_id"] for x in json.loads(r.stdout)["results"]} == {"t1", "t2", "t3"}
        assert "rebuilt" in r.stderr
    else:
        assert "com index --rebuild" in one_line(r)


# -- a read-only memory ------------------------------------------------------------------------------------
def _root() -> bool:
    return os.geteuid() == 0


@contextmanager
def read_only(folder: Path):
    """The folder read-only for com: a read-only bind mount as root (root ignores file modes), else chmod."""
    if _root():
        subprocess.run(["mount", "--bind", str(folder), str(folder)], check=True)
        try:
            subprocess.run(["mount", "-o", "remount,ro,bind", str(folder)], check=True)
            yield
        finally:
            import gc

            gc.collect()  # SQLite handles of earlier in-process commands
            subprocess.run(["umount", "-l", str(folder)], check=True)
    else:
        modes = {p: p.stat().st_mode for p in [folder, *folder.rglob("*")]}
        for p in modes:
            p.chmod(modes[p] & ~0o222)
        try:
            yield
        finally:
            for p, mode in modes.items():
                p.chmod(mode)


@pytest.mark.parametrize("behind", [False, True], ids=["views-current", "views-behind"])
def test_a_read_only_memory_answers_reads(com, memory, isolated, behind):
    ingest(com, result("t1"), result("t2", "passed"))
    ingest(com, result("t1", "passed", "2026-03-02T10:00:00Z"))
    if not behind:
        assert com("events", "--test", "t1").exit_code == 0
        assert com("diff", "HEAD~1").exit_code == 0
    else:
        memory.close()
        shutil.rmtree(memory.cache_path)
        memory.cache_path.mkdir()
    expected = {args: com(*args).stdout for args in [("log",), ("events",), ("show", "HEAD")]}
    with read_only(isolated / ".com"):
        for args, out in expected.items():
            r = com(*args)
            assert r.exit_code == 0 and r.stdout == out, (args, r.stderr)
        r = com("events", "--test", "t1", "--json")
        assert r.exit_code == 0, r.stderr
        assert [e["data"]["status"] for e in json.loads(r.stdout)["events"]] == ["passed", "failed"]
        r = com("diff", "HEAD~1", "--json")
        assert r.exit_code == 0 and json.loads(r.stdout)["summary"]["fixed"] == ["t1"], r.stderr
        # Writing is refused with the real cause.
        line = one_line(com("ingest", "-p", "shop", "-t", "note"))
        assert "read-only" in line.lower() or "permission" in line.lower(), line


# -- disk full (a real one) ----------------------------------------------------------------------------
@contextmanager
def tmpfs(folder: Path, size: str):
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], check=True)
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(folder: Path, leave: int) -> Path:
    """Fill the file system of `folder` until about `leave` bytes are free."""
    filler = folder / "filler"
    free = shutil.disk_usage(folder).free
    with filler.open("wb") as fh:
        try:
            fh.write(b"\0" * max(0, free - leave))
        except OSError:
            pass
    return filler


needs_root = pytest.mark.skipif(not _root() or shutil.which("mount") is None,
                                reason="disk full is made with a small tmpfs, which needs root")


def _big_jsonl(path: Path, n: int = 20_000) -> Path:
    path.write_text("".join(json.dumps({"type": "note", "project": "shop", "data": {"n": i, "text": f"{i} " * 60}})
                            + "\n" for i in range(n)))
    return path


@needs_root
def test_a_full_disk_under_the_journal_is_one_line_and_writes_nothing(tmp_path):
    with tmpfs(tmp_path / "small", "2m") as small:
        mem = small / ".com"
        assert run_com("--memory", mem, "init").returncode == 0
        assert run_com("--memory", mem, "ingest", "-p", "shop", "-t", "note").returncode == 0
        before = git("--git-dir", mem / "journal.git", "for-each-ref")
        big = _big_jsonl(tmp_path / "big.jsonl")
        filler = fill(small, 64 * 1024)
        r = run_com("--memory", mem, "ingest", "--file", big)
        assert r.returncode == 2, (r.returncode, r.stderr)
        [line] = r.stderr.strip().splitlines()
        assert "no space left" in line.lower(), line
        assert "no transaction is active" not in line and "no error" not in line
        assert git("--git-dir", mem / "journal.git", "for-each-ref") == before
        filler.unlink()
        assert run_com("--memory", mem, "fsck").returncode == 0
        assert run_com("--memory", mem, "ingest", "--file", big).returncode == 0


@needs_root
def test_a_full_derived_store_after_the_branch_moved_is_a_warning(tmp_path):
    mem = tmp_path / "m" / ".com"
    assert run_com("--memory", mem, "init").returncode == 0
    assert run_com("--memory", mem, "ingest", "-p", "shop", "-t", "note").returncode == 0
    saved = tmp_path / "cache-copy"
    shutil.copytree(mem / "cache", saved)
    with tmpfs(mem / "cache", "512k") as cache:
        for f in saved.iterdir():
            shutil.copy2(f, cache / f.name)
        # Connections held open here keep each store's -wal and -shm files in place, so com can still open and
        # read them (the dedup before the write works) while nothing more can be written.
        holders = [sqlite3.connect(cache / name) for name in ("catalog.sqlite", "results.sqlite")]
        for db in holders:
            db.execute("SELECT COUNT(*) FROM commits").fetchone()
        fill(cache, 0)
        big = _big_jsonl(tmp_path / "big.jsonl", 2_000)
        r = run_com("--memory", mem, "ingest", "--file", big, "--json")
        for db in holders:
            db.close()
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["added"] == 2_000
        [line] = r.stderr.strip().splitlines()
        assert line.startswith("com: warning: ") and "saved" in line and "no space left" in line.lower(), line
    # The cache is gone with the tmpfs: the next reader rebuilds it, nothing was lost.
    r = run_com("--memory", mem, "events", "--limit", "0", "--json")
    assert r.returncode == 0 and len(json.loads(r.stdout)["events"]) == 2_001, r.stderr


def test_a_locked_derived_store_after_the_branch_moved_is_a_warning(com, memory, monkeypatch):
    from com.files import sqlite as sqlite_files

    ingest(com, result("t1"))
    assert com("events", "--test", "t1").exit_code == 0
    monkeypatch.setattr(sqlite_files, "BUSY_TIMEOUT", 0.2)
    memory.close()
    holder = sqlite3.connect(memory.cache_path / "catalog.sqlite", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        r = com("ingest", "-", "--json", input=json.dumps(result("t2")))
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["added"] == 1
    [line] = r.stderr.strip().splitlines()
    assert line.startswith("com: warning: ") and "saved" in line and "locked" in line, line
    assert {e["data"]["test_id"] for e in json.loads(com("events", "--json").stdout)["events"]} == {"t1", "t2"}
