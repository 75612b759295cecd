"""What makes two events the same event, and what happens when two memories disagree about one.

- Ids are compared whole (the catalog once keyed them by a 60-bit prefix and dropped a distinct event).
- An event without `ts` is identified by its content; its `ts` is when it was first recorded. Two memories
  recording it at different moments write different batches (batch names come from their bytes), and a merge
  keeps the earliest recording: no batch path ever holds two different blobs, nothing wedges.
- The same id with different content is a conflict: ingest refuses it naming both versions; a merge resolves
  it deterministically (the earliest `ts`, then the smaller stored line), the same way on both sides.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import pygit2
import pytest

from conftest import git


def new_memory(com, tmp_path, name: str, url: str | None = None) -> Path:
    mem = tmp_path / name / ".com"
    r = com("--memory", mem, "init")
    assert r.exit_code == 0, r.stderr
    if url:
        r = com("--memory", mem, "remote", "add", "origin", url)
        assert r.exit_code == 0, r.stderr
    return mem


def ok(r):
    assert r.exit_code == 0, r.stderr
    return json.loads(r.stdout) if r.stdout.startswith("{") else r


def ingest(com, mem, events) -> dict:
    return ok(com("--memory", mem, "ingest", "-", "--json", input="\n".join(json.dumps(e) for e in events)))


def events_of(com, mem, *args) -> list[dict]:
    return ok(com("--memory", mem, "events", "--limit", "0", "--json", *args))["events"]


def fsck(com, mem, *args) -> dict:
    r = com("--memory", mem, "fsck", "--json", *args)
    assert r.exit_code in (0, 1), r.stderr
    return json.loads(r.stdout)


def blobs_by_path(mem: Path) -> dict[str, str]:
    """path -> blob id of every batch in every commit of the journal's history."""
    out: dict[str, set] = {}
    revs = git("--git-dir", mem / "journal.git", "rev-list", "--all").split()
    for rev in revs:
        for line in git("--git-dir", mem / "journal.git", "ls-tree", "-r", rev).splitlines():
            meta, path = line.split("\t")
            out.setdefault(path, set()).add(meta.split()[2])
    return out


def assert_one_blob_per_path(*mems: Path) -> None:
    seen: dict[str, set] = {}
    for mem in mems:
        for path, oids in blobs_by_path(mem).items():
            seen.setdefault(path, set()).update(oids)
    bad = {p: o for p, o in seen.items() if len(o) > 1}
    assert not bad, f"batch paths holding different blobs: {bad}"


@pytest.fixture
def pair(com, tmp_path):
    """Two memories sharing one bare remote, both with the same first commit."""
    bare = tmp_path / "remote.git"
    git("init", "-q", "--bare", bare)
    a = new_memory(com, tmp_path, "a", bare.as_uri())
    ingest(com, a, [{"type": "note", "project": "shop", "ts": "2026-03-01T00:00:00Z", "data": {"text": "base"}}])
    ok(com("--memory", a, "push"))
    b = tmp_path / "b" / ".com"
    ok(com("clone", bare.as_uri(), b))
    return a, b


def sync_both(com, a, b) -> None:
    """a pushes, b pulls and pushes, a pulls: afterwards both hold the same commit."""
    ok(com("--memory", a, "push"))
    ok(com("--memory", b, "pull"))
    ok(com("--memory", b, "push"))
    ok(com("--memory", a, "pull"))
    head = lambda m: git("--git-dir", m / "journal.git", "rev-parse", "HEAD").strip()  # noqa: E731
    assert head(a) == head(b)


# -- ids compared whole ------------------------------------------------------------------------
def test_ids_sharing_a_60_bit_prefix_are_two_events(com, memory):
    first = "evt_" + "a" * 15 + "000000001"
    second = "evt_" + "a" * 15 + "000000002"
    note = {"type": "note", "project": "shop", "ts": "2026-03-01T10:00:00Z"}
    assert ingest(com, memory.root, [{**note, "id": first, "data": {"n": 1}}])["added"] == 1
    out = ingest(com, memory.root, [{**note, "id": second, "data": {"n": 2}}])
    assert out["added"] == 1 and out["ids"] == [second]
    assert {e["id"] for e in events_of(com, memory.root)} == {first, second}


