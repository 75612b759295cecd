"""`com rollup` end to end on a generated history recorded in a real memory with its flaky registry: daily, weekly
and pattern roll-ups written by the real packaged model (llama.cpp) whose facts equal those computed from the
journal's own events; the narrative passes the grounding check or com's fallback says no model wrote it; the
roll-up is saved as a `rollup` event (in the journal, listed, searchable); `--at` reads the past; `--no-llm`
needs no model and never imports llama_cpp.

The real-model tests are three generations of at most 160 tokens (one more each when the check rejects one)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import defaultdict

import pytest

from conftest import ROOT
from rollup_helpers import (FAILING, columns_from_events, journal_events, recorded, reference_daily,
                            registry_from_events)

from com.analysis import narrative, rollup
from com.models import text

real_model = pytest.mark.skipif(
    not text.llama_cpp_available() or text._package_dir(text.PACKAGED[text.DEFAULT_MODEL].package) is None,
    reason="llama-cpp-python and the packaged default model are installed by `make`")


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    """(memory, the journal's events, the richest day: new failures, fixes, flaky failures, registry changes)."""
    _, memory = recorded(tmp_path_factory.mktemp("rollup-cli"))
    events = journal_events(memory)
    days = sorted({e["ts"][:10] for e in events if e["type"] == "test_result"})

    def richness(day):
        ref = reference_daily(events, day)
        return (sum(bool(ref[k]) for k in ("new_failures", "fixed", "flaky_failures", "still_failing",
                                           "marked_detected")), day)

    return memory, events, max(days, key=richness)


def _json(result) -> dict:
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def _expected(memory, at, call):
    """Facts computed from the journal's own events at `at` (no view): what com must answer."""
    events = journal_events(memory, at)
    return call(columns_from_events(events), registry_from_events(events)), events


def _check_narrative(out: dict) -> None:
    """The narrative passes the grounding check and names its model, or it is com's and says no model wrote it."""
    body, _, signed = out["narrative"].rpartition("\n\n")
    if out["model"] is not None:
        assert narrative.check(body, out["facts"]) == [], out["narrative"]
        assert signed == f"Written by {out['model']} from com's facts (com filled in every number and test id)."
        assert out["fallback_reason"] is None and out["attempts"][-1]["problems"] == []
    else:
        assert signed == narrative.FALLBACK_NOTE and out["fallback_reason"]
        assert narrative.check(body, out["facts"]) == []


def _saved(memory, out: dict) -> dict:
    """The roll-up's event, read back from the journal."""
    found = [e for e in journal_events(memory, types=["rollup"]) if e["id"] == out["event_id"]]
    assert len(found) == 1
    event = found[0]
    assert event["data"]["narrative"] == out["narrative"] and event["data"]["model"] == out["model"]
    assert event["data"]["facts"] == out["facts"] and event["data"]["kind"] == out["kind"]
    assert event["data"]["period"] == out["period"]["label"] and event["tags"] == [out["kind"]]
    return event


@real_model
def test_daily_rollup_with_the_real_model(history, com):
    memory, events, day = history
    head = memory.snapshot().sha
    out = _json(com("--memory", memory.root, "rollup", "daily", "--date", day, "--json"))
    expected, at_events = _expected(memory, head, lambda c, r: rollup.daily_facts(c, day, registry=r))
    assert json.dumps(out["facts"], sort_keys=True) == json.dumps(expected, sort_keys=True)
    ref = reference_daily(at_events, day)  # and the plain count agrees
    assert (out["facts"]["runs"], out["facts"]["pass_rate"]) == (ref["runs"], ref["pass_rate"])
    for key in ("new_failures", "still_failing", "flaky_failures", "fixed"):
        assert out["facts"][key]["count"] == len(ref[key])
    assert out["kind"] == "daily" and out["period"]["label"] == day and out["snapshot"] == head
    _check_narrative(out)
    assert out["timing"]["attempts"] >= 1 and out["timing"]["completion_tokens"]
    # Saved: one new journal commit holding the event; the same roll-up again adds nothing.
    assert out["saved"] and out["commit"] and memory.snapshot().sha == out["commit"]
    event = _saved(memory, out)
    assert event["ts"] == f"{day}T23:59:59Z"
    listed = _json(com("--memory", memory.root, "events", "--type", "rollup", "--json"))["events"]
    assert out["event_id"] in [e["id"] for e in listed]


@real_model
def test_weekly_and_pattern_rollups_with_the_real_model(history, com):
    memory, events, _ = history
    results = [e for e in events if e["type"] == "test_result"]
    head = memory.snapshot().sha
    out = _json(com("--memory", memory.root, "rollup", "weekly", "--week", "2026-W02", "--json", "--no-save"))
    expected, _ = _expected(memory, head, lambda c, r: rollup.weekly_facts(c, "2026-01-05", "2026-01-12", registry=r))
    assert json.dumps(out["facts"], sort_keys=True) == json.dumps(expected, sort_keys=True)
    week = [e for e in results if "2026-01-05" <= e["ts"][:10] <= "2026-01-11"]
    assert out["facts"]["results"]["total"] == len(week) > 0
    assert [d["date"] for d in out["facts"]["trend"]] == [f"2026-01-{d:02d}" for d in range(5, 12)]
    assert not out["saved"] and out["commit"] is None and memory.snapshot().sha == head
    _check_narrative(out)
    assert out["timing"]["attempts"] >= 1 and out["timing"]["completion_tokens"]  # the model ran

    failures = defaultdict(int)
    for e in results:
        if e["data"]["status"] in FAILING:
            failures[e["data"]["test_id"]] += 1
    test_id = max(sorted(failures), key=failures.get)
    last = max(e["ts"][:10] for e in results)
    out = _json(com("--memory", memory.root, "rollup", "pattern", "--test", test_id, "--days", "60", "--json"))
    expected, _ = _expected(memory, head, lambda c, r: rollup.pattern_facts(c, until=last, days=60, test=test_id,
                                                                             registry=r))
    assert json.dumps(out["facts"], sort_keys=True) == json.dumps(expected, sort_keys=True)
    assert out["facts"]["occurrences"] == failures[test_id] and out["facts"]["hypothesis"]["statement"]
    _check_narrative(out)
    assert out["timing"]["attempts"] >= 1 and out["timing"]["completion_tokens"]  # the model ran
    _saved(memory, out)


def test_no_llm_needs_no_model_and_imports_no_llama_cpp(history, tmp_path):
    memory, _, day = history
    # What was imported is said at exit (com ends its process itself, once the command is done).
    code = ("import atexit, json, sys\n"
            "from com.cli import main\n"
            f"sys.argv = ['com', '--memory', {str(memory.root)!r}, 'rollup', 'daily', '--date', {day!r}, '--no-llm',"
            " '--no-save', '--json']\n"
            "atexit.register(lambda: print(json.dumps(sorted(m for m in sys.modules if m.startswith('llama'))),"
            " file=sys.stderr))\n"
            "main()\n")
    # A model setting that points nowhere: --no-llm does not even look.
    env = {**os.environ, "COM_LLM_MODEL": str(tmp_path / "missing.gguf"), "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stderr.strip().splitlines()[-1]) == []
    out = json.loads(proc.stdout)
    assert out["model"] is None and out["fallback_reason"] == "no model was asked for"
    assert out["narrative"].endswith(narrative.FALLBACK_NOTE) and not out["saved"]
    _check_narrative(out)


def test_a_pattern_window_longer_than_any_time_reaches_back_to_year_one(history, com):
    """--days past year 1 (an internal error before: date value out of range) covers the whole history."""
    memory, events, _ = history
    failures = defaultdict(int)
    for e in events:
        if e["type"] == "test_result" and e["data"]["status"] in FAILING:
            failures[e["data"]["test_id"]] += 1
    test_id = max(sorted(failures), key=failures.get)
    args = ("--memory", memory.root, "rollup", "pattern", "--test", test_id, "--no-llm", "--no-save", "--json")
    out = _json(com(*args, "--days", "1000000000"))
    assert out["facts"]["period"]["start"].startswith("1-01-01") and out["facts"]["occurrences"] == failures[test_id]
    assert _json(com(*args, "--days", "800000"))["facts"]["period"] == out["facts"]["period"]


def test_a_saved_rollup_is_versioned_searchable_and_at_reads_the_past(tmp_path, com):
    _, memory = recorded(tmp_path / "h", tests=12, commits=8, registry=False)
    mem = ["--memory", memory.root]
    before = memory.snapshot().sha
    day = max(e["ts"][:10] for e in journal_events(memory))
    first = _json(com(*mem, "rollup", "daily", "--no-llm", "--json"))
    assert first["period"]["label"] == day and first["saved"] and first["model"] is None
    saved_at = first["commit"]
    again = _json(com(*mem, "rollup", "daily", "--no-llm", "--json"))  # the same roll-up is recorded once
    assert again["event_id"] == first["event_id"] and again["saved"] and again["commit"] is None
    # One more CI run later that day, with a new failure.
    run = {"type": "test_result", "project": "shop", "ts": f"{day}T23:00:00Z",
           "data": {"test_id": "tests/test_new.py::test_added", "status": "failed", "run_id": "late-run",
                    "commit": "f" * 40, "error_message": "AssertionError: late"}}
    assert com(*mem, "ingest", "-", input=json.dumps(run)).exit_code == 0
    now = _json(com(*mem, "rollup", "daily", "--no-llm", "--no-save", "--json"))
    assert now["facts"]["runs"] == first["facts"]["runs"] + 1
    assert [i["test_id"] for i in now["facts"]["new_failures"]["items"]][-1] == "tests/test_new.py::test_added"
    past = _json(com(*mem, "rollup", "daily", "--no-llm", "--at", saved_at, "--json"))
    assert past["facts"] == first["facts"] and past["snapshot"] == saved_at
    assert not past["saved"] and past["commit"] is None  # reading the past writes nothing
    assert [e["type"] for e in _json(com(*mem, "events", "--type", "rollup", "--at", before, "--json"))["events"]] == []
    at_save = _json(com(*mem, "events", "--type", "rollup", "--at", saved_at, "--json"))["events"]
    assert [e["id"] for e in at_save] == [first["event_id"]]
    # The index takes the roll-up in as any other event: its narrative is found by its words.
    hits = _json(com(*mem, "search", "No language model was used", "--type", "rollup", "--mode", "keyword",
                     "--json"))["results"]
    assert hits and hits[0]["event"]["id"] == first["event_id"]


def test_human_output_and_one_line_errors(history, com, tmp_path):
    memory, _, day = history
    mem = ["--memory", memory.root]
    out = com(*mem, "rollup", "daily", "--date", day, "--no-llm", "--no-save")
    assert out.exit_code == 0 and out.stdout.startswith(f"Daily roll-up {day}\n")
    assert narrative.FALLBACK_NOTE in out.stdout and "written by com: no model was asked for" in out.stdout
    assert out.stdout.rstrip().endswith("not saved")
    for args, message in (
        (("daily", "--model", tmp_path / "nope.gguf"), "com: error: --model: no such model file"),
        (("daily", "--no-llm", "--model", "x.gguf"), "com: error: --model: a model was named, but no model"),
        (("daily", "--date", "someday"), "com: error: --date: not a date: 'someday'"),
        (("weekly", "--week", "2026-W99"), "com: error: --week: no such ISO week"),
        (("weekly", "--week", "2026-W02", "--from", "2026-01-05"), "com: error: --week: give an ISO week"),
        (("pattern", "--test", "a", "--tag", "b"), "com: error: --tag: give exactly one of"),
        (("pattern",), "com: error: --test: give exactly one of"),
        (("pattern", "--test", "tests/test_nope.py::test_x"), "com: error: --test: unknown test"),
        (("pattern", "--signature", "x", "--days", "0"), "com: error: --days: must be at least 1"),
    ):
        result = com(*mem, "rollup", *args, "--no-save")
        assert result.exit_code == 2 and result.stderr.startswith(message), (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1
