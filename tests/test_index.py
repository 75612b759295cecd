"""The derived index: updated by readers, rebuilt from the journal alone, never embedding a text twice,
rebuilt when the model changes, and rolled back after an interrupted update."""

from __future__ import annotations

import json
import shutil

import pytest

from com.model.event import validate as normalize


MESSAGES = [
    ("tests/test_db.py::test_orders", "OperationalError: connection refused by db.internal:5432"),
    ("tests/test_auth.py::test_login", "AssertionError: assert 401 == 200"),
    ("tests/test_mail.py::test_receipt", "SMTPServerDisconnected: Connection unexpectedly closed"),
]


def failures(n, start=0, day="2026-11-01", project="shop"):
    """n failing results repeating the few MESSAGES (as real failures do), each its own event."""
    out = []
    for i in range(start, start + n):
        test_id, message = MESSAGES[i % len(MESSAGES)]
        out.append(normalize({"type": "test_result", "project": project, "ts": f"{day}T10:{i // 60 % 60:02d}:{i % 60:02d}Z",
                              "data": {"test_id": test_id, "status": "failed", "error_message": message, "run_id": f"r{i}"}}))
    return out


def index_json(com, *args):
    r = com("index", "--json", *args)
    assert r.exit_code == 0, r.stderr
    return json.loads(r.stdout)


def test_search_indexes_new_batches_by_itself_and_embeds_each_text_once(memory, journal, com):
    memory.record(failures(30))
    r = com("search", "database unreachable", "-k", "3", "--json", "--each", "--min-similarity", "0")
    assert r.exit_code == 0, r.stderr
    assert len(json.loads(r.stdout)["results"]) == 3

    first = index_json(com)
    assert first["total_rows"] == 30 and first["rows"] == 0  # search already indexed everything
    memory.record(failures(6, start=30))
    second = index_json(com)
    assert second["rows"] == 6 and second["batches"] == 1 and second["commits"] == 1
    assert second["embedded"] == 0  # the same three messages: nothing new to embed
    assert second["total_rows"] == 36
    assert index_json(com)["rows"] == 0


def test_rebuild_from_the_journal_alone_reuses_the_embedding_cache(memory, journal, com):
    memory.record(failures(12))
    memory.record(failures(12, start=12, day="2026-11-02"))
    before = json.loads(com("search", "mail server hung up", "-k", "24", "--json", "--each", "--min-similarity", "0").stdout)["results"]

    shutil.rmtree(memory.index_path)
    after = json.loads(com("search", "mail server hung up", "-k", "24", "--json", "--each", "--min-similarity", "0").stdout)["results"]
    assert [r["event"]["id"] for r in after] == [r["event"]["id"] for r in before]

    rebuilt = index_json(com, "--rebuild")
    assert rebuilt["rebuilt"] is True and rebuilt["rows"] == 24 and rebuilt["commits"] == 2
    assert rebuilt["embedded"] == 0 and rebuilt["texts"] == 3


def test_a_different_model_name_forces_a_rebuild(memory, journal, com, monkeypatch):
    # The same packaged weights configured under a second name (their folder): the index cannot know the
    # vectors would agree, so it must rebuild rather than mix two models' vectors.
    from com.models.embedding import resolve_model

    memory.record(failures(9))
    assert index_json(com)["rebuilt"] is True  # the first index

    folder = str(resolve_model("all-MiniLM-L6-v2")[0])
    monkeypatch.setenv("COM_EMBEDDING_MODEL", folder)
    switched = index_json(com)
    assert switched["rebuilt"] is True and switched["model"] == folder
    assert "embedding model changed from 'all-MiniLM-L6-v2'" in switched["reason"]
    assert switched["rows"] == 9 and switched["embedded"] == 3  # the cache is per model

    monkeypatch.delenv("COM_EMBEDDING_MODEL")
    back = index_json(com)
    assert back["rebuilt"] is True and back["embedded"] == 0  # both models' vectors stay cached
    assert index_json(com)["rebuilt"] is False


