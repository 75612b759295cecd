"""A property-based attack campaign: hostile event JSON, JUnit XML, `com ingest` option values, ref names and dates
against the real CLI (in-process). Every run must end with exit 0, 1 or 2 (one line per error on stderr, "com: "
prefixed); an exception escaping a command is what the entry point reports as exit 3, and is counted as such.

Examples per test: COM_CAMPAIGN_EXAMPLES (default 30, for `make test`); COM_CAMPAIGN_REPORT=path writes the counts
of every exit code per test as JSON (the big run in docs/hardening.md used COM_CAMPAIGN_EXAMPLES=2000)."""

from __future__ import annotations

import atexit
import json
import os
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

EXAMPLES = int(os.environ.get("COM_CAMPAIGN_EXAMPLES", "30"))
CAMPAIGN = settings(max_examples=EXAMPLES, deadline=None, database=None,
                    suppress_health_check=list(HealthCheck))

OUTCOMES: dict[str, Counter] = defaultdict(Counter)


def _report() -> None:
    path = os.environ.get("COM_CAMPAIGN_REPORT")
    if path and OUTCOMES:
        total = Counter()
        for counts in OUTCOMES.values():
            total.update(counts)
        with open(path, "w") as fh:
            json.dump({"examples_per_test": EXAMPLES, "runs": {k: dict(v) for k, v in OUTCOMES.items()},
                       "total": dict(total)}, fh, indent=1, sort_keys=True)


atexit.register(_report)
_runner = CliRunner()


def run(name: str, *args, input=None) -> int:
    """Run the CLI once, count its exit code under `name`; fail on anything an entry point would call exit 3."""
    from com.cli.app import app

    if isinstance(input, str):  # lone surrogates arrive as the bytes a broken producer would write
        input = input.encode("utf-8", "surrogatepass")
    # An argument reaches Python as the OS gives it: bytes, decoded with surrogateescape (so a lone surrogate
    # in a generated value becomes what a shell passing those bytes would give).
    # No argument can hold a NUL byte (argv is C strings): such a value arrives cut there.
    argv = [str(a).split("\x00")[0].encode("utf-8", "surrogatepass").decode("utf-8", "surrogateescape")
            for a in args]
    r = _runner.invoke(app, argv, input=input, catch_exceptions=True)
    code = r.exit_code
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        code = 3
    OUTCOMES[name][str(code)] += 1
    assert code != 3, f"exit 3 for com {args!r} input={str(input)[:300]!r}: {r.exception!r}"
    assert code in (0, 1, 2), (args, code, r.stderr)
    assert "Traceback" not in r.stderr
    if code == 2:  # one error line (a usage error may add a hint line), warnings before it
        lines = r.stderr.rstrip("\n").split("\n")
        errors = [line for line in lines if line.startswith("com: error: ")]
        assert len(errors) == 1 and all(line.startswith(("com: ", "hint: ")) for line in lines), r.stderr
    return code


# -- hostile values ----------------------------------------------------------------------------------
_surrogates = st.text(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1, max_size=3)
_odd_text = st.one_of(st.text(max_size=40), _surrogates, st.text(st.characters(max_codepoint=0x1F), max_size=10),
                      st.sampled_from(["", " ", "-", "--help", "..", "@{0}", "HEAD", "evt_", "\u2028", "\x00"]),
                      st.integers(0, 3000).map(lambda n: "x" * n))
_numbers = st.one_of(st.integers(), st.integers(-(2**70), 2**70), st.floats(), st.sampled_from([2**63, -(2**63) - 1]))
_leaf = st.one_of(st.none(), st.booleans(), _numbers, _odd_text)


def _one_in(n: int):
    """True about once in n draws (hypothesis draws small integers far more often than 1/n)."""
    return st.sampled_from([True] + [False] * (n - 1))


def _nest(depth: int, leaf=1):
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


