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
from pathlib import Path
from typing import Iterable, Iterator

from com.model.errors import InvalidEvent
from com.model.event import FIELDS, Event, id_key, to_line, ts_us, validate

EVENTS_DIR = "events"
_PATH_RE = re.compile(r"events/([^/]+)/(\d{4}-\d{2}-\d{2})/([0-9a-f]{16})\.jsonl\Z")


def content_name(data: bytes) -> str:
    """A batch's name: a hash of its bytes, so one path can never hold two different contents."""
    return hashlib.blake2b(data, digest_size=8).hexdigest()


def legacy_name(ids: list[str]) -> str:
    """How batches were named before: after their event ids (still valid in old journals)."""
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
            self._data = journal.blob(self.oid, self.path)
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


@dataclass
class BatchCheck:
    """What `check_batch` found: id -> stored line of each event (None if the batch is unreadable), the
    problems, each one line naming the path (and line), and the ids of its lines in order (an id on two lines
    is there twice)."""

    lines: dict[str, bytes] | None
    problems: list[str]
    ids: list[str] = field(default_factory=list)


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
    return BatchCheck(events, problems, ids)


class WrittenIds:
    """What a big write hands the views: the ids of a batch, in line order (all the catalog needs), and the
    event types it holds (a view keeping only some types knows whether to read the batch back)."""

    def __init__(self, ids: list[str], types: set[str] | None = None):
        self._ids = ids
        self.types = types

    def ids(self) -> list[str]:
        return self._ids

    def __len__(self) -> int:
        return len(self._ids)


_DERIVED = object()


class Spool:
    """Validated events gathered into batches (one per project and day) as their stored lines, without keeping
    the events: in memory up to MEMORY_BYTES, then in temporary files under `folder`, so a write of a million
    events holds their ids, not their text. Each id once (a repeat in the input is counted, not stored).
    The events themselves are kept only while there are at most `keep_events` of them (the views that take a
    small write at once read them)."""

    MEMORY_BYTES = 32 << 20

    def __init__(self, folder: Path, keep_events: int = 0):
        self.folder = Path(folder)
        self.keep_events = keep_events
        self.events: list[dict] | None = []
        # id -> hash of its line, or _DERIVED (a repeat with another line is looked at)
        self.seen: dict[str, object] = {}
        self.given: set[str] = set()  # ids the input named (one may come again with other content: a conflict)
        self.untimed: set[str] = set()  # ids whose time was not given (the recording time)
        self.order: list[str] = []  # each id once, in the order given
        self.total = 0  # events given, repeats included
        self.groups: dict[tuple[str, str], _Group] = {}
        self.in_memory = 0
        self._tmp: Path | None = None

    def __enter__(self) -> "Spool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def add(self, event: dict) -> "Event | None":
        """Take one validated event. A repeat of an id already taken is counted, not stored; when its line differs
        from the first one's, the first is returned (as an Event) for the caller to judge (None otherwise)."""
        differing = [first for first, _ in self.take((event,))]
        return differing[0] if differing else None

    def take(self, events: Iterable[dict]) -> Iterator[tuple[Event, dict]]:
        """`add` each event, in one loop with its lookups made once (a bulk ingest takes a million); yields
        (first, event) for each repeat of an id whose line differs from the first one's, for the caller to judge."""
        seen, order, groups, untimed, given = self.seen, self.order, self.groups, self.untimed, self.given
        limit, flush_bytes = self.MEMORY_BYTES, _Group.FLUSH_BYTES
        taken = 0
        try:
            for event in events:
                taken += 1
                eid = event["id"]
                line = getattr(event, "line", None) or to_line(event)
                timed = getattr(event, "ts_given", True)
                named = getattr(event, "id_given", True)
                digest = _DERIVED if timed and not named else hash(line)
                first = seen.get(eid)
                if first is not None:
                    if first != digest:
                        yield self._first(eid), event
                    continue
                seen[eid] = digest
                order.append(eid)
                if not timed:
                    untimed.add(eid)
                if named:
                    given.add(eid)
                if self.events is not None:
                    self.events.append(event)
                    if len(self.events) > self.keep_events:
                        self.events = None
                key = (event["project"], event["ts"][:10])
                group = groups.get(key)
                if group is None:
                    group = groups[key] = _Group(key)
                group.ids.append(eid)
                group.lines.append(line)
                group.types.add(event["type"])
                if group.file is None:
                    self.in_memory += len(line)
                    if self.in_memory > limit:
                        self._spill()
                else:
                    group.held += len(line)
                    if group.held > flush_bytes:
                        group.flush()
        finally:
            self.total += taken

    def _first(self, eid: str) -> Event:
        return self.events_of({eid})[eid]

    def events_of(self, ids) -> "dict[str, Event]":
        """id -> the event taken for it, read back from the stored lines (with whether its time was given)."""
        ids = set(ids)
        out = {}
        for group in self.groups.values():
            for line in group.lines_of(ids):
                event = Event(json.loads(line))
                event.line = line
                event.id_given = event["id"] in self.given
                event.ts_given = event["id"] not in self.untimed
                out[event["id"]] = event
        return out

    def _spill(self) -> None:
        """Move the lines held in memory to the batches' temporary files."""
        import tempfile

        if self._tmp is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._tmp = Path(tempfile.mkdtemp(prefix="ingest-", dir=self.folder))
        for n, group in enumerate(self.groups.values()):
            if group.file is None:
                group.spill(self._tmp / f"{len(self.groups)}-{n}-{id(group)}.jsonl")
            else:
                group.flush()
        self.in_memory = 0

    def ids(self) -> list[str]:
        """Each id once, in the order given."""
        return self.order

    def drop(self, ids: set[str]) -> None:
        """Leave these ids out (the snapshot holds them already)."""
        if not ids:
            return
        self.order = [eid for eid in self.order if eid not in ids]
        for key, group in list(self.groups.items()):
            group.drop(ids)
            if not group.ids:
                del self.groups[key]
        if self.events is not None:
            self.events = [e for e in self.events if e["id"] not in ids]

    def write_blobs(self, repo) -> dict[str, object]:
        """Write each batch's blob into the journal's object database; path -> blob id. A batch is named after
        its bytes (see the module's note)."""
        out = {}
        for (project, day), group in self.groups.items():
            group.write_blob(repo)
            out[f"{EVENTS_DIR}/{project}/{day}/{group.name}.jsonl"] = group.oid
        return out

    def written(self) -> dict[str, object]:
        """path -> what the views are handed (after `write_blobs`): the events of a small write, else the ids."""
        paths = {group.key: f"{EVENTS_DIR}/{group.key[0]}/{group.key[1]}/{group.name}.jsonl"
                 for group in self.groups.values()}
        if self.events is None:
            return {paths[key]: WrittenIds(group.ids, group.types) for key, group in self.groups.items()}
        by_group: dict[tuple[str, str], list[dict]] = {}
        for event in self.events:
            by_group.setdefault((event["project"], event["ts"][:10]), []).append(event)
        return {paths[key]: by_group[key] for key in self.groups}

    def close(self) -> None:
        for group in self.groups.values():
            group.close()
        if self._tmp is not None:
            import shutil

            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None


