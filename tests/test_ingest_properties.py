"""Property tests: whatever bytes reach `com ingest` (JSON, JSONL, XML), the input is either ingested exactly
or refused with exit 2, one line on stderr and nothing written; no traceback ever reaches the user.

"Exactly" is checked against an oracle that does not use com's code: events generated in canonical form
are the same event exactly when their JSON is the same, so the number of new events is the number of
distinct generated events not ingested before. Each test keeps one memory across its examples, so
later examples also meet known events."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

# Each example runs the CLI in-process a few times; modest counts keep the suite fast.
PROPERTY = settings(
    max_examples=int(__import__("os").environ.get("PROPERTY_EXAMPLES", 40)),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)


# -- the oracle's side ----------------------------------------------------------------------------
def state(com, memory) -> tuple[str | None, list[str]]:
    """(journal branch tip, event ids) as a user sees them."""
    r = com("events", "--limit", "0", "--json")
    assert r.exit_code == 0, r.stderr
    head = memory.journal.head()
    return (str(head.id) if head is not None else None), [e["id"] for e in json.loads(r.stdout)["events"]]


def run_ingest(com, memory, args, input=None, expect=None, new_events=None):
    """Ingest and check the outcome. expect: 'accepted', 'refused' or None (either, checked for exactness)."""
    head_before, ids_before = state(com, memory)
    r = com("ingest", *args, "--json", input=input)  # in-process: an exception fails the test with its traceback
    assert "Traceback" not in r.stdout + r.stderr
    if r.exit_code == 0:
        assert expect in (None, "accepted"), f"accepted input that should be refused: {r.stdout[:300]}"
        out = json.loads(r.stdout)
        head_after, ids_after = state(com, memory)
        assert len(ids_after) == len(set(ids_after))
        assert out["added"] == len(out["ids"]) == len(set(out["ids"]))
        assert set(out["ids"]).isdisjoint(ids_before)
        assert set(ids_after) == set(ids_before) | set(out["ids"])
        assert (head_after != head_before) == (out["added"] > 0) == (out["commit"] is not None)
        if new_events is not None:
            assert out["added"] == new_events
        return out
    assert expect in (None, "refused"), f"refused valid input: {r.stderr}"
    assert r.exit_code == 2, r.stderr
    lines = r.stderr.rstrip("\n").split("\n")  # what a terminal shows as lines
    # Under --json the refusal is one JSON object, after any warnings.
    error = json.loads(lines[-1])["error"]
    assert set(error) == {"code", "param", "message"} and error["message"], r.stderr
    assert all(line.startswith("com: ") for line in lines[:-1]), r.stderr
    assert r.stdout == ""
    assert state(com, memory) == (head_before, ids_before)
    return "com: error: " + error["message"]


# -- events in canonical form ---------------------------------------------------------------------
_json_leaf = (st.none() | st.booleans() | st.integers(-(10**12), 10**12)
              | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12))
json_values = st.recursive(_json_leaf, lambda kids: st.lists(kids, max_size=3)
                           | st.dictionaries(st.text(max_size=6), kids, max_size=3), max_leaves=8)

_times = st.datetimes(datetime(2001, 1, 1), datetime(2030, 12, 31), timezones=st.just(timezone.utc))


@st.composite
def valid_events(draw) -> dict:
    """A valid event in the form com stores it (explicit ts in Z form, float importance, list tags)."""
    etype = draw(st.sampled_from(["test_result", "note", "code_change", "deploy_done"]))
    data = draw(st.dictionaries(st.text(max_size=8), json_values, max_size=4))
    if etype == "test_result":
        data["status"] = draw(st.sampled_from(["passed", "failed", "error", "skipped"]))
        data["test_id"] = draw(st.text(min_size=1, max_size=30))
    when = draw(_times).replace(microsecond=draw(st.sampled_from([0, 0, 123456])))
    ts = when.strftime("%Y-%m-%dT%H:%M:%S.%fZ" if when.microsecond else "%Y-%m-%dT%H:%M:%SZ")
    return {
        "type": etype,
        "project": draw(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,8}", fullmatch=True)),
        "source": draw(st.text(min_size=1, max_size=10)),
        "ts": ts,
        "importance": draw(st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.0, 5.0])),
        "tags": draw(st.lists(st.text(min_size=1, max_size=8), max_size=3)),
        "data": data,
    }


def _key(event: dict) -> str:
    return json.dumps(event, sort_keys=True)


def serialise(events: list[dict], form: str) -> str:
    if form == "jsonl":
        return "\n".join(json.dumps(e, ensure_ascii=False) for e in events) + "\n"
    if form == "array":
        return json.dumps(events, indent=1)
    return json.dumps(events[0], indent=2)  # one pretty-printed object


# Each breaks exactly one rule of the event contract; the whole input must be refused.
BREAKS = {
    "unknown field": lambda e: e.update(colour="red"),
    "bad status": lambda e: e.update(type="test_result", data={"status": "exploded"}),
    "project with a slash": lambda e: e.update(project="a/b"),
    "importance out of range": lambda e: e.update(importance=7.5),
    "type not a word": lambda e: e.update(type="Test Result"),
    "ts not a time": lambda e: e.update(ts="yesterday"),
    "data not an object": lambda e: e.update(data=[1, 2]),
    "missing project": lambda e: e.pop("project"),
    "bad id": lambda e: e.update(id="evt_nothex"),
    "lone surrogate": lambda e: e.update(source="\ud800"),
}


# -- JSON and JSONL ----------------------------------------------------------------------------------
@PROPERTY
@given(st.binary(max_size=200))
def test_arbitrary_bytes_on_stdin(com, memory, raw):
    run_ingest(com, memory, ["-"], input=raw)


@PROPERTY
@given(json_values | st.lists(json_values, max_size=4))
def test_arbitrary_json_on_stdin(com, memory, value):
    run_ingest(com, memory, ["-"], input=json.dumps(value))


@PROPERTY
@given(st.lists(st.dictionaries(st.sampled_from(["id", "type", "project", "source", "ts", "timestamp",
                                                 "importance", "tags", "data", "other"]), json_values,
                                max_size=8), min_size=1, max_size=4),
       st.sampled_from(["jsonl", "array"]))
def test_event_shaped_json_with_any_values(com, memory, objects, form):
    run_ingest(com, memory, ["-"], input=serialise(objects, form))


@pytest.fixture
def seen():
    return set()


@PROPERTY
@given(st.lists(valid_events(), min_size=1, max_size=6), st.sampled_from(["jsonl", "array", "object"]),
       st.data())
def test_valid_events_are_ingested_exactly(com, memory, seen, events, form, data):
    if form == "object":
        events = events[:1]
    else:  # repeats within the input (and across examples): each distinct event counts once
        events = events + draw_repeats(data, events)
    expected_new = {_key(e) for e in events} - seen
    out = run_ingest(com, memory, ["-"], input=serialise(events, form), expect="accepted",
                     new_events=len(expected_new))
    assert out["added"] + out["duplicates"] == len(events)
    seen.update(_key(e) for e in events)
    # The stored events are the ones sent.
    stored = {e["id"]: e for e in json.loads(com("events", "--limit", "0", "--json").stdout)["events"]}
    for event_id in out["ids"]:
        got = {k: v for k, v in stored[event_id].items() if k != "id"}
        assert _key(got) in expected_new


def draw_repeats(data, events):
    if len(events) > 1 and data.draw(st.booleans()):
        return [data.draw(st.sampled_from(events))]
    return []


@PROPERTY
@given(st.lists(valid_events(), min_size=1, max_size=5), st.sampled_from(sorted(BREAKS)), st.data(),
       st.sampled_from(["jsonl", "array"]))
def test_one_bad_event_refuses_the_whole_input(com, memory, events, rule, data, form):
    bad = data.draw(st.integers(0, len(events) - 1))
    events = [dict(e) for e in events]
    BREAKS[rule](events[bad])
    if form == "jsonl":  # json.dumps escapes a lone surrogate as \ud800, as a real producer would
        text = "\n".join(json.dumps(e) for e in events) + "\n"
    else:
        text = json.dumps(events)
    message = run_ingest(com, memory, ["-"], input=text, expect="refused")
    assert (f"line {bad + 1}:" if form == "jsonl" else f"item {bad + 1}:") in message


@PROPERTY
@given(st.lists(valid_events(), min_size=2, max_size=4), st.data())
def test_broken_json_syntax_is_refused_at_its_line(com, memory, events, data):
    lines = [json.dumps(e) for e in events]
    bad = data.draw(st.integers(1, len(lines) - 1))  # the first line broken reads as one pretty object
    cut = data.draw(st.integers(1, len(lines[bad]) - 1))
    lines[bad] = lines[bad][:cut]
    message = run_ingest(com, memory, ["-"], input="\n".join(lines) + "\n", expect="refused")
    assert f"line {bad + 1}: invalid JSON" in message


# -- JUnit XML ------------------------------------------------------------------------------------
_xml_text = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=20)


@st.composite
def junit_reports(draw) -> bytes:
    """A JUnit-shaped report: suites, cases with any names and texts, outcomes, properties."""
    root = ET.Element("testsuites")
    for _ in range(draw(st.integers(1, 2))):
        suite = ET.SubElement(root, "testsuite", name=draw(_xml_text))
        if draw(st.booleans()):
            base = datetime(2026, 3, 1, tzinfo=timezone.utc) + timedelta(minutes=draw(st.integers(0, 10**5)))
            suite.set("timestamp", base.strftime("%Y-%m-%dT%H:%M:%S"))
        for _ in range(draw(st.integers(0, 4))):
            case = ET.SubElement(suite, "testcase", name=draw(_xml_text.filter(str.strip)),
                                 classname=draw(_xml_text))
            if draw(st.booleans()):
                case.set("time", draw(st.sampled_from(["0.01", "1.5", "", "nan", "-3", "abc"])))
            outcome = draw(st.sampled_from([None, "failure", "error", "skipped"]))
            if outcome:
                child = ET.SubElement(case, outcome, message=draw(_xml_text))
                child.text = draw(_xml_text)
            if draw(st.booleans()):
                ET.SubElement(case, "system-out").text = draw(_xml_text)
    return ET.tostring(root, encoding="utf-8", xml_declaration=draw(st.booleans()))


def _junit_file(tmp_path, content: bytes):
    path = tmp_path / "report-junit.xml"
    path.write_bytes(content)
    return str(path)


@PROPERTY
@given(st.binary(max_size=300))
def test_arbitrary_bytes_as_a_junit_report(com, memory, tmp_path, raw):
    run_ingest(com, memory, ["--junit", _junit_file(tmp_path, raw), "-p", "shop"])


@PROPERTY
@given(junit_reports())
def test_junit_shaped_reports(com, memory, tmp_path, report):
    run_ingest(com, memory, ["--junit", _junit_file(tmp_path, report), "-p", "shop"])


@PROPERTY
@given(junit_reports(), st.data())
def test_truncated_junit_report_is_refused(com, memory, tmp_path, report, data):
    end = report.rindex(b"</testsuites>")
    cut = data.draw(st.integers(1, end))
    message = run_ingest(com, memory, ["--junit", _junit_file(tmp_path, report[:cut]), "-p", "shop"],
                         expect="refused")
    assert "malformed XML" in message


@PROPERTY
@given(st.text(max_size=200))
def test_arbitrary_text_as_a_junit_report(com, memory, tmp_path, text):
    # Text around a root element: XML declarations, doctypes, entities, stray markup.
    run_ingest(com, memory, ["--junit", _junit_file(tmp_path, ("<testsuite>" + text).encode("utf-8", "replace")),
                             "-p", "shop"])