def test_an_interrupted_update_is_rolled_back_by_the_next(memory, journal, com, monkeypatch):
    from com.ops.search import update
    from com.views.index.rows import RowWriter

    memory.record(failures(6))
    assert index_json(com)["total_rows"] == 6
    memory.record(failures(6, start=6, day="2026-11-02"))

    # Fault injection (a crash between two writes cannot be timed from outside): the row write fails after
    # the new batch was registered.
    def crash(*a, **kw):
        raise KeyboardInterrupt("killed mid-update")

    original = RowWriter.flush
    monkeypatch.setattr(RowWriter, "flush", crash)
    with pytest.raises(KeyboardInterrupt):
        update(memory)
    monkeypatch.setattr(RowWriter, "flush", original)

    stats = index_json(com)
    assert stats["rows"] == 6 and stats["batches"] == 1 and stats["total_rows"] == 12
    results = json.loads(com("search", "login rejected", "-k", "50", "--mode", "vector", "--json", "--each", "--min-similarity", "0").stdout)["results"]
    assert sorted(r["event"]["id"] for r in results) == sorted(e["id"] for e in failures(6) + failures(6, 6, "2026-11-02"))


def test_texts_an_interrupted_update_left_in_lancedb_are_removed_and_renumbered(memory, journal, com,
                                                                                  monkeypatch):
    # The new texts reach LanceDB before the row store commits; a crash in between leaves texts no row points
    # at, and their numbers are given again by the next update: the leftovers must go first.
    from com.ops.search import update
    from com.views.index.rows import RowWriter

    memory.record(failures(3))
    assert index_json(com)["total_texts"] == 3
    extra = normalize({"type": "test_result", "project": "shop", "ts": "2026-11-02T10:00:00Z",
                       "data": {"test_id": "tests/test_pay.py::test_card", "status": "failed",
                                "error_message": "GatewayTimeout: the payment provider did not answer"}})
    memory.record([extra])

    def crash(*a, **kw):
        raise KeyboardInterrupt("killed after the texts were written")

    original = RowWriter.store_texts
    monkeypatch.setattr(RowWriter, "store_texts", crash)
    with pytest.raises(KeyboardInterrupt):
        update(memory)
    monkeypatch.setattr(RowWriter, "store_texts", original)
    assert memory.index().table("texts").count_rows() == 4  # the leftover

    stats = index_json(com)
    assert stats["rows"] == 1 and stats["texts"] == 1 and stats["total_texts"] == 4
    assert memory.index().table("texts").count_rows() == 4
    found = json.loads(com("search", "payment provider timed out", "-k", "1", "--json").stdout)["results"]
    assert found[0]["event"]["id"] == extra["id"]


