"""JUnit XML reports (pytest, jest-junit, Playwright, Surefire/Gradle, gotestsum) turned into test_result events.

Every <testcase> becomes one event per attempt: Surefire/Gradle `flakyFailure`/`flakyError` elements are
the failed attempts before the passing (final) run, `rerunFailure`/`rerunError` the failed reruns after
the first failure; attempt numbers follow the order in which the runs happened. The whole input is parsed
before anything is written, so one malformed report refuses the batch.
"""

from __future__ import annotations

import gc
import glob
import hashlib
import os
import re
import xml.etree.ElementTree as ET
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Callable, Iterable

from com.code import repo as code_repo
from com.model.errors import ComError
from com.model.event import format_ts, now_utc, parse_time, validate

DISCOVERY_PATTERNS = ("TEST-*.xml", "*junit*.xml")
# Folders never searched by discovery: dependencies and hidden folders (the memory .com/ among them).
_PRUNE = {"node_modules", "__pycache__", "venv", ".venv"}

TRACE_LINES = 20
TRACE_CHARS = 4000
MESSAGE_CHARS = 2000
OUTPUT_CHARS = 2000  # system-out / system-err: head and tail halves around a cut
PROPERTY_CHARS = 500
MAX_PROPERTIES = 50

_RETRY_BEFORE = {"flakyFailure": "failed", "flakyError": "error"}  # failed runs before the final pass
_RETRY_AFTER = {"rerunFailure": "failed", "rerunError": "error"}  # failed reruns after the first failure
_OUTCOME = {"failure": "failed", "error": "error", "skipped": "skipped"}
_STRENGTH = {"failed": 3, "error": 2, "skipped": 1}  # a testcase with several outcome children: the worst wins

_ERROR_TYPE_RE = re.compile(
    r'(?:\A|failed on (?:setup|teardown) with ")((?:[A-Za-z_$][\w$.]*)?(?:Error|Exception|Failure|Exit|Interrupt))(?=[:"\s]|\Z)'
)
_FILE_LIKE_RE = re.compile(r"[^\s]\.(?:[cm]?[jt]sx?|py|rb|go|java|kt|cs|php|swift|rs|exs?|feature)\Z")
_GO_NOISE = ("=== RUN", "=== PAUSE", "=== CONT", "=== NAME", "--- FAIL", "--- SKIP", "--- PASS")
_PHASE_RE = re.compile(r"failed on (setup|teardown) with ")  # pytest's message for fixture errors
_POSITION_RE = re.compile(r":? line \d+, column \d+\Z")
_GLOB_CHARS = set("*?[")


# -- finding reports ---------------------------------------------------------------------------
def _discover(folder: Path) -> list[Path]:
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if d not in _PRUNE and not d.startswith("."))
        for name in sorted(filenames):
            if any(fnmatchcase(name, pattern) for pattern in DISCOVERY_PATTERNS):
                found.append(Path(dirpath) / name)
    return found


def find_reports(paths: Iterable[str], warn: Callable[[str], None]) -> list[Path]:
    """Report files from files, folders (searched for TEST-*.xml and *junit*.xml) and globs, in a stable order."""
    out: dict[str, Path] = {}
    for raw in paths:
        candidates: list[Path]
        if os.path.exists(raw):
            candidates = [Path(raw)]
        elif _GLOB_CHARS & set(raw):
            candidates = [Path(p) for p in sorted(glob.glob(raw, recursive=True))]
            if not candidates:
                warn(f"{raw}: matches no file")
        else:
            raise ComError(f"{raw}: no such file or folder")
        for path in candidates:
            files = _discover(path) if path.is_dir() else [path]
            if path.is_dir() and not files:
                warn(f"{raw}: no report named TEST-*.xml or *junit*.xml in this folder")
            for f in files:
                out.setdefault(str(f.resolve()), f)
    return list(out.values())


# -- small text helpers --------------------------------------------------------------------------
def _local(tag) -> str:
    return tag.rpartition("}")[2] if tag[:1] == "{" else tag


