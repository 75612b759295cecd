"""pytest plugin: with --com (or COM_RECORD=1), record every test outcome of the session as ONE journal commit.

pytest loads this module in every run of the environment (entry point pytest11), so importing it costs
nothing (not even pytest's own hook markers): it does nothing unless asked. When asked, it starts a writer
process with the session (`writer_main`), which imports the journal (pygit2), finds the memory and catches
up the catalog while the tests run, on another core; each finished attempt is streamed to it, and at the
end of the session it writes one commit and answers. The test process itself only turns reports into
plain data, so what the tests wait for at the end is little more than the commit itself.

Recording never fails the test run: any problem becomes one warning line and pytest exits as it would have.
"""

from __future__ import annotations

import os

_TRUE = ("1", "true", "yes", "on")
_END = '{"__end__": true}'
_FLUSH_EVERY = 250  # attempts per write to the writer's pipe
WRITER_TIMEOUT = 600  # seconds the session waits for its commit (another writer may hold the journal's lock)


def pytest_addoption(parser):
    group = parser.getgroup("com", "record test results in the com journal")
    group.addoption(
        "--com", action="store_true", default=False,
        help="Record every test outcome of this session in the com journal (also: COM_RECORD=1).",
    )
    group.addoption(
        "--com-memory", default=None, metavar="PATH",
        help="The com memory folder (default: $COM_DIR, else the nearest .com/ upwards from the working directory).",
    )
    group.addoption(
        "--com-project", default=None, metavar="NAME",
        help="Project of the recorded results (default: [tool.com] project, else the code repository's folder name).",
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


def pytest_configure(config):
    # pytest-xdist workers send their reports to the controller, which records them: one commit per session.
    if hasattr(config, "workerinput"):
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


def _failed(report) -> bool:
    # pytest-rerunfailures reports each failed attempt that it will run again with outcome "rerun".
    return report.outcome == "failed" or report.outcome == "rerun"


class Recorder:
    """Turns each finished attempt into plain data and streams it to the writer process."""

    def __init__(self, config):
        import json
        import time

        self.config = config
        self.dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str).encode
        self.running: dict[str, list] = {}  # nodeid -> reports of the attempt in progress
        self.sections_seen: dict[str, int] = {}
        self.buffer: list[str] = []
        self.problem: str | None = None
        self.writer = None
        self.answer = None  # the writer's answer, once the session is recorded
        try:
            self.writer = _start_writer(config, time.time())
        except Exception as exc:  # noqa: BLE001 - warn at the end, never fail the run
            self.problem = f"{type(exc).__name__}: {exc}"

    # -- while tests run ---------------------------------------------------------------------------
    def pytest_runtest_logreport(self, report):
        try:
            nodeid = report.nodeid
            reports = self.running.get(nodeid)
            if report.when == "setup" and reports is not None:  # an attempt that never reported its teardown
                self._finished(nodeid, self.running.pop(nodeid))
                reports = None
            if reports is None:
                reports = self.running[nodeid] = []
            reports.append(report)
            if report.when == "teardown":
                self._finished(nodeid, self.running.pop(nodeid))
        except Exception as exc:  # noqa: BLE001
            self.problem = self.problem or f"{type(exc).__name__}: {exc}"

    def pytest_collectreport(self, report):
        # A test module that cannot be imported is an error of the tests it would have run.
        try:
            if report.failed and report.nodeid:
                self._finished(report.nodeid, [report])
        except Exception as exc:  # noqa: BLE001
            self.problem = self.problem or f"{type(exc).__name__}: {exc}"

    def _finished(self, nodeid: str, reports: list) -> None:
        data = attempt_data(nodeid, reports, self.sections_seen.get(nodeid, 0))
        self.sections_seen[nodeid] = len(getattr(reports[-1], "sections", ()))
        self.buffer.append(self.dumps(data))
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
    def pytest_sessionfinish(self, session, exitstatus):
        try:
            for nodeid in list(self.running):
                self._finished(nodeid, self.running.pop(nodeid))
            self._flush()
            line = self._finish_writer()
        except Exception as exc:  # noqa: BLE001 - the contract is: warn, never fail the tests
            line = f"com: warning: test results not recorded: {type(exc).__name__}: {exc}"
        if line:
            self._say(line)

    def _finish_writer(self) -> str | None:
        writer = self.writer
        if writer is None:
            return f"com: warning: test results not recorded: {self.problem}"
        if self.problem is not None:  # something broke here: tell the writer to write nothing
            writer.kill()
            writer.wait()
            return f"com: warning: test results not recorded: {self.problem}"
        import subprocess

        try:
            out, err = writer.communicate(_END + "\n", timeout=WRITER_TIMEOUT)  # the end marker, then EOF
        except BrokenPipeError:  # the writer ended early: what it printed says why
            out, err = writer.stdout.read(), writer.stderr.read()
            writer.wait()
        except subprocess.TimeoutExpired:
            writer.kill()
            writer.communicate()
            return f"com: warning: test results not recorded: the journal write took over {WRITER_TIMEOUT} s"
        answer = self.answer = _last_json(out)
        if answer is None:
            detail = (err.strip().splitlines() or [f"exit code {writer.returncode}"])[-1]
            return f"com: warning: test results not recorded: the writer process failed: {detail}"
        if not answer.get("ok"):
            return f"com: warning: test results not recorded: {answer.get('error')}"
        if not answer.get("results"):
            return None
        where = f"journal commit {answer['commit'][:10]}" if answer.get("commit") else "no new journal commit"
        return f"com: recorded {answer['added']} test results ({answer['summary']}) in {where}"

    def pytest_unconfigure(self, config):
        # A run that ended before its session finished (e.g. --help, a usage error) must not leave the
        # writer behind; without the end marker it writes nothing.
        writer = self.writer
        if writer is not None and writer.poll() is None:
            try:
                writer.kill()
                writer.communicate(timeout=30)
            except Exception:  # noqa: BLE001
                pass

    def _say(self, line: str) -> None:
        try:
            reporter = self.config.pluginmanager.get_plugin("terminalreporter")
            if reporter is not None:
                if getattr(reporter._tw, "width_of_current_line", 0):  # end the line of progress dots first
                    reporter._tw.line()
                reporter.write_line(line)
                return
        except Exception:  # noqa: BLE001
            pass
        import sys

        sys.stderr.write(line + "\n")


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
WRITER_CODE = (
    "import os, sys; from com.ingest.pytest_plugin import writer_main; status = writer_main(sys.argv[1]); "
    "sys.stdout.flush(); sys.stderr.flush(); os._exit(status)"
)


