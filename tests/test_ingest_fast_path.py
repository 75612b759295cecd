"""The short ways of bulk ingest give what the long ways give.

`validate_common` (the common event checked the short way) against `validate`'s full path (`_validate`): the same
stored line, id and fields whenever the short way takes an event, and never an event the full path refuses;
`validate` itself refuses exactly what the full path refuses, with the same message. And the block reader of
JSONL input against reading one line at a time: the same lines, the same refusal at the same place.
"""

from __future__ import annotations

import io
import json
import math
from datetime import datetime, timezone
from unittest import mock

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from com.ingest import jsonl, reading
from com.model import event as event_mod
from com.model.errors import ComError, InvalidEvent
from com.model.event import MAX_INT, _validate, common_event, validate, validate_common

CHECKS = settings(max_examples=400, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

# -- odd events -----------------------------------------------------------------------------------
_text = st.text(alphabet=st.sampled_from(["a", "Z", "0", "9", " ", '"', "\\", "\n", "\x00", "é", "\u2028",
                                          "\ud800", "[", "{", ":", ","]), max_size=8)
_key = st.one_of(st.sampled_from(["a", "b", "status", "test_id", "z", "A", "é", ""]), _text)
_int = st.one_of(st.integers(-5, 5), st.sampled_from([MAX_INT - 1, MAX_INT, -MAX_INT, -MAX_INT - 1, 10**19, 10**30,
                                                      9999999999999999999, 1234567890123456789]))
_float = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.0, -0.0, 1.5, 1e300]))
_scalar = st.one_of(st.none(), st.booleans(), _int, _float, _text)
_value = st.recursive(_scalar, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(_key, inner, max_size=3)), max_leaves=12)
_data = st.one_of(
    st.none(), st.sampled_from([[], "x", 1]),
    st.dictionaries(_key, _value, max_size=6),
    st.fixed_dictionaries({"status": st.sampled_from(["passed", "failed", "xpassed", "bogus", None, 1, ["passed"]]),
                           "test_id": st.sampled_from(["t::a", "", None, 1, "é"])},
                          optional={"attempt": _int, "properties": st.dictionaries(_key, _scalar, max_size=3),
                                    "tags": st.lists(_scalar, max_size=3), "z": _value, "a": _value}),
)
_fields = {
    "type": st.sampled_from(["test_result", "note", "test_failure", "test_pass", "rollup", "", "Bad", "a-b", 1, None,
                             ["test_result"]]),
    "project": st.sampled_from(["shop", "my-proj.2", "", "bad/x", "a" * 101, "-x", 1, None, "é"]),
    "source": st.one_of(st.sampled_from(["pytest", "", None, 0, [], False, "x\ud800", "é"]), _text),
    "ts": st.sampled_from([None, "2026-01-05T11:27:04.015838Z", "2026-01-05", "2026-01-05T11:27:04+02:00", "bad",
                           "", " ", 0, 1.5e9, 1e20, True, "0001-01-01T00:00:00+01:00", "0999-12-31T00:00:00Z",
                           ["2026-01-05"]]),
    "importance": st.one_of(st.sampled_from([None, 1.0, 0, 1, 5, True, 5.5, -0.0, -1e-9, math.nan, math.inf, "1",
                                             10**400]), st.floats()),
    "tags": st.one_of(st.sampled_from([None, [], ["a"], ["a", 1], "a, b,", "", {"x": 1}, ("a",)]),
                      st.lists(_text, max_size=3)),
    "data": _data,
    "id": st.sampled_from(["evt_0123456789abcdef01234567", "evt_0123456789ABCDEF01234567", "evt_1", 1, None]),
    "timestamp": st.sampled_from(["2026-01-05T11:27:04Z", None]),
    "extra": st.just(1),
}


@st.composite
def odd_events(draw):
    keys = draw(st.lists(st.sampled_from(sorted(_fields)), unique=True, max_size=len(_fields)))
    if draw(st.booleans()):  # mostly the common shape: type, project and data there
        keys = sorted(set(keys) - {"timestamp", "extra"} | {"type", "project", "data"})
    keys = draw(st.permutations(keys))
    return {key: draw(_fields[key]) for key in keys}


