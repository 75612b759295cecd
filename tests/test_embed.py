"""The text an event is embedded as, the packaged model loaded offline, and the embedding cache."""

from __future__ import annotations

import numpy as np
import pytest

from com.model.errors import ComError
from com.model.text import event_text, normalise, split_test_id
from com.models.embedding import Embedder, EmbeddingCache, resolve_model


@pytest.fixture(scope="session")
def st_model():
    """The real packaged model, loaded once for the whole test session (com.embed keeps it per process)."""
    from com.models.embedding import load_model

    return load_model(resolve_model("all-MiniLM-L6-v2")[0])


def result(test_id, status="failed", **data):
    return {"id": "evt_" + "0" * 24, "type": "test_result", "project": "shop", "source": "pytest",
            "ts": "2026-11-01T10:00:00Z", "importance": 3.0, "tags": [], "data": {"test_id": test_id, "status": status, **data}}


def test_normalise_replaces_what_changes_between_runs_and_keeps_error_codes():
    text = normalise(
        "Timeout 30000ms at 2026-11-27T10:00:00.123Z in /tmp/pytest-of-ci/pytest-41/test_pay0/out.json "
        "request 3f2b8c1e-9d4a-4c5b-8e7f-0a1b2c3d4e5f object at 0x7f3a9c2b1d40 commit 9fceb02d0ae5 "
        "took 12.75 s on port 51234; HTTP 503; E4077; ORA-01555; line 42"
    )
    assert "30000" not in text and "<num>ms" in text
    assert "<time>" in text and "2026" not in text
    assert "<tmp>" in text and "pytest-41" not in text
    assert "<uuid>" in text and "<hex>" in text and "9fceb02d0ae5" not in text and "0x7f3a" not in text
    assert "51234" not in text and "12.75" not in text
    # Codes and short numbers carry meaning: a keyword search must still find them.
    for kept in ("503", "E4077", "ORA-01555"):
        assert kept in text
    assert "line <num>" in text


def test_two_runs_of_one_failure_embed_as_one_text():
    a = result("tests/e2e/test_checkout.py::TestPay::test_card[chrome-2]", error_type="TimeoutError",
               error_message="Timed out after 30000ms waiting for frame at /tmp/run-81723/index.html",
               trace="Traceback (most recent call last):\n  File \"tests/e2e/test_checkout.py\", line 88\n    page.wait()\nTimeoutError\nmore\nlines")
    b = result("tests/e2e/test_checkout.py::TestPay::test_card[chrome-2]", error_type="TimeoutError",
               error_message="Timed out after 45000ms waiting for frame at /tmp/run-99120/index.html",
               trace="Traceback (most recent call last):\n  File \"tests/e2e/test_checkout.py\", line 91\n    page.wait()\nTimeoutError\nother\nstuff")
    text = event_text(a)
    assert text == event_text(b)
    assert text.startswith("tests e2e test checkout test pay test card chrome 2 · failed · TimeoutError")
    assert "Timed out after <num>ms waiting for frame" in text
    # Only the first trace lines: the rest of a trace is noise for similarity.
    assert "page.wait()" in text and "more" not in text and "other" not in text


def test_test_ids_split_into_words_at_paths_classes_and_camel_case():
    assert split_test_id("src/test/java/com/example/CalculatorTest.java#testAddHTTPClient") == \
        "src test java com example calculator test test add http client"


def test_other_events_embed_their_words_not_their_ids():
    note = {"id": "evt_" + "1" * 24, "type": "code_change", "project": "shop", "source": "cli", "ts": "2026-11-01T10:00:00Z",
            "importance": 2.0, "tags": ["payments"],
            "data": {"summary": "switch the card form to the new provider", "commit": "9fceb02d0ae598e95dc970b74767f19372d61af8"}}
    text = event_text(note)
    assert text == "code change · summary: switch the card form to the new provider · tags: payments"


def test_unknown_model_name_is_a_clear_error_and_nothing_is_downloaded(tmp_path):
    with pytest.raises(ComError, match="unknown embedding model 'bert-base-uncased'.*never downloaded"):
        Embedder.for_name("bert-base-uncased", tmp_path)


def test_a_model_whose_package_is_missing_is_a_clear_error(tmp_path, monkeypatch):
    # A real import failure of a package that does not exist; the registry entry is the only thing made up.
    from com.models import embedding

    monkeypatch.setitem(embedding.PACKAGED_MODELS, "tiny-model", ("com_no_such_model_package", 128))
    with pytest.raises(ComError, match="ships in the package com_no_such_model_package, which is not installed"):
        Embedder.for_name("tiny-model", tmp_path)


def test_a_model_folder_is_accepted_and_a_wrong_dim_refused(tmp_path):
    folder, dim = resolve_model("all-MiniLM-L6-v2")
    assert dim == 384
    assert resolve_model(str(folder)) == (folder, 384)
    with pytest.raises(ComError, match="embedding_dim is 768 but the model .* makes vectors of 384"):
        Embedder.for_name("all-MiniLM-L6-v2", tmp_path, dim=768)


def test_embedding_is_offline_unit_length_and_cached(st_model, tmp_path):
    import os

    embedder = Embedder.for_name("all-MiniLM-L6-v2", tmp_path, dim=384)
    texts = ["connection refused by the database", "the database refused the connection",
             "expected shoes to rank first", "connection refused by the database"]
    vectors = embedder.embed(texts)
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert vectors.shape == (4, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert np.array_equal(vectors[0], vectors[3])
    assert embedder.embedded == 3  # the repeated text went through the model once
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.3  # a paraphrase is near, another failure far

    again = Embedder.for_name("all-MiniLM-L6-v2", tmp_path, dim=384)
    assert np.array_equal(again.embed(texts[:2]), vectors[:2])
    assert again.embedded == 0 and again.cached == 2
    assert EmbeddingCache(tmp_path).count("all-MiniLM-L6-v2") == 3