class _Group:
    """The stored lines of one batch being written (text, without their newlines): in memory, or, once spilled, in
    a temporary file (UTF-8) followed by the lines taken since (in memory until the next spill). The file's
    bytes are hashed as they are written, so naming the batch needs no second reading of them."""

    FLUSH_BYTES = 256 << 10  # lines held before they are appended to the file: big writes, in the CPU's cache

    def __init__(self, key: tuple[str, str]):
        self.key = key
        self.ids: list[str] = []
        self.types: set[str] = set()
        self.lines: list[str] = []  # the lines not in the file (all of them while there is none)
        self.held = 0  # characters in `lines`, once there is a file
        self.file = None
        self.path: Path | None = None
        self.digest = None  # blake2b of the file's bytes, while the file is only appended to
        self.name: str | None = None  # after write_blob: the batch's name (a hash of its bytes) and blob id
        self.oid = None

    def _open(self, path: Path, mode: str):
        self.path = path
        self.file = open(path, mode)

    def spill(self, path: Path) -> None:
        self._open(path, "wb")
        self.digest = hashlib.blake2b(digest_size=8)
        self.flush()

    def flush(self) -> None:
        """Append the lines held in memory to the file (a few hundred at a time: big writes, in the CPU's cache)."""
        lines = self.lines
        for start in range(0, len(lines), 500):
            data = ("\n".join(lines[start:start + 500]) + "\n").encode("utf-8")
            self.file.write(data)
            if self.digest is not None:
                self.digest.update(data)
        self.lines = []
        self.held = 0

    def drop(self, ids: set[str]) -> None:
        if not any(eid in ids for eid in self.ids):
            return
        self.ids = [eid for eid in self.ids if eid not in ids]
        if self.file is None:
            self.lines = [line for line in self.lines if line_id(line.encode("utf-8")) not in ids]
            return
        self.flush()
        self.file.close()
        kept = self.path.with_suffix(".kept")
        with open(self.path, "rb") as src, open(kept, "wb") as dst:
            dst.writelines(line for line in src if line_id(line) not in ids)
        self.path.unlink()
        self._open(kept, "ab")
        self.digest = None  # the file was rewritten: hashed when its blob is written

    def lines_of(self, ids: set[str]) -> list[str]:
        """The lines of these ids (text), read back from memory or the file."""
        if not any(eid in ids for eid in self.ids):
            return []
        if self.file is None:
            return [line for line in self.lines if line_id(line.encode("utf-8")) in ids]
        self.flush()
        self.file.flush()
        with open(self.path, "rb") as src:
            return [line.rstrip(b"\n").decode("utf-8") for line in src if line_id(line) in ids]

    def write_blob(self, repo) -> None:
        """Write the batch's blob into the journal's object database (streamed from the file when spilled), and
        name it after its bytes: sets `oid` and `name`."""
        if self.file is None:
            data = ("\n".join(self.lines) + "\n").encode("utf-8")
            self.name, self.oid = content_name(data), repo.create_blob(data)
            return
        self.flush()
        self.file.flush()
        digest = self.digest
        if digest is None:
            digest = hashlib.blake2b(digest_size=8)
            with open(self.path, "rb") as src:
                for chunk in iter(lambda: src.read(1 << 20), b""):
                    digest.update(chunk)
        self.name, self.oid = digest.hexdigest(), repo.create_blob_fromdisk(str(self.path))

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None


def line_key(line: bytes) -> tuple[int, int]:
    """The catalog key of a stored line's event: its whole id as two integers (hi, lo), as the catalog keeps it."""
    return id_key(line_id(line))


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