def clip(text: str, limit: int) -> str:
    """At most `limit` characters, an ellipsis marking a cut (the pytest plugin bounds its fields alike)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def excerpt(text: str | None) -> str | None:
    """system-out/err: kept whole when short, else the head and the tail (the end often says what went wrong)."""
    if not text:
        return None
    text = text.strip()
    if not text:
        return None
    if len(text) <= OUTPUT_CHARS:
        return text
    half = OUTPUT_CHARS // 2
    return f"{text[:half]}\n…[{len(text) - 2 * half} characters cut]…\n{text[-half:]}"


def trace_excerpt(text: str | None) -> str | None:
    """The first TRACE_LINES lines of a trace, without the blank lines around it."""
    if not text:
        return None
    lines = text.splitlines()
    start, end = 0, len(lines)
    while start < end and not lines[start].strip():
        start += 1
    while end > start and not lines[end - 1].strip():
        end -= 1
    if start == end:
        return None
    return clip("\n".join(line.rstrip() for line in lines[start:min(end, start + TRACE_LINES)]), TRACE_CHARS)


def _go_message(text: str) -> str | None:
    """The first line of go test output that is not go's own RUN/FAIL/SKIP bookkeeping."""
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(_GO_NOISE):
            return line
    return None


def _message(attr: str | None, text: str | None) -> str | None:
    if attr and attr.startswith("=== RUN"):  # gotestsum puts a skipped test's output in the message
        attr = _go_message(attr) or attr.strip()
    if attr == "Failed" and text and text.lstrip().startswith("=== RUN"):  # gotestsum's fixed message
        attr = _go_message(text) or attr
    if not attr and text:  # jest-junit writes no message attribute: the trace's first line is the message
        for line in text.splitlines():
            if line.strip():
                attr = line.strip()
                break
    return clip(attr, MESSAGE_CHARS) if attr else None


def error_type(attr: str | None, message: str | None) -> str | None:
    """The `type` attribute, else the exception name a message starts with ("TypeError: ..."), also inside
    pytest's 'failed on setup with "RuntimeError: ..."'."""
    if attr:
        return attr
    if message:
        m = _ERROR_TYPE_RE.search(message)
        if m:
            return m.group(1)
    return None


def _duration_ms(value: str | None):
    """Seconds as written by the tool -> milliseconds (int when whole). Locale-formatted '1,234.5' is read too."""
    if value is None:
        return None
    try:  # the common case: a plain decimal number
        ms = round(float(value) * 1000.0, 3)
        if 0 <= ms < 1e15:
            return int(ms) if ms.is_integer() else ms
    except ValueError:
        pass
    value = value.strip()
    if "," in value:
        value = value.replace(",", "") if "." in value else value.replace(",", ".")
    try:
        ms = round(float(value) * 1000.0, 3)
    except ValueError:
        return None
    if not 0 <= ms < 1e15:  # NaN, infinite or negative: not a duration
        return None
    return int(ms) if ms.is_integer() else ms


def _properties(elem) -> dict | None:
    props: dict = {}
    for prop in elem:
        if _local(prop.tag) != "property":
            continue
        name = prop.get("name")
        if not name or len(props) >= MAX_PROPERTIES:
            continue
        value = prop.get("value")
        if value is None:
            value = (prop.text or "").strip()
        value = clip(value, PROPERTY_CHARS)
        if name in props:  # repeated names (e.g. Playwright annotations) keep every value
            old = props[name]
            props[name] = (old if isinstance(old, list) else [old]) + [value]
        else:
            props[name] = value
    return props or None


# -- test ids ----------------------------------------------------------------------------------
def pytest_node_id(classname: str, name: str, file: str | None) -> str:
    """The pytest node id from pytest's junit classname (module dotted path + classes) and name.

    With xunit1 the file is known and only the classes are split off. With xunit2 the module/class
    boundary is inferred: trailing parts starting with an upper-case letter are classes (pytest's
    default python_classes is Test*)."""
    if file and file.endswith(".py"):
        module = file[:-3].replace("/", ".").replace("\\", ".")
        if classname == module:
            return f"{file}::{name}"
        if classname.startswith(module + "."):
            return "::".join([file, *classname[len(module) + 1:].split("."), name])
    parts = classname.split(".") if classname else []
    classes: list[str] = []
    while len(parts) > 1 and parts[-1][:1].isupper():
        classes.insert(0, parts.pop())
    if not parts:
        return f"{file}::{name}" if file else name
    return "::".join(["/".join(parts) + ".py", *classes, name])