_json = st.recursive(_leaf, lambda kids: st.lists(kids, max_size=3) | st.dictionaries(_odd_text, kids, max_size=3),
                     max_leaves=10) | st.sampled_from([1, 2, 10, 62, 63, 64, 65, 100, 300, 990]).map(_nest)

_mild = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1),
                               st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=30)),
                     lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=6), kids, max_size=3),
                     max_leaves=8)
_ids = st.one_of(st.just(None), st.from_regex(r"evt_[0-9a-f]{24}", fullmatch=True),
                 st.sampled_from(["evt_" + "a" * 24, "evt_" + "a" * 15 + "0" * 9, "evt_" + "a" * 15 + "1" * 9]),
                 _odd_text)
_times = st.one_of(st.none(), _odd_text, _numbers,
                   st.sampled_from(["2026-03-01T10:00:00Z", "2026-03-01T10:00:00.250Z", "2026-03-01 10:00",
                                    "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "2026-02-30",
                                    "yesterday", "1e400", "2026-03-01T10:00:00+99:00"]))


@st.composite
def hostile_events(draw) -> dict:
    """Mostly an event com accepts, with hostile values where values are free (data, tags, source); about one in
    three has one field broken in a hostile way."""
    etype = draw(st.sampled_from(["test_result", "note", "test_failure", "deploy_done"]))
    event = {"type": etype, "project": draw(st.sampled_from(["shop", "web"]))}
    data = draw(st.dictionaries(st.text(max_size=8), st.one_of(_mild, _mild, _mild, _json), max_size=4))
    if etype == "test_result":
        data["status"] = draw(st.sampled_from(["passed", "failed", "error", "skipped"]))
        data["test_id"] = draw(st.text(min_size=1, max_size=40))
    for key in ("attempt", "duration_ms", "line"):
        if draw(_one_in(3)):
            data[key] = draw(_numbers)
    event["data"] = data
    if draw(st.booleans()):
        event["ts"] = draw(st.sampled_from(["2026-03-01T10:00:00Z", "2026-03-01T10:00:00.250Z", "2026-03-01 10:00",
                                            "2026-03-02T00:00:00+05:00", 1700000000, 1700000000.5]))
    if draw(_one_in(4)):
        event["id"] = draw(st.from_regex(r"evt_[0-9a-f]{24}", fullmatch=True) | st.sampled_from(
            ["evt_" + "a" * 24, "evt_" + "a" * 15 + "0" * 9, "evt_" + "a" * 15 + "1" * 9]))
    if draw(st.booleans()):
        event["tags"] = draw(st.lists(st.text(max_size=10), max_size=3))
    if draw(st.booleans()):
        event["source"] = draw(st.text(max_size=20))
    if draw(st.booleans()):
        event["importance"] = draw(st.floats(0, 5))
    if draw(_one_in(3)):  # one field broken in a hostile way
        key = draw(st.sampled_from(["id", "type", "project", "source", "ts", "timestamp", "importance", "tags",
                                    "data", "unknown"]))
        strategy = {"id": _ids, "ts": _times, "timestamp": _times, "importance": st.one_of(_numbers, _odd_text),
                    "tags": _json, "data": _json}.get(key, _leaf)
        event[key if key != "unknown" else draw(_odd_text)] = draw(strategy)
    return event


def _dumps(value, ascii_only: bool) -> str:
    return json.dumps(value, ensure_ascii=ascii_only, allow_nan=True)


@pytest.fixture(scope="module")
def campaign_memory(tmp_path_factory):
    """One memory for a whole test: later examples meet what earlier ones wrote (known ids, conflicts)."""
    root = tmp_path_factory.mktemp("campaign") / ".com"
    assert run("setup", "--memory", root, "init") == 0
    return root


@CAMPAIGN
@given(st.lists(hostile_events(), min_size=1, max_size=4), st.sampled_from(["jsonl", "array", "one"]),
       st.booleans(), st.sampled_from([None, "9" * 5000, "1" + "0" * 400, "[" * 2000, "1e999"]))
