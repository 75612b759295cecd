"""What one attempt of a test came to: the single definition the pytest plugin and JUnit ingest both follow.

An attempt is one run of a test's setup, call and teardown (pytest-rerunfailures makes several per run).
Its `status` is decided by the first phase that did not pass, in the order the phases ran:

    setup failed                         -> error   (phase "setup")
    setup skipped / xfailed              -> skipped / xfailed
    the worker running it crashed        -> failed  (phase "crash"; pytest-xdist's report with when "???")
    call failed (a strict XPASS too)     -> failed
    call passed, but a subtest failed    -> failed  (phase "subtest": the test's own code raised nothing)
    teardown failed after a clean call   -> error   (phase "teardown")
    else the call's own outcome          -> passed, skipped, xfailed or xpassed (a non-strict XPASS)
    a module that cannot be collected    -> error   (phase "collect", test id = the file)

A teardown that fails after the status was already a failure is kept as `teardown_error` (its message)
and `teardown_error_type`, not as a second attempt. Subtests (`subtests.test()` and unittest's
`subTest`) are folded into the parent: every subtest that did not pass is listed in `subtests`
(status, message, and its description where the producer keeps it), `subtests_passed` counts the rest.
An attempt that pytest-rerunfailures retried carries `rerun: true`.

Imports nothing of pytest: the plugin feeds it pytest's reports, JUnit ingest the elements of a report.
"""

from __future__ import annotations

import re

STATUS_ORDER = ("passed", "failed", "error", "skipped", "xfailed", "xpassed")

# pytest's junitxml wraps fixture errors: 'failed on setup with "RuntimeError: ..."'.
_WRAPPER_RE = re.compile(r'failed on (setup|teardown) with "(.*)"\Z', re.S)
# junitxml (pytest >= 9.2) shortens long messages and says so on a last line of its own.
_SHORTENED_RE = re.compile(r"\n\[(?:\+\d+ more lines?|truncated); full report in element text\]\Z")
# pytest-xdist's replacement report for the test a worker was running when it died.
CRASH_RE = re.compile(r"worker '[^']*' crashed while running '.*'\Z", re.S)
# pytest's own failure of a test whose fixture subtests failed (the test's code raised nothing).
SUBTESTS_FAILED_RE = re.compile(r"contains \d+ failed subtests?\Z")
_E_LINE = "E   "


# -- test ids ----------------------------------------------------------------------------------
def split_node_id(nodeid: str) -> tuple[str, list[str], str]:
    """(file, classes, name) of a pytest node id, as pytest itself parses one: the parameter part
    (from the first '[' after the file) is opaque, so `test_x[a::b.c]` keeps its '::' and dots."""
    path, sep, tail = nodeid.partition("::")
    if not sep:
        return path, [], path
    name_part, bracket, params = tail.partition("[")
    names = name_part.split("::")
    name = names[-1] + (bracket + params if bracket else "")
    return path, names[:-1], name


def junit_classname(nodeid: str, parts: tuple | None = None) -> str | None:
    """pytest's junit classname (module dotted path + classes) of a node id; None for a file's own id.
    `parts`: the node id's `split_node_id`, when the caller has it already."""
    path, classes, _ = parts if parts is not None else split_node_id(nodeid)
    if path == nodeid:
        return None
    module = path.replace("/", ".")
    if module.endswith(".py"):
        module = module[:-3]
    return ".".join([module, *classes])


# -- messages -----------------------------------------------------------------------------------
def unwrap_fixture_message(message: str | None) -> tuple[str | None, str | None]:
    """(phase, message) of pytest junitxml's 'failed on setup with "..."' wrapper; (None, message) otherwise."""
    if not message:
        return None, message
    m = _WRAPPER_RE.match(message)
    if m is None:
        return None, message
    return m.group(1), m.group(2)


def strip_shortened_note(message: str | None) -> str | None:
    """The message without junitxml's '[+N more lines; full report in element text]' line."""
    if message and message.endswith("]"):
        return _SHORTENED_RE.sub("", message)
    return message


