"""The text an event stands for: what is embedded and keyword-indexed, and a failure's signature.

What is embedded for a test result: its test id split into words, its status, the error type and message and
the first lines of its trace, normalised so that numbers, hex ids, uuids, temp paths and timestamps do not make
two occurrences of one failure look different. Failures repeat the same few messages, so a million results
come down to a few thousand distinct texts. A result's signature is the shorter key failures are grouped by:
its error type and the first line of its message, normalised the same way.
"""

from __future__ import annotations

import hashlib
import re

# Changing how event text is built changes every text: the index records this and rebuilds when it moves.
TEXT_VERSION = 1
MAX_TEXT_CHARS = 700  # MiniLM reads 256 word pieces; longer text only costs time
TRACE_LINES = 3

_MESSAGE_KEYS = ("error_message", "message", "failure_message", "error", "failure", "reason")
_TYPE_KEYS = ("error_type", "exception", "exception_type", "failure_type")
_TRACE_KEYS = ("trace", "stack_trace", "stacktrace", "traceback", "details", "stack")
# Ids and plumbing say nothing about meaning; other data values of non-test events are embedded.
_SKIP_KEYS = frozenset(("commit", "run_id", "duration_ms", "branch", "file", "line", "id", "sha", "parent"))

_PLACEHOLDERS = (
    (re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"), "<uuid>"),
    (re.compile(r"\b\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?"), "<time>"),
    (re.compile(r"\b\d{1,2}:\d{2}:\d{2}(?:[.,]\d+)?\b"), "<time>"),
    (re.compile(r"(?:/private)?/(?:tmp|var/tmp|var/folders)/[^\s'\"`:,;)\]}>]*|"
                r"[A-Za-z]:\\Users\\[^\\\s]+\\AppData\\Local\\Temp\\[^\s'\"`:,;)\]}>]*"), "<tmp>"),
    (re.compile(r"\b0x[0-9a-fA-F]+\b"), "<hex>"),
    # Hex ids (shas, object addresses): at least 7 hex digits mixing letters and digits.
    (re.compile(r"\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{7,}\b"), "<hex>"),
    (re.compile(r"\b(?=[0-9A-F]*\d)(?=[0-9A-F]*[A-F])[0-9A-F]{12,}\b"), "<hex>"),
    # Quantities: 5000ms, 1.5 s, 30 seconds, 12.5%. Codes glued to letters (E4077, ORA-01555) are kept.
    (re.compile(r"(?<![\w.-])\d+(?:\.\d+)?(?=\s?(?:ms|s|sec|secs|seconds?|m|mins?|minutes?|h|px|kb|mb|gb|bytes?|%)(?!\w))"),
     "<num>"),
    # Decimals and long numbers (ports, counts, ids); short integers (HTTP 503, exit 2) carry meaning.
    (re.compile(r"(?<![\w.-])\d+\.\d+(?![\w-]|\.\d)"), "<num>"),
    (re.compile(r"(?<![\w.-])\d{4,}(?![\w-]|\.\d)"), "<num>"),
    (re.compile(r"\bline \d+"), "line <num>"),
    (re.compile(r"(?<=\.[a-z]{2})(?::\d+)+|(?<=\.[a-z]{3})(?::\d+)+|(?<=\.[a-z]{4})(?::\d+)+"), ":<num>"),
)
_SPACE = re.compile(r"\s+")
_ID_SPLIT = re.compile(r"[^A-Za-z0-9]+")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_SOURCE_SUFFIX = re.compile(r"\.(?:py|js|jsx|ts|tsx|mjs|cjs|java|kt|go|rb|rs|cs|php|spec|test)(?=\W|$)")


def normalise(text: str) -> str:
    """Placeholders for the parts of a message that change from run to run; whitespace collapsed."""
    for pattern, placeholder in _PLACEHOLDERS:
        text = pattern.sub(placeholder, text)
    return _SPACE.sub(" ", text).strip()


def split_test_id(test_id: str) -> str:
    """`tests/test_cart.py::TestPay::test_card[chrome-2]` -> `tests test cart test pay test card chrome 2`."""
    text = _SOURCE_SUFFIX.sub(" ", test_id)
    text = _CAMEL.sub(" ", text)
    return " ".join(w.lower() for w in _ID_SPLIT.split(text) if w)


def _first(data: dict, keys) -> str:
    for key in keys:
        value = data.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return ""


_memo: dict[tuple[str, int], str] = {}


def event_text(event: dict) -> str:
    """The normalised text an event is embedded (and keyword-indexed) as."""
    data = event.get("data") or {}
    if event["type"] == "test_result":
        parts = [split_test_id(data.get("test_id") or data.get("name") or ""), data.get("status", "")]
        error_type = _first(data, _TYPE_KEYS)
        message = _first(data, _MESSAGE_KEYS)
        if error_type and not message.startswith(error_type):
            parts.append(error_type)
        if message:
            parts.append(message[:MAX_TEXT_CHARS])
        trace = _first(data, _TRACE_KEYS)
        if trace:
            lines = [line.strip() for line in trace[:4000].splitlines() if line.strip()]
            parts.append(" | ".join(lines[:TRACE_LINES]))
    else:
        parts = [event["type"].replace("_", " ")]
        for key in sorted(data):
            value = data[key]
            if key not in _SKIP_KEYS and isinstance(value, str) and value.strip():
                parts.append(f"{key.replace('_', ' ')}: {value.strip()[:MAX_TEXT_CHARS]}")
        if event.get("tags"):
            parts.append("tags: " + ", ".join(event["tags"]))
    return _normalised(" · ".join(p for p in parts if p)[: MAX_TEXT_CHARS * 2], MAX_TEXT_CHARS)


def _normalised(raw: str, limit: int) -> str:
    """normalise(raw)[:limit], once per distinct text per process: results repeat the same few texts
    thousands of times."""
    text = _memo.get((raw, limit))
    if text is None:
        text = normalise(raw)[:limit]
        if len(_memo) < 200_000:
            _memo[(raw, limit)] = text
    return text


def text_hash(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


SIGNATURE_CHARS = 200


def signature(data: dict) -> str | None:
    """The normalised error signature of a test result's data (error type and first message line), or None
    when it carries no error."""
    message = _first(data, _MESSAGE_KEYS)
    error_type = _first(data, _TYPE_KEYS)
    first_line = message.splitlines()[0].strip() if message else ""
    if error_type and not first_line.startswith(error_type):
        first_line = f"{error_type}: {first_line}" if first_line else error_type
    return _normalised(first_line, SIGNATURE_CHARS) if first_line else None
