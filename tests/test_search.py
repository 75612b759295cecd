"""`com search`: meaning without shared words, exact codes by keyword, exact time travel, filters before ranking.

Real packaged model, real LanceDB, real journals (cloned with the git CLI for the fresh-clone case)."""

from __future__ import annotations

import io
import json
import os
import re
import shutil


from com.model.event import validate as normalize
from conftest import git, run_com


def failure(test_id, message, error_type=None, ts="2026-11-01T10:00:00Z", status="failed", project="shop"):
    data = {"test_id": test_id, "status": status, "error_message": message}
    if error_type:
        data["error_type"] = error_type
    return normalize({"type": "test_result", "project": project, "ts": ts, "data": data})


CORPUS = [
    ("tests/e2e/test_checkout.py::test_pay_with_card", "Timed out after 30000ms waiting for the card-entry frame to become visible", "TimeoutError"),
    ("tests/test_db.py::test_orders", "connection refused by db.internal:5432", "OperationalError"),
    ("tests/test_auth.py::test_login", "assert response.status_code == 200, got 401", "AssertionError"),
    ("tests/test_search.py::test_ranking", "expected 'shoes' to rank first, got 'socks'", "AssertionError"),
    ("tests/test_cart.py::test_add_item", "'sku'", "KeyError"),
    ("tests/test_mail.py::test_receipt", "Connection unexpectedly closed", "SMTPServerDisconnected"),
] + [
    (f"tests/test_payments.py::test_gateway_{code}", f"gateway rejected the transaction with code E{code}", "PaymentError")
    for code in range(4071, 4080)
]


def corpus_events():
    return [failure(t, m, et, ts=f"2026-11-01T10:00:{i:02d}Z") for i, (t, m, et) in enumerate(CORPUS)]


def found(com, text, *args):
    """Every matching event, one per row, weak ones too: what the ranking itself gives (the CLI's defaults
    collapse identical texts and cut weak matches: tested on their own below)."""
    r = com("search", text, "--json", "--each", "--min-similarity", "0", *args)
    assert r.exit_code == 0, r.stderr
    return json.loads(r.stdout)["results"]


def test_ids(results):
    return [r["event"]["data"]["test_id"].split("::")[1] for r in results]


test_ids.__test__ = False  # a helper, not a test


def test_a_paraphrase_is_found_without_a_shared_keyword(memory, journal, com):
    memory.record(corpus_events())
    query = "the embedded billing form never rendered"
    assert found(com, query, "--mode", "keyword") == []  # no word in common with any event
    results = found(com, query, "-k", "3")
    assert test_ids(results)[0] == "test_pay_with_card"
    assert results[0]["vector_rank"] == 1 and results[0]["keyword_rank"] is None
    assert test_ids(found(com, "mail relay hung up", "-k", "1")) == ["test_receipt"]
    assert test_ids(found(com, "sql server unreachable", "-k", "1")) == ["test_orders"]


def test_similar_failures_of_an_event_leave_the_event_out(memory, journal):
    from com.ops.search import similar

    events = corpus_events()
    memory.record(events)
    gateway = next(e for e in events if e["data"]["test_id"].endswith("test_gateway_4075"))
    found = similar(memory, gateway, k=3).results
    assert gateway["id"] not in {r["event"]["id"] for r in found}
    assert all("test_gateway_" in r["event"]["data"]["test_id"] for r in found)


def test_an_exact_error_code_is_found_by_keyword_where_the_model_blurs(memory, journal, com):
    memory.record(corpus_events())
    vector = found(com, "E4077", "-k", "9", "--mode", "vector")
    gateway = [r["similarity"] for r in vector if "gateway" in r["event"]["data"]["test_id"]]
    # The model sees nine near-identical messages: their similarities to the code lie within a few hundredths.
    assert len(gateway) == 9 and max(gateway) - min(gateway) < 0.05
    keyword = found(com, "E4077", "--mode", "keyword")
    assert test_ids(keyword) == ["test_gateway_4077"]
    hybrid = found(com, "E4077", "-k", "5")
    assert test_ids(hybrid)[0] == "test_gateway_4077" and hybrid[0]["keyword_rank"] == 1
    assert hybrid[0]["score"] > hybrid[1]["score"]


def _ids_at(com, at, mode="vector", text="connection timed out waiting"):
    return {r["event"]["id"] for r in found(com, text, "-k", "50", "--mode", mode, "--at", at)}


