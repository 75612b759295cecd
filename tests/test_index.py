"""The derived index: updated by readers, rebuilt from the journal alone, never embedding a text twice,
rebuilt when the model changes, and rolled back after an interrupted update."""

from __future__ import annotations

import json
import shutil

import pytest

from com.model.event import validate as normalize


@pytest.fixture(scope="session")
def st_model():
    """The real packaged model, loaded once for the whole test session (com.embed keeps it per process)."""
    from com.models.embedding import load_model, resolve_model

    return load_model(resolve_model("all-MiniLM-L6-v2")[0])


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


def test_search_indexes_new_batches_by_itself_and_embeds_each_text_once(st_model, memory, journal, com):
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


def test_rebuild_from_the_journal_alone_reuses_the_embedding_cache(st_model, memory, journal, com):
    memory.record(failures(12))
    memory.record(failures(12, start=12, day="2026-11-02"))
    before = json.loads(com("search", "mail server hung up", "-k", "24", "--json", "--each", "--min-similarity", "0").stdout)["results"]

    shutil.rmtree(memory.index_path)
    after = json.loads(com("search", "mail server hung up", "-k", "24", "--json", "--each", "--min-similarity", "0").stdout)["results"]
    assert [r["event"]["id"] for r in after] == [r["event"]["id"] for r in before]

    rebuilt = index_json(com, "--rebuild")
    assert rebuilt["rebuilt"] is True and rebuilt["rows"] == 24 and rebuilt["commits"] == 2
    assert rebuilt["embedded"] == 0 and rebuilt["texts"] == 3


def test_a_different_model_name_forces_a_rebuild(st_model, memory, journal, com, monkeypatch):
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


def test_an_interrupted_update_is_rolled_back_by_the_next(st_model, memory, journal, com, monkeypatch):
    from com.ops.search import update
    from com.views.index import update as update_mod

    memory.record(failures(6))
    assert index_json(com)["total_rows"] == 6
    memory.record(failures(6, start=6, day="2026-11-02"))

    # Fault injection (a crash between two Lance writes cannot be timed from outside): the row write fails
    # after the new batch was registered.
    original = update_mod.arrow_rows

    def crash(*a, **kw):
        raise KeyboardInterrupt("killed mid-update")

    monkeypatch.setattr(update_mod, "arrow_rows", crash)
    with pytest.raises(KeyboardInterrupt):
        update(memory)
    monkeypatch.setattr(update_mod, "arrow_rows", original)

    stats = index_json(com)
    assert stats["rows"] == 6 and stats["batches"] == 1 and stats["total_rows"] == 12
    results = json.loads(com("search", "login rejected", "-k", "50", "--mode", "vector", "--json", "--each", "--min-similarity", "0").stdout)["results"]
    assert sorted(r["event"]["id"] for r in results) == sorted(e["id"] for e in failures(6) + failures(6, 6, "2026-11-02"))


def test_index_of_an_empty_journal_is_empty(st_model, memory, com):
    stats = index_json(com)
    assert stats["total_rows"] == 0 and stats["commit"] is None
    r = com("search", "anything", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["results"] == []


def test_index_uri_is_configurable(st_model, memory, journal, com, monkeypatch, tmp_path):
    memory.record(failures(3))
    elsewhere = tmp_path / "shared-index"
    monkeypatch.setenv("COM_INDEX_URI", str(elsewhere))
    stats = index_json(com)
    assert stats["uri"] == str(elsewhere) and stats["total_rows"] == 3
    assert (elsewhere / "events.lance").is_dir()
    assert not (memory.index_path / "events.lance").exists()


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
