"""The registry view: the flaky registry's events (`com.model.registry.TYPES`: status changes, healing attempts,
committed detections) kept apart from the millions of test results, in `.com/cache/registry.sqlite`.

Derived and disposable like every view: rebuilt from the journal alone gives the same rows. A snapshot's
registry is the rows of its batches, so `--at REV` is exact. Registry events are few (a person writes them),
so a reader takes all rows of the snapshot and folds them in memory; a catch-up over batches of test results
looks at their bytes only (`wants`), not at each event.
"""

from __future__ import annotations

import json
from contextlib import contextmanager

from com.files import sqlite
from com.model.event import ts_us
from com.model.registry import TYPE_SET
from com.views.base import SqliteView

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS commits (sha TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS batches (batch_no INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS events (batch_no INTEGER NOT NULL, seq INTEGER NOT NULL, id TEXT NOT NULL,
    type TEXT NOT NULL, test_id TEXT, ts_us INTEGER NOT NULL, event TEXT NOT NULL, PRIMARY KEY (batch_no, seq));
CREATE INDEX IF NOT EXISTS events_test ON events (test_id);
"""


# A batch without these bytes holds no registry event (stored lines are com's compact JSON; a test id that
# happens to contain one only costs a parse).
_NEEDLES = tuple(t.encode() for t in TYPE_SET)


class RegistryView(SqliteView):
    name = "registry view"
    FILE = "registry.sqlite"
    SCHEMA_VERSION = 1
    SCHEMA = _SCHEMA
    TABLES = ("meta", "commits", "batches", "events")
    CACHE_KIB = 8192

    def has_batch(self, path: str) -> bool:
        return self.db.execute("SELECT 1 FROM batches WHERE path=?", (path,)).fetchone() is not None

    def wants(self, data: bytes) -> bool:
        """Can this batch hold a registry event? (Read on its bytes: a million test results are not parsed.)"""
        return any(needle in data for needle in _NEEDLES)

    @contextmanager
    def taking(self, shas: list[str]):
        db = self.db
        with sqlite.transaction(db):
            def add(batch, events) -> None:
                n = db.execute("INSERT INTO batches (path) VALUES (?)", (batch.path,)).lastrowid
                rows = []
                for seq, event in enumerate(events):
                    if event.get("type") in TYPE_SET:
                        data = event.get("data") if isinstance(event.get("data"), dict) else {}
                        test_id = data.get("test_id") if isinstance(data.get("test_id"), str) else None
                        rows.append((n, seq, event["id"], event["type"], test_id, ts_us(event["ts"]),
                                     json.dumps(event, ensure_ascii=False, sort_keys=True)))
                if rows:
                    db.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?)", rows)

            yield add
            self.mark_seen(shas)

    def events(self, snapshot, types=None, test_id: str | None = None) -> list[dict]:
        """The snapshot's registry events (of `types`, about `test_id` when given), oldest first, each once."""
        paths = snapshot.batch_paths() if snapshot else frozenset()
        if not paths:
            return []
        held = {no: path for no, path in self.db.execute(
            "SELECT batch_no, path FROM batches WHERE batch_no IN (SELECT DISTINCT batch_no FROM events)")}
        batches = [no for no, path in held.items() if path in paths]
        if not batches:
            return []
        conds, args = [], []
        if types:
            conds.append(f"type IN ({','.join('?' * len(types))})")
            args.extend(types)
        if test_id is not None:
            conds.append("test_id = ?")
            args.append(test_id)
        out, seen = [], set()
        for chunk, marks in sqlite.chunks(batches):
            sql = f"SELECT id, ts_us, event FROM events WHERE batch_no IN ({marks})"
            if conds:
                sql += " AND " + " AND ".join(conds)
            for eid, when, text in self.db.execute(sql, [*chunk, *args]):
                if eid not in seen:
                    seen.add(eid)
                    out.append((when, eid, text))
        out.sort()
        return [json.loads(text) for _, _, text in out]