def generic_test_id(file: str | None, classname: str | None, name: str) -> str:
    """file::classname::name, leaving out what is missing or repeats (jest-junit's classname == name,
    Playwright's classname == file)."""
    if classname and classname != name and classname != file:
        return f"{file}::{classname}::{name}" if file else f"{classname}::{name}"
    return f"{file}::{name}" if file else name


# -- one report --------------------------------------------------------------------------------
def _producer(root, first_suite, first_case) -> str:
    """A best guess of the tool that wrote the report, used as the events' default source."""
    if root.get("name") == "pytest tests" or (first_suite is not None and first_suite.get("name") == "pytest"):
        return "pytest"
    if root.get("name") == "jest tests":
        return "jest"
    if first_case is not None and (
        " › " in (first_case.get("name") or "")
        or (root.get("id") is not None and _FILE_LIKE_RE.search(first_case.get("classname") or ""))
    ):
        return "playwright"
    if first_suite is not None:
        for key, value in first_suite.attrib.items():
            if key.endswith("noNamespaceSchemaLocation") and "surefire" in value:
                return "surefire"
        for child in first_suite:
            if _local(child.tag) == "properties":
                if any(p.get("name") == "go.version" for p in child):
                    return "go"
                break
    return "junit"


def _suite_ts(suite, inherited: str | None, origin: str) -> str | None:
    stamp = suite.get("timestamp")
    if not stamp:
        return inherited
    try:
        return format_ts(parse_time(stamp.strip(), "timestamp"))
    except ComError:
        raise ComError(
            f"{origin}: testsuite '{suite.get('name', '')}': timestamp {stamp!r} is not an ISO-8601 time"
        ) from None


def _first(root, tag):
    for elem in root.iter(tag):
        return elem
    return None


