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


def test_embedding_is_offline_unit_length_and_cached(tmp_path):
    embedder = Embedder.for_name("all-MiniLM-L6-v2", tmp_path, dim=384)
    texts = ["connection refused by the database", "the database refused the connection",
             "expected shoes to rank first", "connection refused by the database"]
    vectors = embedder.embed(texts)
    assert vectors.shape == (4, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert np.array_equal(vectors[0], vectors[3])
    assert embedder.embedded == 3  # the repeated text went through the model once
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.3  # a paraphrase is near, another failure far

    again = Embedder.for_name("all-MiniLM-L6-v2", tmp_path, dim=384)
    assert np.array_equal(again.embed(texts[:2]), vectors[:2])
    assert again.embedded == 0 and again.cached == 2
    assert EmbeddingCache(tmp_path).count("all-MiniLM-L6-v2") == 3


def cosine_test_set() -> list[str]:
    """Texts like the ones com embeds (event texts of failures, passes, notes), queries, and the awkward
    ones: empty, one character, non-ASCII, code, and longer than the model's 256 word pieces."""
    failures = [
        result(f"tests/e2e/test_{area}.py::Test{area.title()}::test_{verb}[chrome-{n}]", status, error_type=etype,
               error_message=message, trace=f"Traceback (most recent call last):\n  File \"x.py\", line {n}\n{etype}")
        for n, (area, verb, status, etype, message) in enumerate([
            ("checkout", "pay_with_card", "failed", "TimeoutError", "Timed out after 30000ms waiting for frame"),
            ("db", "orders", "error", "OperationalError", "connection refused by db.internal:5432"),
            ("auth", "login", "failed", "AssertionError", "assert response.status_code == 200, got 401"),
            ("cart", "add_item", "failed", "KeyError", "'sku'"),
            ("mail", "receipt", "error", "SMTPServerDisconnected", "Connection unexpectedly closed"),
            ("payments", "gateway", "failed", "PaymentError", "E4077: gateway declined transaction 3f2b8c1e"),
            ("search", "ranking", "passed", "", ""),
            ("report", "export", "skipped", "", "requires a GPU runner"),
        ])]
    texts = [event_text(e) for e in failures]
    texts += [
        "database connection refused", "timeout waiting for the payment iframe", "E4077", "token expired",
        "element detached from the DOM", "None has no attribute", "disk is full", "server returned 503",
        "", "x", "ü", "数据库连接被拒绝", "ошибка соединения с базой данных", "🚀 deploy failed 🔥",
        "def test_x():\n    assert f(1) == 2  # noqa", "SELECT * FROM orders WHERE id = 42;",
        "a" * 700, " ".join(["word"] * 400), "tests test cart test pay test card chrome 2 · failed · " * 20,
    ]
    return texts


def test_numpy_encoder_gives_sentence_transformers_vectors(st_model):
    # The search process embeds its query in numpy (no torch, no sentence_transformers): it must be the same
    # model. Cosine >= 0.9999 for every text, one by one and in batches of mixed lengths.
    from com.models.bert import BertEncoder, supports

    folder = resolve_model("all-MiniLM-L6-v2")[0]
    assert supports(folder)
    texts = cosine_test_set()
    reference = st_model.encode(texts, normalize_embeddings=True, convert_to_numpy=True, batch_size=16)
    encoder = BertEncoder(folder)
    batched = encoder.encode(texts)
    single = np.stack([encoder.encode([t])[0] for t in texts])
    assert batched.dtype == np.float32 and batched.shape == (len(texts), 384)
    for ours in (batched, single):
        cosines = np.sum(ours * reference, axis=1)
        assert cosines.min() >= 0.9999, [(t[:40], round(float(c), 6)) for t, c in zip(texts, cosines) if c < 0.9999]
    assert np.allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-5)


def test_the_packaged_model_runs_in_numpy_and_other_folders_through_sentence_transformers(tmp_path):
    import shutil

    from com.models.embedding import NumpyBertModel, SentenceTransformerModel, embedding_model

    folder = resolve_model("all-MiniLM-L6-v2")[0]
    assert isinstance(embedding_model("all-MiniLM-L6-v2"), NumpyBertModel)
    # A model whose pooling is not a plain mean: not something the numpy encoder computes.
    other = tmp_path / "cls-model"
    shutil.copytree(folder, other, ignore=shutil.ignore_patterns("model.safetensors"))
    (other / "model.safetensors").symlink_to(folder / "model.safetensors")
    pooling = other / "1_Pooling" / "config.json"
    pooling.write_text(pooling.read_text().replace('"pooling_mode_cls_token": false', '"pooling_mode_cls_token": true'))
    assert isinstance(embedding_model(str(other)), SentenceTransformerModel)


def test_a_search_process_imports_neither_torch_nor_lancedb(memory, isolated):
    # The whole point of the numpy encoder and the row store: a `com search` process with a new query text
    # pays for numpy, tokenizers and SQLite, not for torch, transformers, sentence_transformers, lancedb or
    # pyarrow (seconds and hundreds of MiB on 2 cores).
    import json
    import subprocess
    import sys

    from com.model.event import validate

    memory.record([validate({"type": "test_result", "project": "shop", "ts": "2026-11-01T10:00:00Z",
                             "data": {"test_id": "tests/test_db.py::test_orders", "status": "failed",
                                      "error_message": "connection refused"}})])
    heavy = ["torch", "transformers", "sentence_transformers", "lancedb", "pyarrow", "sklearn"]
    probe = ("import atexit, json, sys\n"
             f"atexit.register(lambda: sys.stderr.write(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({heavy!r})))))\n"
             "from com.cli import main\n"
             "sys.argv = ['com', 'index']\n"
             "try:\n    main()\nexcept SystemExit:\n    pass\n")
    assert subprocess.run([sys.executable, "-c", probe], cwd=isolated, capture_output=True, text=True).returncode == 0
    # A run that adds results but no new text (the same failure again) is taken in without LanceDB too.
    memory.record([validate({"type": "test_result", "project": "shop", "ts": "2026-11-02T10:00:00Z",
                             "data": {"test_id": "tests/test_db.py::test_orders", "status": "failed",
                                      "error_message": "connection refused"}})])
    search = probe.replace("['com', 'index']", "['com', 'search', 'the database refused us', '--json', '--each']")
    r = subprocess.run([sys.executable, "-c", search], cwd=isolated, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    found = json.loads(r.stdout)["results"]
    assert [e["event"]["ts"] for e in found] == ["2026-11-02T10:00:00Z", "2026-11-01T10:00:00Z"]
    assert json.loads(r.stderr.strip().splitlines()[-1]) == []
