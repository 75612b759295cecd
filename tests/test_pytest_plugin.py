"""The pytest plugin: a real pytest run (with pytest-rerunfailures) of a small sample project records every
outcome and attempt as ONE journal commit; without --com it does nothing; it never fails the run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conftest import git, run_com

SAMPLE = {
    "tests/conftest.py": """
        import os, sys
        import pytest

        @pytest.fixture
        def broken_setup():
            raise RuntimeError("database is down")

        @pytest.fixture
        def broken_teardown():
            yield
            raise OSError("could not clean up")

        def pytest_sessionfinish(session):
            # Lets the test see whether the com plugin imported pygit2 in a run that did not ask for it.
            probe = os.environ.get("SAMPLE_PROBE")
            if probe:
                with open(probe, "w") as fh:
                    fh.write(" ".join(m for m in ("pygit2", "com.journal", "com.events") if m in sys.modules))
    """,
    "tests/test_shop.py": """
        import os
        from pathlib import Path
        import pytest

        COUNTER = Path(os.environ["SAMPLE_COUNTER"])

        def test_pass():
            assert 1 + 1 == 2

        def test_flaky():
            # Fails on its first run in a session, passes on the rerun.
            runs = int(COUNTER.read_text()) if COUNTER.exists() else 0
            COUNTER.write_text(str(runs + 1))
            assert runs >= 1, "first run fails"

        def test_always_fails():
            print("about to fail: 2 × 2 ≠ 5")
            assert 2 * 2 == 5, "arithmetic is broken"

        @pytest.mark.flaky(reruns=0)
        def test_setup_error(broken_setup):
            pass

        @pytest.mark.flaky(reruns=0)
        def test_teardown_error(broken_teardown):
            pass

        @pytest.mark.skip(reason="not ready")
        def test_skipped():
            pass

        @pytest.mark.xfail(reason="known bug")
        def test_xfail():
            assert False

        @pytest.mark.parametrize("n", [1, 2])
        def test_param(n, record_property):
            record_property("n", n)
            assert n > 0

        class TestCart:
            def test_total(self):
                assert sum([1, 2]) == 3
    """,
}


@pytest.fixture
def sample(tmp_path):
    """A code repository with a small test suite and a com memory; returns (root, head sha)."""
    root = tmp_path / "shop"
    for rel, text in SAMPLE.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    (root / "pytest.ini").write_text("[pytest]\naddopts = -p no:cacheprovider\n")
    git("init", "-q", "-b", "main", cwd=root)
    git("add", "-A", cwd=root)
    git("commit", "-q", "-m", "shop", cwd=root)
    return root, git("rev-parse", "HEAD", cwd=root).strip()


def run_pytest(root: Path, *args: str, env: dict | None = None):
    counter = root.parent / "counter"
    counter.unlink(missing_ok=True)
    full_env = {**os.environ, "SAMPLE_COUNTER": str(counter), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", *args],
        cwd=root, env=full_env, capture_output=True, text=True, timeout=300,
    )


def journal_log(root: Path) -> list[str]:
    out = git("--git-dir", str(root / ".com" / "journal.git"), "log", "--format=%s", check=False)
    return out.splitlines()


def recorded(root: Path) -> list[dict]:
    r = run_com("events", "--json", "-n", "0", cwd=root)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)["events"]


def test_session_with_reruns_is_one_commit_with_every_attempt(sample):
    root, head = sample
    assert run_com("init", cwd=root).returncode == 0
    r = run_pytest(root, "--reruns", "2", "--com")
    assert r.returncode == 1, r.stdout + r.stderr  # the tests' own verdict, untouched
    assert "com: recorded 10 tests: 5 passed, 1 failed, 2 errors, 1 skipped, 1 xfailed; 3 reruns, 1 passed on rerun (flaky)" in r.stdout

    log = journal_log(root)
    assert len(log) == 1 and log[0].startswith("pytest: 13 results")
    files = git("--git-dir", str(root / ".com" / "journal.git"), "ls-tree", "-r", "--name-only", "HEAD").split()
    assert len(files) == 1 and files[0].startswith("events/shop/")

    events = recorded(root)
    attempts = sorted(
        (e["data"]["test_id"], e["data"]["attempt"], e["data"]["status"], e["data"].get("phase")) for e in events
    )
    assert attempts == [
        ("tests/test_shop.py::TestCart::test_total", 1, "passed", None),
        ("tests/test_shop.py::test_always_fails", 1, "failed", None),
        ("tests/test_shop.py::test_always_fails", 2, "failed", None),
        ("tests/test_shop.py::test_always_fails", 3, "failed", None),
        ("tests/test_shop.py::test_flaky", 1, "failed", None),
        ("tests/test_shop.py::test_flaky", 2, "passed", None),
        ("tests/test_shop.py::test_param[1]", 1, "passed", None),
        ("tests/test_shop.py::test_param[2]", 1, "passed", None),
        ("tests/test_shop.py::test_pass", 1, "passed", None),
        ("tests/test_shop.py::test_setup_error", 1, "error", "setup"),
        ("tests/test_shop.py::test_skipped", 1, "skipped", None),
        ("tests/test_shop.py::test_teardown_error", 1, "error", "teardown"),
        ("tests/test_shop.py::test_xfail", 1, "xfailed", None),
    ]
    by = {(e["data"]["test_id"], e["data"]["attempt"]): e for e in events}
    flaky_fail = by[("tests/test_shop.py::test_flaky", 1)]["data"]
    assert flaky_fail["error_message"] == "AssertionError: first run fails\nassert 0 >= 1"
    assert flaky_fail["error_type"] == "AssertionError"
    failed = by[("tests/test_shop.py::test_always_fails", 3)]["data"]
    # This attempt's output only, not the earlier attempts' too; non-ASCII text crosses to the writer intact.
    assert failed["stdout"] == "about to fail: 2 × 2 ≠ 5"
    assert failed["error_message"].startswith("AssertionError: arithmetic is broken")
    setup = by[("tests/test_shop.py::test_setup_error", 1)]["data"]
    assert setup["error_message"] == "RuntimeError: database is down"
    assert setup["error_type"] == "RuntimeError"
    assert by[("tests/test_shop.py::test_teardown_error", 1)]["data"]["error_type"] == "OSError"
    assert by[("tests/test_shop.py::test_skipped", 1)]["data"]["skip_reason"] == "not ready"
    xfail = by[("tests/test_shop.py::test_xfail", 1)]["data"]
    assert xfail["xfail_reason"] == "known bug" and "skip_type" not in xfail
    assert by[("tests/test_shop.py::test_param[2]", 1)]["data"]["properties"] == {"n": "2"}
    cart = by[("tests/test_shop.py::TestCart::test_total", 1)]["data"]
    assert (cart["file"], cart["classname"], cart["name"]) == ("tests/test_shop.py", "tests.test_shop.TestCart", "test_total")
    source = (root / "tests" / "test_shop.py").read_text().splitlines()
    assert source[cart["line"] - 1].strip() == "def test_total(self):"  # 1-based, like an editor
    assert isinstance(cart["duration_ms"], (int, float)) and cart["duration_ms"] >= 0

    assert {e["data"]["commit"] for e in events} == {head}
    assert {e["data"]["branch"] for e in events} == {"main"}
    assert len({e["data"]["run_id"] for e in events}) == 1
    assert {e["source"] for e in events} == {"pytest"}
    assert {e["project"] for e in events} == {"shop"}  # the code repository's folder name


def test_com_record_variable_without_reruns_and_a_collection_error(sample):
    """Without reruns: one attempt per test; COM_RECORD=1 switches recording on; a module that cannot be
    imported is recorded as an error of that file."""
    root, _ = sample
    (root / "tests" / "test_broken.py").write_text("import no_such_module\n")
    assert run_com("init", cwd=root).returncode == 0
    r = run_pytest(root, "--com-project", "web", "--continue-on-collection-errors", env={"COM_RECORD": "1"})
    assert r.returncode == 1
    events = recorded(root)
    assert len(events) == 11
    assert {e["project"] for e in events} == {"web"}
    statuses = sorted(e["data"]["status"] for e in events)
    assert statuses == ["error", "error", "error", "failed", "failed", "passed", "passed", "passed", "passed",
                        "skipped", "xfailed"]
    (broken,) = [e["data"] for e in events if e["data"]["test_id"] == "tests/test_broken.py"]
    assert (broken["status"], broken["phase"], broken["error_type"]) == ("error", "collect", "ModuleNotFoundError")
    assert broken["error_message"] == "ModuleNotFoundError: No module named 'no_such_module'"
    assert {e["data"]["attempt"] for e in events} == {1}
    assert len(journal_log(root)) == 1


def test_plugin_does_nothing_unless_asked(sample):
    root, _ = sample
    assert run_com("init", cwd=root).returncode == 0
    probe = root.parent / "probe"
    r = run_pytest(root, "--reruns", "1", env={"SAMPLE_PROBE": str(probe)})
    assert r.returncode == 1
    assert "com:" not in r.stdout + r.stderr
    assert journal_log(root) == []
    assert probe.read_text() == ""  # not even pygit2 or com's event module were imported


def test_recording_failure_warns_and_never_changes_the_outcome(sample):
    root, _ = sample  # no `com init`: there is no memory to record into
    r = run_pytest(root, "--com")
    assert r.returncode == 1  # the tests' verdict, as without the plugin
    assert "com: warning: test results not recorded: no com memory here" in r.stdout
    ok = run_pytest(root, "--com", "-k", "test_pass or TestCart")
    assert ok.returncode == 0
    assert "com: warning: test results not recorded" in ok.stdout


def test_plugin_import_is_light():
    code = "import sys, com.ingest.pytest_plugin; print(sorted(m for m in ('pygit2', 'com.journal', 'sqlite3') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_writer_without_the_end_marker_writes_nothing(sample):
    """A test process that dies mid-session closes the writer's input without the end marker."""
    root, _ = sample
    assert run_com("init", cwd=root).returncode == 0
    args = json.dumps({"memory": None, "cwd": str(root), "rootpath": str(root), "project": None, "started": 0})
    from com.ingest.pytest_plugin import WRITER_CODE as code
    line = json.dumps({"test_id": "tests/test_shop.py::test_pass", "status": "passed", "duration_ms": 1})
    cut = subprocess.run([sys.executable, "-c", code, args], input=line + "\n", cwd=root,
                         capture_output=True, text=True, timeout=60)
    assert (cut.returncode, cut.stdout) == (0, "")
    assert journal_log(root) == []
    done = subprocess.run([sys.executable, "-c", code, args], input=line + '\n{"__end__": true}\n', cwd=root,
                          capture_output=True, text=True, timeout=60)
    answer = json.loads(done.stdout)
    assert (answer["ok"], answer["added"], answer["summary"]) == (True, 1, "1 passed")
    assert journal_log(root) == ["pytest: 1 result (1 passed) in shop"]