def message_from_trace(text: str | None) -> str | None:
    """The exception line(s) of a pytest trace: the last block of 'E   ' lines, else the last line."""
    if not text or not text.strip():
        return None
    lines = text.rstrip().splitlines()
    end = len(lines)
    while end and not lines[end - 1].startswith(_E_LINE):
        end -= 1
    if end:
        start = end
        while start and lines[start - 1].startswith(_E_LINE):
            start -= 1
        # pytest marks the exception's first line; continuation lines follow it.
        block = [line[len(_E_LINE):].strip() for line in lines[start:end]]
        for i, line in enumerate(block):
            if re.match(r"[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt|Failure|Warning)\b", line):
                return "\n".join(block[i:])
        return block[-1]
    return lines[-1].strip()


# -- the status of an attempt -------------------------------------------------------------------
def attempt_status(
    *,
    setup: str | None = None,
    call: str | None = None,
    teardown: str | None = None,
    crashed: bool = False,
    subtests_failed: int = 0,
    collect_failed: bool = False,
) -> tuple[str | None, str | None, bool]:
    """(status, phase, teardown_error_is_extra) from each phase's outcome.

    Phase outcomes are None (did not run or not reported), "passed", "failed", "skipped", "xfailed"
    or "xpassed". Status None means the attempt never finished (no call, nothing failed): it is not a
    result, and a recorder drops it rather than calling it a pass."""
    if collect_failed:
        return "error", "collect", False
    teardown_failed = teardown == "failed"
    if setup == "failed":
        return "error", "setup", teardown_failed
    if setup in ("skipped", "xfailed"):
        return (setup, None, False) if not teardown_failed else ("error", "teardown", False)
    if crashed:
        return "failed", "crash", teardown_failed
    if call == "failed":
        return "failed", None, teardown_failed
    if subtests_failed and call in ("passed", "xpassed", None):
        return "failed", "subtest", teardown_failed
    if teardown_failed:
        return "error", "teardown", False
    if call is None:
        return None, None, False
    return call, None, False


# -- counting a run -------------------------------------------------------------------------------
def _plural(n: int, noun: str) -> str:
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"


_PASSED = {"passed": 1}