@st.composite
def nearly_common_events(draw):
    """Events as producers write them, with one odd part at most now and then (deep, big, unsorted, NaN...)."""
    etype = draw(st.sampled_from(["test_result", "test_result", "note", "code_change"]))
    data = draw(st.dictionaries(_key, _value, max_size=6))
    if etype == "test_result":
        data["status"] = draw(st.sampled_from(["passed", "failed", "skipped", "xfailed"]))
        if draw(st.booleans()):
            data["test_id"] = draw(st.sampled_from(["t.py::a", "é::b"]))
    raw = {"type": etype, "project": draw(st.sampled_from(["shop", "a.b-c_d"])), "data": data}
    for key, good in (("source", st.sampled_from(["pytest", "cli"])),
                      ("ts", st.sampled_from(["2026-01-05T11:27:04.015838Z", "2026-01-05T11:27:04+02:00"])),
                      ("importance", st.sampled_from([1.0, 0.0, 5.0, 2.5])),
                      ("tags", st.lists(st.sampled_from(["a", "b c", "é"]), max_size=2)),
                      ("id", st.just("evt_0123456789abcdef01234567"))):
        if draw(st.integers(0, 3)) == 0:
            continue  # left out
        raw[key] = draw(_fields[key] if draw(st.integers(0, 9)) == 0 else good)
    return dict(draw(st.permutations(list(raw.items()))))


_defaults = st.sampled_from([None, {}, {"project": "dp", "source": None}, {"project": None, "source": "ds"},
                             {"project": "shop", "source": "cli"}, {"importance": 2.0}, {"project": 1}])
_default_ts = st.sampled_from([None, "2026-02-01T00:00:00Z"])
NOW = datetime(2026, 3, 1, 12, 0, 0, 250000, tzinfo=timezone.utc)


def slow(raw, default_ts, defaults):
    """The full path's outcome: ("event", line, fields, flags) or ("refused", type, message)."""
    try:
        event = _validate(raw, "line 7: ", default_ts, defaults)
    except Exception as exc:  # noqa: BLE001 - whatever it raises, the other ways must raise too
        return ("refused", type(exc), str(exc))
    return ("event", event.line, dict(event), event.id_given, event.ts_given)


def outcome(event) -> tuple:
    return ("event", event.line, dict(event), event.id_given, event.ts_given)


def same_fields(a: tuple, b: tuple) -> bool:
    # NaN is not equal to itself: compare fields through their stored text, which holds them all.
    return a[0] == b[0] == "event" and a[1] == b[1] and a[3:] == b[3:] and repr(a[2]) == repr(b[2])


@CHECKS
@given(st.one_of(odd_events(), nearly_common_events()), _default_ts, _defaults)
@example({"type": "test_result", "project": "p", "data": {"status": "passed", "n": [[[[1]]]]}}, None, None)
@example({"type": "test_result", "project": "p", "data": {"status": "passed", "n": {"m": [MAX_INT]}}}, None, None)
@example({"type": "note", "project": "p", "data": {"n": -MAX_INT - 1}}, None, None)
@example({"type": "note", "project": "p", "data": {"sha": "1234567890123456789012"}}, None, None)
@example({"type": "note", "project": "p", "data": {"b": 1, "a": {"d": 1, "c": 2}}}, None, None)
@example({"type": "note", "project": "p", "data": {1: "x"}}, None, None)
@example({"type": "note", "project": "p", "data": {1: "x", "a": 2}}, None, None)
@example({"type": "note", "project": "p", "data": {"x": (1, 2)}}, None, None)
@example({"type": "note", "project": "p", "data": {"x": "\ud800"}}, None, None)
@example({"type": "note", "project": "p", "source": "", "tags": "a,b"}, None, None)
def test_the_short_way_takes_only_what_the_full_way_takes_and_makes_the_same_line(raw, default_ts, defaults):
    with mock.patch.object(event_mod, "now_utc", lambda: NOW):  # the recording time, when none is given
        compare_the_ways(raw, default_ts, defaults)


def compare_the_ways(raw, default_ts, defaults):
    expected = slow(raw, default_ts, defaults)
    short = validate_common(raw, default_ts, defaults)
    if short is not None:
        assert expected[0] == "event", f"the short way took an event the full way refuses: {expected}"
        assert same_fields(outcome(short), expected)
    # validate (short way first) refuses exactly what the full way refuses, with the same message.
    try:
        got = outcome(validate(raw, where="line 7: ", default_ts=default_ts, defaults=defaults))
    except Exception as exc:  # noqa: BLE001
        got = ("refused", type(exc), str(exc))
    if expected[0] == "refused":
        assert got == expected
    else:
        assert same_fields(got, expected)
    # The JSONL stream's per-line form agrees as well.
    if not defaults or defaults.keys() <= {"project", "source"}:
        d = defaults or {}
        per_line = common_event(raw, default_ts, d.get("project"), d.get("source"))
        assert (per_line is None) == (short is None)
        if per_line is not None:
            assert same_fields(outcome(per_line), expected)