def test_writer_records_the_others_when_one_result_cannot_be_stored(sample):
    """One bad result (here an unknown status) is named in the answer; the session's other results are written."""
    root, _ = sample
    assert run_com("init", cwd=root).returncode == 0
    args = json.dumps({"memory": None, "cwd": str(root), "rootpath": str(root), "project": None, "started": 0})
    from com.ingest.pytest_plugin import WRITER_CODE as code
    good = json.dumps({"test_id": "tests/test_shop.py::test_pass", "status": "passed", "seconds": 0.001})
    bad = json.dumps({"test_id": "tests/test_shop.py::test_odd", "status": "exploded", "seconds": 0.001})
    run = json.dumps({"__run__": {"random_seed": 7, "random_plugin": "pytest-randomly"}})
    done = subprocess.run([sys.executable, "-c", code, args], input="\n".join([run, bad, good, '{"__end__": true}']) + "\n",
                          cwd=root, capture_output=True, text=True, timeout=60)
    answer = json.loads(done.stdout)
    assert (answer["ok"], answer["added"]) == (True, 1)
    assert answer["skipped"] == ["the result of 'tests/test_shop.py::test_odd' was not recorded: field 'data.status': "
                                 "unknown status 'exploded' (expected passed, failed, error, skipped, xfailed, xpassed)"]
    (event,) = recorded(root)
    assert (event["data"]["test_id"], event["data"]["random_seed"]) == ("tests/test_shop.py::test_pass", 7)