def _snapshot(com, at):
    r = com("events", "--json", "--limit", "0", "--at", at)
    assert r.exit_code == 0, r.stderr
    return {e["id"] for e in json.loads(r.stdout)["events"]}


def _check_time_travel(com, c1, later_ids, branch_ids):
    # Vector search with k above the snapshot size returns exactly the snapshot: nothing later, nothing missing.
    for rev in (c1, "main", "exp"):
        assert _ids_at(com, rev) == _snapshot(com, rev)
        assert _ids_at(com, rev, mode="hybrid") <= _snapshot(com, rev)
    assert not _ids_at(com, c1) & (later_ids | branch_ids)
    assert not _ids_at(com, "main") & branch_ids
    assert not _ids_at(com, "exp") & later_ids
    # Keyword search: the later failure's own code is invisible before it happened and on the other branch.
    assert {r["event"]["id"] for r in found(com, "ERRFRAME7781", "--mode", "keyword", "--at", "main")} == later_ids
    assert found(com, "ERRFRAME7781", "--mode", "keyword", "--at", c1) == []
    assert found(com, "ERRFRAME7781", "--at", "exp", "--mode", "keyword") == []
    assert {r["event"]["id"] for r in found(com, "KafkaTimeout", "--mode", "keyword", "--at", "exp")} == branch_ids
    assert found(com, "KafkaTimeout", "--mode", "keyword", "--at", "main") == []
    assert found(com, "KafkaTimeout", "--mode", "keyword", "--at", c1) == []


def test_at_hides_later_events_in_vector_and_keyword_results_on_two_branches_and_after_a_rebuild(
        memory, journal, com, isolated):
    first = memory.record(corpus_events()[:6])
    later = failure("tests/e2e/test_checkout.py::test_pay_with_card",
                    "ERRFRAME7781: the card-entry frame timed out again", "TimeoutError", ts="2026-11-02T09:00:00Z")
    memory.record([later])
    assert com("branch", "exp", first.commit).exit_code == 0
    assert com("switch", "exp").exit_code == 0
    other = failure("tests/test_events.py::test_publish", "KafkaTimeout: broker did not answer in time",
                    ts="2026-11-02T11:00:00Z")
    memory.record([other])
    assert com("switch", "main").exit_code == 0

    c1 = first.commit
    _check_time_travel(com, c1, {later["id"]}, {other["id"]})

    shutil.rmtree(memory.index_path)  # derived data: gone, and rebuilt by the next search
    _check_time_travel(com, c1, {later["id"]}, {other["id"]})

    # A fresh clone of the journal (git CLI), searched from scratch with nothing but the journal.
    clone = isolated / "clone"
    clone.mkdir()
    git("clone", "-q", "--bare", memory.journal_path, clone / ".com" / "journal.git")
    os.chdir(clone)
    assert json.loads(com("index", "--json").stdout)["rebuilt"] is True
    _check_time_travel(com, c1, {later["id"]}, {other["id"]})


def _filter_corpus():
    events = []
    for i in range(300):
        minute = f"2026-11-{1 + i // 100:02d}T1{i % 100 // 60}:{i % 60:02d}:00Z"  # unique: same ts, same id
        if i % 60 == 7:  # exactly 5 errors, all in project api
            events.append(failure("tests/test_api.py::test_health", "HTTP 503 from upstream", ts=minute, status="error", project="api"))
        elif i % 10 == 3:
            events.append(failure(f"tests/test_db.py::test_query_{i % 4}", "connection refused by db.internal:5432", ts=minute))
        else:
            events.append(normalize({"type": "test_result", "project": "shop", "ts": minute,
                                     "data": {"test_id": f"tests/test_ui.py::test_view_{i % 260}", "status": "passed"}}))
    return events


def _check_filters(com):
    query = "database connection refused"
    errors = found(com, query, "-k", "5", "--status", "error")
    assert len(errors) == 5 and {r["event"]["data"]["status"] for r in errors} == {"error"}
    assert len(found(com, query, "-k", "8", "--status", "error")) == 5  # only 5 exist
    api = found(com, query, "-k", "5", "--project", "api")
    assert len(api) == 5 and {r["event"]["project"] for r in api} == {"api"}
    one_test = found(com, query, "-k", "20", "--test", "tests/test_db.py::test_query_1")
    assert len(one_test) == 15 and {r["event"]["data"]["test_id"] for r in one_test} == {"tests/test_db.py::test_query_1"}
    passed = found(com, query, "-k", "200", "--status", "passed")
    assert len(passed) == 200 and {r["event"]["data"]["status"] for r in passed} == {"passed"}
    failed = found(com, "page rendered fine", "-k", "30", "--type", "test_failure")
    assert len(failed) == 30 and {r["event"]["data"]["status"] for r in failed} == {"failed"}
    recent = found(com, query, "-k", "100", "--since", "2026-11-03")
    assert len(recent) == 100 and min(r["event"]["ts"] for r in recent) >= "2026-11-03"


