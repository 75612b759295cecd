"""pytest plugin: with --com (or COM_RECORD=1), record every test outcome of the session as ONE journal commit.

pytest loads this module in every run of the environment (entry point pytest11), so importing it costs
nothing (not even pytest's own hook markers): it does nothing unless asked. When asked, it starts a writer
process as soon as pytest knows its options (`writer_main`), which imports the journal (pygit2), finds the
memory and catches up the catalog while pytest collects and the tests run, on another core; each finished
attempt is streamed to it (and spooled there as it arrives), and at the end of the session it writes one
commit and answers; once pytest has ended it takes the commit into com's derived views, which nobody waits
for. The end is handed over at sessionfinish and the answer awaited in the terminal summary, so the commit is
made while pytest writes its own summary; pytest still returns only once the session is in the journal. The
test process itself only turns reports into plain data, a batch at a time (what each status means:
com.ingest.outcome, the same definition JUnit ingest follows).

Recording never fails the test run: any problem becomes one warning line and pytest exits as it would have."""

from __future__ import annotations

import os

_TRUE = ("1", "true", "yes", "on")
_END = '{"__end__": true}'
_FLUSH_EVERY = 250  # attempts per write to the writer's pipe
_TAKE_EVERY = 600  # reports kept before they are looked at (a test makes three)
WRITER_TIMEOUT = 600  # seconds the session waits for its commit (another writer may hold the journal's lock)
CATCH_UP_DELAY = 10  # seconds the writer waits, after its answer, for the test process to end before the views


def pytest_addoption(parser):
    group = parser.getgroup("com", "record test results in the com journal")
    group.addoption(
        "--com", action="store_true", default=False,
        help="Record every test outcome of this session in the com journal (also: COM_RECORD=1).",
    )
    group.addoption(
        "--com-memory", default=None, metavar="PATH",
        help="The com memory folder; write --com-memory=PATH, with '=' (pytest chooses its rootdir and ini file "
        "before it knows this option, and would read a separate PATH as a test path). Default: $COM_DIR, else "
        "the nearest .com/ upwards from the working directory.",
    )
    group.addoption(
        "--com-project", default=None, metavar="NAME",
        help="Project of the recorded results; write --com-project=NAME (default: [tool.com] project, else the "
        "code repository's folder name).",
    )
    group.addoption(
        "--com-quarantine", action="store_true", default=False,
        help="Record (as --com), and let the session pass when every failure is of a test quarantined in the "
        "flaky registry and the results were recorded completely.",
    )
    group.addoption(
        "--com-select", default=None, metavar="REV",
        help="Run only the tests `com select --diff REV` selects, most likely to fail first (deselect the rest).",
    )


def pytest_collection_modifyitems(config, items):
    rev = config.getoption("com_select", None)
    if rev:  # the selection's logic: com.ops.select.collected_selection
        from com.ops.select import collected_selection

        chosen = collected_selection(items, rev, config.getoption("com_memory"), str(config.rootpath),
                                     worker=hasattr(config, "workerinput"))
        if chosen.deselected:
            config.hook.pytest_deselected(items=chosen.deselected)
        items[:] = chosen.keep
        config.get_terminal_writer().line(chosen.line)


def _enabled(config) -> bool:
    if config.getoption("com", False) or config.getoption("com_quarantine", False):
        return True
    return os.environ.get("COM_RECORD", "").strip().lower() in _TRUE


def _is_worker(config) -> bool:
    # pytest-xdist workers send their reports to the controller, which records them: one commit per session.
    return hasattr(config, "workerinput") or bool(os.environ.get("PYTEST_XDIST_WORKER"))


def pytest_load_initial_conftests(early_config, parser, args):
    # The earliest point at which pytest knows the options: the writer starts importing the journal
    # while pytest still loads conftests and collects, which is most of a small session.
    try:
        ns = early_config.known_args_namespace
        if _is_worker(early_config) or not (
            getattr(ns, "com", False) or os.environ.get("COM_RECORD", "").strip().lower() in _TRUE
        ):
            return
        import time

        started = time.time()
        early_config._com_writer = (_start_writer(early_config, started, ns), started)
    except Exception:  # noqa: BLE001 - the Recorder starts it (and reports a failure) at configure
        pass


def pytest_configure(config):
    if _is_worker(config):
        return
    try:
        enabled = _enabled(config)
    except Exception:
        return
    if enabled:
        recorder = Recorder(config)
        config.pluginmanager.register(recorder, "com-recorder")
        if config.getoption("com_quarantine", False):
            from com.ingest.quarantine import Gate

            config.pluginmanager.register(Gate(recorder), "com-quarantine")


_HOOK_LAST = {"wrapper": False, "hookwrapper": False, "optionalhook": False, "tryfirst": False, "trylast": True,
              "specname": None}
_VALUE_OPTIONS = ("--com-memory", "--com-project")


