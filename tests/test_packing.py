"""Context packs: scores whose parts are reported, MMR over the real MiniLM vectors, greedy packing under a token
budget counted with tiktoken (offline), compact items, the Markdown and JSON of a pack, and every policy key
changing the pack."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from com import policies as P
from com.analysis import packing as K
from com.analysis.packing import Candidate
from com.models.tokens import ENCODING, count_tokens


def pack(*args, **kwargs):
    """Packing with the real token counter (the retrieve use-case passes it the same way)."""
    return K.pack(*args, counter=count_tokens, **kwargs)

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=timezone.utc)
_ids = iter(range(1, 1 << 30))


def ts(days_ago: float) -> str:
    return (NOW - timedelta(days=days_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def result(test="tests/e2e/test_checkout.py::test_pay", status="failed", days_ago=1.0, importance=3.0, tags=(),
           message="TimeoutError: Timed out after 30000ms waiting for the payment iframe", **data):
    data = {"test_id": test, "status": status, "error_message": message, "run_id": "run-7",
            "commit": "9fceb02d0ae598e95dc970b74767f19372d61af8", "duration_ms": 30500, **data}
    if status not in ("failed", "error"):
        data.pop("error_message")
    return {"id": f"evt_{next(_ids):024x}", "type": "test_result", "project": "shop", "source": "pytest",
            "ts": ts(days_ago), "importance": importance, "tags": list(tags), "data": data}


def other(etype, days_ago=1.0, importance=2.0, tags=(), **data):
    return {"id": f"evt_{next(_ids):024x}", "type": etype, "project": "shop", "source": "cli", "ts": ts(days_ago),
            "importance": importance, "tags": list(tags), "data": data}


def policy(policy_id="qa_root_cause", **changes) -> P.Policy:
    base = P.load_policies()[policy_id]
    weights = {k: changes.pop(k) for k in list(changes) if k in P.WEIGHT_KEYS}
    if weights:
        changes["weights"] = dataclasses.replace(base.weights, **weights)
    return dataclasses.replace(base, **changes)


def ids(p: K.Pack) -> list[str]:
    return [it.event["id"] for it in p.items]


def python_trace(frames: int) -> str:
    lines = ["Traceback (most recent call last):"]
    for i in range(frames):
        lines += [f'  File "src/shop/payments/gateway_{i}.py", line {10 + i}, in call_{i}', f"    return step_{i}(request)"]
    return "\n".join(lines + ["TimeoutError: Timed out after 30000ms waiting for the payment iframe"])


# -- scores ------------------------------------------------------------------------------------------------------
def test_a_score_is_its_weighted_parts_and_each_part_is_reported():
    pol = policy("qa_root_cause")
    c = Candidate(result(days_ago=7.0, importance=4.0), similarity=0.8, keyword_rank=1, pinned=True)
    p = pack([c], pol, now=NOW)
    (item,) = p.items
    w = pol.weights
    assert item.parts == pytest.approx({"semantic": 0.8, "keyword": 1.0, "importance": 0.8, "recency": 0.5,
                                        "pinned": 1.0})  # 7 days is one half-life of qa_root_cause
    why = p.to_json()["items"][0]["why"]
    for part in K.PARTS:
        assert why[part] == pytest.approx(getattr(w, part) * item.parts[part], abs=1e-4)
    assert item.score == pytest.approx(sum(why[part] for part in K.PARTS), abs=1e-3)
    assert why["rank"] == 1 and why["group"] == "similar" and "importance 4" in why["because"]


def test_recency_halves_every_half_life_and_keyword_rank_decays():
    pol = policy("qa_healing", recency_half_life_days=2.0)
    cs = [Candidate(result(days_ago=d)) for d in (0, 2, 4)]
    p = pack(cs, pol, now=NOW)
    by_age = sorted(p.items, key=lambda it: it.age_days)
    assert [round(it.parts["recency"], 3) for it in by_age] == [1.0, 0.5, 0.25]
    parts = [K.keyword_part(Candidate(result(), keyword_rank=r), frozenset()) for r in (1, K.KEYWORD_RANK_HALF, 100)]
    assert parts[0] == 1.0 and parts[1] == pytest.approx(0.5) and parts[2] < 0.1
    # Without a BM25 rank: the share of the query's words the event contains.
    word = K.keyword_part(Candidate(result(message="E4077 payment declined")), K.query_terms("E4077 refund"))
    assert word == 0.5


def _champions():
    """One candidate per score part, strong on that part alone, and a middling filler."""
    return {
        "semantic": Candidate(result("tests/a.py::test_sem", days_ago=60, importance=1.0), similarity=1.0),
        "keyword": Candidate(result("tests/a.py::test_kw", days_ago=60, importance=1.0), similarity=0.0,
                             keyword_rank=1),
        "importance": Candidate(result("tests/a.py::test_imp", days_ago=60, importance=5.0), similarity=0.0),
        "recency": Candidate(result("tests/a.py::test_new", days_ago=0, importance=1.0), similarity=0.0),
        "pinned": Candidate(result("tests/a.py::test_pin", days_ago=60, importance=1.0), similarity=0.0, pinned=True),
        "filler": Candidate(result("tests/a.py::test_mid", days_ago=10, importance=2.0), similarity=0.3),
    }


@pytest.mark.parametrize("policy_id", P.load_policies().keys())
@pytest.mark.parametrize("part", K.PARTS)
def test_each_shipped_policy_ranks_by_its_weights(policy_id, part):
    champions = _champions()
    cs = list(champions.values())
    low = pack(cs, policy(policy_id, **{part: 0.0}), now=NOW)
    high = pack(cs, policy(policy_id, **{part: 10.0}), now=NOW)
    shipped = pack(cs, policy(policy_id), now=NOW)
    champion = champions[part].event["id"]
    assert ids(high)[0] == champion
    assert ids(low).index(champion) > 0
    assert ids(low).index(champion) >= ids(shipped).index(champion) >= ids(high).index(champion)


def test_the_shipped_weights_differ_the_way_the_policies_say():
    old_similar = Candidate(result("tests/a.py::test_old", days_ago=20), similarity=0.95)
    recent = Candidate(result("tests/a.py::test_recent", days_ago=0.2), similarity=0.55)
    important = Candidate(result("tests/a.py::test_crit", days_ago=5, importance=5.0), similarity=0.6)
    cs = [old_similar, recent]
    # Healing: meaning leads (a fix for the same symptom, whatever its age); regression selection: recency leads.
    assert ids(pack(cs, policy("qa_healing"), now=NOW))[0] == old_similar.event["id"]
    assert ids(pack(cs, policy("qa_regression_select"), now=NOW))[0] == recent.event["id"]
    # Root cause weighs importance most: a critical failure leads although others are closer in meaning.
    assert ids(pack([*cs, important], policy("qa_root_cause"), now=NOW))[0] == important.event["id"]
    # Raising the recency weight moves recent events up.
    before = ids(pack(cs, policy("qa_healing"), now=NOW)).index(recent.event["id"])
    after = ids(pack(cs, policy("qa_healing", recency=6.0), now=NOW)).index(recent.event["id"])
    assert after < before


def test_a_pinned_event_is_tagged_or_named_by_the_caller():
    tagged = Candidate(result(tags=["pinned"]))
    named = Candidate(result(), pinned=True)
    plain = Candidate(result())
    p = pack([plain, tagged, named], policy("qa_root_cause"), now=NOW)
    parts = {it.event["id"]: it.parts["pinned"] for it in p.items}
    assert parts == {tagged.event["id"]: 1.0, named.event["id"]: 1.0, plain.event["id"]: 0.0}
    assert ids(p)[-1] == plain.event["id"]


def test_candidates_of_one_event_merge_into_one():
    e = result()
    p = pack([Candidate(e, similarity=0.2), Candidate(e, similarity=0.9, keyword_rank=3),
              Candidate(e, pinned=True, relation="test")], policy("qa_root_cause"), now=NOW)
    (item,) = p.items
    assert item.parts["semantic"] == 0.9 and item.parts["pinned"] == 1.0 and item.group == "test"
    assert p.considered == 1


# -- diversity: MMR over the real MiniLM vectors -----------------------------------------------------------------
@pytest.fixture(scope="module")
def embedder(tmp_path_factory):
    from com.models.embedding import Embedder

    return Embedder.for_name("all-MiniLM-L6-v2", tmp_path_factory.mktemp("embeddings"))


def _embedded(embedder, events, query):
    from com.model.text import event_text

    vectors = embedder.embed([event_text(e) for e in events])
    q = embedder.embed([query])[0]
    return [Candidate(e, vector=v) for e, v in zip(events, vectors)], q


def _checkout_failures():
    near_duplicates = [
        result(f"tests/e2e/test_checkout.py::test_pay[{browser}]",
               message=f"TimeoutError: Timed out after {ms}ms waiting for the payment iframe on {host}")
        for browser, ms, host in [("chrome", 30000, "shop-1"), ("firefox", 45000, "shop-2"),
                                  ("webkit", 30000, "shop-3"), ("chrome-mobile", 60000, "shop-1"),
                                  ("edge", 30000, "shop-4"), ("chrome", 31000, "shop-9")]
    ]
    different = [
        result("tests/e2e/test_checkout.py::test_pay_card",
               message="ConnectionRefusedError: payment service at 10.0.0.5:8443 refused the connection"),
        result("tests/e2e/test_checkout.py::test_receipt", message="KeyError: receipt_id missing from the payment response"),
        result("tests/api/test_orders.py::test_total", message="AssertionError: expected order total 100.00, got 90.00"),
    ]
    return near_duplicates, different


def test_mmr_keeps_near_duplicate_failures_from_crowding_out_different_evidence(embedder):
    near_duplicates, different = _checkout_failures()
    query = "payment iframe timeout at checkout"
    cs, q = _embedded(embedder, near_duplicates + different, query)
    dup_ids = {e["id"] for e in near_duplicates}
    base = policy("qa_flaky_triage", max_events=4)
    assert base.weights.diversity == 1.2

    plain = pack(cs, dataclasses.replace(base, weights=dataclasses.replace(base.weights, diversity=0.0)),
                 query=query, query_vector=q, now=NOW)
    assert set(ids(plain)) <= dup_ids  # by score alone: four occurrences of one failure

    diverse = pack(cs, base, query=query, query_vector=q, now=NOW)
    packed = ids(diverse)
    assert len(packed) == 4 and packed[0] == ids(plain)[0]  # the best stays first
    assert len(set(packed) & dup_ids) == 1  # one occurrence of the timeout, then the other failures
    assert {e["id"] for e in different[:2]} <= set(packed)
    second = diverse.items[1]
    assert second.redundancy < 0.8 and diverse.to_json()["items"][1]["why"]["diversity_penalty"] > 0
    left = [s.reason for s in diverse.skipped]
    assert left.count("max_events") == len(cs) - 4

    # The more diversity, the fewer occurrences of one failure.
    counts = [len(set(ids(pack(cs, policy("qa_flaky_triage", max_events=4, diversity=d), query=query,
                                 query_vector=q, now=NOW))) & dup_ids) for d in (0.0, 0.3, 0.7, 1.2, 3.0)]
    assert counts == sorted(counts, reverse=True) and counts[0] == 4 and counts[-1] == 1


def test_mmr_names_the_packed_item_a_near_duplicate_is_close_to(embedder):
    near_duplicates, different = _checkout_failures()
    cs, q = _embedded(embedder, near_duplicates[:2] + different[:1], "payment iframe timeout")
    p = pack(cs, policy("qa_flaky_triage"), query="payment iframe timeout", query_vector=q, now=NOW)
    assert len(p.items) == 3
    late = p.items[-1]  # the second timeout, after the different failure
    assert late.event["id"] in {e["id"] for e in near_duplicates[:2]}
    assert late.redundancy >= K.REDUNDANT and late.similar_to == p.items[0].event["id"]
    assert f"close to {p.items[0].event['id']}" in late.because


# -- packing under the budget ------------------------------------------------------------------------------------
def _smallest(events, pol, test=None) -> int:
    """Tokens of the shortest rendering any of `events` can have, with its group heading."""
    sizes = []
    for e in events:
        group = K.group_of(Candidate(e), test)
        text = K.render_item(e, group, test=test, trace_lines=0, message_chars=K.MIN_MESSAGE_CHARS)
        sizes.append(count_tokens(text))
    return min(sizes)


def test_the_budget_is_filled_to_within_one_smallest_item():
    events = [result(f"tests/t.py::test_{i}", days_ago=i / 10, message="AssertionError: " + "value mismatch " * (i % 7))
              for i in range(80)]
    pol = policy("qa_root_cause", max_events=1000)
    for budget in (300, 512, 1000, 2048):
        p = pack([Candidate(e, similarity=0.5) for e in events], pol, budget=budget, now=NOW)
        assert p.tokens_used <= budget
        assert p.budget == budget and pol.budget_tokens == 6144  # an override is for this call only
        assert budget - p.tokens_used < _smallest(events, pol)
        assert len(p.items) < len(events)


def test_packing_skips_what_does_not_fit_and_goes_on_with_smaller_items():
    huge = other("code_change", days_ago=0, importance=5.0, sha="a" * 40, author="alice",
                 message="Rewrite the payment gateway", files=[f"src/shop/module_{i}.py" for i in range(40)],
                 **{f"note_{i}": "why this matters " * 30 for i in range(60)})
    small = [result(f"tests/t.py::test_{i}", days_ago=1 + i, message="E4077 declined") for i in range(30)]
    pol = policy("qa_root_cause", max_events=1000)
    p = pack([Candidate(huge, similarity=1.0)] + [Candidate(e, similarity=0.2) for e in small], pol, budget=400,
             now=NOW)
    reasons = {s.id: s for s in p.skipped}
    assert huge["id"] in reasons and reasons[huge["id"]].reason == "budget"
    assert reasons[huge["id"]].needed > 400 - 100  # its shortest rendering is large
    assert len(p.items) > 5 and p.tokens_used <= 400  # the first overflow did not stop packing
    assert 400 - p.tokens_used < _smallest(small, pol)


def test_a_long_trace_is_trimmed_to_what_fits():
    big = result("tests/e2e/test_checkout.py::test_pay", trace=python_trace(80), days_ago=0.5)
    full = K.render_item(big, "test", test=big["data"]["test_id"])
    block = full.splitlines()[1:]
    assert block[0] == block[-1] == "  ```" and len(block) <= K.MAX_TRACE_LINES + 3  # never the whole trace
    shown = block[2:-1]  # after the marker: from a frame ("File ...") to the error
    assert block[1] == f"  … {162 - len(shown)} line(s) above" and shown[0].lstrip().startswith("File ")
    assert "TimeoutError: Timed out after 30000ms" in full.splitlines()[-2]  # a traceback keeps its end
    room = count_tokens(full) - 40
    pol = policy("qa_root_cause")
    header_tokens = count_tokens(K.header(pol.id, pol.task, big["data"]["test_id"], None, big["ts"], ts(0)))
    heading_tokens = count_tokens(K.heading("test", big["data"]["test_id"]))
    p = pack([Candidate(big)], pol, test=big["data"]["test_id"], budget=header_tokens + heading_tokens + room,
             now=NOW, since=big["ts"])
    (item,) = p.items
    assert item.trimmed and item.tokens <= room and "line(s) above" in item.text
    assert item.text.count("\n") < full.count("\n")
    assert "Timed out after 30000ms waiting for the payment iframe" in item.text.splitlines()[0]
    assert p.to_json()["items"][0]["why"]["trimmed"] is True


def test_a_java_trace_keeps_its_first_lines():
    trace = "java.lang.AssertionError: expected 3\n" + "\n".join(f"\tat com.shop.Pay.step{i}(Pay.java:{i})"
                                                                for i in range(40))
    text = K.render_item(result(trace=trace), "similar", trace_lines=3)
    assert "java.lang.AssertionError: expected 3" in text and "step1(" in text and "… 38 more line(s)" in text
    assert "step39" not in text


words = st.text(alphabet="abcdefghij klmnop:/._-0123456789", min_size=0, max_size=1500)


@st.composite
def candidates(draw):
    out = []
    for i in range(draw(st.integers(1, 25))):
        kind = draw(st.sampled_from(["result", "result", "result", "code_change", "note", "healing_attempt"]))
        days = draw(st.floats(0, 30))
        if kind == "result":
            e = result(f"tests/t{i % 4}.py::test_{i}", status=draw(st.sampled_from(["failed", "error", "passed"])),
                       days_ago=days, message=draw(words) or "E1",
                       trace=python_trace(draw(st.integers(0, 40))) if draw(st.booleans()) else "")
        else:
            e = other(kind, days_ago=days, message=draw(words), author="bob", files=["a.py"] * draw(st.integers(0, 9)))
        out.append(Candidate(e, similarity=draw(st.floats(0, 1)), pinned=draw(st.booleans())))
    return out


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cs=candidates(), budget=st.integers(256, 3000), test=st.sampled_from([None, "tests/t0.py::test_0"]),
       facts=st.sampled_from([(), (("flaky", "yes: 3 of 20 runs failed then passed"),)]))
def test_the_budget_is_never_exceeded_and_every_candidate_is_accounted_for(cs, budget, test, facts):
    p = pack(cs, policy("qa_flaky_triage", max_events=1000), budget=budget, test=test, facts=facts, now=NOW,
             query="timeout payment")
    markdown = p.to_markdown()
    assert p.tokens_used == count_tokens(markdown) <= budget
    assert sum(it.tokens for it in p.items) < p.tokens_used
    folded = sum(len(it.also) for it in p.items)
    assert len(p.items) + folded + len(p.skipped) == p.considered == len({c.event["id"] for c in cs})
    for s in p.skipped:  # nothing was left out that would have fitted in what is left
        assert s.reason == "budget" and s.needed > budget - p.tokens_used
    for it in p.items:
        assert it.text in markdown


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(occurrences=st.lists(st.tuples(st.integers(0, 3), st.floats(0, 30), st.integers(0, 5)), min_size=1,
                            max_size=40),
       budget=st.integers(256, 1200), diversity=st.sampled_from([0.0, 0.7]))
def test_folding_occurrences_keeps_the_budget_exact(occurrences, budget, diversity):
    rng = np.random.default_rng(0)
    pool = rng.normal(size=(4, 384)).astype(np.float32)
    cs = [Candidate(result(f"tests/t.py::test_{kind}", days_ago=days, commit=f"{commit:040x}",
                           message=f"AssertionError: kind {kind}", trace=python_trace(kind * 3)), vector=pool[kind])
          for kind, days, commit in occurrences]
    p = pack(cs, policy("qa_flaky_triage", max_events=1000, diversity=diversity), budget=budget, now=NOW)
    assert p.tokens_used == count_tokens(p.to_markdown()) <= budget
    folded = sum(len(it.also) for it in p.items)
    assert len(p.items) + folded + len(p.skipped) == len(cs)
    assert all(s.needed > budget - p.tokens_used for s in p.skipped)
    if diversity == 0:
        assert folded == 0
    else:  # one line per failure at most
        tests = [it.event["data"]["test_id"] for it in p.items]
        assert len(tests) == len(set(tests))


def test_repeated_occurrences_of_a_failure_fold_into_one_line(embedder):
    test = "tests/e2e/test_checkout.py::test_pay"
    events = [result(test, days_ago=d, commit=str(c) * 40, trace=python_trace(2),
                     message=f"TimeoutError: Timed out after {ms}ms waiting for the payment iframe")
              for d, c, ms in [(0.5, 1, 30000), (1.5, 2, 31000), (2.5, 2, 45000), (3.5, 3, 30000), (4.5, 4, 30000)]]
    other_failure = result("tests/api/test_orders.py::test_total", message="AssertionError: expected 100 got 90")
    cs, _ = _embedded(embedder, events + [other_failure], "payment timeout")
    p = pack(cs, policy("qa_root_cause"), test=test, now=NOW)
    assert len(p.items) == 2
    (line,) = [it for it in p.items if it.event["data"]["test_id"] == test]
    assert line.event is events[0] and line.also == events[1:]  # the newest, then the others by rank
    first = line.text.splitlines()[0]
    assert first.endswith(f"(+4 more like it: {ts(4.5)[:16].replace('T', ' ')} to {ts(1.5)[:16].replace('T', ' ')}; "
                          f"commits {'2' * 10}, {'3' * 10}, {'4' * 10})")
    assert line.text.count("```") == 2  # one trace for the five occurrences
    obj = p.to_json()["items"][ids(p).index(line.event["id"])]
    assert obj["also"] == [e["id"] for e in events[1:]] and obj["why"]["occurrences"] == 5
    assert p.tokens_used == count_tokens(p.to_markdown())
    # Without diversity, every occurrence has a line of its own.
    raw = pack(cs, policy("qa_root_cause", diversity=0.0), test=test, now=NOW)
    assert len(raw.items) == 6 and all(not it.also for it in raw.items)


def test_a_pytest_report_keeps_its_last_lines_and_durations_read_naturally():
    report = "\n".join(["def test_total():", "    order = make_order()"] + [f"    step_{i}()" for i in range(20)] +
                       ["E       AssertionError: assert 90 == 100", "tests/api/test_orders.py:41: AssertionError"])
    text = K.render_item(result(trace=report, duration_ms=12), "similar", trace_lines=4)
    assert "(run run-7, commit 9fceb02d0a, 12 ms)" in text
    assert "E       AssertionError: assert 90 == 100" in text and "tests/api/test_orders.py:41" in text
    assert "def test_total" not in text and "… 20 line(s) above" in text


# -- every policy key changes the pack ---------------------------------------------------------------------------
def _rich_candidates():
    test = "tests/e2e/test_checkout.py::test_pay"
    return test, [
        Candidate(result(test, days_ago=0.5, trace=python_trace(12)), similarity=0.9),
        Candidate(result(test, status="passed", days_ago=0.7, importance=1.0), similarity=0.8),
        Candidate(result("tests/e2e/test_cart.py::test_add", days_ago=3, tags=["nightly"]), similarity=0.7),
        Candidate(result("tests/api/test_orders.py::test_total", days_ago=30, importance=2.0,
                         message="AssertionError: expected 100 got 90", tags=["quarantined"]), similarity=0.3),
        Candidate(other("code_change", days_ago=1, sha="b" * 40, author="alice", message="Lazy-load the iframe"),
                  similarity=0.5),
        Candidate(other("healing_attempt", days_ago=2, test_id=test, strategy="wait for frame", outcome="passed"),
                  similarity=0.6),
        Candidate(other("note", days_ago=4, importance=1.5, message="Iframe slow on shop-3 since the CDN move"),
                  similarity=0.4, pinned=True),
        Candidate(other("rollup", days_ago=1, period="2026-11-26", narrative="Checkout timeouts doubled"),
                  similarity=0.5),
    ]


MUTATIONS = {
    "id": {"id": "team_root_cause"},
    "task": {"task": "incident"},
    "weights.semantic": {"semantic": 0.0},
    "weights.keyword": {"keyword": 9.0},
    "weights.importance": {"importance": 0.0},
    "weights.recency": {"recency": 9.0},
    "weights.diversity": {"diversity": 5.0},
    "weights.pinned": {"pinned": 9.0},
    "recency_half_life_days": {"recency_half_life_days": 0.1},
    "budget_tokens": {"budget_tokens": 300},
    "event_types": {"event_types": ("test_result",)},
    "statuses": {"statuses": ("failed", "error", "passed")},
    "min_importance": {"min_importance": 2.5},
    "tags_include": {"tags_include": ("nightly",)},
    "tags_exclude": {"tags_exclude": ("quarantined",)},
    "max_events": {"max_events": 2},
    "include_rollups": {"include_rollups": True},
}


def _pack_as_retrieve_would(pol, embedder_vectors=None):
    test, cs = _rich_candidates()
    if embedder_vectors is not None:
        cs = [dataclasses.replace(c, vector=v) for c, v in zip(cs, embedder_vectors)]
    return pack(cs, pol, test=test, query="iframe timeout E4077", now=NOW, accept=P.event_filter(pol).matches)


def test_every_policy_key_is_covered_here():
    covered = {k.split(".")[0] for k in MUTATIONS} | {"description"}
    assert covered == set(P.KEYS)
    assert {k.split(".")[1] for k in MUTATIONS if k.startswith("weights.")} == set(P.WEIGHT_KEYS)


@pytest.mark.parametrize("key", MUTATIONS)
def test_every_policy_key_changes_the_pack(key, embedder):
    from com.model.text import event_text

    _, cs = _rich_candidates()
    vectors = embedder.embed([event_text(c.event) for c in cs])
    base = policy("qa_root_cause")
    changed = policy("qa_root_cause", **MUTATIONS[key])
    before = _pack_as_retrieve_would(base, vectors)
    after = _pack_as_retrieve_would(changed, vectors)
    def what_it_packs(p):  # the header, the budget, the items and their order (scores aside)
        return p.to_markdown().split("\n")[:2], p.budget, ids(p)

    assert what_it_packs(after) != what_it_packs(before)
    if key == "budget_tokens":  # the pack shrinks to the policy's budget
        assert after.tokens_used <= 300 < before.tokens_used


def test_the_description_is_what_com_policies_lists(tmp_path):
    (tmp_path / "mine.yaml").write_text("id: qa_root_cause\ndescription: Our incident hunts\n")
    listed = {p["id"]: p["description"] for p in P.list_policies(tmp_path)["policies"]}
    assert listed["qa_root_cause"] == "Our incident hunts"


def test_include_rollups_also_holds_when_every_type_is_allowed():
    test, cs = _rich_candidates()
    rollup = next(c for c in cs if c.event["type"] == "rollup")
    everything = P.Policy(id="all", task="all")
    assert P.event_filter(everything).types == ()
    assert rollup.event["id"] not in ids(pack(cs, everything, now=NOW))
    assert rollup.event["id"] in ids(pack(cs, dataclasses.replace(everything, include_rollups=True), now=NOW))
    assert [s.reason for s in pack(cs, everything, now=NOW).skipped] == ["rollups"]


# -- the pack as Markdown and JSON -------------------------------------------------------------------------------
def test_markdown_groups_the_evidence_under_a_short_header():
    test, cs = _rich_candidates()
    pol = policy("qa_root_cause", include_rollups=True, statuses=("failed", "error", "passed"), min_importance=0.0)
    p = pack(cs, pol, test=test, query="iframe timeout", now=NOW,
             facts=[("flaky", "yes: 3 of 20 runs failed, then passed on retry"), ("last passed", ts(0.7))])
    md = p.to_markdown()
    lines = md.splitlines()
    assert lines[0] == "# Context pack: root cause"
    assert lines[1].startswith(f"Policy qa_root_cause · test `{test}` · query “iframe timeout” · events from ")
    assert lines[1].endswith("to 2026-11-27 12:00 UTC")
    headings = [line for line in lines if line.startswith("## ")]
    assert headings == ["## Status of this test", "## Recent results of this test", "## Similar failures in other tests",
                        "## Related code changes", "## Healing attempts and their outcomes", "## Summaries",
                        "## Notes and analyses"]
    section = md.split("## Recent results of this test\n")[1].split("## ")[0].splitlines()
    assert section[0].startswith(f"- {ts(0.5)[:10]} ") and " failed (run run-7, commit 9fceb02d0a, 30.5 s): " \
        "TimeoutError: Timed out after 30000ms waiting for the payment iframe" in section[0]
    items = [line for line in section if line.startswith("- ")]
    assert " passed " in items[1] and test not in section[0]  # newest first; the test is named in the header
    fence = section.index("  ```", 2)  # the trace block closes before the next item
    assert section[1] == "  ```" and "TimeoutError" in section[fence - 1] and section[fence + 1] == items[1]
    assert "- flaky: yes: 3 of 20 runs failed, then passed on retry" in md
    assert "code change bbbbbbbbbb by alice: Lazy-load the iframe" in md
    assert f"healing attempt `{test}`: strategy: wait for frame; outcome: passed" in md
    assert "`tests/e2e/test_cart.py::test_add`" in md and "tags: nightly" in md
    assert p.tokens_used == count_tokens(md)


def test_markdown_without_a_test_or_evidence():
    pol = policy("qa_regression_select")
    empty = pack([], pol, query="checkout")
    assert empty.to_markdown() == ("# Context pack: regression select\nPolicy qa_regression_select · query "
                                   "“checkout”\n\n" + K.EMPTY)
    p = pack([Candidate(result())], pol, now=NOW)
    assert "## Matching test results" in p.to_markdown()


def test_the_json_has_the_promised_keys():
    test, cs = _rich_candidates()
    p = pack(cs, policy("qa_root_cause"), test=test, now=NOW, facts={"flaky": "no"})
    obj = json.loads(json.dumps(p.to_json()))
    assert {"policy", "budget", "tokens_used", "items"} <= set(obj)
    assert obj["policy"] == "qa_root_cause" and obj["budget"] == 6144 and obj["encoding"] == ENCODING
    assert obj["window"]["until"] == "2026-11-27T12:00:00Z" and obj["facts"] == [{"name": "flaky", "value": "no"}]
    item = obj["items"][0]
    assert set(item) >= {"event", "score", "why"} and item["event"]["id"].startswith("evt_")
    assert set(item["why"]) >= {*K.PARTS, "parts", "diversity_penalty", "rank", "group", "because", "trimmed"}
    assert obj["considered"] == len(cs) and obj["skipped"] == {"rollups": 1}


def test_a_budget_too_small_for_the_header_is_one_clear_error():
    with pytest.raises(K.ComError, match="cannot hold even the pack's header"):
        pack([Candidate(result())], policy("qa_root_cause"), budget=10, test="tests/x.py::test_y", now=NOW)


# -- tiktoken offline --------------------------------------------------------------------------------------------
def test_tokens_are_counted_offline_without_writing_a_cache(tmp_path):
    empty_tmp = tmp_path / "tmp"
    empty_tmp.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "TIKTOKEN_CACHE_DIR"}
    env.update(TMPDIR=str(empty_tmp), PYTHONPATH=str(Path(__file__).resolve().parent.parent),
               HTTPS_PROXY="http://127.0.0.1:9", HTTP_PROXY="http://127.0.0.1:9")
    probe = ("import os; from com.models.tokens import count_tokens; "
             "print(count_tokens('AssertionError: expected 200, got 503'), 'TIKTOKEN_CACHE_DIR' in os.environ)")
    command = [sys.executable, "-c", probe]
    unshare = shutil.which("unshare")
    if unshare and subprocess.run([unshare, "-n", "true"], capture_output=True).returncode == 0:
        command = [unshare, "-n", *command]  # no network at all, not only dead proxies
    out = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [str(count_tokens("AssertionError: expected 200, got 503")), "False"]
    assert list(empty_tmp.iterdir()) == []  # nothing written to the temp folder


def test_the_user_s_tiktoken_cache_setting_is_left_as_it_was(monkeypatch):
    from com.models import tokens

    monkeypatch.setattr(tokens, "_encoding", None)
    monkeypatch.setattr(tokens, "_counted", {})
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "/somewhere/else")
    assert count_tokens("hello world") == 2
    assert os.environ["TIKTOKEN_CACHE_DIR"] == "/somewhere/else"


def test_facts_go_first_each_while_it_fits():
    facts = [("flaky status", "flaky (high): flake rate 0.61, failed 12 of 20 runs"),
             ("history", " ".join(f"q{i}" for i in range(200))), ("results", "20 runs")]  # history: ~260 tokens
    roomy = pack([], policy("qa_root_cause"), test="t", facts=facts, now=NOW)
    assert [k for k, _ in roomy.facts] == ["flaky status", "history", "results"]
    tight = pack([], policy("qa_root_cause"), test="t", facts=facts, now=NOW, budget=256)
    assert [k for k, _ in tight.facts] == ["flaky status", "results"]  # the long history did not fit; 20 runs did
    (left_out,) = [s for s in tight.skipped if s.id == "fact:history"]
    assert left_out.reason == "budget" and left_out.needed > 256 - tight.tokens_used
    assert tight.tokens_used == count_tokens(tight.to_markdown()) <= 256