class RunCounts:
    """Counts of one run's recorded attempts, as tests (their last attempt) and as pytest counts reports.

    `add(data)` takes each attempt's data in the order the attempts ran. `pytest_parent_failed` says,
    for an attempt failed by its subtests alone, whether pytest itself reported the test as failed
    (fixture subtests: "contains N failed subtests") or as passed (unittest's subTest)."""

    def __init__(self, count_passed_subtests: bool = True):
        self.count_passed_subtests = count_passed_subtests
        self.last: dict[str, dict] = {}  # test id -> data of its last attempt
        self.pytest_last: dict[str, dict] = {}  # test id -> pytest's categories of its last attempt
        self.failed_before: set[str] = set()
        self.reruns = 0
        self.rerun_reports = 0
        self.extra: dict[str, int] = {}  # what pytest counts of attempts that were rerun, besides "rerun"

    def add(self, data: dict, pytest_parent_failed: bool = True) -> None:
        test_id = data["test_id"]
        previous = self.last.get(test_id)
        if previous is None and len(data) <= 4 and data["status"] == "passed":  # the common case, cheaply
            self.last[test_id] = data
            self.pytest_last[test_id] = _PASSED
            return
        if previous is not None:
            self.reruns += 1
            if previous["status"] in ("failed", "error"):
                self.failed_before.add(test_id)
        self.last[test_id] = data
        if data.get("rerun"):
            # pytest-rerunfailures reports each failing phase of a retried attempt as one "rerun" (a
            # passing call before a teardown error still counts as passed), and drops the attempt's
            # subtest reports from the terminal's counts.
            self.rerun_reports += 2 if data.get("teardown_error") else 1
            if data["status"] == "error" and data.get("phase") == "teardown":
                key = data.get("call_status") or "passed"
                self.extra[key] = self.extra.get(key, 0) + 1
        else:
            self.pytest_last[test_id] = self._pytest_categories(data, pytest_parent_failed)

    def _pytest_categories(self, data: dict, parent_failed: bool) -> dict[str, int]:
        status, phase = data["status"], data.get("phase")
        out: dict[str, int] = {}

        def put(key, n=1):
            out[key] = out.get(key, 0) + n

        if status == "failed" and phase == "subtest":
            put("failed" if parent_failed else "passed")
        elif status == "error" and phase == "teardown":
            put("error")
            put(data.get("call_status") or "passed")  # the call's own report before the teardown error
        else:
            put(status)
        if data.get("teardown_error"):
            put("error")
        for sub in data.get("subtests") or ():
            sub_status = sub.get("status")
            if sub_status == "failed":
                put("failed")
            elif sub_status == "skipped":
                put("skipped")
            elif sub_status == "xfailed" and self.count_passed_subtests:
                put("xfailed")
        if self.count_passed_subtests and data.get("subtests_passed"):
            put("subtests passed", data["subtests_passed"])
        return out

    # -- figures ---------------------------------------------------------------------------------
    def tests(self) -> dict[str, int]:
        out = dict.fromkeys(STATUS_ORDER, 0)
        for data in self.last.values():
            out[data["status"]] += 1
        return out

    def passed_on_rerun(self) -> int:
        return sum(1 for t in self.failed_before if self.last[t]["status"] in ("passed", "xpassed"))

    def subtests(self) -> dict[str, int]:
        out = dict.fromkeys(STATUS_ORDER, 0)
        for data in self.last.values():
            for sub in data.get("subtests") or ():
                out[sub.get("status") or "failed"] += 1
            out["passed"] += data.get("subtests_passed") or 0
        return out

    def teardown_errors_after_failure(self) -> int:
        return sum(1 for data in self.last.values() if data.get("teardown_error"))

    def pytest_counts(self) -> dict[str, int]:
        """What pytest's terminal summary line counts for the same run (result categories only)."""
        out: dict[str, int] = dict(self.extra)
        for cats in self.pytest_last.values():
            for key, n in cats.items():
                out[key] = out.get(key, 0) + n
        if self.rerun_reports:
            out["rerun"] = self.rerun_reports
        return {k: n for k, n in out.items() if n}

    def summary(self) -> str:
        """'5 tests: 4 passed, 1 failed; 6 reruns, 1 passed on rerun (flaky)', plus subtests, teardown
        errors after a failure, and pytest's own counting where it counts reports differently."""
        tests = self.tests()
        parts = [f"{_plural(len(self.last), 'test')}: " + _statuses(tests)]
        subtests = self.subtests()
        if any(subtests.values()):
            parts.append("subtests: " + _statuses(subtests))
        extra = self.teardown_errors_after_failure()
        if extra:
            parts.append(f"{_plural(extra, 'teardown error')} after a failure")
        if self.reruns:
            rerun = _plural(self.reruns, "rerun")
            flaky = self.passed_on_rerun()
            if flaky:
                rerun += f", {flaky:,} passed on rerun (flaky)"
            parts.append(rerun)
        line = "; ".join(parts)
        if self.pytest_counts() != self.plain_counts():
            line += f" [pytest counts {format_pytest_counts(self.pytest_counts())}]"
        return line

    def plain_counts(self) -> dict[str, int]:
        """The test view in pytest's words: equal to pytest_counts() when pytest counts each test once."""
        out = {k: n for k, n in self.tests().items() if n}
        if self.reruns:
            out["rerun"] = self.reruns
        return out


def _statuses(counts: dict[str, int]) -> str:
    return ", ".join(_plural(n, k) if k == "error" else f"{n:,} {k}" for k, n in counts.items() if n)


PYTEST_ORDER = ("failed", "passed", "skipped", "xfailed", "xpassed", "error", "subtests passed", "rerun")


def format_pytest_counts(counts: dict[str, int]) -> str:
    """Counts worded as pytest's summary line words them ('1 failed, 4 passed, 2 errors, 6 rerun')."""
    keys = [k for k in PYTEST_ORDER if counts.get(k)] + sorted(k for k in counts if k not in PYTEST_ORDER and counts[k])
    return ", ".join(f"{counts[k]} {'errors' if k == 'error' and counts[k] != 1 else k}" for k in keys)