def test_writer_started_without_site_falls_back_to_the_usual_start_up(sample):
    """The plugin starts its writer with -S and the paths it needs; paths that are not enough (here only
    com's folder, no site-packages for pygit2) mean the usual start-up, not a lost session."""
    root, _ = sample
    assert run_com("init", cwd=root).returncode == 0
    args = json.dumps({"memory": None, "cwd": str(root), "rootpath": str(root), "project": None, "started": 0})
    from com.ingest.pytest_plugin import WRITER_CODE as code, _writer_paths
    line = json.dumps({"test_id": "tests/test_shop.py::test_pass", "status": "passed", "seconds": 0.001})
    for paths in (_writer_paths()[:1], _writer_paths()):
        done = subprocess.run([sys.executable, "-S", "-c", code, args, json.dumps(paths)],
                              input=line + '\n{"__end__": true}\n', cwd=root, capture_output=True, text=True, timeout=60)
        assert json.loads(done.stdout)["ok"] is True, done.stderr


def test_writer_paths_are_enough_for_the_fast_start_up():
    """With -S and `_writer_paths()` alone, the writer's first imports are found: no fallback to site."""
    from com.ingest.pytest_plugin import WRITER_IMPORTS, _writer_paths

    probe = f"import sys, json; sys.path[:0] = json.loads(sys.argv[1]); import {WRITER_IMPORTS}; print('site' in sys.modules)"
    done = subprocess.run([sys.executable, "-S", "-c", probe, json.dumps(_writer_paths())], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="finds the writer process through /proc")
