"""A bulk ingest streams: events are read line by line and gathered as stored lines (in temporary files past a
limit), and the journal it writes is exactly the one an in-memory write makes."""

from __future__ import annotations

import json

import pytest

from com.journal import batches as batch_files
from com.memory import Memory
from com.model.event import validate


def lines(n, start=0, days=3):
    out = []
    for i in range(start, start + n):
        status = "failed" if i % 7 == 0 else "passed"
        out.append(json.dumps({"type": "test_result", "project": "shop" if i % 5 else "web",
                               "ts": f"2026-03-0{1 + i % days}T10:00:00Z",
                               "data": {"test_id": f"t::{i % 40}", "status": status, "run_id": f"r{i // 40}"}}))
    return out


def tree_of(memory) -> dict[str, bytes]:
    snapshot = memory.snapshot()
    return {b.path: b.data(memory.journal) for b in snapshot.batches()}


@pytest.fixture
def two(tmp_path):
    """Two fresh memories: one writes through the spool's temporary files, the other in memory."""
    spilled, _ = Memory.init(tmp_path / "spilled" / ".com")
    kept, _ = Memory.init(tmp_path / "kept" / ".com")
    return spilled, kept


def record(memory, text_lines, spill: bool, monkeypatch):
    monkeypatch.setattr(batch_files.Spool, "MEMORY_BYTES", 300 if spill else 1 << 30)
    from com.ingest import jsonl

    return memory.record(jsonl.stream(iter(line + "\n" for line in text_lines), origin="f"))


def test_spilled_and_in_memory_writes_make_the_same_batches(two, monkeypatch):
    spilled, kept = two
    text = lines(500)
    text += text[:30]  # repeats within the input are counted, not stored twice
    a = record(spilled, text, True, monkeypatch)
    b = record(kept, text, False, monkeypatch)
    assert (a.added, a.duplicates) == (b.added, b.duplicates) == (500, 30)
    assert a.ids == b.ids == [validate(json.loads(line))["id"]
                              for line in text[:500]]
    assert tree_of(spilled) == tree_of(kept)
    assert len(tree_of(kept)) == 6  # two projects x three days
    # nothing left behind in the cache
    assert not [p for p in spilled.cache_path.iterdir() if p.name.startswith("ingest-")]


def test_known_events_are_left_out_of_spilled_batches(two, monkeypatch):
    spilled, kept = two
    for memory, spill in ((spilled, True), (kept, False)):
        record(memory, lines(200), spill, monkeypatch)
        again = record(memory, lines(400), spill, monkeypatch)
        assert (again.added, again.duplicates) == (200, 200)
        assert record(memory, lines(400), spill, monkeypatch).commit is None
    assert tree_of(spilled) == tree_of(kept)
    counts = {p: data.count(b"\n") for p, data in tree_of(kept).items()}
    assert sum(counts.values()) == 400


def test_the_catalog_takes_a_big_write_from_its_ids(two, monkeypatch):
    spilled, _ = two
    monkeypatch.setattr("com.memory.EAGER_RESULTS", 10)  # a "big" write: only the catalog takes it at once
    result = record(spilled, lines(100), True, monkeypatch)
    snapshot = spilled.snapshot()
    assert spilled.catalog.seen(result.commit) and not spilled.results.seen(result.commit)
    assert spilled.known_ids(snapshot.commit, result.ids) == set(result.ids)
    counts = spilled.catalog.counts([b.path for b in snapshot.batches()])
    assert counts == {b.path: len(b.events(spilled.journal)) for b in snapshot.batches()}


def test_a_bad_line_late_in_a_big_file_writes_nothing(memory, com, isolated):
    path = isolated / "big.jsonl"
    good = lines(3000)
    path.write_text("\n".join(good[:2500] + ["{not json"] + good[2500:]) + "\n")
    r = com("ingest", "--file", path)
    assert r.exit_code == 2 and "line 2501: invalid JSON" in r.stderr
    assert memory.journal.head() is None
    assert not [p for p in memory.cache_path.iterdir() if p.name.startswith("ingest-")]
    path.write_text("\n".join(good) + "\n")
    r = com("ingest", "--file", path, "--json")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["added"] == 3000
    assert json.loads(com("log", "--json").stdout)["commits"][0]["added"] == 3000


def test_fsck_removes_the_spool_of_a_killed_ingest(memory, com):
    import os
    import time

    left = memory.cache_path / "ingest-abc123"
    left.mkdir(parents=True)
    (left / "1-0.jsonl").write_bytes(b"{}\n" * 100)
    old = time.time() - 3600
    os.utime(left, (old, old))
    r = json.loads(com("fsck", "--json").stdout)
    assert any("temporary batch files" in line for line in r["info"]) and left.exists()
    r = json.loads(com("fsck", "--repair", "--json").stdout)
    assert r["ok"] and not left.exists()


# -- Memory.recording(): the same write taken an event at a time (the pytest plugin's writer) -----------------
def test_a_recording_fed_one_event_at_a_time_writes_what_record_writes(two, monkeypatch):
    a, b = two
    monkeypatch.setattr(batch_files.Spool, "MEMORY_BYTES", 300)  # through the spool's temporary files as well
    events = [validate(json.loads(line)) for line in lines(300)]
    events += events[:20]  # repeats: counted, not stored twice
    with a.recording() as recording:
        for event in events:
            recording.add(event)
        assert recording.count == 300
        written = recording.commit(message="m")
    expected = b.record(events, message="m")
    assert (written.added, written.duplicates, written.ids) == (expected.added, expected.duplicates, expected.ids)
    assert tree_of(a) == tree_of(b)
    assert a.results.seen(written.commit) and a.catalog.seen(written.commit)  # the views took it in
    assert not [p for p in a.cache_path.iterdir() if p.name.startswith("ingest-")]  # the spool is gone
    with a.recording() as again:  # what the snapshot holds is left out: no commit
        again.extend(events)
        assert again.commit().commit is None


def test_a_recording_refuses_an_id_given_again_with_other_content_when_it_comes(memory):
    from com.model.errors import ComError

    first = validate({"id": "evt_" + "a" * 24, "type": "note", "project": "p", "ts": "2026-03-01T10:00:00Z",
                      "data": {"text": "one"}})
    other = validate({"id": "evt_" + "a" * 24, "type": "note", "project": "p", "ts": "2026-03-01T10:00:00Z",
                      "data": {"text": "two"}})
    head = memory.snapshot().commit
    with memory.recording() as recording:
        recording.add(first)
        recording.add(first)  # the same content again: a repeat
        with pytest.raises(ComError, match="appears twice in the input with different content"):
            recording.add(other)
    assert memory.snapshot().commit == head  # nothing written


def test_a_recording_commits_once_and_views_later_leaves_the_catch_up_to_the_caller(memory):
    from com.model.errors import ComError

    events = [validate(json.loads(line)) for line in lines(5)]
    with memory.recording() as recording:
        recording.extend(events)
        result = recording.commit(views_later=True)
        with pytest.raises(ComError, match="committed already"):
            recording.add(events[0])
        with pytest.raises(ComError, match="committed already"):
            recording.commit()
    assert str(memory.snapshot().commit.id) == result.commit  # durable before the views took it in
    assert not memory.results.seen(result.commit)
    assert result.catch_up() == []
    assert memory.results.seen(result.commit) and memory.catalog.seen(result.commit)
