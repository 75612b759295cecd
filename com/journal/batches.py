"""Batches: the JSONL blobs events are stored in, `events/<project>/<YYYY-MM-DD>/<batch-id>.jsonl`.

A batch is named after its event ids, so the same batch written twice lands at the same path, and a path is
never rewritten: "event E is in snapshot C" is exactly "one of E's batch paths is in C's tree".
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field

from com.model.event import to_line, ts_us

EVENTS_DIR = "events"
_PATH_RE = re.compile(r"events/([^/]+)/(\d{4}-\d{2}-\d{2})/([^/]+)\.jsonl\Z")


def batch_name(ids: list[str]) -> str:
    """A batch is named after its event ids: the same batch written twice lands at the same path."""
    return hashlib.blake2b("\n".join(ids).encode(), digest_size=8).hexdigest()


def project_day(path: str) -> tuple[str, str] | None:
    """(project, day) of a batch path, None if it is not one."""
    m = _PATH_RE.match(path)
    return (m.group(1), m.group(2)) if m else None


def parse_lines(data: bytes) -> list[dict]:
    return parse_stored([line for line in data.splitlines() if line.strip()])


def parse_stored(lines: list[bytes]) -> list[dict]:
    """The events of stored lines: one JSON array parsed in C (about twice as fast as a json.loads per line);
    a line that is not one JSON value is then parsed alone, so the error names it."""
    try:
        events = json.loads(b"[" + b",".join(lines) + b"]")
    except ValueError:
        events = None
    if events is None or len(events) != len(lines):  # e.g. a line "1, 2" holds two values
        events = [json.loads(line) for line in lines]
    return events


def line_id(line: bytes) -> str:
    """A stored line's event id, read from where a stored line starts (`{"id":"evt_` and 24 hex digits); a
    line written another way is parsed."""
    if line.startswith(b'{"id":"evt_') and line[35:36] == b'"':
        return line[7:35].decode()
    return json.loads(line)["id"]


class BatchEvents:
    """A batch's events as the walker hands them to the views: its lines, parsed on first use, and their ids
    readable without parsing them (the catalog needs only those)."""

    def __init__(self, data: bytes):
        self.lines = [line for line in data.splitlines() if line.strip()]
        self._events: list[dict] | None = None

    def events(self) -> list[dict]:
        if self._events is None:
            self._events = parse_stored(self.lines)
        return self._events

    def ids(self) -> list[str]:
        if self._events is not None:
            return [event["id"] for event in self._events]
        return [line_id(line) for line in self.lines]

    def __len__(self) -> int:
        return len(self.lines)

    def __iter__(self):
        return iter(self.events())

    def __getitem__(self, index):
        return self.events()[index]


@dataclass
class Batch:
    """One batch of a snapshot: its path, blob id and the day folder it sits in; read on demand, once."""

    path: str
    oid: object
    day: str
    project: str
    _data: bytes | None = field(default=None, repr=False)
    _contents: BatchEvents | None = field(default=None, repr=False)

    def data(self, journal) -> bytes:
        if self._data is None:
            self._data = journal.blob(self.oid)
        return self._data

    def contents(self, journal) -> BatchEvents:
        if self._contents is None:
            self._contents = BatchEvents(self.data(journal))
        return self._contents

    def events(self, journal) -> list[dict]:
        return self.contents(journal).events()

    def lines(self) -> list[bytes] | None:
        """The stored lines, if the batch has been read (None: only its events are known)."""
        return [line for line in self._data.splitlines() if line.strip()] if self._data is not None else None

    def forget(self) -> None:
        """Drop what was read (a long catch-up must not hold every batch in memory)."""
        self._data = self._contents = None


def prepare(events: list[dict]) -> dict[str, tuple[bytes, list[dict]]]:
    """Validated events -> {batch path: (blob bytes, its events)}: one batch per project and day."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for event in events:
        groups.setdefault((event["project"], event["ts"][:10]), []).append(event)
    out = {}
    for (project, day), group in groups.items():
        path = f"{EVENTS_DIR}/{project}/{day}/{batch_name([e['id'] for e in group])}.jsonl"
        out[path] = (("\n".join(to_line(e) for e in group) + "\n").encode("utf-8"), group)
    return out


def line_key(line: bytes) -> int:
    """The catalog key of a stored line's event (the first 15 hex digits of its id)."""
    return int(line_id(line)[4:19], 16)


_TS = b'"ts":"'


def line_time(line: bytes, cache: dict) -> int:
    """A stored line's time in microseconds, found in its text (id, type, project and source come before it
    and are JSON strings, so `"ts":"` cannot occur earlier); a line written another way is parsed."""
    start = line.find(_TS)
    if start == -1:
        return ts_us(json.loads(line)["ts"])
    start += len(_TS)
    text = line[start:line.find(b'"', start)]
    us = cache.get(text)
    if us is None:
        us = cache[text] = ts_us(text.decode())
    return us


def lines_in_time_order(journal, batches: list[Batch], keep=None):
    """The stored lines of `batches`, oldest first, one day at a time (a list per day): equal times keep the
    order of `batches`, then of the lines. A batch holds the events of one day (its folder), so only one day's
    batches are read and held at once, however long the range. `keep(line)`, when given, is asked for each
    line in the order of `batches` and lines, and drops the line if false."""
    days: dict[str, list[Batch]] = {}
    for batch in batches:
        days.setdefault(batch.day, []).append(batch)
    times: dict = {}
    for day in sorted(days):
        keyed = []
        for batch in days[day]:
            for line in journal.blob(batch.oid).split(b"\n"):
                if line.strip() and (keep is None or keep(line)):
                    keyed.append((line_time(line, times), len(keyed), line))
        keyed.sort(key=lambda k: (k[0], k[1]))
        yield [line for _, _, line in keyed]
