"""Batches: the JSONL blobs events are stored in, `events/<project>/<YYYY-MM-DD>/<batch-id>.jsonl`.

A batch is named after its event ids, so the same batch written twice lands at the same path, and a path is
never rewritten: "event E is in snapshot C" is exactly "one of E's batch paths is in C's tree".
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field

from com.model.event import to_line

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
    return [json.loads(line) for line in data.splitlines() if line.strip()]


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
            self._data = journal.blob(self.oid)
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
        path = f"{EVENTS_DIR}/{project}/{day}/{batch_name([e['id'] for e in group])}.jsonl"
        out[path] = (("\n".join(to_line(e) for e in group) + "\n").encode("utf-8"), group)
    return out