def test_hostile_event_json(campaign_memory, events, form, ascii_only, injected):
    if form == "jsonl":
        text = "\n".join(_dumps(e, ascii_only) for e in events)
    elif form == "array":
        text = _dumps(events, ascii_only)
    else:
        text = json.dumps(events[0], indent=2, ensure_ascii=ascii_only)
    if injected is not None:  # a literal json.dumps cannot make: a huge number, deep brackets
        text = text.replace("{", '{"n": ' + injected + ", ", 1)
    run("event JSON", "--memory", campaign_memory, "ingest", "-", input=text)


# -- JUnit XML -----------------------------------------------------------------------------------------
# Text XML can carry (no control characters but tab and newline, no surrogates or non-characters): the reports
# are well-formed unless a case truncates them on purpose, so the rest of com gets exercised.
_xml_safe = st.one_of(st.from_regex(r"[a-z][a-z0-9_]{0,12}", fullmatch=True),
                      st.text(st.characters(blacklist_categories=("Cs", "Cc", "Co", "Cn")), max_size=60),
                      st.sampled_from(["", " ", "\t", "a\nb", "x" * 5000, "tests/test_a.py::TestC::test_b[1-2]"]))
_attr_numbers = st.one_of(_xml_safe, st.sampled_from(["0.01", "1e308", "1e400", "-5", "nan", "inf", "-0",
                                                      "99999999999999999999999", "1,5", " 2 "]))
_stamps = st.one_of(_xml_safe, st.sampled_from(["2026-03-01T10:00:00", "2026-03-01T10:00:00Z"]), st.sampled_from(["2026-03-01T10:00:00", "2026-03-01T10:00:00.5+02:00",
                                                "0001-01-01T00:00:00", "9999-12-31T23:59:59", "2026-13-01T00:00:00"]))


@st.composite
def hostile_reports(draw) -> bytes:
    root = ET.Element(draw(st.sampled_from(["testsuites", "testsuite"])))
    suites = [root] if root.tag == "testsuite" else [
        ET.SubElement(root, "testsuite") for _ in range(draw(st.integers(0, 3)))]
    for suite in suites:
        for key, strategy in (("name", _xml_safe), ("timestamp", _stamps), ("time", _attr_numbers),
                              ("tests", _attr_numbers)):
            if draw(st.booleans()):
                suite.set(key, draw(strategy))
        if draw(_one_in(4)):
            nested = ET.SubElement(suite, "testsuite", name=draw(_xml_safe))  # Jenkins-style nested suites
            ET.SubElement(nested, "testcase", name=draw(_xml_safe), classname=draw(_xml_safe))
        if draw(st.booleans()):
            props = ET.SubElement(suite, "properties")
            for _ in range(draw(st.integers(0, 60))):
                ET.SubElement(props, "property", name=draw(_xml_safe), value=draw(_xml_safe))
        for _ in range(draw(st.integers(0, 6))):
            case = ET.SubElement(suite, "testcase")
            for key, strategy in (("name", _xml_safe), ("classname", _xml_safe), ("file", _xml_safe),
                                  ("line", _attr_numbers), ("time", _attr_numbers)):
                if not draw(_one_in(20)):
                    case.set(key, draw(strategy))
            for child in draw(st.lists(st.sampled_from(["failure", "error", "skipped", "flakyFailure",
                                                        "flakyError", "rerunFailure", "rerunError", "system-out",
                                                        "system-err", "properties"]), max_size=4)):
                el = ET.SubElement(case, child)
                if draw(st.booleans()):
                    el.set("message", draw(_xml_safe))
                if draw(st.booleans()):
                    el.set("type", draw(_xml_safe))
                el.text = draw(st.one_of(_xml_safe, st.integers(0, 20000).map(lambda n: "line\n" * n)))
    data = ET.tostring(root, encoding="utf-8", xml_declaration=draw(st.booleans()))
    if draw(st.integers(0, 5)) == 0:
        data = data[: draw(st.integers(0, len(data)))]  # truncated
    return data


