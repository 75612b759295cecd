"""The journal through the CLI, read back by the git command line."""

import json
import subprocess

import pytest

from conftest import git, run_com

SEED_LINE = (
    '{"type":"test_failure","project":"MyProject","source":"test_suite","importance":4.0,'
    '"tags":["regression","critical"],"data":{"test_id":"test_login","error_message":'
    '"Timeout waiting for selector","duration_ms":5000}}'
)


def result(test, status, ts, project="shop", **data):
    return json.dumps({"type": "test_result", "project": project, "ts": ts, "data": {"test_id": test, "status": status, **data}})


def ingest_lines(com, *lines, args=()):
    r = com("ingest", "-", "--json", *args, input="\n".join(lines) + "\n")
    assert r.exit_code == 0, r.stderr
    return json.loads(r.stdout)


def head(memory):
    return git("--git-dir", memory.journal_path, "rev-parse", "HEAD", check=False).strip()


def count_events(com, *args):
    r = com("events", "--limit", "0", "--json", *args)
    assert r.exit_code == 0, r.stderr
    return len(json.loads(r.stdout)["events"])


# -- init and discovery ------------------------------------------------------------------------
def test_init_creates_a_bare_journal_and_is_idempotent(com, isolated):
    r = com("init", "--json")
    assert r.exit_code == 0
    assert json.loads(r.stdout)["created"] is True
    assert git("--git-dir", isolated / ".com/journal.git", "rev-parse", "--is-bare-repository").strip() == "true"
    r = com("init", "--json")
    assert json.loads(r.stdout)["created"] is False


def test_init_inside_a_code_repository_excludes_the_memory(com, isolated):
    git("init", "-q", cwd=isolated)
    com("init")
    assert "/.com/" in (isolated / ".git/info/exclude").read_text().splitlines()
    com("init")
    assert (isolated / ".git/info/exclude").read_text().count("/.com/") == 1
    (isolated / "code.py").write_text("x = 1\n")
    com("ingest", "-p", "shop", "-t", "note")
    assert git("status", "--porcelain", cwd=isolated).strip() == "?? code.py"


def test_memory_is_found_from_a_subfolder_from_com_dir_and_from_flag(com, memory, isolated, tmp_path, monkeypatch):
    sub = isolated / "a" / "b"
    sub.mkdir(parents=True)
    monkeypatch.chdir(sub)
    assert com("ingest", "-p", "shop", "-t", "note").exit_code == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    r = com("log")
    assert r.exit_code == 2
    assert "com init" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert com("--memory", memory.root, "log", "--json").exit_code == 0
    monkeypatch.setenv("COM_DIR", str(memory.root))
    assert len(json.loads(com("log", "--json").stdout)["commits"]) == 1


def test_com_dir_is_where_init_creates_the_memory(com, tmp_path, monkeypatch):
    target = tmp_path / "shared-memory"
    monkeypatch.setenv("COM_DIR", str(target))
    assert com("init").exit_code == 0
    assert (target / "journal.git" / "HEAD").exists()


def test_config_reads_pyproject_then_environment(com, isolated, monkeypatch):
    (isolated / "pyproject.toml").write_text('[tool.com]\nproject = "shop"\nsource = "ci"\n')
    settings = {s["key"]: s for s in json.loads(com("config", "--json").stdout)["settings"]}
    assert settings["project"]["value"] == "shop"
    assert settings["project"]["source"].endswith("pyproject.toml")
    monkeypatch.setenv("COM_PROJECT", "web")
    settings = {s["key"]: s for s in json.loads(com("config", "--json").stdout)["settings"]}
    assert settings["project"] == {"key": "project", "value": "web", "source": "COM_PROJECT"}
    assert settings["source"]["value"] == "ci"


def test_configured_project_is_the_default_for_flag_ingest(com, memory, isolated):
    (isolated / "pyproject.toml").write_text('[tool.com]\nproject = "shop"\n')
    out = json.loads(com("ingest", "-t", "note", "--json").stdout)
    assert out["added"] == 1
    event = json.loads(com("events", "--json").stdout)["events"][0]
    assert event["project"] == "shop"


