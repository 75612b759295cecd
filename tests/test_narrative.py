"""The narrative without a model: grounding check, deterministic fallback that says no model wrote it, and no
llama_cpp import on that path."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from conftest import ROOT

from com.analysis import narrative, rollup
from com.model.result import ResultColumns

T0 = datetime(2026, 3, 2, 9, tzinfo=timezone.utc)


def _columns() -> ResultColumns:
    """Two days: day one all green; day two a new failure, a flaky test, a fix."""
    tests = ["tests/test_cart.py::test_add_item", "tests/test_pay.py::test_refund[card-2]",
             "tests/test_ui.py::TestCheckout::test_submit", "tests/test_auth.py::test_token_expiry"]
    sigs = ["AssertionError: assert 41 == 42", "playwright TimeoutError: waiting for locator(<sel>)"]
    rows = []
    for run in range(4):  # day one: test 3 fails everywhere (broken), others pass
        for t in range(4):
            rows.append((t, run, 0 if t != 3 else 1, 0 if run < 2 else 1, -1 if t != 3 else 0))
    for run in range(4, 8):  # day two: test 0 breaks on commit 2, test 2 flakes on commit 2, test 3 fixed
        for t in range(4):
            failing = (t == 0) or (t == 2 and run == 5)
            rows.append((t, run, 1 if failing else 0, 2, 0 if t == 0 else 1 if failing else -1))
    hours = [(r[1] % 4) * 3 + 24 * (r[1] >= 4) for r in rows]
    return ResultColumns(
        test=np.array([r[0] for r in rows], np.int32), tests=tests,
        ts_us=np.array([rollup.to_us(T0 + timedelta(hours=h, minutes=r[0])) for h, r in zip(hours, rows)], np.int64),
        status=np.array([r[2] for r in rows], np.int8), attempt=np.ones(len(rows), np.int16),
        duration_ms=np.array([120.0 + 30 * r[0] for r in rows]), run=np.array([r[1] for r in rows], np.int32),
        runs=[f"run-{n}" for n in range(8)], commit=np.array([r[3] for r in rows], np.int32),
        commits=["a1b2c3d4e5f6a7b8", "b2c3d4e5f6a7b8c9", "c3d4e5f6a7b8c9d0"],
        signature=np.array([r[4] for r in rows], np.int32), signatures=sigs)


@pytest.fixture
def facts() -> dict:
    f = rollup.daily_facts(_columns(), "2026-03-03")
    assert f["new_failures"]["count"] == 1 and f["flaky_failures"]["count"] == 1 and f["fixed"]["count"] == 1
    return f


def test_the_fallback_is_deterministic_grounded_and_says_no_model_wrote_it(facts):
    a = narrative.write(facts, None, no_model_reason="--no-llm")
    b = narrative.write(json.loads(json.dumps(facts)), None, no_model_reason="--no-llm")
    assert a.text == b.text and a.model is None and a.fallback_reason == "--no-llm"
    assert a.text.endswith(narrative.FALLBACK_NOTE) and "No language model was used" in a.text
    body = a.text[: -len(narrative.FALLBACK_NOTE)]
    assert narrative.check(body, facts) == []
    assert "tests/test_cart.py::test_add_item" in body and "68.8%" in body  # 11 of 16 outcomes did not fail
    assert a.to_json()["model"] is None


def test_every_kind_has_a_grounded_fallback():
    cols = _columns()
    for facts in (rollup.daily_facts(cols, "2026-03-02"), rollup.weekly_facts(cols, "2026-03-02"),
                  rollup.pattern_facts(cols, until="2026-03-03", test="tests/test_cart.py::test_add_item"),
                  rollup.pattern_facts(cols, until="2026-03-03", signature="locator"),
                  rollup.pattern_facts(cols, until="2026-03-03", signature="no such thing"),
                  rollup.daily_facts(cols, "2026-04-01")):
        text = narrative.fallback(facts)
        assert text and narrative.check(text, facts) == [], (facts["kind"], text)


def test_the_grounding_check_accepts_a_faithful_text(facts):
    text = ("On 2026-03-03, 4 CI runs on 1 code commit recorded 16 test results, and the pass rate was 68.8%, "
            "down 6.2 points from 75.0%. tests/test_cart.py::test_add_item started failing four times with "
            "AssertionError: assert 41 == 42 on commit c3d4e5f6a7b8c9d0, test_token_expiry passed again, and "
            "test_submit failed once but also passed on the same code.")
    assert narrative.check(text, facts) == []


@pytest.mark.parametrize("invented, reason", [
    ("The pass rate was 93.4%.", "number not in the facts: 93.4"),
    ("There were 17 runs.", "number not in the facts: 17"),
    ("Thirteen tests failed.", "number not in the facts: Thirteen"),
    ("tests/test_cart.py::test_remove_item failed.", "test id not in the facts"),
    ("test_remove_item failed.", "test id not in the facts: test_remove_item"),
    ("It broke on 2026-02-14.", "date not in the facts: 2026-02-14"),
    ("Commit deadbeef1234 broke it.", "id not in the facts: deadbeef1234"),
    ("There were no new failures.", "claims no new failures"),
    ("All tests passed.", "claims nothing failed"),
    ("Nothing was fixed.", "claims nothing was fixed"),
    ("The pass rate rose sharply.", "says the pass rate moved the wrong way"),
    ("{runs} ran.", "unknown placeholder {runs}"),
])
def test_the_grounding_check_rejects_inventions(facts, invented, reason):
    problems = narrative.check(invented, facts)
    assert any(p.startswith(reason) for p in problems), problems


def test_placeholders_fill_from_the_facts_and_the_grammar_allows_only_these(facts):
    s = narrative.slots(facts)
    assert s.values["new_failure_1"] == "tests/test_cart.py::test_add_item"
    assert s.values["fixed"] == "1 test"
    for line in s.lines:  # the facts block the model reads has no digit outside placeholders
        assert not any(ch.isdigit() for ch in narrative.re.sub(r"\{[a-z0-9_]+\}", "", line)), line
    g = narrative.grammar(s)
    assert 'ph ::= "{" ph1' in g and "0-9" not in g  # placeholders as a trie, no digit class
    text = narrative.fill("{New_failures} appeared. {new_failures} appeared. {fixed} passed again.", s.values)
    assert text.startswith("{New_failures}") and "1 new failure appeared" in text
    assert narrative.fill("{fixed} passed again.", s.values) == "1 test passed again."


def test_nothing_happened_needs_no_model():
    facts = rollup.daily_facts(_columns(), "2026-05-01")
    n = narrative.write(facts, model=object())  # never called: there is nothing to tell
    assert n.model is None and n.fallback_reason == "nothing happened in the period"
    assert "no test runs were recorded" in n.text


def test_no_llm_path_imports_no_llama_cpp():
    code = (
        "import sys, json\n"
        "sys.path.insert(0, %r)\n"
        "from test_narrative import _columns\n"
        "from com.analysis import rollup, narrative\n"
        "from com.models import text\n"
        "f = rollup.daily_facts(_columns(), '2026-03-03')\n"
        "n = narrative.write(f, None, no_model_reason='--no-llm')\n"
        "assert n.model is None\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('llama'))))\n"
    ) % str(ROOT / "tests")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert json.loads(out.stdout) == []


def test_placeholders_must_sit_where_com_puts_them(facts):
    s = narrative.slots(facts)
    good = "{period} saw {runs} on {commits}, which recorded {results}. {fixed_1} was fixed and passed again."
    assert narrative.check_usage(good, facts, s) == []
    assert narrative.check_usage("{runs} failed.", facts, s) == ["placeholder in an unusual place: | {runs} failed"]
    assert narrative.check_usage("The most common error was {top_error_count}.", facts, s)
    assert narrative.check_usage("{flaky_1} was fixed and passed again.", facts, s)


def test_every_wording_com_offers_is_grounded_and_well_placed():
    cols = _columns()
    kinds = (rollup.daily_facts(cols, "2026-03-03"), rollup.daily_facts(cols, "2026-03-02"),
             rollup.weekly_facts(cols, "2026-03-02"),
             rollup.pattern_facts(cols, until="2026-03-03", test="tests/test_cart.py::test_add_item"))
    for facts in kinds:
        s = narrative.slots(facts)
        for variant in range(4):
            raw = narrative.compose(facts, s, variant)
            assert narrative.check_usage(raw, facts, s) == [], raw
            assert narrative.check(narrative.fill(raw, s.values), facts) == [], raw
        p = narrative.prompt(facts, s)
        assert p.endswith("Summary C:") and not re.search(r"\d", re.sub(r"\{[a-z0-9_]+\}", "", p))
        words = narrative.vocabulary(facts, s)
        assert "the" in words and "The" in words and not any(ch.isdigit() for w in words for ch in w)


def test_a_repeated_sentence_is_rejected(facts):
    s = narrative.slots(facts)
    loop = "{fixed_1} was fixed and passed again. No new failures appeared. {fixed_1} was fixed and passed again."
    assert narrative.check_usage(loop, facts, s)[0].startswith("repeats a sentence")