def parse_pytest_summary(line: str) -> dict[str, int]:
    """The result counts of pytest's last summary line ('== 1 failed, 4 passed, 6 rerun in 0.1s =='),
    leaving out what is not a test result (deselected, warnings)."""
    line = line.strip().strip("=").strip()
    line = re.sub(r"\s+in [\d.]+s(?: \([^)]*\))?\Z", "", line)
    out: dict[str, int] = {}
    for part in line.split(", "):
        m = re.match(r"(\d+) (.+)\Z", part.strip())
        if not m:
            continue
        key = m.group(2)
        key = {"errors": "error", "warning": None, "warnings": None, "deselected": None}.get(key, key)
        if key:
            out[key] = out.get(key, 0) + int(m.group(1))
    return out


# -- what pytest's junitxml can say of an attempt ------------------------------------------------------
def _first_line(text: str | None) -> str | None:
    return text.splitlines()[0] if text else None


def junit_differences(plugin: list[dict], junit: list[dict]) -> list[str]:
    """Where the JUnit record of a run (`pytest --junitxml` + `com ingest --junit`) says something other
    than the plugin's record of the same run; [] when they agree test for test and attempt for attempt.

    Compared: tests, attempts and their order, status, phase, rerun, the error's first line, the teardown
    error, failed subtests. What junitxml cannot carry is not held against it: a non-strict XPASS is
    written as a pass; a retried attempt as an empty element (a failure without detail); a test with a
    single failed unittest subTest as a plain failure; subtest descriptions and passed subtests not at all."""
    def key(data):
        return data["test_id"], data["attempt"]

    ours = {key(e["data"]): e["data"] for e in plugin}
    theirs = {key(e["data"]): e["data"] for e in junit}
    problems = []
    for k in sorted(set(ours) | set(theirs)):
        a, b = ours.get(k), theirs.get(k)
        where = f"{k[0]} attempt {k[1]}"
        if a is None or b is None:
            problems.append(f"{where}: only in the {'JUnit' if a is None else 'plugin'} record")
            continue
        status = "passed" if a["status"] == "xpassed" else a["status"]
        bare_rerun = b.get("rerun") and "error_message" not in b
        if bare_rerun and status in ("failed", "error"):
            status = b["status"]
        if status != b["status"]:
            problems.append(f"{where}: status {a['status']} (plugin) vs {b['status']} (JUnit)")
        phase = a.get("phase")
        single_unittest = phase == "subtest" and len(a.get("subtests") or ()) == 1 and b.get("phase") is None
        if not bare_rerun and not single_unittest and phase != b.get("phase"):
            problems.append(f"{where}: phase {phase} (plugin) vs {b.get('phase')} (JUnit)")
        if bool(a.get("rerun")) != bool(b.get("rerun")):
            problems.append(f"{where}: rerun {a.get('rerun')} (plugin) vs {b.get('rerun')} (JUnit)")
        if "error_message" in b and _first_line(a.get("error_message")) != _first_line(b["error_message"]):
            problems.append(f"{where}: error {_first_line(a.get('error_message'))!r} (plugin) vs "
                            f"{_first_line(b['error_message'])!r} (JUnit)")
        if _first_line(a.get("teardown_error")) != _first_line(b.get("teardown_error")) and not bare_rerun:
            problems.append(f"{where}: teardown error {a.get('teardown_error')!r} (plugin) vs "
                            f"{b.get('teardown_error')!r} (JUnit)")
        if b.get("subtests") is not None:
            failed = [s for s in a.get("subtests") or () if s.get("status") == "failed"]
            if len(failed) != len(b["subtests"]):
                problems.append(f"{where}: {len(failed)} failed subtests (plugin) vs {len(b['subtests'])} (JUnit)")
        for field in ("file", "line"):
            if field in b and a.get(field) != b[field]:
                problems.append(f"{where}: {field} {a.get(field)!r} (plugin) vs {b[field]!r} (JUnit)")
    return problems
