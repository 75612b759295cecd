"""The command line a newcomer meets: version, completion, one-line usage errors, clean help, colour and
pager only in a terminal, validated values, events that say what they leave out, one event shown whole,
settings typos warned about, JSON errors, and `com init` at the top of a code repository."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, git, run_com


def result(test, status, ts, project="shop", **data):
    return json.dumps({"type": "test_result", "project": project, "ts": ts,
                       "data": {"test_id": test, "status": status, **data}})


def ingest(com, *lines):
    r = com("ingest", "-", "--json", input="\n".join(lines) + "\n")
    assert r.exit_code == 0, r.stderr
    return json.loads(r.stdout)


def one_error_line(r, exit_code=2) -> str:
    """The error line of a failed command, checking it is one line (and, for usage errors, one hint)."""
    assert r.exit_code == exit_code, (r.exit_code, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert lines[0].startswith("com: error: ")
    assert len(lines) == 1 or (len(lines) == 2 and lines[1].startswith("hint: ")), lines
    return lines[0]


# -- version, python -m com, completion ---------------------------------------------------------------------
def test_version_comes_from_one_place(com):
    import com as package

    r = com("--version")
    assert r.exit_code == 0 and r.stdout.strip() == f"com {package.__version__}"
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in pyproject and 'version = { attr = "com.__version__" }' in pyproject
    assert not re.search(r'^version\s*=\s*"', pyproject, re.M)  # no second copy of the number


def test_python_dash_m_com_is_the_same_command_line(isolated):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-m", "com", "--version"], capture_output=True, text=True, env=env)
    assert r.returncode == 0 and r.stdout.startswith("com ")
    r = subprocess.run([sys.executable, "-m", "com", "lgo"], capture_output=True, text=True, env=env, cwd=isolated)
    assert r.returncode == 2 and "did you mean 'log'?" in r.stderr


@pytest.mark.parametrize("shell, marker", [("bash", "complete -o nosort -F"), ("zsh", "#compdef com"),
                                           ("fish", "complete --no-files --command com")])
def test_completion_scripts_and_real_completions(com, shell, marker):
    r = com("completion", shell)
    assert r.exit_code == 0 and marker in r.stdout and "_COM_COMPLETE" in r.stdout
    r = com("completion", "powershell")
    assert "'powershell' is not one of 'bash', 'zsh', 'fish'" in one_error_line(r)


def test_completion_answers_commands_options_and_choices(com):
    env = {"_COM_COMPLETE": "bash_complete", "COMP_WORDS": "com lo", "COMP_CWORD": "1"}
    assert com(env=env).stdout.split() == ["plain,log"]
    env.update(COMP_WORDS="com events --status f", COMP_CWORD="3")
    assert com(env=env).stdout.split() == ["plain,failed"]
    env.update(COMP_WORDS="com search x --mode k", COMP_CWORD="4")
    assert com(env=env).stdout.split() == ["plain,keyword"]


# -- usage errors and help -------------------------------------------------------------------------------
def test_usage_errors_are_one_line_and_a_hint_and_suggest_once(com):
    line = one_error_line(com("lgo"))
    assert line == "com: error: no such command 'lgo' (did you mean 'log'?)"
    r = com("remote", "lst")
    assert one_error_line(r) == "com: error: no such command 'lst' (did you mean 'list'?)"
    assert r.stderr.count("did you mean") == 1
    assert one_error_line(com("events", "--limt", "3")) == "com: error: no such option '--limt' (did you mean '--limit'?)"
    assert one_error_line(com("commit")) == "com: error: missing --message"
    assert one_error_line(com("events", "--limit", "x")) == "com: error: --limit: expected a whole number, got 'x'"
    r = com("events", "--limit")
    assert "--limit" in one_error_line(r) and r.stderr.strip().splitlines()[1] == "hint: 'com events --help' shows the usage"


def _every_command(com):
    from com.cli.app import COMMANDS, load_command

    for name in COMMANDS:
        command = load_command(name)
        yield [name]
        for sub in getattr(command, "commands", {}):
            yield [name, sub]


def test_help_of_every_command_is_plain_text_without_stray_backslashes(com):
    pages = [com("--help").stdout] + [com(*words, "--help").stdout for words in _every_command(com)]
    for page in pages:
        assert page.startswith("Usage: com")
        assert "\\[" not in page and "\\]" not in page
        assert "╭" not in page  # no rich boxes: one look everywhere
        assert "--install-completion" not in page
    events_help = com("events", "--help").stdout
    assert "[default: 50]" in events_help


# -- colour, width, pager ----------------------------------------------------------------------------------
class FakeTTY(io.StringIO):
    def isatty(self):
        return True


def test_colour_only_in_a_terminal_and_never_with_no_color(monkeypatch):
    from com.cli.output import colour_wanted

    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    assert colour_wanted(FakeTTY()) is True
    assert colour_wanted(io.StringIO()) is False
    monkeypatch.setenv("NO_COLOR", "1")
    assert colour_wanted(FakeTTY()) is False
    monkeypatch.delenv("NO_COLOR")
    monkeypatch.setenv("TERM", "dumb")
    assert colour_wanted(FakeTTY()) is False


def test_piped_output_has_no_colour_codes(com, memory):
    ingest(com, result("tests/test_a.py::test_x", "failed", "2026-11-01T10:00:00Z", error_message="boom"))
    for args in (["events"], ["log"], ["show"], ["diff", "HEAD"]):
        assert "\033[" not in com(*args).stdout


def test_tables_fit_the_terminal_width_and_colour_statuses():
    from com.render import history, text

    events = [json.loads(result(f"tests/test_{'x' * 40}.py::test_{i}", "failed", "2026-11-01T10:00:00Z",
                                error_message="AssertionError: " + "y" * 100, duration_ms=1234)) | {"id": f"evt_{i:024x}"}
              for i in range(3)]
    try:
        text.configure(width=80, color=False)
        lines = history.events({"events": events}).splitlines()
        assert all(len(line) <= 80 for line in lines) and lines[1].endswith("…")
        text.configure(width=None, color=True)
        coloured = history.events({"events": events})
        assert "\033[31mfailed" in coloured
    finally:
        text.configure()
    assert "\033[" not in history.events({"events": events})


def test_long_output_goes_through_the_pager_only_in_a_terminal(monkeypatch, tmp_path, capsys):
    from com.cli import output

    paged = tmp_path / "paged.txt"
    monkeypatch.setenv("COM_PAGER", f"cat > {paged}")
    monkeypatch.setattr(output, "_terminal_out", lambda: True)
    monkeypatch.setattr(output.shutil, "get_terminal_size", lambda *a: os.terminal_size((80, 10)))
    long = "".join(f"line {i}\n" for i in range(50))
    output.start_run()
    output.page(long)
    assert paged.read_text() == long and capsys.readouterr().out == ""
    output.page("short\n")  # fits the screen: written directly, as less -F would
    assert capsys.readouterr().out == "short\n"
    output.set_pager(False)  # --no-pager
    paged.unlink()
    output.page(long)
    assert not paged.exists() and capsys.readouterr().out == long
    output.start_run()
    monkeypatch.setattr(output, "_terminal_out", lambda: False)  # piped: never
    output.page(long)
    assert not paged.exists() and capsys.readouterr().out == long
    monkeypatch.setenv("COM_PAGER", "")
    assert output.pager_command() is None
    monkeypatch.delenv("COM_PAGER")
    monkeypatch.setenv("PAGER", "more")
    assert output.pager_command() == "more"


def test_no_pager_flag_is_accepted_before_any_command(com, memory):
    assert com("--no-pager", "log").exit_code == 0
    assert com("-P", "events").exit_code == 0


# -- validation: the known crashes and silent answers -----------------------------------------------------
@pytest.fixture
def history(com, memory):
    return [
        ingest(com, result("tests/test_a.py::test_login", "passed", "2026-11-01T10:00:00Z", duration_ms=120),
               result("tests/test_a.py::TestCart::test_add", "passed", "2026-11-01T10:00:00Z"))["commit"],
        ingest(com, result("tests/test_a.py::test_login", "failed", "2026-11-02T10:00:00Z", duration_ms=5300,
                           error_message="Timeout waiting for selector #login\nsecond line",
                           trace="Traceback (most recent call last):\n  File \"x.py\", line 3\nTimeoutError"))["commit"],
    ]


def test_the_known_crashes_are_one_line_and_exit_2(com, history):
    assert "'evt_zz' is not an event id" in one_error_line(com("commit", "-m", "x", "--event", "evt_zz"))
    assert "--limit: must be 0 or more (0: all), got -5" in one_error_line(com("events", "--limit", "-5"))
    assert "--max-count: must be 0 or more (0: all), got -1" in one_error_line(com("log", "-n", "-1"))
    assert "--limit: must be 1 or more, got 0" in one_error_line(com("search", "x", "-k", "0"))
    assert "--mode: 'fuzzy' is not one of" in one_error_line(com("search", "x", "--mode", "fuzzy"))
    assert "--status: 'failing' is not one of" in one_error_line(com("events", "--status", "failing"))


def test_a_count_of_zero_means_all(com, history):
    assert len(json.loads(com("log", "-n", "0", "--json").stdout)["commits"]) == 2
    assert len(json.loads(com("events", "--limit", "0", "--json").stdout)["events"]) == 3


def test_filters_matching_nothing_say_so_on_stderr(com, history):
    r = com("events", "--type", "nosuch")
    assert r.exit_code == 0 and r.stdout == "" and r.stderr.strip() == "com: no events match --type nosuch"
    r = com("events", "--status", "skipped", "--project", "shop")
    assert r.exit_code == 0 and r.stderr.strip() == "com: no events match --project shop --status skipped"


def test_an_unknown_test_is_an_error_that_suggests_the_recorded_one(com, history):
    line = one_error_line(com("events", "--test", "test_login"))
    assert line == ("com: error: --test: no recorded test matches 'test_login' "
                    "(did you mean 'tests/test_a.py::test_login'?)")
    assert "no recorded test matches" in one_error_line(com("events", "--test", "tests/nope.py::*"))
    # a file or class prefix and a glob are selectors, not unknown ids
    assert len(json.loads(com("events", "--test", "tests/test_a.py::TestCart", "--json").stdout)["events"]) == 1
    assert len(json.loads(com("events", "--test", "*login", "--json").stdout)["events"]) == 2


def test_unknown_event_ids_are_one_line(com, history):
    assert "unknown event id" in one_error_line(com("commit", "-m", "x", "--event", "evt_" + "0" * 24))
    assert "unknown event id 'evt_000000'" in one_error_line(com("show", "evt_000000"))
    assert "too short" in one_error_line(com("show", "evt_1"))


# -- events and show ---------------------------------------------------------------------------------------
def test_events_say_how_many_they_leave_out(com, memory):
    lines = [result(f"tests/test_b.py::test_{i}", "passed", f"2026-11-01T10:{i // 60:02d}:{i % 60:02d}Z")
             for i in range(1234)]
    ingest(com, *lines)
    r = com("events")
    assert r.stderr.strip() == "showing 50 of 1,234 (--limit 0 for all)"
    assert len(r.stdout.strip().splitlines()) == 51  # the header and 50 rows
    assert com("events", "--limit", "0").stderr == ""
    r = com("events", "--status", "passed", "--limit", "10")
    assert r.stderr.strip() == "showing 10 of 1,234 (--limit 0 for all)"
    r = com("events", "--project", "shop", "--limit", "5", "--json")
    assert json.loads(r.stdout)["total"] == 1234 and r.stderr == ""  # JSON says it in "total"
    r = com("events", "--since", "2026-11-01T10:20:00Z", "--limit", "5")
    assert r.stderr.strip() == "showing the newest 5; more match (--limit 0 for all)"


def test_failed_rows_show_the_error_line_and_the_duration(com, history):
    out = com("events").stdout.splitlines()
    assert out[0].split() == ["id", "time", "type", "project", "status", "took", "what"]
    failed = next(line for line in out if " failed " in line)
    assert "5.3s" in failed and "tests/test_a.py::test_login: Timeout waiting for selector #login" in failed
    assert "second line" not in failed
    passed = next(line for line in out if "test_login" in line and " passed " in line)
    assert "120ms" in passed


def test_show_prints_one_event_whole_with_its_trace(com, history):
    failed = json.loads(com("events", "--status", "failed", "--json").stdout)["events"][0]
    for ref in (failed["id"], failed["id"][:12]):
        r = com("show", ref)
        assert r.exit_code == 0, r.stderr
        assert failed["id"] in r.stdout and "status      failed" in r.stdout and "duration    5.3s" in r.stdout
        assert "trace:\n    Traceback (most recent call last):" in r.stdout and "    TimeoutError" in r.stdout
        assert "second line" in r.stdout  # the whole message
        assert f"journal commit {history[1][:10]}" in r.stdout
    shown = json.loads(com("show", failed["id"], "--json").stdout)
    assert shown["event"] == failed and shown["commit"] == history[1] and shown["batch"].startswith("events/shop/")
    # a branch named like an event is still a branch
    assert com("branch", "evt_branch").exit_code == 0
    assert json.loads(com("show", "evt_branch", "--json").stdout)["commit"] == history[1]


def test_an_analysis_commit_lists_the_events_it_is_about(com, history):
    failed = json.loads(com("events", "--status", "failed", "--json").stdout)["events"][0]
    assert com("commit", "-m", "root cause: selector renamed", "--event", failed["id"]).exit_code == 0
    shown = json.loads(com("show", "--json").stdout)
    assert shown["about"] == [failed["id"]] and shown["about_events"] == [failed]
    human = com("show").stdout
    assert "about 1 event(s):" in human and "Timeout waiting for selector #login" in human


# -- JSON: one vocabulary, errors as JSON ----------------------------------------------------------------
def test_json_speaks_commit_and_ts_everywhere(com, history):
    log = json.loads(com("log", "--json").stdout)["commits"]
    assert set(log[0]) == {"commit", "message", "ts", "added", "parents"} and log[0]["commit"] == history[1]
    assert json.loads(com("show", "--json").stdout)["commit"] == history[1]
    com("tag", "v1")
    assert json.loads(com("tag", "--json").stdout)["tags"] == [{"name": "v1", "commit": history[1], "message": ""}]
    assert json.loads(com("branch", "--json").stdout)["branches"][0]["commit"] == history[1]
    assert json.loads(com("branch", "b2", "--json").stdout) == {"name": "b2", "commit": history[1]}


def test_errors_under_json_are_one_json_object_with_the_same_exit_code(com, history):
    cases = [
        (["log", "nope", "--json"], 2, "not_found", "at"),
        (["events", "--limit", "-5", "--json"], 2, "usage", "limit"),
        (["commit", "-m", "x", "--event", "evt_zz", "--json"], 2, "invalid_input", "event"),
        (["events", "--test", "nosuch", "--json"], 2, "not_found", "test"),
        (["events", "--nosuch", "--json"], 2, "usage", None),
    ]
    for args, code, kind, param in cases:
        r = com(*args)
        assert r.exit_code == code and r.stdout == ""
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1, lines
        err = json.loads(lines[0])["error"]
        assert set(err) == {"code", "param", "message"}
        assert (err["code"], err["param"]) == (kind, param), err


def test_an_internal_error_is_exit_3_and_a_json_object_under_json(com, history, monkeypatch):
    from com.ops import history as ops_history

    def broken(*args, **kwargs):
        raise RuntimeError("wires crossed")

    monkeypatch.setattr(ops_history, "log", broken)
    r = com("log")
    assert r.exit_code == 3 and "internal error: RuntimeError: wires crossed" in one_error_line(r, 3)
    r = com("log", "--json")
    assert r.exit_code == 3 and json.loads(r.stderr)["error"]["code"] == "internal"


# -- settings, ingest, init --------------------------------------------------------------------------------
def test_unknown_settings_and_variables_are_warned_about(com, memory, isolated, monkeypatch):
    (isolated / "pyproject.toml").write_text('[tool.com]\nprojct = "shop"\nsource = "ci"\n')
    monkeypatch.setenv("COM_PUSH_TRYS", "3")
    r = com("log")
    assert r.exit_code == 0
    warnings = r.stderr.strip().splitlines()
    assert f"com: warning: unknown setting 'projct' in [tool.com] of {isolated / 'pyproject.toml'} ignored " \
           "(did you mean 'project'?)" in warnings
    assert "com: warning: unknown environment variable COM_PUSH_TRYS ignored (did you mean COM_PUSH_TRIES?)" in warnings
    assert len(warnings) == 2
    report = json.loads(com("config", "--json").stdout)
    assert {u["key"] for u in report["unknown"]} == {"projct", "push_trys"}
    assert "projct" not in {s["key"] for s in report["settings"]}
    monkeypatch.setenv("COM_DIR", str(memory.root))  # com's own variables are not settings, and not unknown
    monkeypatch.setenv("COM_PAGER", "less")
    assert "COM_DIR" not in com("log").stderr and "COM_PAGER" not in com("log").stderr


def test_settings_stay_a_library_that_prints_nothing(isolated, monkeypatch, capsys):
    from com.settings import load

    (isolated / "pyproject.toml").write_text('[tool.com]\nbogus = 1\n')
    settings = load(isolated)
    assert capsys.readouterr() == ("", "")
    assert [s.key for s in settings.unknown] == ["bogus"] and settings.warnings()


def test_json_from_stdin_and_file_takes_the_configured_project(com, memory, isolated):
    (isolated / "pyproject.toml").write_text('[tool.com]\nproject = "web"\n')
    line = json.dumps({"type": "note", "data": {"text": "deployed"}})
    assert com("ingest", "-", input=line + "\n").exit_code == 0
    f = isolated / "events.jsonl"
    f.write_text(json.dumps({"type": "note", "data": {"text": "rolled back"}}) + "\n")
    assert com("ingest", "--file", f).exit_code == 0
    events = json.loads(com("events", "--json").stdout)["events"]
    assert {e["project"] for e in events} == {"web"} and len(events) == 2
    assert com("ingest", "-", "-p", "api", input=line + "\n").exit_code == 0  # a flag still wins
    assert {e["project"] for e in json.loads(com("events", "--json").stdout)["events"]} == {"web", "api"}


def test_init_in_a_subfolder_of_a_code_repository_puts_the_memory_at_its_top(com, isolated, monkeypatch):
    git("init", "-q", cwd=isolated)
    sub = isolated / "src" / "pkg"
    sub.mkdir(parents=True)
    monkeypatch.chdir(sub)
    out = json.loads(com("init", "--json").stdout)
    assert out["memory"] == str(isolated / ".com") and (isolated / ".com" / "journal.git").is_dir()
    assert not (sub / ".com").exists()
    assert "/.com/" in (isolated / ".git/info/exclude").read_text().splitlines()
    assert com("ingest", "-p", "shop", "-t", "note").exit_code == 0  # found from the subfolder
    other = isolated / "elsewhere"
    assert json.loads(com("--memory", other, "init", "--json").stdout)["memory"] == str(other)  # a path wins


def test_init_outside_a_code_repository_is_here(com, isolated):
    assert json.loads(com("init", "--json").stdout)["memory"] == str(isolated / ".com")


# -- packaging -------------------------------------------------------------------------------------------
def test_packaging_metadata():
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'license = "MIT"' in pyproject and 'license-files = ["LICENSE"]' in pyproject
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    assert '"click>=8.2,<9"' in pyproject  # typer < 0.21 breaks at import under click 9
    assert "numpy" in pyproject.split("[project.optional-dependencies]")[0]  # the core reads columns with numpy


def test_crashes_the_property_test_found_in_flaky(com, history):
    """Found by tests/test_cli_properties.py: NaN days passed the '> 0' check; a result recorded without a run
    id (run number -1) read another run's id, or none at all."""
    assert "--days: must be a number of days above 0, not nan" in one_error_line(com("flaky", "detect", "--days", "nan"))
    r = com("flaky", "show", "tests/test_a.py::test_login", "--json")
    assert r.exit_code == 0, r.stderr
    assert {row["run_id"] for row in json.loads(r.stdout)["recent"]} == {None}
