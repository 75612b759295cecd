"""Manifestations: a test's failures grouped by error signature, merged with the real packaged MiniLM model."""

from __future__ import annotations

import pytest

from flaky_helpers import T0_US, columns, recorded_history

from com.analysis.flaky import detect_flaky
from com.analysis.manifest import categorise, manifestations
from com.model.text import signature

MIN = 60_000_000


@pytest.fixture(scope="module")
def embed(tmp_path_factory):
    from com.models.embedding import Embedder

    return Embedder.for_name("all-MiniLM-L6-v2", tmp_path_factory.mktemp("embed-cache")).embed


def failures(test: str, messages: list[str], start: int = 0) -> list[tuple]:
    return [(test, f"c{n}", f"r{n}", 2 if "setup" in m else 1, 1, T0_US + (start + n) * MIN, m)
            for n, m in enumerate(messages)]


def test_two_error_kinds_give_two_groups(embed):
    timeouts = [f"Failed: Timeout >{30 + n / 10:.1f}s" for n in range(6)]
    resets = ['failed on setup with "ConnectionResetError: [Errno 104] Connection reset by peer"'] * 3
    rows = failures("t", timeouts + resets) + [("t", "c99", "r99", 0, 1, T0_US, None)]
    groups = manifestations(columns(rows), embed=embed)["t"]
    assert [(g.category, g.count) for g in groups] == [("timeout", 6), ("network", 3)]
    assert [round(g.share, 4) for g in groups] == [round(6 / 9, 4), round(3 / 9, 4)]
    assert groups[0].signature == "Failed: Timeout ><num>s"
    assert groups[0].first_seen_us == T0_US and groups[0].last_seen_us == T0_US + 5 * MIN
    assert groups[1].first_seen_us == T0_US + 6 * MIN
    assert groups[1].to_json()["first_seen"].endswith("Z")


def test_similar_signatures_of_one_category_merge_with_the_model(embed):
    msgs = ["Failed: Timeout >30.0s"] * 4 + ["Failed: Timeout after 31.5s waiting for response"] * 2
    cols = columns(failures("t", msgs))
    merged = manifestations(cols, embed=embed)["t"]
    assert len(merged) == 1 and merged[0].count == 6 and len(merged[0].signatures) == 2
    assert merged[0].signature == "Failed: Timeout ><num>s"
    assert len(manifestations(cols)["t"]) == 2  # without a model: exact signatures only


def test_different_categories_never_merge(embed):
    # Both are AssertionErrors, but one is about time and the other about a value.
    msgs = ["AssertionError: took 1.42s, budget 1.00s"] * 3 + ["AssertionError: assert 500 == 200"] * 3
    groups = manifestations(columns(failures("t", msgs)), embed=embed)["t"]
    assert sorted(g.category for g in groups) == ["other", "timing_order"]


def test_examples_rows_and_tests_selection():
    rows = failures("t", ["Failed: Timeout >30.0s", "Failed: Timeout >30.2s"]) + failures("u", ["boom"], 5)
    cols = columns(rows)
    examples = {0: "Failed: Timeout >30.2s\n+++ Timeout +++"}
    out = manifestations(cols, ["t", "nope"], examples=examples)
    assert set(out) == {"t"}
    assert out["t"][0].example.startswith("Failed: Timeout >30.2s") and out["t"][0].count == 2
    only_first = manifestations(cols, ["t"], rows=[0])["t"]
    assert only_first[0].count == 1
    # A failure without a message is its own group.
    rows.append(("u", "c9", "r9", 1, 1, T0_US, None))
    u = manifestations(columns(rows), ["u"])["u"]
    assert sorted(g.signature for g in u) == ["(no error message)", "boom"]


@pytest.mark.parametrize("message, expected", [
    ("Failed: Timeout >30.0s", "Failed: Timeout ><num>s"),
    ("AssertionError: took 1.80s, budget 1.00s\nassert 1.8 < 1.0", "AssertionError: took <num>s, budget <num>s"),
    ("  \n  KeyError: 'currency'  ", "KeyError: 'currency'"),
    ("object at 0x7f3ad48298d6 in /tmp/pytest-of-ci/pytest-3/test_a0/a.py:12", "object at <hex> in <tmp>:12"),
    ("request 3f2c9a1e-1b2c-4d5e-8f90-123456789abc failed at 2026-01-05T09:04:00Z after 5000ms",
     "request <uuid> failed at <time> after <num>ms"),
    ("", None), (None, None),
])
def test_the_views_signature_masks_what_changes(message, expected):
    """Manifestations group by the test-results view's signatures (`com.model.text.signature`)."""
    assert signature({"error_message": message}) == expected


@pytest.mark.parametrize("text, category", [
    ("Failed: Timeout ><num>s", "timeout"),
    ("playwright._impl._errors.TimeoutError: Page.click: Timeout <num>ms exceeded.", "element_not_found"),
    ("selenium.common.exceptions.NoSuchElementException: no such element", "element_not_found"),
    ('failed on setup with "ConnectionResetError: [Errno 104] Connection reset by peer"', "network"),
    ("requests.exceptions.ConnectionError: Max retries exceeded", "network"),
    ("AssertionError: took <num>s, budget <num>s", "timing_order"),
    ("AssertionError: events out of order: expected ['a', 'b']", "timing_order"),
    ("OSError: [Errno 28] No space left on device", "resource_environment"),
    ("sqlite3.OperationalError: database is locked", "resource_environment"),
    ("AssertionError: assert 500 == 200", "other"),
])
def test_categories(text, category):
    assert categorise(text) == category


def test_generated_flaky_tests_group_by_their_planted_manifestation(tmp_path, embed):
    from com.ops.flaky import failure_examples

    history, memory, cols = recorded_history(tmp_path, seed=5, tests=120, commits=16, runs_per_commit=2,
                                             flaky_fraction=0.12)
    flaky = [f.test_id for f in detect_flaky(cols, min_runs=10).flaky]
    examples = {}
    for test_id in flaky:
        examples.update(failure_examples(memory, memory.snapshot(), cols, test_id))
    groups = manifestations(cols, flaky, embed=embed, examples=examples)
    want = {"timeout": "timeout", "selector": "element_not_found", "connection_reset": "network",
            "timing": "timing_order"}
    broke = {t for b in history.truth["breakages"] for t in b["tests"]}
    seen = set()
    for test_id in flaky:
        planted = history.truth["flaky"][test_id]["manifestation"]
        seen.add(planted)
        if test_id in broke:  # its breakage's failures are a group of their own
            assert want[planted] in {g.category for g in groups[test_id]}
            assert len(groups[test_id]) >= 2
        else:
            assert [g.category for g in groups[test_id]] == [want[planted]], test_id
    assert len(seen) >= 3 and broke & set(flaky)