def test_the_short_way_takes_the_common_shapes():
    """The point of it: what producers write goes the short way (else the speed is lost, silently)."""
    exported = json.loads(
        '{"type":"test_result","project":"shop","source":"pytest","ts":"2026-01-05T11:27:04.015838Z",'
        '"importance":1.0,"tags":[],"data":{"attempt":1,"commit":"1e1afd7e33524a924501c7e6ac92b43ec840bd16",'
        '"duration_ms":6175,"properties":{"importance":"4","markers":"slow"},"status":"passed",'
        '"test_id":"tests/test_a.py::test_b"}}')
    plugin = {"type": "test_result", "project": "shop", "source": "pytest", "ts": "2026-01-05T11:27:04Z",
              "data": {"test_id": "t::x", "status": "failed", "seconds": 0.25, "line": 3, "message": "boom",
                       "rerun": True}}
    with_id = {**exported, "id": "evt_0123456789abcdef01234567"}
    for raw in (exported, plugin, with_id, {"type": "note", "project": "p", "data": {"text": "hi"}}):
        short = validate_common(raw, "2026-02-01T00:00:00Z", {"project": None, "source": None})
        assert short is not None, raw
        assert same_fields(outcome(short), slow(raw, "2026-02-01T00:00:00Z", {"project": None, "source": None}))
    # The stored line of an exported event is its input line with the id in front.
    line = event_mod.canonical_json(exported["data"])
    assert validate_common(exported).line.endswith(f',"data":{line}}}')


def test_a_jsonl_stream_stores_what_validate_makes_of_each_line():
    lines = [
        '{"type":"test_result","project":"shop","ts":"2026-01-05T11:27:04Z","data":{"status":"passed","test_id":"a"}}',
        '{"type":"test_result","project":"shop","data":{"z":1,"a":{"y":[1,2],"b":null},"status":"failed"}}',
        '{"project":"shop","type":"note","tags":"x, y","importance":2,"data":{"n":12345678901234567890123}}',
        '{"type":"test_pass","project":"shop","data":{}}',
        '{"timestamp":"2026-01-05T11:27:04Z","type":"note","project":"shop","data":{"f":0.1}}',
    ]
    text = "\n".join(lines) + "\n"
    try:
        list(jsonl.stream(io.StringIO(text), defaults={"project": None, "source": "s"}, origin="f"))
    except InvalidEvent as exc:  # the big number is refused at its line, with the full path's message
        assert str(exc).startswith("f: line 3: field 'data': a number is out of range")
    ok = [line for n, line in enumerate(lines) if n != 2]
    defaults = {"project": None, "source": "s"}
    got = list(jsonl.stream(io.StringIO("\n".join(ok) + "\n"), defaults=defaults))
    default_ts = next(e["ts"] for e in got if not e.ts_given)  # the stream's recording time
    want = [_validate(json.loads(line), "", default_ts, defaults) for line in ok]
    assert [outcome(e) for e in got] == [outcome(e) for e in want]


# -- reading a block at a time ----------------------------------------------------------------------
def one_line_at_a_time(stream, limit: int, origin: str = "<stdin>"):
    """The reader as it was: readline within the limit, then decode (the reference)."""
    total = 0
    while True:
        raw = stream.readline(limit + 1 - total)
        if not raw:
            return
        total += len(raw)
        if total > limit:
            raise ComError(f"{origin}: more than {limit // reading.MIB:,} MiB of input (the max_input_mb setting; "
                           "split it into several ingests)")
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ComError(f"{origin}: not UTF-8 text ({exc.reason} at byte {total - len(raw) + exc.start})")
        yield line


def read_all(reader, data: bytes, limit: int):
    lines = []
    try:
        for line in reader(io.BytesIO(data), limit):
            lines.append(line)
    except ComError as exc:
        return lines, str(exc)
    return lines, None


_pieces = st.lists(st.sampled_from([b"a", b"\n", b"\xc3\xa9", b"\xc3", b"\xa9", b"\xff", b"\xe2\x80\xa8", b"\r",
                                    b" ", b"{}", b"\n\n"]), max_size=40)


@settings(max_examples=300, deadline=None, database=None)
@given(_pieces, st.integers(1, 60), st.sampled_from([1, 2, 3, 7, 64, 1 << 20]))
def test_reading_a_block_at_a_time_gives_the_lines_and_refusals_of_reading_a_line_at_a_time(pieces, limit, block):
    data = b"".join(pieces)
    old = reading._BLOCK
    reading._BLOCK = block
    try:
        assert read_all(reading.stream_lines, data, limit) == read_all(one_line_at_a_time, data, limit)
    finally:
        reading._BLOCK = old


@pytest.mark.parametrize("limit", [5, 1 << 20])
def test_a_line_without_an_end_is_refused_past_the_limit_without_reading_on(limit):
    class Endless(io.RawIOBase):
        read_bytes = 0

        def readable(self):
            return True

        def readinto(self, buffer):
            n = len(buffer)
            buffer[:n] = b"x" * n
            Endless.read_bytes += n
            return n

    with pytest.raises(ComError, match="MiB of input"):
        list(reading.stream_lines(io.BufferedReader(Endless()), limit))
    assert Endless.read_bytes <= limit + 1 + io.DEFAULT_BUFFER_SIZE