def _start_writer(config, started: float):
    import json
    import subprocess
    import sys

    args = {
        "memory": config.getoption("com_memory"),
        "cwd": str(config.invocation_params.dir),
        "rootpath": str(config.rootpath),
        "project": config.getoption("com_project"),
        "started": started,
        "quarantine": config.getoption("com_quarantine", False),
    }
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER_CODE, json.dumps(args)],
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


# -- the end of the session: reports -> events -> one journal commit --------------------------------
def _classname(nodeid: str) -> str:
    """pytest's own junit classname (module dotted path + classes), so both ways in describe a test alike."""
    parts = nodeid.split("::")
    module = parts[0].replace("/", ".")
    if module.endswith(".py"):
        module = module[:-3]
    return ".".join([module, *parts[1:-1]])


def _longrepr_text(report) -> str:
    try:
        return report.longreprtext
    except Exception:
        return str(report.longrepr)


def _crash_message(report) -> str | None:
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None and getattr(crash, "message", None):
        return crash.message
    text = _longrepr_text(report)
    for line in reversed(text.splitlines()):  # pytest marks the exception lines with "E   "
        if line.startswith("E   "):
            return line[4:].strip()
    return text.strip().splitlines()[-1] if text.strip() else None


def _skip_reason(report) -> str | None:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        reason = str(longrepr[2])
        return reason[len("Skipped: "):] if reason.startswith("Skipped: ") else reason
    return None


def attempt_data(nodeid: str, reports: list, sections_before: int = 0) -> dict:
    """What only the test process knows about one attempt, from its setup/call/teardown reports (or one
    failed collection report): status, phase, seconds, messages, output. The writer completes the rest
    (complete_data), so the common case, a passing test, costs the tests almost nothing."""
    if len(reports) == 3:
        setup, call, teardown = reports
        if (
            setup.outcome == "passed" and call.outcome == "passed" and teardown.outcome == "passed"
            and len(teardown.sections) == sections_before and not teardown.user_properties
        ):
            return {"test_id": nodeid, "status": "passed", "seconds": setup.duration + call.duration + teardown.duration,
                    "line": teardown.location[1]}
    from com.ingest import junit

    phases = {getattr(r, "when", "collect"): r for r in reports}
    status, cause, phase = "passed", None, None
    setup, call, teardown = phases.get("setup"), phases.get("call"), phases.get("teardown")
    collect = phases.get("collect")
    if collect is not None and _failed(collect):
        status, cause, phase = "error", collect, "collect"
    elif setup is not None and _failed(setup):
        status, cause, phase = "error", setup, "setup"
    elif setup is not None and setup.outcome == "skipped":
        status, cause = "skipped", setup
    elif call is not None:
        if _failed(call):
            status, cause = "failed", call
        elif call.outcome == "skipped":
            status, cause = "skipped", call
    if teardown is not None and _failed(teardown) and status in ("passed", "skipped"):
        status, cause, phase = "error", teardown, "teardown"

    data = {"test_id": nodeid, "status": status, "seconds": sum(getattr(r, "duration", 0.0) or 0.0 for r in reports)}
    location = getattr(reports[0], "location", None)
    if location and location[1] is not None:
        data["line"] = location[1]
    if phase:
        data["phase"] = phase
    if cause is not None and status == "skipped":
        if hasattr(cause, "wasxfail"):
            data["skip_type"] = "pytest.xfail"
            if cause.wasxfail:
                data["skip_reason"] = cause.wasxfail
        else:
            data["skip_type"] = "pytest.skip"
            reason = _skip_reason(cause)
            if reason:
                data["skip_reason"] = reason
    elif cause is not None:
        message = _crash_message(cause)
        if message:
            data["error_message"] = junit.clip(message, junit.MESSAGE_CHARS)
            error_type = junit.error_type(None, message)
            if error_type:
                data["error_type"] = error_type
        trace = junit.trace_excerpt(_longrepr_text(cause))
        if trace:
            data["trace"] = trace
    last = reports[-1]
    # An item rerun by pytest-rerunfailures keeps the captured output of its earlier attempts in its
    # sections: only the sections added since the previous attempt belong to this one.
    sections = list(getattr(last, "sections", ()))[sections_before:]
    for key, prefix in (("stdout", "Captured stdout"), ("stderr", "Captured stderr")):
        text = junit.excerpt("".join(content for title, content in sections if title.startswith(prefix)))
        if text:
            data[key] = text
    props = getattr(last, "user_properties", None)
    if props:
        data["properties"] = {str(k): junit.clip(str(v), junit.PROPERTY_CHARS) for k, v in props[: junit.MAX_PROPERTIES]}
    return data


