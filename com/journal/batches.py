"""Batches: the JSONL blobs events are stored in, `events/<project>/<YYYY-MM-DD>/<batch-id>.jsonl`.

A batch is named after its bytes (a hash of the blob), so one path can only ever hold one content: the same
batch written twice, by any memory, lands at the same path, and two different batches never share one. A path
is never rewritten: "event E is in snapshot C" is exactly "one of E's batch paths is in C's tree". Journals
written before this rule name batches after their event ids (`legacy_name`); those stay valid.

`check_batch` is the one check of a stored batch (fsck of the local journal, and pull/clone of every incoming
batch before a branch moves).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field

from com.model.errors import InvalidEvent
from com.model.event import FIELDS, to_line, validate

EVENTS_DIR = "events"
_PATH_RE = re.compile(r"events/([^/]+)/(\d{4}-\d{2}-\d{2})/([0-9a-f]{16})\.jsonl\Z")
_ID_PREFIX = b'{"id":"'


def content_name(data: bytes) -> str:
    """A batch's name: a hash of its bytes, so one path can never hold two different contents."""
    return hashlib.blake2b(data, digest_size=8).hexdigest()


def legacy_name(ids: list[str]) -> str:
    """How batches were named before: after their event ids (still valid in old journals)."""
    return hashlib.blake2b("\n".join(ids).encode(), digest_size=8).hexdigest()


def batch_path(project: str, day: str, data: bytes) -> str:
    return f"{EVENTS_DIR}/{project}/{day}/{content_name(data)}.jsonl"


def project_day(path: str) -> tuple[str, str] | None:
    """(project, day) of a batch path, None if it is not one."""
    m = _PATH_RE.match(path)
    return (m.group(1), m.group(2)) if m else None


def parse_lines(data: bytes) -> list[dict]:
    return [json.loads(line) for line in data.splitlines() if line.strip()]


def line_id(line: bytes) -> str:
    """The event id of a stored line (its first key, read without parsing the line when it has the stored form)."""
    if line.startswith(_ID_PREFIX) and line[35:36] == b'"':
        return line[7:35].decode("ascii", "replace")
    return json.loads(line)["id"]


@dataclass
class Batch:
    """One batch of a snapshot: its path, blob id and the day folder it sits in; read on demand, once."""

    path: str
    oid: object
    day: str
    project: str
    _data: bytes | None = field(default=None, repr=False)
    _events: list | None = field(default=None, repr=False)

    def data(self, journal) -> bytes:
        if self._data is None:
            self._data = journal.blob(self.oid, self.path)
        return self._data

    def events(self, journal) -> list[dict]:
        if self._events is None:
            self._events = parse_lines(self.data(journal))
        return self._events

    def lines(self) -> list[bytes] | None:
        """The stored lines, if the batch has been read (None: only its events are known)."""
        return [line for line in self._data.splitlines() if line.strip()] if self._data is not None else None

    def forget(self) -> None:
        """Drop what was read (a long catch-up must not hold every batch in memory)."""
        self._data = self._events = None


def prepare(events: list[dict]) -> dict[str, tuple[bytes, list[dict]]]:
    """Validated events -> {batch path: (blob bytes, its events)}: one batch per project and day."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for event in events:
        groups.setdefault((event["project"], event["ts"][:10]), []).append(event)
    out = {}
    for (project, day), group in groups.items():
        data = ("\n".join(to_line(e) for e in group) + "\n").encode("utf-8")
        out[batch_path(project, day, data)] = (data, group)
    return out


@dataclass
class BatchCheck:
    """What `check_batch` found: id -> stored line of each event (None if the batch is unreadable) and the
    problems, each one line naming the path (and line)."""

    lines: dict[str, bytes] | None
    problems: list[str]


def check_batch(path: str, data: bytes) -> BatchCheck:
    """Check one stored batch as fsck does: the path, each line (JSON, every field, a valid event), the project
    and day its events are filed under, and that the name matches its bytes (or, in old journals, its ids)."""
    where = project_day(path)
    if where is None:
        return BatchCheck(None, [f"{path}: not a batch path (events/<project>/<YYYY-MM-DD>/<16 hex digits>.jsonl)"])
    project, day = where
    problems: list[str] = []
    events: dict[str, bytes] = {}
    ids = []
    for n, line in enumerate(data.split(b"\n"), 1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
            if not isinstance(event, dict):
                raise InvalidEvent(f"expected a JSON object, got {type(event).__name__}")
            missing = [k for k in FIELDS if k not in event]
            if missing:
                raise InvalidEvent(f"missing field '{missing[0]}'")
            validate(event)
            if event["project"] != project or str(event["ts"])[:10] != day:
                raise InvalidEvent(f"event {event['id']} ({event['project']}, {str(event['ts'])[:10]}) is filed "
                                   f"under {project}/{day}")
        except (ValueError, RecursionError, InvalidEvent) as exc:  # json.JSONDecodeError is a ValueError
            message = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
            if isinstance(exc, RecursionError):
                message = "nests too deeply"
            return BatchCheck(None, [f"{path}: line {n}: {message}"])
        ids.append(event["id"])
        if event["id"] in events and events[event["id"]] != line:
            problems.append(f"{path}: event {event['id']} appears twice with different content")
        events[event["id"]] = line
    name = path.rsplit("/", 1)[1][: -len(".jsonl")]
    if name != content_name(data) and (not ids or name != legacy_name(ids)):
        problems.append(f"{path}: the batch name does not match its content (altered after writing?)")
    return BatchCheck(events, problems)