def parse_report(
    content: bytes,
    origin: str,
    *,
    project: str,
    commit: str | None,
    branch: str | None,
    run_id: str | None,
    source: str | None,
    default_ts: str,
    warn: Callable[[str], None],
) -> list[dict] | None:
    """Events of one report's bytes; None (with a warning) when it is well-formed XML but not JUnit."""
    try:
        root = ET.fromstring(content)
    except ET.ParseError as exc:
        line, column = exc.position
        reason = _POSITION_RE.sub("", str(exc))
        raise ComError(f"{origin}: line {line}: malformed XML: {reason} (column {column})") from None
    root_tag = _local(root.tag)
    if root_tag not in ("testsuites", "testsuite"):
        warn(f"{origin}: not a JUnit report (root element <{root_tag}>), skipped")
        return None
    # A result's identity comes from what the report says, never from its file name: a renamed copy of a
    # report adds nothing, two different reports of the same tests (different bytes) are both kept.
    digest = hashlib.blake2b(content, digest_size=8).hexdigest()
    run_id = run_id or "junit-" + digest
    first_suite = root if root_tag == "testsuite" else _first(root, "testsuite")
    producer = _producer(root, first_suite, _first(root, "testcase"))
    source = source or producer
    is_pytest = producer == "pytest"  # node ids follow the tool that wrote the report, whatever --source says
    common = {"commit": commit, "branch": branch, "run_id": run_id, "report_digest": digest}
    attempts_seen: dict[str, int] = {}
    events: list[dict] = []
    case_no = 0

    where = f"{origin}: "
    # Per classname: the file it names (Playwright) or None; a report repeats few classnames many times.
    file_of_class: dict[tuple[str, str | None], str | None] = {}

    def add(data: dict, ts: str | None):
        raw = {"type": "test_result", "project": project, "source": source, "data": data}
        if ts is not None:
            raw["ts"] = ts
        events.append(validate(raw, where=where, default_ts=default_ts))

    def walk(suite, suite_name: str | None, ts: str | None):
        nonlocal case_no
        for elem in suite:
            tag = elem.tag
            if tag[:1] == "{":
                tag = _local(tag)
            if tag == "testcase":
                case_no += 1
                testcase(elem, suite_name, ts)
            elif tag == "testsuite":
                walk(elem, elem.get("name") or suite_name, _suite_ts(elem, ts, origin))

    pieces: list = []  # pytest: (test_id, base, piece, ts) in report order, assembled into attempts at the end

    def testcase(tc, suite_name, ts):
        if is_pytest:
            piece = pytest_piece(tc, suite_name, case_no, origin)
            pieces.append((piece, ts))
            return
        get = tc.get
        name = get("name")
        name = name.strip() if name else ""
        classname = get("classname")
        classname = classname.strip() if classname else ""
        if not name:
            raise ComError(f"{origin}: testcase {case_no} (classname {classname!r}) has no name attribute")
        file_attr = get("file") or None
        key = (classname, file_attr)
        if key in file_of_class:
            file = file_of_class[key]
        else:
            # Playwright writes no file attribute: its classname is the spec file.
            file = file_of_class[key] = file_attr or (classname if _FILE_LIKE_RE.search(classname) else None)
        if is_pytest and classname:
            test_id = pytest_node_id(classname, name, file_attr)
        else:
            test_id = generic_test_id(file, classname, name)

        outcome_elem, status = None, "passed"
        before = after = stdout = stderr = props = None
        for child in tc:
            tag = child.tag
            if tag[:1] == "{":
                tag = _local(tag)
            kind = _OUTCOME.get(tag)
            if kind is not None:
                if outcome_elem is None or _STRENGTH[kind] > _STRENGTH[status]:
                    outcome_elem, status = child, kind
            elif tag in _RETRY_BEFORE:
                before = (before or []) + [(_RETRY_BEFORE[tag], child)]
            elif tag in _RETRY_AFTER:
                after = (after or []) + [(_RETRY_AFTER[tag], child)]
            elif tag == "system-out":
                stdout = child.text
            elif tag == "system-err":
                stderr = child.text
            elif tag == "properties":
                props = _properties(child)

        attempt = attempts_seen.get(test_id, 0)
        base = {"test_id": test_id, "name": name, "classname": classname or None, "suite": suite_name, **common}
        if file:
            base["file"] = file
        line = get("line")
        if line and line.isdigit():
            base["line"] = int(line)
        if props:
            base["properties"] = props

        if before:
            for retry_status, elem in before:
                attempt += 1
                add(_retry_data(base, retry_status, elem, attempt), ts)

        attempt += 1
        data = base.copy() if (before or after) else base
        data["status"] = status
        data["attempt"] = attempt
        data["duration_ms"] = _duration_ms(get("time"))
        if outcome_elem is not None:
            text = outcome_elem.text
            message = _message(outcome_elem.get("message"), text)
            if status == "skipped":
                if message:
                    data["skip_reason"] = message
                if outcome_elem.get("type"):
                    data["skip_type"] = outcome_elem.get("type")
            else:
                _put(data, "error_message", message)
                _put(data, "error_type", error_type(outcome_elem.get("type"), message))
                if is_pytest and message:
                    phase = _PHASE_RE.match(message)
                    if phase:  # the same field the pytest plugin writes
                        data["phase"] = phase.group(1)
                _put(data, "trace", trace_excerpt(text))
        if stdout:
            _put(data, "stdout", excerpt(stdout))
        if stderr:
            _put(data, "stderr", excerpt(stderr))
        add(data, ts)

        if after:
            for retry_status, elem in after:
                attempt += 1
                add(_retry_data(base, retry_status, elem, attempt), ts)
        attempts_seen[test_id] = attempt

    # A root <testsuite> (Surefire) is walked like any suite; a root <testsuites> only groups suites.
    walk(root, root.get("name") or None, _suite_ts(root, None, origin))
    if pieces:
        for data, ts in pytest_attempts(pieces, origin, warn):
            data.update(common)
            add(data, ts)
    if not events:
        warn(f"{origin}: a JUnit report with no test cases")
    return events


def _put(data: dict, key: str, value) -> None:
    if value is not None:
        data[key] = value


