"""EventFilter: one filter built from user values, exact in `matches`, and never narrower in SQL."""

from __future__ import annotations

import sqlite3

import pytest

from com.model.errors import ComError
from com.model.event import ts_us, validate
from com.model.filter import EventFilter, TestMatch

EVENTS = [
    validate({"type": "test_result", "project": p, "ts": ts, "tags": tags, "importance": imp,
              "data": {"test_id": tid, "status": st}})
    for p, ts, tags, imp, tid, st in [
        ("shop", "2026-03-01T10:00:00Z", ["ui"], 3.0, "tests/test_cart.py::TestPay::test_card[a-1]", "failed"),
        ("shop", "2026-03-01T10:00:00.250Z", [], 1.0, "tests/test_cart.py::TestPay::test_cash", "passed"),
        ("shop", "2026-03-02T00:00:00Z", ["ui", "slow"], 1.0, "tests/test_cart_extra.py::test_x", "passed"),
        ("web", "2026-03-03T12:00:00Z", [], 0.5, "tests/sub/test_login.py::test_ok", "skipped"),
        ("web", "2026-03-04T12:00:00Z", [], 3.0, "it's::quoted_test%_name", "error"),
    ]
] + [validate({"type": "note", "project": "shop", "ts": "2026-03-02T09:00:00Z", "data": {"text": "deployed"}})]


def matching(where: EventFilter) -> list[str]:
    return [e["id"] for e in EVENTS if where.matches(e)]


def sql_matching(where: EventFilter) -> list[str]:
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE events (id, type, project, test_id, status, ts_us, importance)")
    db.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?)", [
        (e["id"], e["type"], e["project"], e["data"].get("test_id", ""), e["data"].get("status", ""),
         ts_us(e["ts"]), e["importance"]) for e in EVENTS])
    sql = where.to_sql()
    rows = db.execute(f"SELECT id FROM events {'WHERE ' + sql if sql else ''}").fetchall()
    return [i for e in EVENTS for (i,) in rows if i == e["id"]]


@pytest.mark.parametrize("where, expected", [
    (EventFilter.create(test="tests/test_cart.py"), [0, 1]),  # a file: its tests, not test_cart_extra.py
    (EventFilter.create(test="tests/test_cart.py::TestPay"), [0, 1]),
    (EventFilter.create(test="tests/test_cart.py::TestPay::test_cash"), [1]),
    (EventFilter.create(test="tests/sub"), [3]),  # a folder
    (EventFilter.create(test="tests/test_cart"), []),  # not at a boundary: no match
    (EventFilter.create(test="*cart*::test_*"), [0, 1, 2]),  # fnmatch: "*" spans "/" and "::" too
    (EventFilter.create(test="*_extra.py::*"), [2]),
    (EventFilter.create(test="*test_card[a-1]"), [0]),  # brackets match themselves: parametrised ids
    (EventFilter.create(test="tests/test_cart.py::TestPay::test_card[a-1]"), [0]),
    (EventFilter.create(test="it's::quoted_test%_name"), [4]),
    (EventFilter.create(statuses=["failed", "error"]), [0, 4]),
    (EventFilter.create(types=["test_failure"]), [0]),  # the seed's type: test_result that failed
    (EventFilter.create(types=["note"]), [5]),
    (EventFilter.create(projects=["web"]), [3, 4]),
    (EventFilter.create(since="2026-03-01T10:00:00.100Z"), [1, 2, 3, 4, 5]),  # instants, not strings
    (EventFilter.create(until="2026-03-01"), [0, 1]),  # a bare date as the upper bound: the whole day
    (EventFilter.create(tags_include=["ui"]), [0, 2]),
    (EventFilter.create(tags_exclude=["slow"], projects=["shop"]), [0, 1, 5]),
    (EventFilter.create(min_importance=3), [0, 4]),
    # A policy's statuses: failing results, and every other event beside them.
    (EventFilter.create(result_statuses=["failed", "error"]), [0, 4, 5]),
    (EventFilter.create(result_statuses=["failed", "error"], types=["test_result", "note"], projects=["shop"]), [0, 5]),
    (EventFilter.create(result_statuses=["failed"], statuses=["failed", "passed"]), [0]),
])
def test_matches_is_exact_and_sql_is_never_narrower(where, expected):
    ids = [EVENTS[i]["id"] for i in expected]
    assert matching(where) == ids
    assert set(ids) <= set(sql_matching(where))


def test_sql_is_exact_where_it_can_be():
    for where in (EventFilter.create(test="tests/test_cart.py::TestPay"), EventFilter.create(statuses=["passed"]),
                  EventFilter.create(projects=["web"], since="2026-03-03"), EventFilter.create(test="it's::quoted_test%_name"),
                  EventFilter.create(result_statuses=["error", "skipped"])):
        assert sql_matching(where) == matching(where)


@pytest.mark.parametrize("kwargs, param", [
    ({"statuses": ["failing"]}, "status"),
    ({"types": ["Not A Type"]}, "type"),
    ({"since": "yesterday-ish"}, "since"),
    ({"until": "2026-13-01"}, "until"),
    ({"min_importance": 9}, "min_importance"),
    ({"result_statuses": ["failing"]}, "result_statuses"),
    ({"test": ""}, "test"),
])
def test_bad_values_name_their_parameter_not_a_flag(kwargs, param):
    with pytest.raises(ComError) as caught:
        EventFilter.create(**kwargs)
    assert caught.value.param == param
    assert "--" not in caught.value.message


def test_a_test_selector_reads_what_users_type():
    assert TestMatch.parse("tests/test_x.py::test_y").kind == "prefix"
    assert TestMatch.parse("tests/*/test_x.py").kind == "glob"
    assert TestMatch.parse("tests/test_x.py::test_y[a-1]").kind == "prefix"
    assert TestMatch("a::b", "exact").matches("a::b") and not TestMatch("a::b", "exact").matches("a::b::c")
    assert TestMatch.parse("a::b").matches("a::b::c") and not TestMatch.parse("a::b").matches("a::bc")