# -- ingest ------------------------------------------------------------------------------------
def test_ingest_one_event_from_flags_writes_one_blob_and_one_commit(com, memory):
    r = com("ingest", "-p", "shop", "-t", "test_result", "-s", "ci", "-i", "4", "--tag", "smoke", "--tag", "ui",
            "-d", '{"test_id": "tests/test_a.py::test_x", "status": "failed"}', "--json")
    assert r.exit_code == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["added"] == 1 and out["duplicates"] == 0 and len(out["ids"]) == 1
    gitdir = memory.journal_path
    assert git("--git-dir", gitdir, "rev-parse", "HEAD").strip() == out["commit"]
    files = git("--git-dir", gitdir, "ls-tree", "-r", "--name-only", "HEAD").split()
    assert len(files) == 1 and files[0].startswith("events/shop/") and files[0].endswith(".jsonl")
    stored = json.loads(git("--git-dir", gitdir, "cat-file", "-p", f"HEAD:{files[0]}"))
    assert stored["id"] == out["ids"][0]
    assert stored["importance"] == 4.0 and stored["tags"] == ["smoke", "ui"] and stored["source"] == "ci"
    assert git("--git-dir", gitdir, "cat-file", "-t", out["commit"]).strip() == "commit"
    assert "ingest 1 event into shop" in git("--git-dir", gitdir, "log", "--format=%s")
    assert subprocess.run(["git", "--git-dir", gitdir, "fsck", "--strict"], capture_output=True).returncode == 0


def test_seed_json_from_stdin_and_reingest_adds_nothing(com, memory):
    first = ingest_lines(com, SEED_LINE)
    assert first["added"] == 1
    before = head(memory)
    r = com("ingest", "-", input=SEED_LINE + "\n")
    assert r.exit_code == 0
    assert "0 event(s), 1 already known" in r.stdout and "nothing new" in r.stdout
    assert head(memory) == before
    assert git("--git-dir", memory.journal_path, "rev-list", "--count", "HEAD").strip() == "1"


def test_jsonl_batch_is_one_commit_grouped_by_project_and_day(com, memory):
    out = ingest_lines(
        com,
        result("t1", "passed", "2026-11-01T10:00:00Z"),
        result("t2", "failed", "2026-11-01T11:00:00Z"),
        result("t1", "passed", "2026-11-02T10:00:00Z"),
        result("w1", "passed", "2026-11-02T10:00:00Z", project="web"),
    )
    assert out["added"] == 4
    files = sorted(git("--git-dir", memory.journal_path, "ls-tree", "-r", "--name-only", "HEAD").split())
    assert [f.rsplit("/", 1)[0] for f in files] == ["events/shop/2026-11-01", "events/shop/2026-11-02", "events/web/2026-11-02"]
    assert git("--git-dir", memory.journal_path, "rev-list", "--count", "HEAD").strip() == "1"


def test_ingest_from_file_and_a_pretty_printed_object(com, memory, isolated):
    f = isolated / "events.jsonl"
    f.write_text(result("t1", "passed", "2026-11-01T10:00:00Z") + "\n\n" + result("t2", "skipped", "2026-11-01T10:00:00Z") + "\n")
    assert json.loads(com("ingest", "--file", f, "--json").stdout)["added"] == 2
    pretty = json.dumps({"type": "note", "project": "shop", "data": {"text": "deploy"}}, indent=2)
    assert json.loads(com("ingest", "-", "--json", input=pretty).stdout)["added"] == 1
    array = json.dumps([{"type": "note", "project": "shop", "data": {"n": 1}}, {"type": "note", "project": "shop", "data": {"n": 2}}])
    assert json.loads(com("ingest", "-", "--json", input=array).stdout)["added"] == 2
    assert count_events(com) == 5


# -- bad input: one line, exit 2, nothing written ---------------------------------------------
@pytest.mark.parametrize(
    "text, expected",
    [
        ('{"type":"note","project":"p"}\n{"type": "note", "project": \n', "line 2: invalid JSON"),
        ('{"type":"note","project":"p"}\n[1, 2]\n', "line 2: expected a JSON object"),
        ('{"type":"test_result","project":"p","data":{"status":"weird"}}\n', "line 1: field 'data.status': unknown status 'weird'"),
        ('{"type":"note","project":"p"}\n{"project":"p"}\n', "line 2: field 'type': missing"),
        ('{"type":"note"}\n', "line 1: field 'project': missing"),
        ("", "no events"),
    ],
)
def test_bad_input_is_refused_whole(com, memory, text, expected):
    ingest_lines(com, result("t0", "passed", "2026-11-01T10:00:00Z"))
    before = head(memory)
    r = com("ingest", "-", input=text)
    assert r.exit_code == 2
    assert expected in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert r.stdout == ""
    assert head(memory) == before