def _retry_data(base: dict, status: str, elem, attempt: int) -> dict:
    """One flaky*/rerun* element: a failed attempt with its own message, trace and output."""
    trace_text, stdout, stderr = elem.text, None, None
    for child in elem:
        tag = _local(child.tag)
        if tag == "stackTrace":
            trace_text = child.text
        elif tag == "system-out":
            stdout = child.text
        elif tag == "system-err":
            stderr = child.text
    message = _message(elem.get("message"), trace_text)
    data = dict(base)
    data["status"] = status
    data["attempt"] = attempt
    data["duration_ms"] = _duration_ms(elem.get("time"))
    data["retry"] = _local(elem.tag)
    _put(data, "error_message", message)
    _put(data, "error_type", error_type(elem.get("type"), message))
    _put(data, "trace", trace_excerpt(trace_text))
    _put(data, "stdout", excerpt(stdout))
    _put(data, "stderr", excerpt(stderr))
    return data


# -- pytest's junitxml: what each encoding means (see com.ingest.outcome) ---------------------------
def pytest_piece(tc, suite_name: str | None, case_no: int, origin: str) -> dict:
    """One <testcase> element of a pytest report, read but not yet an attempt: pytest writes a failed call
    and the teardown error after it as two elements, and a rerun attempt as an empty one."""
    get = tc.get
    name = get("name")
    name = name.strip() if name else ""
    classname = get("classname")
    classname = classname.strip() if classname else ""
    file_attr = get("file") or None
    base = {"name": name, "classname": classname or None, "suite": suite_name, "duration_ms": _duration_ms(get("time"))}
    line = get("line")
    if line and line.isdigit():
        base["line"] = int(line) + 1  # pytest writes its 0-based location; com stores 1-based lines
    piece = {"base": base, "failures": (), "errors": (), "skipped": None, "stdout": None, "stderr": None}
    if len(tc):
        failures, errors = [], []
        for child in tc:
            tag = _local(child.tag)
            if tag == "failure":
                failures.append(child)
            elif tag == "error":
                errors.append(child)
            elif tag == "skipped":
                piece["skipped"] = child
            elif tag == "system-out":
                piece["stdout"] = child.text
            elif tag == "system-err":
                piece["stderr"] = child.text
            elif tag == "properties":
                props = _properties(child)
                if props:
                    base["properties"] = props
        piece["failures"], piece["errors"] = failures, errors
    if not name:
        piece["test_id"] = None
    elif not classname:  # a module that could not be collected: classname "", name its dotted path
        piece["test_id"] = test_id = file_attr or name.replace(".", "/") + ".py"
        piece["collect"] = True
        base["name"] = test_id
        base["file"] = test_id
    else:
        piece["test_id"] = pytest_node_id(classname, name, file_attr)
        if file_attr:
            base["file"] = file_attr
    return piece


def _error_detail(elem) -> tuple[str | None, str | None, str | None]:
    """(message, error_type, trace) of a <failure>/<error>, without pytest's wrappers and notes."""
    from com.ingest.outcome import message_from_trace, strip_shortened_note, unwrap_fixture_message

    _, message = unwrap_fixture_message(elem.get("message"))
    message = strip_shortened_note(message)
    text = _surrogates(elem.text)
    if message in (None, "", "collection failure"):
        message = message_from_trace(text) or message
    message = clip(_surrogates(message), MESSAGE_CHARS) if message else None
    return message, error_type(elem.get("type"), message), trace_excerpt(text)


_XML_SURROGATE_RE = re.compile(r"#x(D[89A-F][0-9A-F]{2})")


def _surrogates(text: str | None) -> str | None:
    """pytest writes a lone surrogate (a non-UTF-8 byte of a file name, through os.fsdecode) as '#xDCE9',
    which XML can hold; com stores the byte it stands for as '\\xe9', as the pytest plugin does."""
    if not text or "#xD" not in text:
        return text

    def byte(m):
        code = int(m.group(1), 16)
        return f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"\\u{code:04x}"

    return _XML_SURROGATE_RE.sub(byte, text)


