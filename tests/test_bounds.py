"""Input bounds (README, "Limits"): nesting depth, number size, line size, input size, regular files only where
a file is expected. Every limit is one line on stderr and exit 2, and nothing is written; what fits is accepted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest



def refused(r, *words: str) -> str:
    assert r.exit_code == 2, (r.exit_code, r.stdout, r.stderr)
    [line] = r.stderr.strip().splitlines()
    assert line.startswith("com: error: "), line
    for word in words:
        assert word in line, line
    assert r.stdout == ""
    return line


def nested(depth: int) -> dict:
    value: object = 1
    for _ in range(depth - 1):
        value = [value]
    return {"type": "note", "project": "shop", "data": {"v": value}}


def deep_text(depth: int) -> str:
    return '{"type":"note","project":"shop","data":{"v":' + "[" * (depth - 1) + "1" + "]" * (depth - 1) + "}}"


@pytest.mark.parametrize("depth", [65, 980, 100_000])
def test_deeper_nesting_than_the_limit_is_refused(com, memory, depth):
    refused(com("ingest", "-", input=deep_text(depth)), "nest")
    assert memory.journal.head() is None


def test_nesting_up_to_the_limit_is_accepted_and_read_back(com, memory):
    r = com("ingest", "-", "--json", input=json.dumps(nested(64)))
    assert r.exit_code == 0, r.stderr
    assert com("events", "--json").exit_code == 0
    assert com("fsck").exit_code == 0


@pytest.mark.parametrize("number", ["9" * 5000, str(2**63), str(-(2**63) - 1), "1" + "0" * 400])
def test_integers_beyond_64_bits_are_refused(com, memory, number):
    r = com("ingest", "-", input='{"type":"note","project":"shop","data":{"n":' + number + "}}")
    refused(r, "number")
    r = com("ingest", "-p", "shop", "-t", "note", "-d", '{"n": ' + number + "}")
    refused(r, "number")
    assert memory.journal.head() is None


@pytest.mark.parametrize("number", [str(2**63 - 1), str(-(2**63)), "1e308", "-0.5"])
def test_numbers_within_the_limits_are_accepted(com, memory, number):
    r = com("ingest", "-", "--json", input='{"type":"note","project":"shop","data":{"n":' + number + "}}")
    assert r.exit_code == 0, r.stderr


def test_an_event_longer_than_a_line_may_be_is_refused(com, memory):
    big = {"type": "note", "project": "shop", "data": {"text": "x" * 1_100_000}}
    refused(com("ingest", "-", input=json.dumps(big)), "line", "1,000,000")
    ok = {"type": "note", "project": "shop", "data": {"text": "x" * 900_000}}
    assert com("ingest", "-", input=json.dumps(ok)).exit_code == 0


@pytest.mark.parametrize("kind", ["char-device", "folder", "fifo"])
@pytest.mark.parametrize("option", ["--file", "--junit"])
def test_only_regular_files_are_read_where_a_file_is_expected(com, memory, tmp_path, kind, option):
    if kind == "char-device":
        path = Path("/dev/zero")
    elif kind == "folder":
        if option == "--junit":
            pytest.skip("a folder given to --junit is searched for reports (tested in test_junit)")
        path = tmp_path / "folder"
        path.mkdir()
    else:
        path = tmp_path / "fifo.xml"
        os.mkfifo(path)
    refused(com("ingest", option, path), "not a regular file")


def test_dev_zero_on_stdin_stops_at_the_input_limit(memory, isolated):
    env = {**os.environ, "COM_MAX_INPUT_MB": "1", "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    exe = Path(sys.executable).parent / "com"
    with open("/dev/zero", "rb") as zero:
        proc = subprocess.run([str(exe), "ingest", "-"], stdin=zero, cwd=isolated, env=env, capture_output=True,
                              text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    [line] = proc.stderr.strip().splitlines()
    assert "more than 1 MiB" in line, line


def test_input_files_larger_than_the_limit_are_refused(com, memory, tmp_path, monkeypatch):
    monkeypatch.setenv("COM_MAX_INPUT_MB", "1")
    events = tmp_path / "events.jsonl"
    line = json.dumps({"type": "note", "project": "shop", "data": {"text": "y" * 1000}}) + "\n"
    events.write_text(line * 1200)  # about 1.2 MB
    refused(com("ingest", "--file", events), "more than 1 MiB")
    refused(com("ingest", "-", input=line * 1200), "more than 1 MiB")
    report = tmp_path / "big-junit.xml"
    report.write_text('<testsuite name="s">' + '<testcase classname="c" name="t"/>' * 40_000 + "</testsuite>")
    refused(com("ingest", "--junit", report), "more than 1 MiB")
    monkeypatch.setenv("COM_MAX_INPUT_MB", "0")
    refused(com("ingest", "--file", events), "max_input_mb")
    assert memory.journal.head() is None


@pytest.mark.parametrize("args", [
    ["--junit", "r.xml", "--file", "e.jsonl"],
    ["--junit", "r.xml", "-"],
    ["--file", "e.jsonl", "-t", "note"],
    ["--file", "e.jsonl", "-d", "{}"],
    ["-", "--importance", "2"],
    ["-", "--tag", "x"],
    ["--file", "e.jsonl", "--ts", "2026-01-01"],
    ["--file", "e.jsonl", "--run-id", "r1"],
    ["-t", "note", "-p", "shop", "--commit", "abc"],
])
def test_inputs_that_would_be_silently_ignored_are_refused(com, memory, isolated, args):
    (isolated / "r.xml").write_text('<testsuite name="s"><testcase classname="c" name="t"/></testsuite>')
    (isolated / "e.jsonl").write_text('{"type":"note","project":"shop"}\n')
    refused(com("ingest", *args, input='{"type":"note","project":"shop"}'), "--")
    assert memory.journal.head() is None