def test_pytest_returns_once_the_session_is_committed_not_after_the_views(sample):
    """The writer answers once the session's journal commit exists, before it brings com's views up to date:
    with the test-results view locked by another process, pytest still returns at once and the run is in the
    journal (a `com` command right after sees it); the writer's catch-up finishes once the lock goes."""
    import sqlite3

    root, _ = sample
    assert run_com("init", cwd=root).returncode == 0
    assert run_pytest(root, "--com", "tests/test_shop.py::test_pass").returncode == 0  # the views exist
    for _ in range(600):  # once that run's writer has taken it into them (after pytest ended)
        if not _writers_in(root):
            break
        time.sleep(0.1)
    lock = sqlite3.connect(root / ".com" / "cache" / "results.sqlite", isolation_level=None)
    lock.execute("BEGIN IMMEDIATE")  # the writer's catch-up would wait up to a minute for this
    try:
        r = run_pytest(root, "--com", "tests/test_shop.py::test_pass", "tests/test_shop.py::TestCart")
        assert r.returncode == 0, r.stdout + r.stderr
        assert "com: recorded 2 tests: 2 passed in journal commit" in r.stdout
        assert journal_log(root)[0] == "pytest: 2 results (2 passed) in shop"
        (writer,) = _writers_in(root)  # still waiting for the lock: pytest did not wait for it
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    for _ in range(600):  # it finishes once the lock goes
        if not _writers_in(root):
            break
        time.sleep(0.1)
    head = git("--git-dir", str(root / ".com" / "journal.git"), "rev-parse", "HEAD").strip()
    seen = sqlite3.connect(root / ".com" / "cache" / "results.sqlite")
    assert seen.execute("SELECT 1 FROM commits WHERE sha=?", (head,)).fetchone() is not None  # the writer's catch-up
    seen.close()
    assert sorted(e["data"]["test_id"] for e in recorded(root)) == [
        "tests/test_shop.py::TestCart::test_total", "tests/test_shop.py::test_pass", "tests/test_shop.py::test_pass"]


def _writers_in(root: Path) -> list[int]:
    """The pytest plugin's writer processes working in `root` (Linux /proc)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if b"writer_main" in (entry / "cmdline").read_bytes() and os.readlink(entry / "cwd") == str(root):
                    pids.append(int(entry.name))
            except OSError:
                pass
    return pids


def test_the_summary_line_comes_before_pytests_own_last_line_and_without_a_terminal_summary(sample):
    """The answer is awaited in the terminal summary (while pytest wrote its failures, the writer committed):
    the line is said before pytest's final line; with --no-summary or no terminal it is still said."""
    root, _ = sample
    assert run_com("init", cwd=root).returncode == 0
    r = run_pytest(root, "--com", "tests/test_shop.py::test_always_fails", "tests/test_shop.py::test_pass")
    lines = r.stdout.splitlines()
    (at,) = [i for i, line in enumerate(lines) if line.startswith("com: recorded 2 tests: 1 passed, 1 failed in journal")]
    assert at > lines.index(next(l for l in lines if "FAILURES" in l)) and lines[-1].startswith("1 failed, 1 passed")
    quiet = run_pytest(root, "--com", "--no-summary", "tests/test_shop.py::test_pass")
    assert "com: recorded 1 test: 1 passed in journal commit" in quiet.stdout
    bare = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:randomly", "-p", "no:terminal", "--com",
                           "tests/test_shop.py::test_pass"], cwd=root, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "SAMPLE_COUNTER": str(root.parent / "counter")})
    assert bare.returncode == 0 and "com: recorded 1 test: 1 passed in journal commit" in bare.stderr
    assert len(journal_log(root)) == 3


