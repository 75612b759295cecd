"""The catalog: which batch paths hold each event id, kept in SQLite (`.com/cache/catalog.sqlite`).

Derived and disposable. It lets an ingest deduplicate against a snapshot of a million events without reading
them, and `com show evt_…` find an event: with the batch paths of an id, the snapshot says whether it holds
one of them (`Snapshot.holding`).
"""

from __future__ import annotations

from contextlib import contextmanager

from com.files import sqlite
from com.views.base import SqliteView

# Event ids as a 60-bit integer key (the first 15 hex digits of the 96-bit id), blobs by rowid: integer
# B-trees keep the catalog small. WITHOUT ROWID, clustered on the key: one B-tree instead of a table and an
# index (a third faster to fill, half the size).
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS blobs (n INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE, events INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS ids (key INTEGER NOT NULL, blob INTEGER NOT NULL, PRIMARY KEY (key, blob)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS commits (sha TEXT PRIMARY KEY);
"""


def id_key(event_id: str) -> int:
    return int(event_id[4:19], 16)


class Catalog(SqliteView):
    name = "catalog"
    FILE = "catalog.sqlite"
    SCHEMA_VERSION = 7  # 7: blobs.events, how many events each batch holds (`com events` says "of N")
    SCHEMA = _SCHEMA
    TABLES = ("blobs", "ids", "tests", "results", "commits")  # "tests", "results": older schemas, dropped
    CACHE_KIB = 262144

    def has_batch(self, path: str) -> bool:
        return self.db.execute("SELECT 1 FROM blobs WHERE path=?", (path,)).fetchone() is not None

    @contextmanager
    def taking(self, shas: list[str]):
        db = self.db
        with sqlite.transaction(db):
            def add(batch, events) -> None:
                n = db.execute("INSERT INTO blobs (path, events) VALUES (?, ?)", (batch.path, len(events))).lastrowid
                # Rows sorted in index order: B-tree inserts in order cost about a third less than random ones.
                # OR IGNORE: one batch holds one event twice only if written by hand; the catalog needs it once.
                db.executemany("INSERT OR IGNORE INTO ids VALUES (?, ?)",
                               sorted((int(ev["id"][4:19], 16), n) for ev in events))

            yield add
            self.mark_seen(shas)

    # -- questions ------------------------------------------------------------------------------
    def paths_of(self, ids) -> dict[str, list[str]]:
        """Batch paths that hold each of `ids` (on any branch ever catalogued)."""
        by_key = {id_key(eid): eid for eid in ids}
        out: dict[str, list[str]] = {}
        for chunk, marks in sqlite.chunks(list(by_key)):
            rows = self.db.execute(
                f"SELECT ids.key, blobs.path FROM ids JOIN blobs ON blobs.n = ids.blob WHERE ids.key IN ({marks})", chunk
            )
            for key, path in rows:
                out.setdefault(by_key[key], []).append(path)
        return out

    def paths_with_prefix(self, hex_prefix: str) -> list[str]:
        """Batch paths holding an event whose id starts with evt_<hex_prefix> (at least 1 hex digit; an id is
        keyed by its first 15 digits, so longer prefixes narrow nothing more here: the caller checks ids)."""
        digits = hex_prefix[:15]
        shift = 4 * (15 - len(digits))
        low = int(digits, 16) << shift
        high = (int(digits, 16) + 1) << shift
        rows = self.db.execute(
            "SELECT DISTINCT blobs.path FROM ids JOIN blobs ON blobs.n = ids.blob WHERE ids.key >= ? AND ids.key < ?"
            " LIMIT 1000", (low, high))
        return [path for (path,) in rows]

    def event_count(self, paths) -> int:
        """How many events the batches at `paths` hold (an event both sides of a merge wrote counts twice)."""
        total = 0
        for chunk, marks in sqlite.chunks(list(paths)):
            total += self.db.execute(f"SELECT COALESCE(SUM(events), 0) FROM blobs WHERE path IN ({marks})",
                                     chunk).fetchone()[0]
        return total