def test_bad_flags_data_and_unknown_revision_and_existing_tag(com, memory):
    ingest_lines(com, result("t0", "passed", "2026-11-01T10:00:00Z"))
    before = head(memory)
    r = com("ingest", "-p", "shop", "-t", "note", "-d", "{oops")
    assert r.exit_code == 2 and "--data: invalid JSON" in r.stderr
    r = com("log", "nope")
    assert r.exit_code == 2 and "unknown revision or date 'nope'" in r.stderr
    r = com("events", "--at", "HEAD~5")
    assert r.exit_code == 2 and "unknown revision 'HEAD~5'" in r.stderr
    assert com("tag", "v1").exit_code == 0
    r = com("tag", "v1")
    assert r.exit_code == 2 and "tag 'v1' already exists" in r.stderr
    assert head(memory) == before


def test_real_process_reports_one_line_and_exit_2(memory, isolated):
    r = run_com("ingest", "-", input="{not json\n", cwd=isolated)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == ["com: error: <stdin>: line 1: invalid JSON: Expecting property name enclosed in double quotes (column 2)"]


# -- history -------------------------------------------------------------------------------------
@pytest.fixture
def history(com, memory, monkeypatch):
    """Three ingests on three days: t1 passes, then fails, then is fixed while t2 starts failing."""
    shas = []
    for day, lines in [
        ("2026-11-01T12:00:00Z", [result("t1", "passed", "2026-11-01T10:00:00Z"), result("t2", "passed", "2026-11-01T10:00:00Z")]),
        ("2026-11-02T12:00:00Z", [result("t1", "failed", "2026-11-02T10:00:00Z", error_message="boom")]),
        ("2026-11-03T12:00:00Z", [result("t1", "passed", "2026-11-03T10:00:00Z"), result("t2", "failed", "2026-11-03T10:00:00Z")]),
    ]:
        monkeypatch.setenv("GIT_COMMITTER_DATE", day)
        shas.append(ingest_lines(com, *lines)["commit"])
    monkeypatch.delenv("GIT_COMMITTER_DATE")
    return shas


def test_log_shows_commits_newest_first_with_counts(com, history, memory):
    commits = json.loads(com("log", "--json").stdout)["commits"]
    assert [c["commit"] for c in commits] == history[::-1]
    assert [c["added"] for c in commits] == [2, 1, 2]
    assert commits[0]["ts"] == "2026-11-03T12:00:00Z"
    assert len(json.loads(com("log", "-n", "2", "--json").stdout)["commits"]) == 2
    assert [c["commit"] for c in json.loads(com("log", history[1], "--json").stdout)["commits"]] == history[1::-1]
    git_log = git("--git-dir", memory.journal_path, "log", "--format=%H").split()
    assert git_log == history[::-1]
    human = com("log").stdout
    assert history[2][:10] in human and "+2" in human


def test_show_lists_the_events_a_commit_added(com, history, memory):
    shown = json.loads(com("show", "HEAD~1", "--json").stdout)
    assert shown["commit"] == history[1]
    assert [(e["data"]["test_id"], e["data"]["status"]) for e in shown["events"]] == [("t1", "failed")]
    assert "commit " + history[1] in com("show", history[1]).stdout
    assert "events/shop/2026-11-02/" in git("--git-dir", memory.journal_path, "show", "--stat", history[1])


def test_diff_reports_added_events_and_new_failures_and_fixes(com, history):
    d = json.loads(com("diff", history[0], history[1], "--json").stdout)
    assert d["from"] == history[0] and d["to"] == history[1]
    assert len(d["added"]) == 1 and d["removed"] == []
    assert {k: d["summary"][k] for k in ("newly_failing", "fixed")} == {"newly_failing": ["t1"], "fixed": []}
    d = json.loads(com("diff", "HEAD~1", "--json").stdout)
    assert {k: d["summary"][k] for k in ("newly_failing", "fixed")} == {"newly_failing": ["t2"], "fixed": ["t1"]}
    # the whole history between the two snapshots, not one commit
    d = json.loads(com("diff", history[0], history[2], "--json").stdout)
    assert len(d["added"]) == 3
    assert {k: d["summary"][k] for k in ("newly_failing", "fixed")} == {"newly_failing": ["t2"], "fixed": []}
    # backwards: what the older snapshot lacks shows as removed
    d = json.loads(com("diff", history[2], history[0], "--json").stdout)
    assert len(d["removed"]) == 3 and d["added"] == []
    assert "newly failing (1):" in com("diff", "HEAD~1").stdout