def test_filters_apply_before_ranking_so_k_results_come_back_when_k_exist(memory, journal, com, monkeypatch):
    memory.record(_filter_corpus())
    _check_filters(com)
    # The same with an IVF_PQ index over the texts (made due at 200 texts instead of the 100,000 of real use).
    from com.views.index import maintain

    monkeypatch.setattr(maintain, "ANN_MIN_TEXTS", 200)
    stats = json.loads(com("index", "--rebuild", "--json").stdout)
    assert any(step.startswith("ivf_pq") for step in stats["maintenance"])
    _check_filters(com)


def test_conditions_sql_cannot_hold_are_checked_on_every_result(memory, journal, com):
    """Tags are no SQL condition: the exact filter (`matches`) must still refuse untagged events, through both the
    narrow path (few rows match the SQL) and the broad one."""
    events = corpus_events()
    tagged = [dict(e, tags=["nightly"]) for e in events[:4]]
    memory.record([normalize({k: v for k, v in e.items() if k != "id"}) for e in tagged] + events[4:])
    for args in (("--tag", "nightly"), ("--tag", "nightly", "--status", "failed")):
        results = found(com, "payment gateway timeout", "-k", "10", *args)
        assert len(results) == 4 and all(r["event"]["tags"] == ["nightly"] for r in results), args


def test_search_json_shape_human_table_and_bad_input(memory, journal, com):
    memory.record(corpus_events()[:3])
    r = com("search", "database down", "-k", "2", "--json", "--min-similarity", "0")
    out = json.loads(r.stdout)
    assert list(out) == ["results", "mode", "weak_left_out"] and len(out["results"]) == 2
    assert set(out["results"][0]) >= {"event", "score", "similarity", "count"}
    assert out["results"][0]["event"]["id"].startswith("evt_")

    human = com("search", "database down", "-k", "1")
    assert human.exit_code == 0
    assert human.stdout.splitlines()[0].split() == ["similarity", "events", "latest", "id", "project", "status", "what"]
    assert "test_orders" in human.stdout and "0.0" not in human.stdout.splitlines()[1].split()[0]

    bad = com("search", "x", "--status", "broken")
    assert bad.exit_code == 2 and bad.stderr.splitlines()[0] == \
        "com: error: --status: 'broken' is not one of 'passed', 'failed', 'error', 'skipped', 'xfailed', 'xpassed'"
    assert com("search", "x", "-k", "0").exit_code == 2
    assert com("search", "x", "--at", "no-such-rev").exit_code == 2