# -- the input's own text of the data -------------------------------------------------------------
_json_key = st.text(alphabet=st.sampled_from(["a", "b", "Z", ":", "-", "0", " ", "é", '"', "\\", "\t"]), max_size=4)
_json_scalar = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.sampled_from([0.5, 1e16, -0.0, 100.0]),
                         st.lists(st.sampled_from(["a", ":", "-0", " ", "é", "\u2028", '"', "\\", "\x7f", "\n",
                                                   "run-00", "[-0", ":-0"]), max_size=4).map("".join))
_json_data = st.dictionaries(_json_key, st.one_of(_json_scalar, st.lists(_json_scalar, max_size=3),
                                                  st.dictionaries(_json_key, _json_scalar, max_size=3)), max_size=5)


def _dump(value, sort: bool, spaced: bool, ascii_only: bool) -> str:
    return json.dumps(value, sort_keys=sort, ensure_ascii=ascii_only, separators=(", ", ": ") if spaced else (",", ":"))


@st.composite
def exported_lines(draw):
    """JSON lines as an exporter writes them (the stored line but for the id), mostly; now and then written
    another way that parses to the same or nearly the same event (keys unsorted or twice, spaces, escapes,
    numbers spelled otherwise, null data, something after the data, another line end)."""
    data = draw(_json_data)
    data["status"] = "passed"
    spaced, ascii_only = draw(st.integers(0, 5)) == 0, draw(st.integers(0, 5)) == 0
    text = _dump(data, True, spaced, ascii_only)
    twist = draw(st.sampled_from(["none"] * 6 + ["unsorted", "twice", "minus0", "exp", "null", "after", "crlf",
                                                 "trailing", "inner-space"]))
    if twist == "unsorted" and len(data) > 1:
        text = _dump(dict(reversed(list(data.items()))), False, spaced, ascii_only)
    elif twist == "twice" and data:
        key = next(iter(sorted(data)))
        text = "{" + json.dumps(key) + ":0," + text[1:]
    elif twist == "minus0":
        text = text[:-1] + ("," if data else "") + '"zz":-0}'
    elif twist == "exp":
        text = text[:-1] + ("," if data else "") + '"zz":1E2}'
    elif twist == "null":
        text = "null"
    elif twist == "inner-space" and len(text) > 2:
        text = "{ " + text[1:]
    head = ('{"type":"test_result","project":"shop","source":"pytest","ts":"2026-01-05T11:27:04.015838Z",'
            '"importance":1.0,"tags":[],"data":')
    line = head + text + ("," + '"type":"test_result"' if twist == "after" else "") + "}"
    return line + ("\r\n" if twist == "crlf" else " \n" if twist == "trailing" else "\n")


@settings(max_examples=500, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(exported_lines(), min_size=1, max_size=4))
@example(['{"type":"test_result","project":"shop","source":"pytest","ts":"2026-01-05T11:27:04.015838Z",'
          '"importance":1.0,"tags":[],"data":{"a":":","status":"passed"}}\n'])
@example(['{"type":"test_result","project":"shop","source":"pytest","ts":"2026-01-05T11:27:04.015838Z",'
          '"importance":1.0,"tags":[],"data":{"a":{"b":1,"b":2},"status":"passed"}}\n'])
def test_a_line_stored_as_given_is_the_line_the_encoder_makes(lines):
    """Where the stream keeps the input's text of the data, it is the text the encoder makes of the parsed data:
    the stored lines, ids and refusals are those of parsing and validating each line in full."""
    defaults = {"project": None, "source": None}
    try:
        got = [outcome(e) for e in jsonl.stream(io.StringIO("".join(lines)), defaults=defaults, origin="f")]
    except (InvalidEvent, ComError) as exc:
        got = ("refused", str(exc))
    want = []
    for n, line in enumerate(lines, 1):
        try:
            want.append(outcome(_validate(json.loads(line), f"line {n}: ", None, defaults)))
        except InvalidEvent as exc:
            want = ("refused", f"f: {exc}")
            break
    assert got == want


def test_an_exported_line_keeps_its_data_text():
    line = ('{"type":"test_result","project":"shop","source":"pytest","ts":"2026-01-05T11:27:04.015838Z",'
            '"importance":1.0,"tags":[],"data":{"a":[1,true,null],"b":{"c":"d:e","e":-1},"status":"passed"}}\n')
    with mock.patch.object(event_mod, "_c_encode", side_effect=AssertionError("encoded again")):
        (event,) = jsonl.stream(io.StringIO(line))
    assert event.line == '{"id":"' + event["id"] + '",' + line[1:-1]
    assert event.line == _validate(json.loads(line), "", None, None).line