def test_events_filters(com, history):
    assert count_events(com) == 5
    assert count_events(com, "--test", "t1") == 3
    assert count_events(com, "--status", "failed") == 2
    assert count_events(com, "--type", "test_failure") == 2  # the seed's type name still works
    assert count_events(com, "--since", "2026-11-02") == 3
    assert count_events(com, "--until", "2026-11-01T23:00:00Z") == 2
    assert count_events(com, "--project", "web") == 0
    events = json.loads(com("events", "--limit", "2", "--json").stdout)["events"]
    assert [e["ts"] for e in events] == ["2026-11-03T10:00:00Z", "2026-11-03T10:00:00Z"]


def test_time_travel_by_rev_and_by_date(com, history):
    assert count_events(com, "--at", history[0]) == 2
    assert count_events(com, "--at", "HEAD~1") == 3
    assert count_events(com, "--at", "2026-11-02T12:30:00Z") == 3
    assert count_events(com, "--at", "2026-11-02") == 3  # a bare date: the end of that day
    assert count_events(com, "--at", "2026-11-01T12:00:00Z") == 2
    r = com("events", "--at", "2026-10-01")
    assert r.exit_code == 2 and "no journal commit at or before 2026-10-01" in r.stderr
    assert com("tag", "before-fix", "HEAD~1", "-m", "t1 broken").exit_code == 0
    assert count_events(com, "--at", "before-fix") == 3
    assert len(json.loads(com("log", "--at", "before-fix", "--json").stdout)["commits"]) == 2


def test_branches_switch_and_separate_histories(com, history, memory):
    assert com("branch", "experiment", "HEAD~2").exit_code == 0
    branches = json.loads(com("branch", "--json").stdout)
    assert {b["name"]: b["current"] for b in branches["branches"]} == {"experiment": False, "main": True}
    assert com("switch", "experiment").exit_code == 0
    assert git("--git-dir", memory.journal_path, "symbolic-ref", "HEAD").strip() == "refs/heads/experiment"
    assert count_events(com) == 2
    ingest_lines(com, result("t9", "failed", "2026-11-04T10:00:00Z"))
    assert count_events(com) == 3
    assert count_events(com, "--at", "main") == 5
    d = json.loads(com("diff", "main", "experiment", "--json").stdout)
    assert len(d["added"]) == 1 and len(d["removed"]) == 3
    r = com("branch", "-d", "experiment")
    assert r.exit_code == 2 and "current branch" in r.stderr
    com("switch", "main")
    assert com("branch", "-d", "experiment").exit_code == 0
    assert "experiment" not in git("--git-dir", memory.journal_path, "branch")
    r = com("switch", "nope")
    assert r.exit_code == 2 and "not found" in r.stderr


def test_tags_annotated_lightweight_list_and_delete(com, history, memory):
    assert com("tag", "light", "HEAD~2").exit_code == 0
    assert com("tag", "release", "-m", "release 1.0").exit_code == 0
    tags = json.loads(com("tag", "--json").stdout)["tags"]
    assert tags == [
        {"name": "light", "commit": history[0], "message": ""},
        {"name": "release", "commit": history[2], "message": "release 1.0"},
    ]
    assert git("--git-dir", memory.journal_path, "cat-file", "-t", "release").strip() == "tag"
    assert git("--git-dir", memory.journal_path, "cat-file", "-t", "light").strip() == "commit"
    assert com("tag", "-d", "light").exit_code == 0
    assert [t["name"] for t in json.loads(com("tag", "--json").stdout)["tags"]] == ["release"]
    assert com("tag", "-d", "light").exit_code == 2


