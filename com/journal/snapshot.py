"""A snapshot: the journal as it was at one commit. Every read path goes through it.

A snapshot is exactly the set of batch paths in its commit's tree (paths are content-derived and never
rewritten), so "event E is in snapshot C" is "one of E's batch paths is in C's tree" (`has_path`), and a
derived store keeps C's rows by keeping the rows of those batches (`batch_paths`).
"""

from __future__ import annotations

import json

from com.journal.batches import Batch
from com.model.event import ts_us


class Snapshot:
    def __init__(self, journal, commit):
        self.journal = journal
        self.commit = commit  # None: an empty journal
        self._batches: list[Batch] | None = None
        self._paths: frozenset | None = None
        self._has: dict[str, bool] = {}

    @classmethod
    def at(cls, journal, rev: str | None = None) -> "Snapshot":
        """The snapshot at any revision or date; with no rev, HEAD (an empty journal is an empty snapshot)."""
        return cls(journal, journal.resolve_or_none(rev))

    @property
    def sha(self) -> str | None:
        return str(self.commit.id) if self.commit is not None else None

    def __bool__(self) -> bool:
        return self.commit is not None

    # -- which batches ---------------------------------------------------------------------------
    def batches(self) -> list[Batch]:
        """Every batch, newest day first."""
        if self._batches is None:
            self._batches = self.journal.batches(self.journal.tree(self.commit)) if self.commit is not None else []
        return self._batches

    def batch_paths(self) -> frozenset:
        if self._paths is None:
            self._paths = frozenset(b.path for b in self.batches())
        return self._paths

    def has_path(self, path: str) -> bool:
        """Is this batch path in the snapshot? (A tree lookup, remembered: cheaper than listing all paths.)"""
        if self._paths is not None:
            return path in self._paths
        known = self._has.get(path)
        if known is None:
            known = False
            if self.commit is not None:
                try:
                    self.journal.tree(self.commit)[path]
                    known = True
                except KeyError:
                    pass
            self._has[path] = known
        return known

    def holding(self, paths_of: dict[str, list[str]]) -> set[str]:
        """Which ids are in the snapshot, given each id's batch paths (from the catalog)."""
        return {eid for eid, paths in paths_of.items() if any(self.has_path(p) for p in paths)}

    # -- events ------------------------------------------------------------------------------------
    def events(self, where: EventFilter | None = None, limit: int | None = None, newest_first: bool = False):
        """The snapshot's events matching `where`, each once: newest first when asked or when `limit` is
        given, else in batch order as they are read. Batches sit in per-day folders named after their events'
        dates, so with a limit the read stops once `limit` events are newer than the next day left."""
        from com.model.filter import EventFilter

        newest_first = newest_first or limit is not None
        where = where or EventFilter()
        batches = self.batches()
        if where.projects:
            batches = [b for b in batches if b.project in where.projects]
        if where.since_us is not None or where.until_us is not None:
            batches = [b for b in batches if _day_overlaps(b.day, where.since_us, where.until_us)]
        needle = _needle(where)
        found: dict[str, dict] = {}
        current_day = None
        for batch in batches:
            if limit is not None and batch.day != current_day and len(found) >= limit:
                oldest_kept = sorted(ts_us(e["ts"]) for e in found.values())[-limit]
                if oldest_kept >= _day_end_us(batch.day):
                    break
            current_day = batch.day
            data = self.journal.blob(batch.oid, batch.path)
            for line in _lines_with(data, needle) if needle is not None else data.splitlines():
                if not line.strip():
                    continue
                event = json.loads(line)
                if event["id"] in found or not where.matches(event):
                    continue
                found[event["id"]] = event
                if not newest_first:
                    yield event
        if newest_first:
            events = sorted(found.values(), key=lambda e: (ts_us(e["ts"]), e["id"]), reverse=True)
            yield from events[:limit] if limit is not None else events


def _needle(where: EventFilter) -> bytes | None:
    """Bytes every matching line must contain (an exact or prefix test id), to search batches, not parse them."""
    if where.test is None or where.test.kind == "glob":
        return None
    # Batches store text unescaped (ensure_ascii=False): the needle is encoded the same way.
    return json.encoder.encode_basestring(where.test.pattern)[1:-1].encode("utf-8")


def _lines_with(data: bytes, needle: bytes):
    """The lines of a batch that contain needle, found by searching the bytes rather than every line."""
    start = data.find(needle)
    while start != -1:
        begin = data.rfind(b"\n", 0, start) + 1
        end = data.find(b"\n", start)
        end = len(data) if end == -1 else end
        yield data[begin:end]
        start = data.find(needle, end)


def _day_start_us(day: str) -> int:
    return ts_us(day + "T00:00:00Z")


def _day_end_us(day: str) -> int:
    return _day_start_us(day) + 86_400_000_000


def _day_overlaps(day: str, since_us: int | None, until_us: int | None) -> bool:
    if since_us is not None and _day_end_us(day) <= since_us:
        return False
    if until_us is not None and _day_start_us(day) > until_us:
        return False
    return True