@CAMPAIGN
@given(hostile_reports(), st.sampled_from([[], ["-p", "shop"], ["--run-id", "r1"], ["--commit", "a" * 40]]))
def test_hostile_junit_xml(campaign_memory, tmp_path_factory, report, extra):
    path = tmp_path_factory.mktemp("junit") / "report-junit.xml"
    path.write_bytes(report)
    run("JUnit XML", "--memory", campaign_memory, "ingest", "--junit", path, *extra)


# -- option values of com ingest -----------------------------------------------------------------------
_OPTIONS = ["-p", "-t", "-s", "-i", "--tag", "-d", "--ts", "-m", "--commit", "--run-id", "--branch", "--repo",
            "--file", "--junit"]
_values = st.one_of(_odd_text, st.sampled_from(["shop", "note", "test_result", "{}", '{"status": "passed"}',
                                                "-1", "5", "nan", "inf", "1e309", "/dev/zero", "/", "."]),
                    _numbers.map(str))


@CAMPAIGN
@given(st.lists(st.tuples(st.sampled_from(_OPTIONS), _values), max_size=6), st.sampled_from([[], ["-"]]),
       st.one_of(st.none(), _odd_text))
def test_hostile_ingest_options(campaign_memory, options, positional, stdin):
    args = [part for option, value in options for part in (option, value)]
    base = [] if any(o == "-t" for o, _ in options) else ["-t", "note", "-p", "shop"]
    run("ingest options", "--memory", campaign_memory, "ingest", *base, *args, *positional, input=stdin)


# -- ref names and dates ----------------------------------------------------------------------------------
_names = st.one_of(_odd_text, st.from_regex(r"[a-z][a-z0-9._/-]{0,20}", fullmatch=True),
                   st.sampled_from(["main", "v1", "a..b", "a/.b", "x.lock", "@", "-x", "a b", "a~1", "a^", "a:b",
                                    "a\\b", "a//b", "a/", "x" * 300, "HEAD~1", "HEAD^2", "main@{1}"]))
_dates = st.one_of(_names, st.sampled_from(["yesterday", "2.weeks.ago", "2026-11-01 10:00", "now", "never",
                                            "2026-02-30", "1700000000", "@1700000000", "tomorrow", "all"]))
_COMMANDS = [
    lambda n: ["branch", n], lambda n: ["branch", n, "HEAD"], lambda n: ["branch", "-d", n], lambda n: ["tag", n],
    lambda n: ["tag", n, "-m", "m"], lambda n: ["tag", "-d", n], lambda n: ["switch", n], lambda n: ["switch", "-c", n],
    lambda n: ["remote", "add", n, "file:///nonexistent/x.git"], lambda n: ["remote", "remove", n],
    lambda n: ["events", "--at", n], lambda n: ["log", n], lambda n: ["show", n], lambda n: ["diff", n],
    lambda n: ["events", "--since", n], lambda n: ["events", "--until", n], lambda n: ["commit", "-m", "x", "--event", n],
    lambda n: ["pull", "nosuch", n], lambda n: ["fetch", n], lambda n: ["events", "--test", n, "--status", "failed"],
]


@CAMPAIGN
@given(st.sampled_from(range(len(_COMMANDS))), _dates)
def test_hostile_ref_names_and_dates(campaign_memory, which, name):
    if run("ref names and dates", "--memory", campaign_memory, "log", "-n", "1") == 0 and not (
            campaign_memory / "journal.git" / "refs" / "heads" / "main").exists():
        run("ref names and dates", "--memory", campaign_memory, "ingest", "-p", "shop", "-t", "note")
    run("ref names and dates", "--memory", campaign_memory, *_COMMANDS[which](name))
    # Back to main, whatever the command did to HEAD.
    run("ref names and dates", "--memory", campaign_memory, "switch", "main")