def test_com_search_as_a_process_never_reaches_a_model_hub(memory, journal, isolated):
    memory.record(corpus_events())
    env = {**os.environ, "HF_HUB_OFFLINE": "0", "TRANSFORMERS_OFFLINE": "0", "HF_ENDPOINT": "http://127.0.0.1:9"}
    r = run_com("search", "mail relay hung up", "-k", "1", "--json", cwd=isolated, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    assert json.loads(r.stdout)["results"][0]["event"]["data"]["test_id"] == "tests/test_mail.py::test_receipt"


# -- what a reader of `com search` sees ---------------------------------------------------------------------
def test_identical_texts_are_one_row_with_their_count_and_latest_time(memory, journal, com):
    # The same failure of one test on three days, and a different one: four events, two texts.
    events = [failure("tests/test_db.py::test_orders", "connection refused by db.internal:5432", "OperationalError",
                      ts=f"2026-11-0{day}T10:00:00Z") for day in (1, 2, 3)]
    events.append(failure("tests/test_mail.py::test_receipt", "Connection unexpectedly closed", "SMTPServerDisconnected"))
    memory.record(events)
    r = com("search", "database connection refused", "--json", "--min-similarity", "0")
    results = json.loads(r.stdout)["results"]
    orders = [x for x in results if x["event"]["data"]["test_id"] == "tests/test_db.py::test_orders"]
    assert len(orders) == 1 and orders[0]["count"] == 3 and orders[0]["event"]["ts"] == "2026-11-03T10:00:00Z"
    assert len(results) == 2
    human = com("search", "database connection refused", "--min-similarity", "0").stdout.splitlines()
    assert human[0].split()[:3] == ["similarity", "events", "latest"]
    assert re.search(r" 3x +2026-11-03 10:00:00 ", human[1]) and "test_orders" in human[1]
    each = json.loads(com("search", "database connection refused", "--json", "--each").stdout)["results"]
    assert len(each) == 4 and all(x["count"] == 1 for x in each)


def test_weak_matches_are_cut_and_the_cut_is_said(memory, journal, com):
    memory.record(corpus_events())
    r = com("search", "mail relay hung up")
    rows = r.stdout.strip().splitlines()[1:]
    assert len(rows) == 1 and "test_receipt" in rows[0]  # one strong match; the rest is noise
    assert r.stderr.strip() == "weaker matches left out (--min-similarity 0 shows them)"
    similarity = float(rows[0].split()[0])
    assert 0.3 < similarity <= 1.0  # a similarity, not a fusion constant like 0.0164
    r = com("search", "banana smoothie recipe")
    assert r.stdout.strip() == "no matching events"
    # a keyword hit stays however weak its meaning
    assert test_ids(json.loads(com("search", "E4077", "--json").stdout)["results"])[0] == "test_gateway_4077"
    assert len(json.loads(com("search", "mail relay hung up", "--json", "--min-similarity", "0").stdout)["results"]) == 10


def test_keyword_mode_loads_no_model_and_meaning_catches_up_later(memory, journal, isolated):
    from conftest import ROOT

    memory.record(corpus_events())
    script = (
        "import sys, json\n"
        "from typer.testing import CliRunner\n"
        "from com.cli.app import app\n"
        "r = CliRunner().invoke(app, ['search', 'E4077', '--mode', 'keyword', '--json'])\n"
        "print(json.dumps({'exit': r.exit_code, 'out': r.stdout, 'err': r.stderr,\n"
        # tokenizers: the numpy encoder's own import (a search by meaning loads it; torch it never does)
        "                  'loaded': [m for m in ('tokenizers', 'torch', 'sentence_transformers') if m in sys.modules]}))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=isolated, env=env)
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["exit"] == 0, out["err"]
    assert out["loaded"] == []
    assert test_ids(json.loads(out["out"])["results"]) == ["test_gateway_4077"]
    # The texts indexed without vectors are embedded by the first search by meaning.
    r = run_com("search", "the embedded billing form never rendered", "-k", "1", "--json", cwd=isolated)
    assert r.returncode == 0, r.stderr
    top = json.loads(r.stdout)["results"][0]
    assert top["event"]["data"]["test_id"].endswith("test_pay_with_card") and top["similarity"] > 0.2


def test_loading_the_model_is_reported_at_once(tmp_path):
    import numpy as np

    from com.cli.output import Progress
    from com.models.embedding import Embedder, EmbeddingModel

    class Slow(EmbeddingModel):
        name = "slow"
        is_loaded = False

        @property
        def dim(self):
            return 2

        @property
        def loaded(self):
            return self.is_loaded

        def embed_batch(self, texts):
            self.is_loaded = True
            return np.ones((len(texts), 2), dtype=np.float32) / np.sqrt(2)

    class TTY(io.StringIO):
        def isatty(self):
            return True

    stream = TTY()
    line = Progress("com search", stream)
    embedder = Embedder(Slow(), tmp_path)
    embedder.embed(["a failure"], progress=line)
    assert "com search: loading the embedding model…" in stream.getvalue()
    line.close()
    assert stream.getvalue().endswith("\r\033[K")  # the line is cleared before the results
    stream.truncate(0)
    stream.seek(0)
    embedder.embed(["a failure"], progress=Progress("com search", stream))  # cached: no model, no line
    assert stream.getvalue() == ""


def _ranked_corpus():
    """Three runs of 96 tests: most pass (one text each, their words shared with the failures' test ids), a few
    fail or error in ways that share words with each other and with the passing tests; some events tagged."""
    messages = ["Timeout 30000ms exceeded waiting for the checkout button", "connection refused by the orders database",
                "assert cart total == 12.50", "gateway declined the payment E4077", "checkout page returned 503",
                "database timeout while saving the order"]
    runs = []
    for run in range(3):
        events = []
        for i in range(96):
            area = ("checkout", "orders", "cart", "payments")[i % 4]
            data = {"test_id": f"tests/test_{area}.py::test_{area}_flow_{i}", "status": "passed"}
            if i % 9 == run:
                data.update(status="failed" if i % 3 else "error", error_message=messages[(i + run) % len(messages)])
            event = {"type": "test_result", "project": "shop", "ts": f"2026-11-0{run + 1}T10:{i // 60:02d}:{i % 60:02d}Z",
                     "data": data}
            if i % 5 == 0:
                event["tags"] = ["nightly"]
            events.append(normalize(event))
        runs.append(events)
    return runs


_EVENTS_BY_TEXT: dict = {}  # (memory, commit) -> {text number: events}: the reference reads the journal once


def _reference(memory, query, where, k, mode="hybrid"):
    """The ranking a filtered search defines, computed the slow way: the texts the filter can return (those with
    a matching event) ranked among themselves by similarity (ties by text number) and by BM25 over the whole
    FTS5 ranking (its 50 best of them), fused by reciprocal rank (a keyword hit's similarity rank counted among
    all texts, as `TextRanking.rank` does); then every event of the snapshot that matches, newest first within a
    text, the k first."""
    import numpy as np

    from com.model.text import event_text, normalise, text_hash
    from com.views.index.query import KEYWORD_TEXTS, RRF_K

    index = memory.index()
    rows = index.rows
    _texts = _EVENTS_BY_TEXT
    key = (str(memory.root), memory.journal.head().id)
    if key not in _texts:  # every event of the snapshot, by text number (read once per memory and commit)
        number = dict(rows.db.execute("SELECT hash, text_no FROM texts"))
        _texts.clear()
        _texts[key] = events = {}
        for event in memory.snapshot().events():
            events.setdefault(number[text_hash(event_text(event))], []).append(event)
    events = _texts[key]
    allowed = sorted(n for n, evs in events.items() if any(where.matches(e) for e in evs))
    text = normalise(query)
    keyword = []
    if mode != "vector":
        terms = " OR ".join(f'"{t}"' for t in dict.fromkeys(re.findall(r"\w+", text.lower()))
                            if t not in rows_stop_words())
        ranked = [n for (n,) in rows.db.execute(
            "SELECT rowid FROM texts_fts WHERE texts_fts MATCH ? ORDER BY bm25(texts_fts), rowid", (terms,))]
        keyword = [n for n in ranked if n in set(allowed)][:KEYWORD_TEXTS]
    scored = []
    if mode != "keyword":
        # einsum as the search computes it: a BLAS product may round differently and swap two near-equal texts
        sims = np.einsum("ij,j->i", rows.vectors(index.embedder.dim),
                         np.asarray(memory.embedder().embed([text])[0], dtype=np.float32))
        order = sorted(allowed, key=lambda n: (-sims[n], n))
        for r, n in enumerate(order, 1):
            if n in keyword:
                kr, vr = keyword.index(n) + 1, 1 + int((sims > sims[n]).sum())
                scored.append((-(1 / (RRF_K + kr) + 1 / (RRF_K + vr)), 0, vr, n))
            else:
                scored.append((-1 / (RRF_K + r), 1, r, n))
    else:
        scored = [(-1 / (RRF_K + kr), 0, 0, n) for kr, n in enumerate(keyword, 1)]
    out = []
    for *_, n in sorted(scored):
        for event in sorted(events[n], key=lambda e: e["ts"], reverse=True):
            if where.matches(event):
                out.append(event["id"])
    return out[:k]


def rows_stop_words():
    from com.views.index.rows import STOP_WORDS

    return STOP_WORDS


def test_a_filtered_search_returns_exactly_the_events_its_ranking_defines(memory, journal):
    """Whatever path a filter takes to the keyword hits (a small set of texts is checked before FTS5 scores
    them, a large one after), the results are the reference ranking's, filtered: the same events in the same
    order, and k of them whenever k match."""
    from com.model.filter import EventFilter
    from com.ops.search import search

    for events in _ranked_corpus():
        memory.record(events)
    filters = [EventFilter.create(statuses=["failed"]), EventFilter.create(statuses=["error"]),
               EventFilter.create(statuses=["passed"]), EventFilter.create(statuses=["failed", "error"]),
               EventFilter.create(tags_include=["nightly"], statuses=["failed"]), EventFilter()]
    queries = ["checkout timeout", "orders database refused", "E4077 payments flow", "cart test passed"]
    for where in filters:
        for query in queries:
            for mode in ("hybrid", "keyword"):
                for k in (3, 40):
                    got = [r["event"]["id"] for r in search(memory, query, k, where, mode=mode).results]
                    assert got == _reference(memory, query, where, k, mode), (where, query, mode, k)
