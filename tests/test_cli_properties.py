"""Property: no command line, however odd, is an internal error. Every command of the registry (`COMMANDS` in
com/cli/app.py, so a command added later is covered without touching this file), and every subcommand of a
group, is driven in-process with arguments generated from its own parameters (choices, counts, flags, free
text, known revisions and event ids, junk), against a memory with a little history. The exit code is never 3,
nothing escapes as an exception, a failure always says something on stderr, and `--json` output parses.

EXAMPLES per command x commands = the examples run (printed by the session summary of -v)."""

from __future__ import annotations

import json
import os

import click
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

EXAMPLES = int(os.environ.get("CLI_PROPERTY_EXAMPLES", "30"))

# Values a user might type: revisions, names, dates, test selectors, numbers, shell oddities. No URL or
# host:path form (a clone or push must not reach the network); local paths only.
WORDS = ["HEAD", "HEAD~1", "HEAD~9", "main", "exp", "v1", "origin", "nosuch", "2026-11-02", "2026-13-45",
         "yesterday", "tests/test_a.py::test_login", "tests/test_a.py", "*login*", "test_", "[", "*", "?",
         "passed", "failed", "note", "test_result", "shop", "-", "--", "-x", "", " ", "0", "-1", "1e9", "NaN",
         "{}", "{\"a\": 1}", "[1]", "evt_", "evt_zz", "evt_000000", "evt_" + "f" * 24, "é", "a/b", "../up",
         "bare.git", "0.5", "hybrid", "keyword", "bash", "fish"]
SAFE_TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_characters=":@\x00"), max_size=12)
STDIN = st.sampled_from(["", "\n", "{not json\n", '{"type":"note","project":"shop"}\n',
                         '{"type":"test_result","project":"shop","data":{"test_id":"t","status":"weird"}}\n',
                         '[{"type":"note","project":"shop","data":{"n":1}}]', "\x00\x01", "null\n"])
# Options that start something running until it is stopped (a server on a socket): driven by their own tests
# (tests/test_serve.py), not here, where every command line must end.
UNTIL_STOPPED = {("serve", "socket_path")}


def leaf_commands():
    """[(words, click command)] for every command of the registry and every subcommand of a group."""
    from com.cli.app import COMMANDS, load_command

    out = []
    for name in COMMANDS:
        command = load_command(name)
        subs = getattr(command, "commands", None)
        if subs:
            out.extend(([name, sub], cmd) for sub, cmd in subs.items())
        else:
            out.append(([name], command))
    return out


def value_strategy(param: click.Parameter, known: list[str]):
    words = st.sampled_from(WORDS + known)
    ptype = param.type
    if isinstance(ptype, click.Choice):
        return st.one_of(st.sampled_from(list(ptype.choices)), words)
    if param.name in ("url", "path"):  # where a clone or remote points: local paths only
        return st.sampled_from(["nowhere", "bare.git", "../nowhere", "x/y", "-x", ""])
    if ptype.name in ("integer", "count", "integer range"):
        return st.one_of(st.integers(-3, 60).map(str), words)
    if ptype.name in ("float", "float range"):
        return st.one_of(st.floats(-2, 6).map(str), st.sampled_from(["nan", "inf", "-inf"]), words)
    return st.one_of(words, SAFE_TEXT)


@st.composite
def command_line(draw, words: list[str], command: click.Command, known: list[str]):
    parts: list[list[str]] = []
    for param in command.params:
        if isinstance(param, click.Argument):
            count = draw(st.integers(0, 2)) if param.nargs == -1 else draw(st.sampled_from([1, 1, 1, 0]))
            parts.append([draw(value_strategy(param, known)) for _ in range(count)])
        elif isinstance(param, click.Option):
            if (words[0], param.name) in UNTIL_STOPPED or not draw(st.booleans()):
                continue
            flag = draw(st.sampled_from(list(param.opts)))
            if param.is_flag:
                parts.append([flag])
            else:
                repeat = draw(st.integers(1, 2)) if param.multiple else 1
                for _ in range(repeat):
                    parts.append([flag, draw(value_strategy(param, known))])
    order = draw(st.permutations(range(len(parts)))) if parts else []
    return [*words, *(token for i in order for token in parts[i])]


@pytest.fixture
def populated(com, memory):
    """A memory with two ingests, a tag, a branch and an analysis commit; returns ids a user might type."""
    lines = [
        {"type": "test_result", "project": "shop", "ts": "2026-11-01T10:00:00Z",
         "data": {"test_id": "tests/test_a.py::test_login", "status": "passed", "duration_ms": 12}},
        {"type": "test_result", "project": "shop", "ts": "2026-11-02T10:00:00Z",
         "data": {"test_id": "tests/test_a.py::test_login", "status": "failed", "error_message": "Timeout E4077"}},
        {"type": "note", "project": "web", "ts": "2026-11-02T11:00:00Z", "data": {"text": "deployed"}},
    ]
    ids = []
    for chunk in (lines[:1], lines[1:]):
        r = com("ingest", "-", "--json", input="\n".join(json.dumps(x) for x in chunk) + "\n")
        assert r.exit_code == 0, r.stderr
        ids += json.loads(r.stdout)["ids"]
    assert com("tag", "v1", "HEAD~1").exit_code == 0
    assert com("branch", "exp", "HEAD~1").exit_code == 0
    assert com("commit", "-m", "about the timeout", "--event", ids[1]).exit_code == 0
    return ids + [i[:12] for i in ids]


RUNS = {"n": 0}


@pytest.mark.parametrize("words, command", leaf_commands(), ids=lambda v: " ".join(v) if isinstance(v, list) else "")
def test_no_command_line_is_an_internal_error(com, populated, words, command):
    from typer.testing import CliRunner

    from com.cli.app import app

    runner = CliRunner()

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(argv=command_line(words, command, populated), stdin=STDIN)
    def run(argv, stdin):
        RUNS["n"] += 1
        r = runner.invoke(app, argv, input=stdin, catch_exceptions=True)
        said = f"com {' '.join(argv)!r}: exit {r.exit_code}\nstdout: {r.stdout[-500:]}\nstderr: {r.stderr[-800:]}"
        assert r.exception is None or isinstance(r.exception, SystemExit), said
        assert r.exit_code in (0, 1, 2), said
        if r.exit_code == 2:
            assert r.stderr.strip(), said  # a refusal always says why
        if r.exit_code == 0 and "--json" in argv and "--help" not in argv and r.stdout.strip():
            json.loads(r.stdout)  # one JSON object, whatever else happened

    run()


def test_every_registered_command_is_driven():
    from com.cli.app import COMMANDS

    driven = {words[0] for words, _ in leaf_commands()}
    assert driven == set(COMMANDS)