# -- what makes the plugin cheap keeps what it records ----------------------------------------------------
from hypothesis import given, settings, strategies as st  # noqa: E402


@settings(max_examples=300, deadline=None)
@given(test_id=st.text(), seconds=st.floats() | st.integers(), line=st.integers(-2**70, 2**70) | st.none() | st.booleans())
def test_a_passed_attempts_line_is_the_encoders_byte_for_byte(test_id, seconds, line):
    """The common attempt's line is formatted directly; it is exactly what the Recorder's JSON encoder makes, or
    None (then the encoder makes it) — and None only when a value is not plain (an id with other than ASCII, a
    duration that is not a finite float, a line that is not an int)."""
    from com.ingest import pytest_plugin as plugin

    plugin._bind_helpers()
    data = {"test_id": test_id, "status": "passed", "seconds": seconds, "line": line}
    encoded = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str).encode(data)
    quick = plugin._passed_line(data)
    plain = (test_id.isascii() and type(seconds) is float and seconds not in (float("inf"), float("-inf"))
             and seconds == seconds and type(line) is int)
    assert quick == (encoded if plain else None)


class _Pipe:
    def __init__(self):
        self.text = ""

    def write(self, text):
        self.text += text

    def flush(self):
        pass

    def close(self):
        pass


class _Config:
    """What a Recorder asks of pytest's config."""

    def __init__(self, writer):
        self._com_writer = (writer, 0.0)
        self.option = type("Options", (), {})()

    def get_verbosity(self, *_):
        return 0

    def getoption(self, *_args, **_kwargs):
        return None


def _reports():
    """A session's reports as pytest hands them over: passes, a failure, a setup error, a rerun, an attempt that
    never reported its teardown, captured output, a module that failed to import, and enough passes to cross
    several batches."""
    from _pytest.reports import CollectReport, TestReport

    def attempt(nodeid, outcomes=("passed", "passed", "passed"), sections=(), longrepr=None, line=3):
        out = []
        for when, outcome in zip(("setup", "call", "teardown"), outcomes):
            out.append(TestReport(nodeid, ("tests/test_a.py", line, nodeid.split("::")[-1]), {}, outcome,
                                  longrepr if outcome in ("failed", "rerun") else None, when,
                                  sections=sections if when == "teardown" else (), duration=0.001 * line))
        return out

    reports = [CollectReport("tests/test_broken.py", "failed", "ImportError: no module named nowhere", None)]
    for n in range(40):
        reports += attempt(f"tests/test_a.py::test_{n}", line=n)
    reports += attempt("tests/test_a.py::test_fails", ("passed", "failed", "passed"), longrepr="AssertionError: no")
    reports += attempt("tests/test_a.py::test_setup", ("failed", "passed"), longrepr="RuntimeError: down")[:1]
    reports += attempt("tests/test_a.py::test_setup", ("failed", "passed"), longrepr="RuntimeError: down")[2:]
    reports += attempt("tests/test_a.py::test_rerun", ("passed", "rerun", "passed"), longrepr="AssertionError: once")
    reports += attempt("tests/test_a.py::test_rerun")
    reports += attempt("tests/test_a.py::test_cut")[:2]  # no teardown: its next attempt starts
    reports += attempt("tests/test_a.py::test_cut")
    reports += attempt("tests/test_a.py::test_out", sections=[("Captured stdout call", "hello\n")])
    reports += attempt("tests/test_a.py::test_unicode_é")
    for n in range(40, 60):
        reports += attempt(f"tests/test_a.py::test_{n}", line=n)
    reports += attempt("tests/test_a.py::test_last")[:2]  # the session ended during it
    return reports