def test_analysis_commit_records_message_and_events_without_new_events(com, history, memory):
    failing = json.loads(com("events", "--status", "failed", "--json").stdout)["events"]
    ids = [e["id"] for e in failing]
    r = com("commit", "-m", "root cause: flaky network in t1", "--event", ids[0], "--event", ids[1], "--json")
    assert r.exit_code == 0, r.stderr
    sha = json.loads(r.stdout)["commit"]
    shown = json.loads(com("show", sha, "--json").stdout)
    assert shown["about"] == ids and shown["events"] == [] and shown["added"] == 0
    assert "root cause" in git("--git-dir", memory.journal_path, "log", "-1", "--format=%B")
    assert count_events(com) == 5
    r = com("commit", "-m", "x", "--event", "evt_000000000000000000000000")
    assert r.exit_code == 2 and "unknown event id" in r.stderr
    assert head(memory) == sha


def test_empty_journal_reads_as_nothing(com, memory):
    assert json.loads(com("log", "--json").stdout) == {"commits": []}
    assert json.loads(com("events", "--json").stdout) == {"events": [], "total": 0, "more": False}
    r = com("show")
    assert r.exit_code == 2 and "no commits yet" in r.stderr


def test_cli_start_up_imports_no_heavy_library():
    import sys

    out = subprocess.run([sys.executable, "-X", "importtime", "-c", "import com.cli.app"], capture_output=True, text=True)
    imported = {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in out.stderr.splitlines() if "|" in line}
    assert "typer" in imported  # the probe really sees imports
    assert not imported & {"torch", "sentence_transformers", "lancedb", "pyarrow", "llama_cpp", "tiktoken", "pandas", "numpy"}


def test_nan_in_jsonl_is_refused(com, memory):
    r = com("ingest", "-", input='{"type":"note","project":"p","data":{"x":NaN}}\n')
    assert r.exit_code == 2 and "line 1: field 'data': cannot be stored as JSON" in r.stderr


def test_stale_ref_lock_is_one_clear_line(com, memory):
    ingest_lines(com, result("t0", "passed", "2026-11-01T10:00:00Z"))
    lock = memory.journal_path / "refs" / "heads" / "main.lock"
    lock.write_text("")
    r = com("ingest", "-p", "shop", "-t", "note")
    assert r.exit_code == 2
    assert "com fsck --repair" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_events_for_a_test_id_with_non_ascii_and_a_longer_namesake(com, memory):
    ingest_lines(
        com,
        result("tests/test_ü.py::test_größe", "failed", "2026-11-01T10:00:00Z"),
        result("tests/test_ü.py::test_größe_2", "passed", "2026-11-01T10:00:00Z"),
        result("tests/test_ü.py::test_größe", "passed", "2026-11-02T10:00:00Z"),
    )
    events = json.loads(com("events", "--test", "tests/test_ü.py::test_größe", "--json").stdout)["events"]
    assert [e["data"]["status"] for e in events] == ["passed", "failed"]


def test_a_command_ends_without_teardown_but_runs_exit_handlers_and_waits_for_threads(tmp_path):
    """`com` leaves with os._exit once a command is done (interpreter teardown was a tenth of `com diff`): the exit
    code, the whole output, exit handlers and unfinished threads must survive that."""
    import sys

    probe = tmp_path / "probe"
    code = (
        "import atexit, sys, threading, time\n"
        "from com.cli import main\n"
        f"probe = {str(probe)!r}\n"
        "def late(): time.sleep(0.2); open(probe + '.thread', 'w').write('done')\n"
        "threading.Thread(target=late).start()\n"
        "atexit.register(lambda: open(probe + '.atexit', 'w').write('ran'))\n"
        "sys.stdout.write('x' * 200000)\n"  # more than a pipe holds: flushed before the process ends
        "sys.argv = ['com', *sys.argv[1:]]\n"
        "main()\n"
    )
    ok = subprocess.run([sys.executable, "-c", code, "--version"], capture_output=True, text=True)
    assert ok.returncode == 0 and ok.stdout.startswith("x" * 200000) and ok.stdout.rstrip().endswith(
        __import__("com").__version__)
    assert (tmp_path / "probe.atexit").read_text() == "ran" and (tmp_path / "probe.thread").read_text() == "done"
    bad = subprocess.run([sys.executable, "-c", code, "no-such-verb"], capture_output=True, text=True)
    assert bad.returncode == 2 and "no such command 'no-such-verb'" in bad.stderr