def _piece_data(piece: dict) -> dict:
    """The attempt one element describes (status, phase, messages), by the rules of com.ingest.outcome."""
    from com.ingest.outcome import CRASH_RE, SUBTESTS_FAILED_RE, attempt_status, unwrap_fixture_message

    setup_errors, teardown_errors, crashes, collect_errors = [], [], [], []
    for elem in piece["errors"]:
        phase, message = unwrap_fixture_message(elem.get("message"))
        if message and CRASH_RE.match(message):
            crashes.append(elem)  # pytest-xdist's crash report, written as a setup error
        elif phase == "teardown":
            teardown_errors.append(elem)
        elif piece.get("collect") or message == "collection failure":
            collect_errors.append(elem)
        else:
            setup_errors.append(elem)
    failures = piece["failures"]
    subtests, call = [], None
    if failures:
        last = failures[-1].get("message") or ""
        if SUBTESTS_FAILED_RE.match(last):  # pytest's own failure of a test whose fixture subtests failed
            subtests, call = failures[:-1], "passed"
        elif len(failures) > 1:  # one element, several failures: unittest subTest failures
            subtests, call = failures, "passed"
        else:
            call = "failed"
    skipped = piece["skipped"]
    if call is None and skipped is not None:
        if skipped.get("type") == "pytest.xfail":
            call = "failed" if skipped.get("message") == "xfail-marked test passes unexpectedly" else "xfailed"
        else:
            call = "skipped"
    if call is None and not setup_errors:
        call = "passed"  # an element without outcome: passed (pytest writes a non-strict XPASS so too)
    status, phase, extra_teardown = attempt_status(
        setup="failed" if setup_errors else None, call=call, teardown="failed" if teardown_errors else None,
        crashed=bool(crashes), subtests_failed=len(subtests), collect_failed=bool(collect_errors),
    )
    data: dict = {"status": status or "passed"}
    if phase:
        data["phase"] = phase
    cause = None
    if phase == "collect":
        cause = collect_errors[0]
    elif phase == "setup":
        cause = setup_errors[0]
    elif phase == "crash":
        cause = crashes[0]
    elif phase == "teardown":
        cause = teardown_errors[0]
    elif status == "failed":
        cause = (subtests or failures)[0]
    if cause is not None:
        message, etype, trace = _error_detail(cause)
        _put(data, "error_message", message)
        _put(data, "error_type", etype)
        _put(data, "trace", trace)
    if status == "skipped" and skipped is not None:
        data["skip_type"] = skipped.get("type") or "pytest.skip"
        _put(data, "skip_reason", _message(skipped.get("message"), None))
    elif status == "xfailed" and skipped is not None:
        _put(data, "xfail_reason", skipped.get("message") or None)
    if extra_teardown:
        message, etype, _ = _error_detail(teardown_errors[0])
        _put(data, "teardown_error", message)
        _put(data, "teardown_error_type", etype)
    if subtests:
        listed = []
        for elem in subtests:
            message, etype, _ = _error_detail(elem)
            sub = {"name": None, "status": "failed"}
            _put(sub, "error_message", message)
            _put(sub, "error_type", etype)
            listed.append(sub)
        data["subtests"] = listed
    return data


def _bare(piece: dict) -> bool:
    return not (piece["failures"] or piece["errors"] or piece["skipped"] is not None)