def test_index_of_an_empty_journal_is_empty(memory, com):
    stats = index_json(com)
    assert stats["total_rows"] == 0 and stats["commit"] is None
    r = com("search", "anything", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["results"] == []


def test_index_uri_is_configurable(memory, journal, com, monkeypatch, tmp_path):
    memory.record(failures(3))
    elsewhere = tmp_path / "shared-index"
    monkeypatch.setenv("COM_INDEX_URI", str(elsewhere))
    stats = index_json(com)
    assert stats["uri"] == str(elsewhere) and stats["total_rows"] == 3
    assert (elsewhere / "texts.lance").is_dir()
    assert not (memory.index_path / "texts.lance").exists()


@pytest.mark.parametrize("included, universe, expected", [
    ({0, 1, 2, 3}, {0, 1, 2, 3}, None),
    (set(range(0, 96)), set(range(100)), "batch_no NOT IN (96,97,98,99)"),
    (set(range(0, 400)), set(range(1000)), "(batch_no BETWEEN 0 AND 399)"),
    (set(range(0, 400)) | {401}, set(range(1000)), "(batch_no BETWEEN 0 AND 399) OR batch_no IN (401)"),
    (set(range(1000)) - {3, 4} - set(range(500, 600)), set(range(1000)),
     "NOT ((batch_no BETWEEN 500 AND 599) OR batch_no IN (3,4))"),
    ({1, 5}, set(range(100)), "batch_no IN (1,5)"),
    (set(), set(range(3)), "FALSE"),
])
def test_the_snapshot_filter_takes_its_shortest_form(included, universe, expected):
    from com.views.index.snapshot import snapshot_expr

    assert snapshot_expr(included, universe) == expected


ODD_LINES = [
    # What ingest writes, and what a journal may hold besides: a hand-written time that is not the canonical
    # text, float and huge durations, run values that are lists or objects, no data keys at all, tags,
    # nested properties, text beyond ASCII, a note, a result without data.
    {"id": "evt_" + "a" * 24, "type": "test_result", "project": "shop", "source": "pytest",
     "ts": "2026-11-01T10:00:00.000+00:00", "importance": 3.0, "tags": ["nightly", "ü"],
     "data": {"test_id": "tests/test_ü.py::test_größe", "status": "failed", "duration_ms": 12.5,
              "error_message": "AssertionError: größe 3 != 4", "run_id": ["a", 1], "commit": {"sha": "x"},
              "properties": {"b": [1, {"z": None}], "a": "1"}}},
    {"id": "evt_" + "b" * 24, "type": "test_result", "project": "shop", "source": "junit",
     "ts": "2026-11-01T10:00:01Z", "importance": 1.0, "tags": [],
     "data": {"test_id": "tests/test_x.py::test_y", "status": "passed", "duration_ms": 2 ** 70, "attempt": 2,
              "branch": "main", "report": "r.xml"}},
    {"id": "evt_" + "e" * 24, "type": "test_result", "project": "shop", "source": "pytest", "ts": "2026-11-01T10:00:02Z",
     "importance": 0.5, "tags": [], "data": {"test_id": "tests/test_x.py::test_z", "status": "skipped",
                                              "duration_ms": -3, "message": "needs a GPU"}},
    {"id": "evt_" + "c" * 24, "type": "note", "project": "shop", "source": "cli", "ts": "2026-11-01T10:00:03.250Z",
     "importance": 1.0, "tags": ["deploy"], "data": {"text": "deployed 1.4 to staging", "commit": "abc"}},
    {"id": "evt_" + "d" * 24, "type": "test_result", "project": "shop", "source": "pytest", "ts": "2026-11-01T10:00:04Z",
     "importance": 3.0, "tags": [], "data": {}},
]


def test_search_gives_back_each_event_exactly_as_stored(memory, journal, com):
    # The index keeps a pointer and the pieces an event is rebuilt from, not the event: what comes back must
    # be the stored line itself, key for key, including the lines no ingest would write.
    from com.model.event import to_line

    lines = [to_line(e) for e in ODD_LINES]  # the stored form: fixed key order, data keys sorted
    with journal.writing() as tx:
        tx.commit("hand-written batch", {"events/shop/2026-11-01/handmade.jsonl": ("\n".join(lines) + "\n").encode()})
    memory.record(failures(5))
    results = json.loads(com("search", "größe deployed GPU", "-k", "50", "--mode", "vector", "--json", "--each",
                             "--min-similarity", "0").stdout)["results"]
    stored = {json.loads(line)["id"]: line for line in lines}
    stored.update({e["id"]: to_line(e) for e in failures(5)})
    assert len(results) == len(stored)
    for r in results:
        assert r["event"] == json.loads(stored[r["event"]["id"]])
        assert json.dumps(r["event"], ensure_ascii=False, separators=(",", ":")) == stored[r["event"]["id"]]
    # Filters see the same values: the hand-written time, the tags, the non-ASCII test id.
    tagged = json.loads(com("search", "anything", "--tag", "ü", "--json", "--min-similarity", "0").stdout)["results"]
    assert [r["event"]["id"] for r in tagged] == ["evt_" + "a" * 24]
    one = json.loads(com("search", "anything", "--test", "tests/test_ü.py", "--json", "--min-similarity", "0").stdout)["results"]
    assert [r["event"]["id"] for r in one] == ["evt_" + "a" * 24]
    skipped = json.loads(com("search", "anything", "--status", "skipped", "--json", "--min-similarity", "0").stdout)["results"]
    assert [r["event"]["id"] for r in skipped] == ["evt_" + "e" * 24]
    notes = json.loads(com("search", "release", "--type", "note", "--json", "--min-similarity", "0").stdout)["results"]
    assert [r["event"]["id"] for r in notes] == ["evt_" + "c" * 24]


def test_the_index_is_sized_like_the_data(memory, journal, com):
    # Pointers, not copies: 200 results of a handful of texts cost the index a few kilobytes of rows.
    memory.record(failures(200))
    stats = index_json(com)
    assert stats["total_rows"] == 200 and stats["total_texts"] == 3
    rows = memory.cache_path / "search.sqlite"
    import sqlite3

    db = sqlite3.connect(rows)
    assert db.execute("SELECT COUNT(*) FROM rows").fetchone()[0] == 200
    assert db.execute("SELECT COUNT(*) FROM shapes").fetchone()[0] <= 3 * 2  # a test's failures share one shape
