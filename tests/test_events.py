"""The Event type: seed JSON accepted as-is, UTC normalisation, deterministic ids, precise refusals."""

import json

import pytest

from com.model.errors import InvalidEvent
from com.model.event import to_line
from com.model.event import validate as normalize

SEED = {
    "type": "test_failure",
    "project": "MyProject",
    "source": "test_suite",
    "importance": 4.0,
    "tags": ["regression", "critical"],
    "data": {"test_id": "test_login", "error_message": "Timeout waiting for selector", "duration_ms": 5000},
}


def test_seed_json_is_read_as_a_failed_test_result():
    event = normalize(SEED)
    assert event["type"] == "test_result"
    assert event["data"]["status"] == "failed"
    assert event["data"]["test_id"] == "test_login"
    assert event["importance"] == 4.0
    assert event["tags"] == ["regression", "critical"]
    assert event["id"].startswith("evt_") and len(event["id"]) == 28


def test_same_content_same_id_even_when_ts_defaults_differ():
    a = normalize(SEED, default_ts="2026-01-01T00:00:00Z")
    b = normalize(dict(SEED), default_ts="2026-06-01T00:00:00Z")
    assert a["id"] == b["id"]
    assert a["ts"] != b["ts"]


def test_explicit_ts_is_part_of_identity():
    a = normalize({**SEED, "ts": "2026-01-01T00:00:00Z"})
    b = normalize({**SEED, "ts": "2026-01-02T00:00:00Z"})
    assert a["id"] != b["id"]


def test_timezone_aware_input_is_normalised_to_utc():
    event = normalize({**SEED, "ts": "2026-11-27T12:30:00+02:00"})
    assert event["ts"] == "2026-11-27T10:30:00Z"
    same = normalize({**SEED, "ts": "2026-11-27T10:30:00Z"})
    assert same["id"] == event["id"]
    naive = normalize({**SEED, "ts": "2026-11-27T10:30:00"})
    assert naive["ts"] == "2026-11-27T10:30:00Z"


def test_stored_line_round_trips_and_keeps_a_given_id():
    event = normalize({**SEED, "ts": "2026-11-27T10:30:00.250Z", "data": {**SEED["data"], "note": "é\n\"q\""}})
    stored = json.loads(to_line(event))
    assert stored == dict(event)
    again = normalize(stored)  # an exported event re-imported keeps its id
    assert again["id"] == event["id"]


def test_default_importance_depends_on_status():
    passed = normalize({"type": "test_result", "project": "p", "data": {"status": "passed"}})
    failed = normalize({"type": "test_result", "project": "p", "data": {"status": "failed"}})
    assert passed["importance"] < failed["importance"]


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"project": "p"}, "field 'type': missing"),
        ({"type": "note"}, "field 'project': missing"),
        ({"type": "Note!", "project": "p"}, "field 'type': expected a lowercase word"),
        ({"type": "note", "project": "a/b"}, "field 'project'"),
        ({"type": "test_result", "project": "p", "data": {"status": "flaky"}}, "unknown status 'flaky'"),
        ({"type": "test_result", "project": "p"}, "field 'data.status': missing"),
        ({"type": "note", "project": "p", "importance": 9}, "field 'importance': 9 is outside 0 to 5"),
        ({"type": "note", "project": "p", "ts": "yesterday"}, "field 'ts': not an ISO-8601 time"),
        ({"type": "note", "project": "p", "data": [1]}, "field 'data': expected an object"),
        ({"type": "note", "project": "p", "colour": "red"}, "unknown field 'colour'"),
        ({"type": "note", "project": "p", "tags": [1]}, "field 'tags'"),
    ],
)
def test_bad_events_are_refused_naming_the_field(raw, message):
    with pytest.raises(InvalidEvent) as exc:
        normalize(raw, where="line 7: ")
    assert str(exc.value).startswith("line 7: ")
    assert message in str(exc.value)


@pytest.mark.parametrize("data", [{"x": float("nan")}, {"x": float("inf")}])
def test_non_json_numbers_are_refused(data):
    with pytest.raises(InvalidEvent, match="field 'data': cannot be stored as JSON"):
        normalize({"type": "note", "project": "p", "data": data})