def _space_form_problem(config) -> str | None:
    """`--com-memory PATH` as two words: pytest chose its rootdir and ini file before com's options
    existed, reading PATH as a test path. Harmless when that changed nothing; else the warning to give."""
    args = [*config.invocation_params.args]
    addopts = os.environ.get("PYTEST_ADDOPTS")
    if addopts:
        import shlex

        try:
            args = shlex.split(addopts) + args
        except ValueError:
            pass
    spaced = [(args[i], args[i + 1]) for i in range(len(args) - 1) if args[i] in _VALUE_OPTIONS]
    if not spaced:
        return None
    values = {value for _, value in spaced}
    if not any(os.path.exists(v) for v in values):
        return None  # pytest only looks at arguments that exist as paths
    fix = " ".join(f"{option}={value}" for option, value in spaced)
    try:
        from _pytest.config.findpaths import determine_setup

        ns = config.known_args_namespace
        rootpath, inipath, *_ = determine_setup(
            inifile=ns.inifilename, override_ini=ns.override_ini,
            args=[a for a in ns.file_or_dir if a not in values], rootdir_cmd_arg=ns.rootdir or None,
            invocation_dir=config.invocation_params.dir,
        )
    except Exception:  # noqa: BLE001 - another pytest: say what to write without the comparison
        return f"write {fix} (with '='): pytest may have read the value as a test path when it chose its rootdir"
    if rootpath == config.rootpath and inipath == config.inipath:
        return None
    return (
        f"pytest read the value of {spaced[0][0]} as a test path before com's options existed, so it chose "
        f"rootdir {config.rootpath} and ini file {config.inipath} instead of {rootpath} and {inipath} "
        f"(that file's addopts and settings are not in effect); write {fix}"
    )


def _random_seed(config) -> dict:
    """The seed a test-ordering plugin chose for this run (pytest-randomly, pytest-random-order)."""
    for option, plugin in (("randomly_seed", "pytest-randomly"), ("random_order_seed", "pytest-random-order")):
        seed = getattr(config.option, option, None)
        if seed is not None and not isinstance(seed, bool) and str(seed) not in ("default", "last", "", "None"):
            return {"random_seed": seed if isinstance(seed, int) else str(seed), "random_plugin": plugin}
    return {}


_SURROGATE_RE = None
_json_string = _isfinite = None  # json's string encoder and math.isfinite


def _bind_helpers() -> None:
    """What the per-test path uses, imported when a Recorder starts (importing this module costs nothing)."""
    global _SURROGATE_RE, _json_string, _isfinite
    import json.encoder
    import math
    import re

    _SURROGATE_RE = re.compile("[\ud800-\udfff]")
    _json_string, _isfinite = json.encoder.encode_basestring, math.isfinite