# -- the same id, other content ------------------------------------------------------------------
def test_ingest_refuses_a_known_id_with_other_content_naming_both_versions(com, memory):
    eid = "evt_" + "b" * 24
    stored = {"id": eid, "type": "test_result", "project": "shop", "ts": "2026-03-01T10:00:00Z",
              "data": {"test_id": "t1", "status": "passed"}}
    ingest(com, memory.root, [stored])
    head = memory.journal.head().id
    r = com("ingest", "-", input=json.dumps({**stored, "data": {"test_id": "t1", "status": "failed"}}))
    assert r.exit_code == 2 and r.stdout == ""
    [line] = r.stderr.splitlines()
    assert eid in line and "'passed'" in line and "'failed'" in line, line
    assert memory.journal.head().id == head
    # The same content again is a plain duplicate, and so is the same id with its ts left out.
    assert ingest(com, memory.root, [stored])["duplicates"] == 1
    no_ts = {k: v for k, v in stored.items() if k != "ts"}
    assert ingest(com, memory.root, [no_ts])["duplicates"] == 1


def test_one_input_holding_an_id_twice_with_other_content_is_refused(com, memory):
    eid = "evt_" + "c" * 24
    a = {"id": eid, "type": "note", "project": "shop", "ts": "2026-03-01T10:00:00Z", "data": {"n": 1}}
    r = com("ingest", "-", input=json.dumps(a) + "\n" + json.dumps({**a, "data": {"n": 2}}))
    assert r.exit_code == 2 and eid in r.stderr and len(r.stderr.splitlines()) == 1, r.stderr
    assert memory.journal.head() is None


# -- events without ts ----------------------------------------------------------------------------
def test_the_readme_example_ingested_by_two_memories_a_second_apart_never_wedges(com, pair):
    a, b = pair
    flags = ["ingest", "-p", "shop", "-t", "note", "-d", '{"text": "deployed 1.4"}', "--json"]
    ida = ok(com("--memory", a, *flags))["ids"]
    time.sleep(1.1)
    idb = ok(com("--memory", b, *flags))["ids"]
    assert ida == idb  # the same event: its content, not the clock, names it
    first_ts = [e["ts"] for e in events_of(com, a) if e["id"] == ida[0]][0]
    for _ in range(2):  # every later sync keeps working
        sync_both(com, a, b)
    for mem in (a, b):
        notes = [e for e in events_of(com, mem) if e["id"] == ida[0]]
        assert len(notes) == 1 and notes[0]["ts"] == first_ts  # the first recording wins, on both sides
        report = fsck(com, mem)
        assert report["ok"], report
        # Recording it again anywhere adds nothing.
        assert ok(com("--memory", mem, *flags))["added"] == 0
    assert_one_blob_per_path(a, b)


JUNIT_NO_TIMESTAMP = b"""<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" tests="2" failures="1">
<testcase classname="tests.test_a" name="test_ok" file="tests/test_a.py" time="0.1"/>
<testcase classname="tests.test_a" name="test_bad" file="tests/test_a.py" time="0.2"><failure message="boom">x</failure></testcase>
</testsuite></testsuites>
"""


def test_two_ci_jobs_ingesting_one_report_without_timestamp_merge_cleanly(com, pair, tmp_path):
    a, b = pair
    report = tmp_path / "report-junit.xml"
    report.write_bytes(JUNIT_NO_TIMESTAMP)
    ok(com("--memory", a, "ingest", "--junit", report, "--commit", "a" * 40))
    time.sleep(1.1)
    ok(com("--memory", b, "ingest", "--junit", report, "--commit", "a" * 40))
    sync_both(com, a, b)
    sync_both(com, a, b)
    for mem in (a, b):
        results = events_of(com, mem, "--type", "test_result")
        assert sorted(e["data"]["test_id"] for e in results) == ["tests/test_a.py::test_bad", "tests/test_a.py::test_ok"]
        assert fsck(com, mem)["ok"]
    assert events_of(com, a) == events_of(com, b)
    assert_one_blob_per_path(a, b)


