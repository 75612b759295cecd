"""`com fsck`: a healthy journal passes; damage is named (file, line, id); --repair rebuilds derived data only.

Damage that `com` itself never writes (a bad line, an altered batch) is made by writing git objects
directly with pygit2, as a buggy tool or a careless hand would."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time

import pygit2
import pytest

from conftest import git, run_com


def ingest(com, events) -> dict:
    r = com("ingest", "-", "--json", input="\n".join(json.dumps(e) for e in events))
    assert r.exit_code == 0, r.stderr
    return json.loads(r.stdout)


def event(test_id: str, status: str = "passed", ts: str = "2026-03-01T10:00:00Z", project: str = "shop") -> dict:
    return {"type": "test_result", "project": project, "ts": ts, "data": {"test_id": test_id, "status": status}}


def fsck(com, *args):
    r = com("fsck", "--json", *args)
    assert r.exit_code in (0, 1), r.stderr
    report = json.loads(r.stdout)
    assert r.exit_code == (0 if report["ok"] else 1)
    return report


def tamper(journal, files: dict[str, bytes]) -> str:
    """Commit raw files on top of the current branch, bypassing the journal's writer."""
    repo = journal.repo
    tip = journal.head()
    blobs = {path: repo.create_blob(data) for path, data in files.items()}
    tree = journal.build_tree(tip.tree, blobs)
    sig = pygit2.Signature("Tamperer", "t@example.com")
    return str(repo.create_commit(f"refs/heads/{journal.branch}", sig, sig, "tamper\n", tree, [tip.id]))


def batch_path(lines: list[bytes], project: str = "shop", day: str = "2026-03-01") -> str:
    ids = [json.loads(line)["id"] for line in lines]
    name = hashlib.blake2b("\n".join(ids).encode(), digest_size=8).hexdigest()
    return f"events/{project}/{day}/{name}.jsonl"


def stored_lines(journal) -> list[bytes]:
    return [line for b in journal.batches(journal.head().tree) for line in journal.repo[b.oid].data.splitlines()]


def test_a_healthy_journal_passes(com, journal):
    ingest(com, [event("t1", "failed"), event("t2")])
    ingest(com, [event("t3", project="web")])
    assert com("tag", "v1").exit_code == 0
    report = fsck(com)
    assert report["ok"] is True and report["problems"] == []
    assert report["counts"] == {"branches": 1, "tags": 1, "batches": 2, "events": 3, "shared": 0}
    r = com("fsck")
    assert r.exit_code == 0 and r.stdout.rstrip().endswith("ok")


def test_an_empty_journal_passes(com, memory):
    assert fsck(com)["counts"]["events"] == 0


def test_the_same_event_in_two_batches_is_harmless(com, journal, tmp_path):
    bare = tmp_path / "remote.git"
    git("init", "-q", "--bare", bare)
    assert com("remote", "add", "origin", bare.as_uri()).exit_code == 0
    ingest(com, [event("base")])
    assert com("push").exit_code == 0
    other = tmp_path / "other" / ".com"
    assert com("clone", bare.as_uri(), other).exit_code == 0
    shared = event("shared", "failed", ts="2026-03-02T08:00:00Z")
    # Same day as the shared event, so each side files it in a batch of its own making.
    ingest(com, [shared, event("mine", ts="2026-03-02T08:01:00Z")])
    theirs = [shared, event("theirs", ts="2026-03-02T08:02:00Z")]
    assert com("--memory", other, "ingest", "-", input="\n".join(map(json.dumps, theirs))).exit_code == 0
    assert com("--memory", other, "push").exit_code == 0
    assert com("pull").exit_code == 0
    report = fsck(com)
    assert report["ok"] is True
    assert report["counts"]["shared"] == 1 and report["counts"]["events"] == 4
    assert any("more than one batch" in line for line in report["info"])


def test_a_line_that_is_not_an_event_is_named_by_path_and_line(com, journal):
    ingest(com, [event("t1")])
    good = stored_lines(journal)[0]
    bad = [good, b'{"id": "evt_0123456789abcdef01234567", "type": "test_result"']
    path = batch_path([good, good])  # any name: the line fails first
    tamper(journal, {path: b"\n".join(bad) + b"\n"})
    report = fsck(com)
    assert report["ok"] is False
    [problem] = report["problems"]
    assert problem["check"] == "batches" and problem["message"].startswith(f"{path}: line 2: ")
    r = com("fsck")
    assert r.exit_code == 1 and "problems found" in r.stdout