def complete_data(data: dict) -> dict:
    """The writer's half: names from the node id, milliseconds, a 1-based line."""
    nodeid = data["test_id"]
    parts = nodeid.split("::")
    data["name"] = parts[-1]
    data["classname"] = _classname(nodeid) if len(parts) > 1 else None
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
                session.add(json.loads(line))
            except Exception as exc:  # noqa: BLE001
                error = f"{type(exc).__name__}: {exc}"
    if not ended:
        return 0
    if error is not None:
        return answer({"ok": False, "error": error})
    try:
        return answer(session.write())
    except Exception as exc:  # noqa: BLE001
        return answer({"ok": False, "error": f"{type(exc).__name__}: {exc}"})


class _WriterSession:
    """The writer's state: memory, code revision, project, and the events made so far."""

    def __init__(self, args: dict):
        import uuid
        from datetime import datetime, timezone
        from pathlib import Path

        from com.code import repo as code_repo
        from com.memory import Memory
        from com.model.event import format_ts
        from com.settings import load as load_settings

        rootpath = Path(args["rootpath"])
        self.memory = Memory.find(args.get("memory"), cwd=Path(args["cwd"]), settings=load_settings(rootpath))
        self.revision = code_repo.resolve(None, None, rootpath)
        project = args.get("project") or self.memory.settings.get("project")
        self.project = project or code_repo.default_project(rootpath, self.revision.repo)
        self.run_id = "pytest-" + uuid.uuid4().hex[:16]
        # One time for the whole session, like a JUnit suite's timestamp: attempts order the results
        # within a run (and one shared time is parsed once, not once per test).
        self.ts = format_ts(datetime.fromtimestamp(args["started"], timezone.utc))
        # Catch the derived stores up with the journal now, while the tests still run, not at write time.
        self.memory.follow(self.memory.snapshot())
        self.common = {"commit": self.revision.commit, "branch": self.revision.branch, "run_id": self.run_id}
        self.quarantine = bool(args.get("quarantine"))
        self.attempts: dict[str, int] = {}
        self.counts = {"passed": 0, "failed": 0, "error": 0, "skipped": 0}
        self.events: list[dict] = []

    def add(self, data: dict) -> None:
        from com.model.event import validate

        complete_data(data)
        test_id = data["test_id"]
        self.attempts[test_id] = data["attempt"] = self.attempts.get(test_id, 0) + 1
        data.update(self.common)
        self.events.append(
            validate({"type": "test_result", "project": self.project, "source": "pytest", "ts": self.ts, "data": data})
        )
        self.counts[data["status"]] += 1

    def write(self) -> dict:
        summary = ", ".join(f"{n} {k}" for k, n in self.counts.items() if n)
        if not self.events:
            return {"ok": True, "results": 0, "commit": None, "added": 0, "summary": ""}
        noun = "result" if len(self.events) == 1 else "results"
        message = f"pytest: {len(self.events)} {noun} ({summary}) in {self.project}\n\nrun {self.run_id}"
        if self.revision.commit:
            message += f" on {self.revision.commit[:12]}"
        result = self.memory.record(self.events, message=message)
        answer = {"ok": True, "results": len(self.events), "commit": result.commit, "added": result.added,
                  "summary": summary}
        if self.quarantine:
            from com.ingest.quarantine import writer_answer

            answer.update(writer_answer(self.memory, self.events))
        return answer