def _clean_text(text: str) -> str:
    """Text that UTF-8 can store: a lone surrogate (os.fsdecode of a non-UTF-8 file name) becomes the
    byte it stands for, escaped (`caf\\xe9`), instead of failing the whole session's record."""
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _clean(value):
    if isinstance(value, str):
        return _clean_text(value)
    if isinstance(value, dict):
        return {_clean(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


class Recorder:
    """Turns each finished attempt into plain data and streams it to the writer process."""

    def __init__(self, config):
        import json
        import time

        from com.ingest.outcome import RunCounts

        _bind_helpers()
        self.config = config
        self.dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str).encode
        # nodeid -> [phase reports, subtest reports] of the attempt in progress. Subtest reports arrive
        # live, before the attempt's own reports when pytest-rerunfailures holds those back.
        self.running: dict[str, list] = {}
        self.sections_seen: dict[str, int] = {}
        self.reports: list = []  # reports not looked at yet (see `_take`)
        self.buffer: list[str] = []
        self.problem: str | None = None
        self.notes: list[str] = []
        self.unfinished = 0
        self.writer = None
        self.answer = None  # the writer's answer, once the session is recorded
        self._ended = False  # the end marker was sent
        self._said = False  # the answer was awaited and said
        try:
            verbosity = config.get_verbosity("verbosity_subtests")
        except Exception:  # noqa: BLE001 - a pytest without subtests
            verbosity = 0
        self.counts = RunCounts(count_passed_subtests=verbosity != 0)
        try:
            self.letters = config.get_verbosity() <= 0  # the terminal writes a letter per result, not a line
        except Exception:  # noqa: BLE001
            self.letters = True
        try:
            problem = _space_form_problem(config)
        except Exception:  # noqa: BLE001
            problem = None
        if problem:
            self.notes.append(problem)
            self._say(f"com: warning: {problem}")
        try:
            early = getattr(config, "_com_writer", None)
            self.writer = early[0] if early is not None else _start_writer(config, time.time())
        except Exception as exc:  # noqa: BLE001 - warn at the end, never fail the run
            self.problem = f"{type(exc).__name__}: {exc}"

    # -- while tests run ---------------------------------------------------------------------------
    def pytest_sessionstart(self, session):
        # Plugins that order tests at random choose their seed in pytest_configure: known by now.
        try:
            run = _random_seed(self.config)
            if run:
                self.buffer.append(self.dumps({"__run__": run}))
        except Exception:  # noqa: BLE001
            pass

    # Reports are kept as they come and looked at in batches (`_take`), in the order they came: one test's
    # hook call then costs an append, and a batch of them runs with its code and data in the CPU's caches
    # (the same work done one report at a time, between tests, costs about three times as much).
    def pytest_runtest_logreport(self, report):
        # Called after pytest's own hooks (trylast), which mark a test whose fixture subtests failed.
        try:
            if hasattr(report, "context") and type(report).__name__ == "SubtestReport":
                self._take()  # the reports before it first
                nodeid = report.nodeid
                entry = self.running.get(nodeid)
                if entry is None:
                    entry = self.running[nodeid] = [[], [], ""]
                entry[1].append(report)
                if self.letters:  # what the terminal wrote for it, maybe into the test's captured output
                    entry[2] += self.config.hook.pytest_report_teststatus(report=report, config=self.config)[1] or ""
                return
            self.reports.append(report)
            if len(self.reports) >= _TAKE_EVERY:
                self._take()
        except Exception as exc:  # noqa: BLE001
            self.problem = self.problem or f"{type(exc).__name__}: {exc}"

    pytest_runtest_logreport.pytest_impl = _HOOK_LAST  # type: ignore[attr-defined]

    def pytest_collectreport(self, report):
        # A test module that cannot be imported is an error of the tests it would have run.
        try:
            if report.failed and report.nodeid:
                self.reports.append(report)
        except Exception as exc:  # noqa: BLE001
            self.problem = self.problem or f"{type(exc).__name__}: {exc}"

    def _take(self) -> None:
        """Group the reports kept so far into attempts, in order; each finished attempt becomes a line for the
        writer."""
        reports, self.reports = self.reports, []
        running, finished = self.running, self._finished
        try:
            for report in reports:
                nodeid = report.nodeid
                when = report.when
                if when == "collect":  # a failed collection (pytest_collectreport)
                    finished(nodeid, [report], [], "")
                    continue
                entry = running.get(nodeid)
                if when == "setup" and entry is not None and entry[0]:  # an attempt that never reported its teardown
                    finished(nodeid, *running.pop(nodeid))
                    entry = None
                if entry is None:
                    entry = running[nodeid] = [[], [], ""]
                entry[0].append(report)
                if when == "teardown" or when == "???":  # "???": pytest-xdist's report of a crashed worker
                    finished(nodeid, *running.pop(nodeid))
        except Exception as exc:  # noqa: BLE001
            self.problem = self.problem or f"{type(exc).__name__}: {exc}"

    def _finished(self, nodeid: str, reports: list, subtests: list, progress: str) -> None:
        sections_before = self.sections_seen.get(nodeid, 0)
        data = _passed_quickly(nodeid, reports, subtests, sections_before)
        if data is not None:  # most attempts: their line is formatted directly
            parent_failed, line = True, _passed_line(data)
        else:
            data, parent_failed = attempt_data(nodeid, reports, subtests, sections_before, progress)
            line = None
        if reports:
            self.sections_seen[nodeid] = len(getattr(reports[-1], "sections", ()))
        if data is None:
            self.unfinished += 1
            return
        self.counts.add(data, parent_failed)
        if line is None:
            line = self.dumps(data)
            if _SURROGATE_RE.search(line):
                line = self.dumps(_clean(data))
        self.buffer.append(line)
        if len(self.buffer) >= _FLUSH_EVERY:
            self._flush()

    def _flush(self) -> None:
        if self.buffer and self.writer is not None and self.problem is None:
            try:
                self.writer.stdin.write("\n".join(self.buffer) + "\n")
                self.writer.stdin.flush()
            except OSError:
                pass  # the writer ended early; its answer (read at the end) says why
        self.buffer.clear()

    # -- the end -------------------------------------------------------------------------------------
    # The writer commits while pytest writes its summary: the session's end is handed over at sessionfinish,
    # and the answer is awaited (and said) in the terminal summary, the last moment before pytest's final
    # line; without a terminal summary (--no-summary, -p no:terminal, an internal error), at unconfigure.
    # Either way pytest returns only once the session's journal commit exists. --com-quarantine needs the
    # answer at sessionfinish (the Gate sets the exit status there), so it waits there.
    def pytest_sessionfinish(self, session, exitstatus):
        try:
            self._take()
            for nodeid in list(self.running):
                self._finished(nodeid, *self.running.pop(nodeid))
            self._flush()
            self._send_end()
        except Exception as exc:  # noqa: BLE001 - the contract is: warn, never fail the tests
            self._said = True
            self._say(f"com: warning: test results not recorded: {type(exc).__name__}: {exc}")
            return
        if self.config.getoption("com_quarantine", False):
            self._conclude()

    def pytest_terminal_summary(self, terminalreporter):
        self._conclude()

    pytest_terminal_summary.pytest_impl = _HOOK_LAST  # type: ignore[attr-defined]

    def _conclude(self) -> None:
        """Await the writer's answer (once) and say what was recorded."""
        if not self._ended or self._said:
            return
        self._said = True
        try:
            line = self._finish_writer()
        except Exception as exc:  # noqa: BLE001
            line = f"com: warning: test results not recorded: {type(exc).__name__}: {exc}"
        if line:
            self._say(line)

    def _send_end(self) -> None:
        """Tell the writer the session is over (it starts its commit now), without waiting for it."""
        self._ended = True
        writer = self.writer
        if writer is None:
            return
        if self.problem is not None:  # something broke here: tell the writer to write nothing
            writer.kill()
            writer.wait()
            return
        try:
            writer.stdin.write(_END + "\n")
            writer.stdin.close()  # the end marker, then EOF
        except OSError:  # the writer ended early: what it printed says why
            pass

    def _finish_writer(self) -> str | None:
        writer = self.writer
        if writer is None or self.problem is not None:
            return f"com: warning: test results not recorded: {self.problem}"
        try:
            out, err = _read_answer(writer, WRITER_TIMEOUT)
        except TimeoutError:
            writer.kill()
            writer.communicate()
            return f"com: warning: test results not recorded: the journal write took over {WRITER_TIMEOUT} s"
        answer = self.answer = _last_json(out)
        if answer is None:
            try:
                writer.wait(timeout=30)
            except Exception:  # noqa: BLE001
                pass
            detail = (err.strip().splitlines() or [f"exit code {writer.returncode}"])[-1]
            return f"com: warning: test results not recorded: the writer process failed: {detail}"
        if not answer.get("ok"):
            return f"com: warning: test results not recorded: {answer.get('error')}"
        if not answer.get("results"):
            return None
        where = f"journal commit {answer['commit'][:10]}" if answer.get("commit") else "no new journal commit"
        line = f"com: recorded {self.counts.summary()} in {where}"
        notes = list(answer.get("skipped") or ())
        if self.unfinished:
            notes.append(f"{self.unfinished} unfinished attempt(s) not recorded (the session ended during them)")
        notes += self.notes
        return "\n".join([line, *(f"com: warning: {n}" for n in notes)])

    def pytest_unconfigure(self, config):
        if self._ended:
            # The session ended but pytest wrote no terminal summary: say it here. After its answer the writer
            # only brings com's derived views up to date (the next com command would do it otherwise): it is
            # left to finish on its own, not waited for.
            self._conclude()
            return
        # A run that ended before its session finished (e.g. --help, a usage error) must not leave the
        # writer behind; without the end marker it writes nothing.
        writer = self.writer
        if writer is not None and writer.poll() is None:
            try:
                writer.kill()
                writer.communicate(timeout=30)
            except Exception:  # noqa: BLE001
                pass

    def _say(self, text: str) -> None:
        try:
            reporter = self.config.pluginmanager.get_plugin("terminalreporter")
            if reporter is not None:
                if getattr(reporter._tw, "width_of_current_line", 0):  # end the line of progress dots first
                    reporter._tw.line()
                for line in text.splitlines():
                    reporter.write_line(line)
                return
        except Exception:  # noqa: BLE001
            pass
        import sys

        sys.stderr.write(text + "\n")


def _read_answer(writer, timeout: float) -> tuple[str, str]:
    """(stdout, stderr) of the writer up to its answer line (or until it closes both, having died), without
    waiting for it to exit: after answering it only catches com's derived views up."""
    import selectors
    import time

    out_fd, err_fd = writer.stdout.fileno(), writer.stderr.fileno()
    outs = {out_fd: bytearray(), err_fd: bytearray()}
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        for fd in outs:
            selector.register(fd, selectors.EVENT_READ)
        open_fds = set(outs)
        while open_fds and not outs[out_fd].endswith(b"\n"):  # the answer is one line
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            for key, _ in selector.select(remaining):
                chunk = os.read(key.fd, 1 << 16)
                if chunk:
                    outs[key.fd] += chunk
                else:
                    selector.unregister(key.fd)
                    open_fds.discard(key.fd)
    # The writer's stdout stays open until this process ends: the writer waits for that to catch up the views.
    try:
        writer.stderr.close()
    except OSError:
        pass
    return outs[out_fd].decode("utf-8", "replace"), outs[err_fd].decode("utf-8", "replace")


def _last_json(text: str):
    import json

    for line in reversed((text or "").splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                return None
    return None


# The writer's command line. It leaves with os._exit once its answer is out: the test process waits for
# it, and tearing down an interpreter with pygit2 and SQLite loaded would only add to that wait.
# What the writer imports first: with -S and only `_writer_paths()` on the path these must all be found.
WRITER_IMPORTS = "pygit2, com.memory, com.code.repo, com.settings"
WRITER_CODE = (
    "import gc; gc.disable()  # only small acyclic objects are made, importing too: collections are pure cost\n"
    "import os, sys\n"
    "if len(sys.argv) > 2:\n"
    "    sys.path[:0] = __import__('json').loads(sys.argv[2])\n"
    "try:\n"
    f"    import {WRITER_IMPORTS}\n"
    "except ImportError:  # started with -S and a path that was not enough: the usual start-up after all\n"
    "    import site; site.main()\n"
    "from com.ingest.pytest_plugin import writer_main\n"
    "status = writer_main(sys.argv[1]); sys.stdout.flush(); sys.stderr.flush(); os._exit(status)\n"
)


def _writer_paths() -> list[str]:
    """What the writer needs on its path when it starts without site processing (-S, a fifth of its
    start-up): com's own folder and the test process's site-packages."""
    import sys

    import com

    paths = [os.path.dirname(os.path.dirname(os.path.abspath(com.__file__)))]
    for entry in sys.path:
        if entry and entry.rstrip("/").endswith(("site-packages", "dist-packages")) and entry not in paths:
            paths.append(entry)
    return paths


def _start_writer(config, started: float, options=None):
    import json
    import subprocess
    import sys

    options = options if options is not None else config.option
    args = {
        "memory": getattr(options, "com_memory", None),
        "cwd": str(config.invocation_params.dir),
        "rootpath": str(config.rootpath),
        "project": getattr(options, "com_project", None),
        "started": started,
        "quarantine": config.getoption("com_quarantine", False),
        "test_process": os.getpid(),  # the views' catch-up waits for its end
    }
    writer = subprocess.Popen(
        [sys.executable, "-S", "-c", WRITER_CODE, json.dumps(args), json.dumps(_writer_paths())],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        cwd=args["cwd"], text=True, encoding="utf-8",
    )
    try:
        # A pipe big enough for a whole session's results (Linux): the tests never wait for the writer,
        # even while it is still importing or the machine is busy.
        import fcntl

        fcntl.fcntl(writer.stdin.fileno(), getattr(fcntl, "F_SETPIPE_SZ", 1031), 1 << 20)
    except (ImportError, OSError, ValueError):
        pass
    return writer


# -- one attempt: pytest's reports -> plain data (see com.ingest.outcome for what each status means) ------
def _longrepr_text(report) -> str:
    try:
        return report.longreprtext
    except Exception:
        return str(report.longrepr)


def _crash_message(report) -> str | None:
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None and getattr(crash, "message", None):
        return crash.message
    from com.ingest.outcome import message_from_trace

    return message_from_trace(_longrepr_text(report))


def _skip_reason(report) -> str | None:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        reason = str(longrepr[2])
        return reason[len("Skipped: "):] if reason.startswith("Skipped: ") else reason
    return None


def _xfail_reason(report) -> str | None:
    reason = getattr(report, "wasxfail", None)
    if not reason:
        return None
    return reason[len("reason: "):] if reason.startswith("reason: ") else reason


def _phase_outcome(report) -> str:
    """passed, failed, skipped, xfailed or xpassed; pytest-rerunfailures' "rerun" is a failure it retried."""
    outcome = report.outcome
    if outcome == "rerun":
        return "failed"
    if hasattr(report, "wasxfail"):
        if outcome == "skipped":
            return "xfailed"
        if outcome == "passed":
            return "xpassed"
    return outcome


def _subtest_name(report) -> str | None:
    context = getattr(report, "context", None)
    if context is None:
        return None
    parts = []
    if getattr(context, "msg", None) is not None:
        parts.append(f"[{context.msg}]")
    kwargs = getattr(context, "kwargs", None)
    if kwargs:
        parts.append("(" + ", ".join(f"{k}={v}" for k, v in kwargs.items()) + ")")
    return " ".join(parts) or None


def _error_fields(data: dict, report, junit) -> None:
    message = _crash_message(report)
    if message:
        data["error_message"] = junit.clip(message, junit.MESSAGE_CHARS)
        error_type = junit.error_type(None, message)
        if error_type:
            data["error_type"] = error_type
    trace = junit.trace_excerpt(_longrepr_text(report))
    if trace:
        data["trace"] = trace


def _subtest_data(report, junit) -> dict:
    outcome = _phase_outcome(report)
    sub = {"name": _subtest_name(report), "status": outcome}
    if outcome == "failed":
        message = _crash_message(report)
        if message:
            sub["error_message"] = junit.clip(message, junit.MESSAGE_CHARS)
            error_type = junit.error_type(None, message)
            if error_type:
                sub["error_type"] = error_type
    elif outcome == "skipped":
        reason = _skip_reason(report)
        if reason:
            sub["skip_reason"] = reason
    elif outcome == "xfailed":
        reason = _xfail_reason(report)
        if reason:
            sub["xfail_reason"] = reason
    return sub


def _strip_progress(text: str, progress: str) -> str:
    """Captured stdout without the progress letters pytest's terminal wrote for this test's subtests
    while its output was being captured (unittest's subTest runs inside the capture): each letter is
    taken out at its last place, when all of them are there."""
    if not progress or not text:
        return text
    kept = list(text)
    at = len(kept)
    drop = []
    for letter in reversed(progress):
        at -= 1
        while at >= 0 and kept[at] != letter:
            at -= 1
        if at < 0:
            return text
        drop.append(at)
    for i in drop:
        del kept[i]
    return "".join(kept)


def _passed_quickly(nodeid: str, reports: list, subtests: list, sections_before: int) -> dict | None:
    """`attempt_data`'s data of the common attempt, found cheaply: three passing phases, no subtests, no output
    captured since the previous attempt, no properties, not an xfail test; None for any other."""
    if len(reports) == 3 and not subtests:
        setup, call, teardown = reports
        if (
            setup.outcome == "passed" and call.outcome == "passed" and teardown.outcome == "passed"
            and len(teardown.sections) == sections_before and not teardown.user_properties
            and not hasattr(call, "wasxfail")
        ):
            return {"test_id": nodeid, "status": "passed", "seconds": setup.duration + call.duration + teardown.duration,
                    "line": teardown.location[1]}
    return None


def _passed_line(data: dict) -> str | None:
    """The JSON line of `_passed_quickly`'s data, byte for byte what the Recorder's JSON encoder makes of it
    (compact, UTF-8 text), formatted directly (the encoder costs twice as much); None when a value is not of
    the plain kind that allows it (then the encoder makes the line)."""
    test_id, seconds, line = data["test_id"], data["seconds"], data["line"]
    if type(seconds) is not float or type(line) is not int or not test_id.isascii() or not _isfinite(seconds):
        return None  # an ASCII id has no lone surrogate to clean either
    return ('{"test_id":' + _json_string(test_id) + ',"status":"passed","seconds":' + float.__repr__(seconds)
            + ',"line":' + int.__repr__(line) + "}")


def attempt_data(nodeid: str, reports: list, subtests: list, sections_before: int = 0, progress: str = ""):
    """(data, pytest_parent_failed) of one attempt from its setup/call/teardown reports (or one failed
    collection report, or pytest-xdist's crash report) and its subtest reports. data is None for an
    attempt that never finished. What only the test process knows: status, phase, seconds, messages,
    output; the writer completes the rest (complete_data), so a passing test costs almost nothing."""
    data = _passed_quickly(nodeid, reports, subtests, sections_before)
    if data is not None:
        return data, True
    from com.ingest import junit
    from com.ingest.outcome import SUBTESTS_FAILED_RE, attempt_status

    phases: dict = {}
    for report in reports:
        phases[getattr(report, "when", "collect")] = report
    setup, call, teardown = phases.get("setup"), phases.get("call"), phases.get("teardown")
    crash, collect = phases.get("???"), phases.get("collect")
    failed_subtests = [r for r in subtests if r.outcome == "failed"]
    call_outcome = _phase_outcome(call) if call is not None else None
    if call_outcome == "failed" and failed_subtests and SUBTESTS_FAILED_RE.match(str(call.longrepr or "")):
        call_outcome = "passed"  # pytest's own "contains N failed subtests": the test's code raised nothing
    status, phase, extra_teardown = attempt_status(
        setup=_phase_outcome(setup) if setup is not None else None,
        call=call_outcome,
        teardown=_phase_outcome(teardown) if teardown is not None else None,
        crashed=crash is not None and crash.outcome in ("failed", "rerun"),
        subtests_failed=len(failed_subtests),
        collect_failed=collect is not None and collect.outcome in ("failed", "rerun"),
    )
    if status is None:
        return None, True
    data = {"test_id": nodeid, "status": status,
            "seconds": sum(getattr(r, "duration", 0.0) or 0.0 for r in reports)}
    location = getattr(reports[0], "location", None) if reports else None
    if location and location[1] is not None:
        data["line"] = location[1]
    if phase:
        data["phase"] = phase
    if any(r.outcome == "rerun" for r in reports):
        data["rerun"] = True
    cause = {"setup": setup, "crash": crash, "teardown": teardown, "collect": collect}.get(phase, call)
    if status == "failed" and failed_subtests and phase in (None, "subtest"):
        cause = failed_subtests[0]  # the first failure, as the JUnit report's first <failure>
    if status in ("failed", "error") and cause is not None:
        _error_fields(data, cause, junit)
    elif status == "skipped":
        data["skip_type"] = "pytest.skip"
        skipped = setup if setup is not None and setup.outcome == "skipped" else call
        reason = _skip_reason(skipped) if skipped is not None else None
        if reason:
            data["skip_reason"] = reason
    elif status in ("xfailed", "xpassed"):
        source = setup if setup is not None and setup.outcome == "skipped" else call
        reason = _xfail_reason(source) if source is not None else None
        if reason:
            data["xfail_reason"] = reason
    if status == "error" and phase == "teardown" and call is not None:
        call_status = _phase_outcome(call)
        if call_status != "passed":
            data["call_status"] = call_status
    if extra_teardown:
        message = _crash_message(teardown)
        if message:
            data["teardown_error"] = junit.clip(message, junit.MESSAGE_CHARS)
            error_type = junit.error_type(None, message)
            if error_type:
                data["teardown_error_type"] = error_type
    if subtests:
        listed = [_subtest_data(r, junit) for r in subtests if r.outcome != "passed" or hasattr(r, "wasxfail")]
        if listed:
            data["subtests"] = listed
        passed = len(subtests) - len(listed)
        if passed:
            data["subtests_passed"] = passed
    if reports:
        last = reports[-1]
        # An item rerun by pytest-rerunfailures keeps the captured output of its earlier attempts in its
        # sections: only the sections added since the previous attempt belong to this one.
        sections = list(getattr(last, "sections", ()))[sections_before:]
        for key, prefix in (("stdout", "Captured stdout"), ("stderr", "Captured stderr")):
            text = "".join(content for title, content in sections if title.startswith(prefix))
            if key == "stdout":
                text = _strip_progress(text, progress)
            text = junit.excerpt(text)
            if text:
                data[key] = text
        props = getattr(last, "user_properties", None)
        if props:
            data["properties"] = {str(k): junit.clip(str(v), junit.PROPERTY_CHARS) for k, v in props[: junit.MAX_PROPERTIES]}
    # pytest counts a test whose fixture subtests failed as failed ("contains N failed subtests"), one
    # whose unittest subTest failed as passed: the run's summary says which.
    parent_failed = call is not None and call.outcome in ("failed", "rerun")
    return data, parent_failed


def complete_data(data: dict) -> dict:
    """The writer's half: names from the node id, milliseconds, a 1-based line."""
    from com.ingest.outcome import junit_classname, split_node_id

    nodeid = data["test_id"]
    parts = split_node_id(nodeid)
    data["name"] = parts[2]
    data["classname"] = junit_classname(nodeid, parts)
    data["file"] = parts[0]
    ms = round(data.pop("seconds", 0.0) * 1000.0, 3)
    data["duration_ms"] = int(ms) if ms.is_integer() else ms
    line = data.pop("line", None)
    if line is not None:
        data["line"] = line + 1  # pytest's locations are 0-based
    return data


def writer_main(args_json: str) -> int:
    """The writer process: prepare the journal while tests run, then write every attempt as one commit.

    Reads one JSON object per finished attempt on stdin, then the end marker; answers with one JSON line
    on stdout. Without the end marker (the test process died) it writes nothing."""
    import gc
    import json
    import queue
    import sys
    import threading

    # Only small acyclic objects are made here: cyclic GC passes would be pure cost.
    gc.disable()
    lines: queue.SimpleQueue = queue.SimpleQueue()

    def read():  # drains the pipe from the start, so the test process never waits on a full pipe
        for raw in sys.stdin.buffer:  # UTF-8 whatever the locale: that is what the test process sends
            lines.put(raw.decode("utf-8"))
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()

    def answer(obj) -> int:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()
        return 0

    args = json.loads(args_json)
    try:
        session = _WriterSession(args)
        error = None
    except Exception as exc:  # noqa: BLE001 - reported to the test process, which warns
        from com.model.errors import ComError

        # A ComError is already one line for the user (e.g. no memory here); anything else names its kind.
        session, error = None, str(exc) if isinstance(exc, ComError) else f"{type(exc).__name__}: {exc}"
    ended = False
    while True:
        line = lines.get()
        if line is None:
            break
        if line.startswith(_END):
            ended = True
            break
        if session is not None and error is None:
            try:
                obj = json.loads(line)
            except ValueError as exc:  # the pipe itself is broken: nothing can be trusted
                error = f"{type(exc).__name__}: {exc}"
                continue
            if "__run__" in obj:
                session.run_info(obj["__run__"])
                continue
            try:
                session.add(obj)
            except Exception as exc:  # noqa: BLE001 - one bad result must not cost the session's others
                session.skip(obj, exc)
    try:
        if not ended:
            return 0
        if error is not None:
            return answer({"ok": False, "error": error})
        try:
            reply = session.write()
        except Exception as exc:  # noqa: BLE001
            return answer({"ok": False, "error": f"{type(exc).__name__}: {exc}"})
    finally:
        if session is not None:
            session.close()
    status = answer(reply)
    # The session is in the journal and the test process has its answer: pytest need not wait for the rest.
    session.catch_up_views()
    return status


def _await_exit(pid: int, timeout: float) -> None:
    """Until process `pid` (the test process, this one's parent) has ended, at most `timeout` seconds: through a
    pidfd (Linux), else until the read end of this process's stdout is closed (the test process keeps it open
    until its end; a pipe's write end polls as an error once no reader is left)."""
    if os.getppid() != pid:
        return  # not the parent, or ended already (this process was handed to another parent)
    pidfd = None
    try:
        import select

        poller = select.poll()
        try:
            pidfd = os.pidfd_open(pid)
            poller.register(pidfd, select.POLLIN)  # readable once the process has ended
        except (AttributeError, OSError):
            poller.register(1, select.POLLERR)
        poller.poll(int(timeout * 1000))
    except (AttributeError, OSError, ValueError):  # no poll here: no wait
        pass
    finally:
        if pidfd is not None:
            os.close(pidfd)


class _WriterSession:
    """The writer's state: memory, code revision, project, and the events made so far."""

    def __init__(self, args: dict):
        from datetime import datetime, timezone
        from pathlib import Path

        from com.code import repo as code_repo
        from com.memory import Memory
        from com.model.event import format_ts
        from com.settings import load as load_settings

        self.test_process = args.get("test_process")  # whose end the views' catch-up waits for (if given)
        rootpath = Path(args["rootpath"])
        self.memory = Memory.find(args.get("memory"), cwd=Path(args["cwd"]), settings=load_settings(rootpath))
        self.revision = code_repo.resolve(None, None, rootpath)
        project = args.get("project") or self.memory.settings.get("project")
        self.project = project or code_repo.default_project(rootpath, self.revision.repo)
        self.run_id = "pytest-" + os.urandom(8).hex()  # (not uuid: importing it costs more than the rest)
        # One time for the whole session, like a JUnit suite's timestamp: attempts order the results
        # within a run (and one shared time is parsed once, not once per test).
        self.ts = format_ts(datetime.fromtimestamp(args["started"], timezone.utc))
        # Catch the derived stores up with the journal now, while the tests still run, not at write time.
        self.memory.follow(self.memory.snapshot())
        self.common = {"commit": self.revision.commit, "branch": self.revision.branch, "run_id": self.run_id}
        if self.revision.dirty:
            self.common["code_dirty"] = True  # uncommitted changes: the code is not that commit
        self.quarantine = bool(args.get("quarantine"))
        self.attempts: dict[str, int] = {}
        self.counts: dict[str, int] = {}
        self.results = 0
        self.skipped: list[str] = []
        self.catch_up = None  # brings the derived views up to the session's commit (after the answer)
        # Each result is checked and spooled as it arrives, so after the last test only the commit is left.
        self.recording = self.memory.recording()
        self.refused: Exception | None = None  # the recording refused a result: the session is not written

    def close(self) -> None:
        self.recording.close()

    def catch_up_views(self) -> None:
        """After the answer: the views take the session in (else the next com command does). Nobody waits for
        it, so it waits for the test process to end first (pytest's summary, garbage collection and interpreter
        shutdown would otherwise share a busy machine's CPU with it). Nobody reads this process's output any
        more, so it goes nowhere; a failure only leaves the catch-up to the next command."""
        if self.catch_up is None:
            return
        try:
            if self.test_process:
                _await_exit(self.test_process, CATCH_UP_DELAY)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)  # the test process may be gone: a write to its pipes would fail
            os.dup2(devnull, 2)
            self.catch_up()
        except Exception:  # noqa: BLE001
            pass

    def run_info(self, info: dict) -> None:
        """What belongs to the whole run (a randomisation seed): recorded with every result of it."""
        self.common.update({k: v for k, v in info.items() if k in ("random_seed", "random_plugin")})

    def add(self, data: dict) -> None:
        from com.model.errors import ComError
        from com.model.event import validate

        complete_data(data)
        test_id = data["test_id"]
        attempt = self.attempts.get(test_id, 0) + 1
        data["attempt"] = attempt
        data.update(self.common)
        event = validate({"type": "test_result", "project": self.project, "source": "pytest", "ts": self.ts,
                          "data": data})
        try:
            self.recording.add(event)
        except ComError as exc:  # one id with two contents: as `Memory.record` of them all, nothing is written
            self.refused = self.refused or exc
            return
        self.results += 1
        self.attempts[test_id] = attempt
        self.counts[data["status"]] = self.counts.get(data["status"], 0) + 1

    def skip(self, data, exc: Exception) -> None:
        test_id = data.get("test_id") if isinstance(data, dict) else None
        if len(self.skipped) < 5:
            self.skipped.append(f"the result of {test_id!r} was not recorded: {exc}")
        elif len(self.skipped) == 5:
            self.skipped.append("more results were not recorded for the same kind of reason")

    def write(self) -> dict:
        from com.ingest.outcome import STATUS_ORDER

        if self.refused is not None:
            raise self.refused
        summary = ", ".join(f"{self.counts[k]} {k}" for k in STATUS_ORDER if self.counts.get(k))
        if not self.results:
            return {"ok": True, "results": 0, "commit": None, "added": 0, "summary": "", "skipped": self.skipped}
        noun = "result" if self.results == 1 else "results"
        message = f"pytest: {self.results} {noun} ({summary}) in {self.project}\n\nrun {self.run_id}"
        if self.revision.commit:
            message += f" on {self.revision.commit[:12]}"
        # The quarantine answer reads the registry view: only then are the views brought up to date first.
        result = self.recording.commit(message, views_later=not self.quarantine)
        self.catch_up = result.catch_up
        answer = {"ok": True, "results": self.results, "commit": result.commit, "added": result.added,
                  "summary": summary, "skipped": self.skipped}
        if self.quarantine:  # which of this session's tests are quarantined now (the Gate's half: quarantine.py)
            from com.ops.flaky import quarantined_among

            answer["quarantined"] = sorted(quarantined_among(self.memory, set(self.attempts)))
        return answer