@pytest.mark.parametrize("every", [2, 7, 600])
def test_reports_taken_in_batches_make_the_lines_taken_one_at_a_time(monkeypatch, every):
    """The Recorder keeps reports and groups them into attempts in batches: the lines it sends, its counts and
    what it finds unfinished are those of taking each report as it comes (a batch of one)."""
    from _pytest.reports import CollectReport

    from com.ingest import pytest_plugin as plugin

    def session(size):
        monkeypatch.setattr(plugin, "_TAKE_EVERY", size)
        writer = type("Writer", (), {"stdin": _Pipe()})()
        recorder = plugin.Recorder(_Config(writer))
        for report in _reports():
            if isinstance(report, CollectReport):
                recorder.pytest_collectreport(report)
            else:
                recorder.pytest_runtest_logreport(report)
        recorder.pytest_sessionfinish(None, 1)
        assert recorder.problem is None
        return writer.stdin.text, recorder.counts.summary(), recorder.unfinished

    one = session(1)
    lines = one[0].splitlines()
    assert len(lines) == 1 + 40 + 1 + 1 + 2 + 2 + 1 + 1 + 20 + 1 + 1  # every attempt, then the end marker
    assert lines[-1] == plugin._END
    assert one == session(every)


def test_the_writer_takes_the_session_into_the_views_once_the_test_process_has_ended(sample):
    """The writer answers once the commit exists, then waits for the end of the test process named in its
    arguments before it brings com's views up to date (pytest's own end does not share the CPU with that)."""
    import sqlite3

    root, _ = sample
    assert run_com("init", cwd=root).returncode == 0
    from com.ingest.pytest_plugin import WRITER_CODE

    test_process = textwrap.dedent('''
        import json, os, subprocess, sys
        code, root = sys.argv[1], sys.argv[2]
        args = json.dumps({"memory": None, "cwd": root, "rootpath": root, "project": None, "started": 0,
                           "test_process": os.getpid()})
        writer = subprocess.Popen([sys.executable, "-c", code, args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  text=True)
        line = json.dumps({"test_id": "tests/test_shop.py::test_pass", "status": "passed", "seconds": 0.001})
        writer.stdin.write(line + '\\n{"__end__": true}\\n')
        writer.stdin.close()
        print(writer.stdout.readline().strip(), flush=True)
        sys.stdin.readline()  # ends when told to
    ''')
    parent = subprocess.Popen([sys.executable, "-c", test_process, WRITER_CODE, str(root)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, cwd=root)
    views = root / ".com" / "cache" / "results.sqlite"

    def seen() -> bool:
        try:
            db = sqlite3.connect(f"file:{views}?mode=ro", uri=True)
            try:
                return db.execute("SELECT 1 FROM commits WHERE sha=?", (answer["commit"],)).fetchone() is not None
            finally:
                db.close()
        except sqlite3.OperationalError:  # not made yet
            return False

    try:
        answer = json.loads(parent.stdout.readline())
        assert answer["ok"] and answer["added"] == 1
        assert not seen()
        time.sleep(1.5)  # the writer has had ample time: it waits for the test process
        assert not seen()
    finally:
        parent.communicate("\n", timeout=60)
    for _ in range(600):
        if seen():
            break
        time.sleep(0.1)
    assert seen()


def test_a_result_the_recording_refuses_means_no_commit(sample, monkeypatch):
    """An id that comes again with other content is refused when it arrives (the recording checks each result
    as it spools it); as with `Memory.record` of them all, the session is then not written."""
    import com.model.event as event_module
    from com.ingest.pytest_plugin import _WriterSession
    from com.model.errors import ComError

    root, _ = sample
    assert run_com("init", cwd=root).returncode == 0
    real = event_module.validate
    monkeypatch.setattr(event_module, "validate", lambda raw, **kw: real({**raw, "id": "evt_" + "b" * 24}, **kw))
    session = _WriterSession({"memory": None, "cwd": str(root), "rootpath": str(root), "project": None, "started": 0})
    try:
        session.add({"test_id": "tests/test_shop.py::test_pass", "status": "passed", "seconds": 0.001})
        session.add({"test_id": "tests/test_shop.py::test_flaky", "status": "failed", "seconds": 0.002})
        with pytest.raises(ComError, match="appears twice in the input with different content"):
            session.write()
    finally:
        session.close()
    assert journal_log(root) == []