def test_a_merge_resolves_one_id_with_two_contents_the_same_way_on_both_sides(com, pair, tmp_path):
    a, b = pair
    eid = "evt_" + "d" * 24
    base = {"id": eid, "type": "note", "project": "shop", "ts": "2026-03-02T10:00:00Z"}
    ingest(com, a, [{**base, "data": {"side": "a"}}, {"type": "note", "project": "shop", "ts": "2026-03-02T10:00:00Z",
                                                       "data": {"only": "a"}}])
    ingest(com, b, [{**base, "data": {"side": "b"}}])
    # Each side merges the other on its own (two remotes), so both merges are computed independently.
    other = tmp_path / "other.git"
    git("init", "-q", "--bare", other)
    ok(com("--memory", b, "remote", "add", "other", other.as_uri()))
    ok(com("--memory", b, "push", "other"))
    ok(com("--memory", a, "push"))
    ok(com("--memory", a, "remote", "add", "other", other.as_uri()))
    pulled_a = ok(com("--memory", a, "pull", "other", "--json"))
    pulled_b = ok(com("--memory", b, "pull", "--json"))
    assert pulled_a["status"] == pulled_b["status"] == "merged"
    tree = lambda m: git("--git-dir", m / "journal.git", "rev-parse", "HEAD^{tree}").strip()  # noqa: E731
    assert tree(a) == tree(b)  # the same union, the same resolution
    # Deterministic: same ts, so the smaller stored line wins ('"side":"a"' < '"side":"b"').
    for mem in (a, b):
        kept = [e for e in events_of(com, mem) if e["id"] == eid]
        assert [e["data"] for e in kept] == [{"side": "a"}]
        assert {e["data"].get("only") for e in events_of(com, mem)} >= {"a"}
        assert fsck(com, mem)["ok"]
    for pulled in (pulled_a, pulled_b):
        assert [c["id"] for c in pulled["events"]["conflicts"]] == [eid]
    sync_both(com, a, b)
    assert_one_blob_per_path(a, b)


# -- journals written before batch names came from content -----------------------------------------
def _legacy_commit(mem: Path, lines: list[bytes], day: str = "2026-03-03") -> str:
    """Commit a batch named the old way (after its ids) on top of main, as com did before."""
    repo = pygit2.Repository(str(mem / "journal.git"))
    ids = [json.loads(line)["id"] for line in lines]
    name = hashlib.blake2b("\n".join(ids).encode(), digest_size=8).hexdigest()
    from com.journal.repo import Journal

    journal = Journal(mem / "journal.git")
    tip = journal.head()
    blob = repo.create_blob(b"\n".join(lines) + b"\n")
    tree = journal.build_tree(tip.tree, {f"events/shop/{day}/{name}.jsonl": blob})
    sig = pygit2.Signature("Old com", "old@example.com")
    return str(repo.create_commit("refs/heads/main", sig, sig, "ingest 1 event into shop\n", tree, [tip.id]))


def test_an_old_wedge_same_path_other_bytes_is_resolved_by_the_next_pull(com, pair):
    a, b = pair
    from com.model.event import validate

    ev = {"type": "note", "project": "shop", "data": {"text": "deployed 1.4"}}
    line_a = validate(ev, default_ts="2026-03-03T10:00:00Z").line.encode()
    line_b = validate(ev, default_ts="2026-03-03T10:00:01Z").line.encode()
    _legacy_commit(a, [line_a])
    _legacy_commit(b, [line_b])
    for _ in range(2):
        sync_both(com, a, b)
    for mem in (a, b):
        [note] = [e for e in events_of(com, mem) if e["data"].get("text") == "deployed 1.4"]
        assert note["ts"] == "2026-03-03T10:00:00Z"
        assert fsck(com, mem)["ok"]