def pytest_attempts(pieces: list, origin: str, warn: Callable[[str], None]):
    """(data, ts) per attempt of a pytest report, in report order, each encoding read for what it means:
    - the same test again after an element without outcome: that element was an attempt pytest-rerunfailures
      retried (junitxml writes nothing of it): failed, rerun, no message;
    - an element holding only a teardown error right after a failed call of the same test: the teardown
      error of that attempt (junitxml splits them), not another attempt;
    - an element without a name: an attempt junitxml never named, which pytest-xdist reports when a rerun
      crashed its worker; it is the crashed test's when the report names one crashed test, else skipped."""
    by_test: dict[str, list] = {}
    nameless = []
    for piece, ts in pieces:
        if piece["test_id"] is None:
            nameless.append((piece, ts))
        else:
            by_test.setdefault(piece["test_id"], []).append((piece, ts))

    attempts: dict[str, list] = {}
    for test_id, group in by_test.items():
        if len(group) == 1 and _bare(group[0][0]):  # the common case: one element, a plain pass
            attempts[test_id] = [(group[0][0], group[0][1], {"status": "passed"})]
            continue
        merged: list = []
        for piece, ts in group:
            errors = piece["errors"]
            only_teardown = (
                errors and not piece["failures"] and piece["skipped"] is None
                and all((e.get("message") or "").startswith("failed on teardown with ") for e in errors)
            )
            if only_teardown and merged and merged[-1][0]["failures"] and "teardown" not in merged[-1][2]:
                merged[-1][2]["teardown"] = piece
                continue
            merged.append((piece, ts, {}))
        rows = []
        last = len(merged) - 1
        for i, (piece, ts, extra) in enumerate(merged):
            if i < last and _bare(piece):
                data = {"status": "failed", "rerun": True}
            else:
                if "teardown" in extra:
                    piece = dict(piece, errors=[*piece["errors"], *extra["teardown"]["errors"]])
                data = _piece_data(piece)
                if i < last:
                    data["rerun"] = True
            rows.append((piece, ts, data))
        attempts[test_id] = rows

    if nameless:
        crashed = [t for t, rows in attempts.items() if rows and rows[-1][2].get("phase") == "crash"]
        if len(crashed) == 1:
            rows = attempts[crashed[0]]
            final = rows[-1][0]
            extra = [(dict(final, base={**final["base"], "duration_ms": piece["base"]["duration_ms"]}), ts,
                      {"status": "failed", "phase": "crash", "rerun": True})
                     for piece, ts in nameless]
            attempts[crashed[0]] = rows[:-1] + extra + rows[-1:]
        else:
            warn(f"{origin}: {len(nameless)} testcase(s) without a name skipped (attempts pytest's junitxml "
                 "could not name, e.g. reruns of a test that crashed its pytest-xdist worker)")

    for test_id, rows in attempts.items():
        for attempt, (piece, ts, data) in enumerate(rows, 1):
            data.update(piece["base"])
            data["test_id"] = test_id
            data["attempt"] = attempt
            if piece["stdout"] is not None and (not data.get("rerun") or "error_message" in data):
                _put(data, "stdout", excerpt(piece["stdout"]))
            if piece["stderr"] is not None and (not data.get("rerun") or "error_message" in data):
                _put(data, "stderr", excerpt(piece["stderr"]))
            yield data, ts


# -- the whole input -------------------------------------------------------------------------
def events_from_reports(
    paths: Iterable[str],
    *,
    project: str | None = None,
    commit: str | None = None,
    run_id: str | None = None,
    repo: str | os.PathLike | None = None,
    branch: str | None = None,
    source: str | None = None,
    warn: Callable[[str], None],
) -> list[dict]:
    """Validated test_result events from JUnit reports (files, folders, globs); nothing is written here.

    project defaults to the code repository's folder name; run_id to a hash of each report's bytes
    (so re-ingesting a report adds nothing); commit/branch as com.code.repo.resolve finds them."""
    paths = list(paths)
    files = find_reports(paths, warn)
    contents = []
    for path in files:
        try:
            contents.append((path, path.read_bytes()))
        except OSError as exc:
            raise ComError(f"{path}: cannot read: {exc.strerror or exc}") from None
    revision = code_repo.resolve(commit, branch, repo)
    if revision.commit is None:
        warn("no code commit known for these results (no git repository with commits here; give --commit or --repo)")
    project = project or code_repo.default_project(repo, revision.repo)
    default_ts = format_ts(now_utc())
    events: list[dict] = []
    skipped = 0
    # Building tens of thousands of small dicts next to a large element tree triggers cyclic GC passes
    # that find nothing (no cycles are made here): pausing it saves about a quarter of the parse time.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for path, content in contents:
            got = parse_report(
                content, str(path), project=project, commit=revision.commit, branch=revision.branch,
                run_id=run_id, source=source, default_ts=default_ts, warn=warn,
            )
            if got is None:
                skipped += 1
            else:
                events.extend(got)
    finally:
        if gc_was_enabled:
            gc.enable()
    if len(contents) == skipped:
        looked = ", ".join(paths)
        extra = f"; {skipped} file(s) skipped as not JUnit" if skipped else ""
        raise ComError(f"no JUnit report found in {looked} (folders are searched for TEST-*.xml and *junit*.xml{extra})")
    return events