@pytest.mark.parametrize("change, expected", [
    (lambda e: e.pop("source"), "missing field 'source'"),
    (lambda e: e["data"].update(status="exploded"), "unknown status 'exploded'"),
    (lambda e: e.update(project="web"), "is filed under shop/2026-03-01"),
])
def test_an_invalid_event_is_reported(com, journal, change, expected):
    ingest(com, [event("t1")])
    stored = json.loads(stored_lines(journal)[0])
    stored["id"] = "evt_" + "ab" * 12
    change(stored)
    line = json.dumps(stored).encode()
    tamper(journal, {batch_path([line]): line + b"\n"})
    messages = [p["message"] for p in fsck(com)["problems"]]
    assert len(messages) == 1 and expected in messages[0], messages


def test_one_id_with_two_versions_is_repaired_by_keeping_the_earliest(com, journal):
    """An older com merged two versions of an id into one snapshot; fsck names it, --repair keeps one with a new
    commit (the version a merge keeps), and the history is not rewritten."""
    ingest(com, [event("t1", "failed"), event("t2")])
    stored = json.loads(stored_lines(journal)[0])
    stored["data"]["status"] = "passed"  # same id, other content
    stored["ts"] = "2026-03-01T09:00:00Z"  # recorded earlier: this version is kept
    line = json.dumps(stored, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
    name = hashlib.blake2b(line, digest_size=8).hexdigest()
    tamper(journal, {f"events/shop/2026-03-01/{name}.jsonl": line})  # a second batch holding it
    before = git("--git-dir", journal.path, "rev-list", "HEAD").split()
    [problem] = fsck(com)["problems"]
    assert problem["check"] == "versions" and stored["id"] in problem["message"] and problem["repairable"]
    report = fsck(com, "--repair")
    assert report["ok"] and any("kept one version" in r for r in report["repaired"]), report
    assert git("--git-dir", journal.path, "rev-list", "HEAD").split()[1:] == before
    kept = [e for e in json.loads(com("events", "--json").stdout)["events"] if e["id"] == stored["id"]]
    assert [(e["ts"], e["data"]["status"]) for e in kept] == [("2026-03-01T09:00:00Z", "passed")]
    assert fsck(com)["ok"]


def test_a_batch_altered_after_writing_is_reported(com, journal):
    ingest(com, [event("t1"), event("t2")])
    [batch] = journal.batches(journal.head().tree)
    path, oid = batch.path, batch.oid
    lines = journal.repo[oid].data.splitlines()
    tamper(journal, {path: lines[0] + b"\n"})  # an event quietly dropped from the batch
    [problem] = fsck(com)["problems"]
    assert problem["message"] == f"{path}: the batch name does not match its content (altered after writing?)"


def test_a_missing_object_fails_git_fsck(com, journal):
    ingest(com, [event("t1")])
    [batch] = journal.batches(journal.head().tree)
    oid = batch.oid
    loose = journal.path / "objects" / str(oid)[:2] / str(oid)[2:]
    assert loose.exists()
    loose.chmod(0o644)
    loose.unlink()
    report = fsck(com)
    checks = {p["check"] for p in report["problems"]}
    assert "git" in checks and "batches" in checks
    assert any("missing" in p["message"] for p in report["problems"] if p["check"] == "batches")
    # --repair never pretends to fix the journal itself.
    assert fsck(com, "--repair")["ok"] is False


def test_a_catalog_that_lost_rows_is_found_and_rebuilt(com, memory, journal):
    ingest(com, [event("t1"), event("t2")])
    ingest(com, [event("t3")])
    assert fsck(com)["ok"] is True
    db = sqlite3.connect(memory.cache_path / "catalog.sqlite")
    db.execute("DELETE FROM ids")
    db.commit()
    db.close()
    # Without its rows, ingest would take known events for new ones: fsck catches it.
    [problem] = fsck(com)["problems"]
    assert problem["check"] == "catalog" and "misses 3 event(s)" in problem["message"]
    repaired = fsck(com, "--repair")
    assert repaired["ok"] is True and repaired["problems"][0]["repaired"] is True
    assert "rebuilt the catalog from the journal" in repaired["repaired"]
    assert fsck(com)["ok"] is True
    assert ingest(com, [event("t1"), event("t3")])["added"] == 0


@pytest.mark.parametrize("damage, said", [
    ("UPDATE test_runs SET prev_status = 1 - prev_status WHERE prev >= 0", "runs of tests in segment"),
    ("UPDATE test_runs SET last_batch = last_batch + 1", "runs of tests in segment"),
    ("UPDATE batches SET tests = tests + 1 WHERE batch_no = 2", "1 batch(es) have their segment or number of tests"),
    ("UPDATE batches SET seg_no = NULL", "batch(es) have their segment"),
])
def test_test_results_shortcuts_that_disagree_with_the_rows_are_found_and_rebuilt(com, memory, journal, damage, said):
    """`com diff` takes each test's newest rows and each batch's segment from the view's side tables, without
    reading the rows: fsck holds them to the rows."""
    for n in range(10):  # ten runs: the view merges them into a sorted segment, with runs of tests
        ingest(com, [event(f"t{i}", "failed" if (i + n) % 3 else "passed", ts=f"2026-03-01T10:{n:02d}:00Z")
                     for i in range(4)])
    assert fsck(com)["ok"] is True
    db = sqlite3.connect(memory.cache_path / "results.sqlite")
    assert db.execute("SELECT COUNT(*) FROM test_runs WHERE prev >= 0").fetchone()[0] == 4
    db.execute(damage)
    db.commit()
    db.close()
    [problem] = fsck(com)["problems"]
    assert problem["check"] == "test-results" and said in problem["message"]
    assert fsck(com, "--repair")["ok"] is True
    assert fsck(com)["ok"] is True


def test_a_garbage_catalog_is_replaced(com, memory, journal):
    ingest(com, [event("t1")])
    for f in memory.cache_path.glob("catalog.sqlite*"):
        f.unlink()
    (memory.cache_path / "catalog.sqlite").write_bytes(b"this is not a database" * 100)
    # Derived data found damaged on opening starts over at once: fsck says so, and it is rebuilt.
    report = fsck(com)
    [problem] = report["problems"]
    assert problem["check"] == "catalog" and "damaged" in problem["message"] and problem["repaired"] is True
    assert report["ok"] is True and any("rebuilt the catalog" in r for r in report["repaired"])
    assert fsck(com)["ok"] is True and fsck(com)["problems"] == []
    assert ingest(com, [event("t1")])["added"] == 0


def test_a_stale_lock_left_by_a_killed_process_is_removed(com, journal):
    ingest(com, [event("t1")])
    lock = journal.path / "refs" / "heads" / "main.lock"
    lock.write_text("")
    r = run_com("ingest", "-", input=json.dumps(event("t2")))
    assert r.returncode != 0 and "main.lock" in r.stderr  # git's lock blocks every writer until it is gone
    young = fsck(com)
    assert young["ok"] is True and any("main.lock" in i for i in young["info"])  # may belong to a live process
    old = time.time() - 3600
    os.utime(lock, (old, old))
    [problem] = fsck(com)["problems"]
    assert problem["message"].startswith("stale lock file refs/heads/main.lock")
    assert fsck(com, "--repair")["ok"] is True
    assert not lock.exists()
    assert ingest(com, [event("t2")])["added"] == 1


def test_repair_rebuilds_derived_data_only(com, memory, journal):
    ingest(com, [event("t1")])
    (memory.index_path / "events.lance").mkdir(parents=True)
    (memory.index_path / "events.lance" / "data").write_text("derived")
    embeddings = memory.cache_path / "embeddings.sqlite"  # costly to recompute: kept
    embeddings.write_bytes(b"vectors")
    before = git("--git-dir", journal.path, "for-each-ref")
    report = fsck(com, "--repair")
    assert report["ok"] is True
    assert any("search index" in r for r in report["repaired"])
    assert list(memory.index_path.iterdir()) == []
    assert embeddings.read_bytes() == b"vectors"
    assert git("--git-dir", journal.path, "for-each-ref") == before


def test_pull_refuses_a_peers_altered_batch_before_anything_moves(com, journal, tmp_path):
    bare = tmp_path / "remote.git"
    git("init", "-q", "--bare", bare)
    assert com("remote", "add", "origin", bare.as_uri()).exit_code == 0
    ingest(com, [event("t1"), event("t2")])
    assert com("push").exit_code == 0
    other = tmp_path / "other" / ".com"
    assert com("clone", bare.as_uri(), other).exit_code == 0
    [batch] = journal.batches(journal.head().tree)
    path, oid = batch.path, batch.oid
    from com.memory import Memory

    tamper(Memory(other).journal, {path: journal.repo[oid].data.splitlines()[0] + b"\n"})
    assert com("--memory", other, "push").exit_code == 0
    ingest(com, [event("t3")])  # diverged, so the pull must merge
    before = git("--git-dir", journal.path, "rev-parse", "main")
    tracking = git("--git-dir", journal.path, "rev-parse", "refs/remotes/origin/main")
    r = com("pull")
    assert r.exit_code == 2 and len(r.stderr.splitlines()) == 1, r.stderr
    assert "refused the journal of 'origin'" in r.stderr and f"{path}: the batch name does not match" in r.stderr
    assert git("--git-dir", journal.path, "rev-parse", "refs/remotes/origin/main") == tracking
    assert git("--git-dir", journal.path, "rev-parse", "main") == before
