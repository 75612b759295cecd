"""The catalog: which batch paths hold each event id, kept in SQLite (`.com/cache/catalog.sqlite`).

Derived and disposable. It lets an ingest deduplicate against a snapshot of a million events without reading
them, and `com show evt_…` find an event: with the batch paths of an id, the snapshot says whether it holds
one of them (`Snapshot.holding`). It also knows how many events each batch holds (`com log` counts without
reading batches) and which ids sit in more than one batch (`shared`: both sides of a merge ingested them), so
`com diff` checks membership for those ids only: any other event of a batch is in a snapshot exactly when its
batch is.
"""

from __future__ import annotations

from contextlib import contextmanager

from com.files import sqlite
from com.journal.batches import BatchEvents, WrittenIds
from com.model.event import id_key
from com.views.base import SqliteView

# Event ids as two integers, the whole 96-bit id (hi: the first 12 hex digits, lo: the last 12), blobs by rowid:
# integer B-trees keep the catalog small, and ids are compared whole (a key of a prefix once made a distinct
# event look known). WITHOUT ROWID, clustered on the key: one B-tree instead of a table and an index (a third
# faster to fill, half the size).
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS blobs (n INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE, events INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS ids (hi INTEGER NOT NULL, lo INTEGER NOT NULL, blob INTEGER NOT NULL,
                                PRIMARY KEY (hi, lo, blob)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS shared (hi INTEGER NOT NULL, lo INTEGER NOT NULL, PRIMARY KEY (hi, lo)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS commits (sha TEXT PRIMARY KEY);
-- An id already catalogued (in another batch, or earlier in the same one) is shared. Checked by SQLite as each
-- row goes in: one more lookup of a key the insert looks up anyway (about a tenth more time), and no code
-- path that fills the catalog can forget it.
CREATE TRIGGER IF NOT EXISTS shared_ids BEFORE INSERT ON ids
WHEN EXISTS (SELECT 1 FROM ids WHERE hi = NEW.hi AND lo = NEW.lo)
BEGIN INSERT OR IGNORE INTO shared VALUES (NEW.hi, NEW.lo); END;
"""


class Catalog(SqliteView):
    name = "catalog"
    FILE = "catalog.sqlite"
    # 7: blobs.events, how many events each batch holds (`com events` says "of N", `com log` counts with it);
    # 8: ids compared whole (hi, lo); 9: shared, the ids held by more than one batch (`com diff` looks only at
    # those).
    SCHEMA_VERSION = 9
    SCHEMA = _SCHEMA
    TABLES = ("blobs", "ids", "shared", "tests", "results", "commits")  # "tests", "results": older schemas, dropped
    CACHE_KIB = 262144
    ids_only = True  # reads only each event's id: a big write hands it `WrittenIds`

    def has_batch(self, path: str) -> bool:
        return self.db.execute("SELECT 1 FROM blobs WHERE path=?", (path,)).fetchone() is not None

    @contextmanager
    def taking(self, shas: list[str]):
        db = self.db
        with sqlite.transaction(db):
            def add(batch, events) -> None:
                n = db.execute("INSERT INTO blobs (path, events) VALUES (?, ?)", (batch.path, len(events))).lastrowid
                # Only the ids: read from the stored lines without parsing them when the walker gives those.
                ids = events.ids() if isinstance(events, (BatchEvents, WrittenIds)) else [ev["id"] for ev in events]
                # Rows sorted in index order: B-tree inserts in order cost about a third less than random ones. Whole
                # ids (evt_ and 24 lowercase hex digits) sort as text in the order of their keys, and text sorts
                # faster than tuples (the order only makes inserting faster: the rows are the same in any order).
                # The keys as `id_key` makes them, inline (a function call per id is a tenth of this view's time).
                # OR IGNORE: one batch holds one event twice only if written by hand; the catalog needs it once.
                db.executemany("INSERT OR IGNORE INTO ids VALUES (?, ?, ?)",
                               [(int(i[4:16], 16), int(i[16:28], 16), n) for i in sorted(ids)])

            yield add
            self.mark_seen(shas)

    # -- questions ------------------------------------------------------------------------------
    def paths_of_keys(self, keys) -> dict[tuple[int, int], list[str]]:
        """Batch paths that hold each id key (hi, lo) (on any branch ever catalogued)."""
        keys = set(keys)
        out: dict[tuple[int, int], list[str]] = {}
        for chunk, marks in sqlite.chunks(list({hi for hi, _ in keys})):
            rows = self.db.execute(
                "SELECT ids.hi, ids.lo, blobs.path FROM ids JOIN blobs ON blobs.n = ids.blob "
                f"WHERE ids.hi IN ({marks})", chunk)
            for hi, lo, path in rows:
                if (hi, lo) in keys:
                    out.setdefault((hi, lo), []).append(path)
        return out

    def counts(self, paths) -> dict[str, int]:
        """How many events (lines) each batch holds, for the batches catalogued among `paths`."""
        out: dict[str, int] = {}
        for chunk, marks in sqlite.chunks(list(paths)):
            out.update(self.db.execute(f"SELECT path, events FROM blobs WHERE path IN ({marks})", chunk))
        return out

    def any_shared(self) -> bool:
        """Whether any id sits in more than one batch the catalog has taken."""
        return self.db.execute("SELECT 1 FROM shared LIMIT 1").fetchone() is not None

    def shared_in(self, paths) -> dict[tuple[int, int], list[str]]:
        """The ids held by more than one batch (or twice by one) that one of `paths` holds: id key -> those of
        `paths` that hold it. Usually empty: only both sides of a merge ingesting an event make one."""
        out: dict[tuple[int, int], list[str]] = {}
        if not self.any_shared():
            return out
        for chunk, marks in sqlite.chunks(list(paths)):
            rows = self.db.execute(
                "SELECT shared.hi, shared.lo, blobs.path FROM shared "
                "JOIN ids ON ids.hi = shared.hi AND ids.lo = shared.lo "
                f"JOIN blobs ON blobs.n = ids.blob WHERE blobs.path IN ({marks})", chunk)
            for hi, lo, path in rows:
                out.setdefault((hi, lo), []).append(path)
        return out

    def paths_of(self, ids) -> dict[str, list[str]]:
        """Batch paths that hold each of `ids` (on any branch ever catalogued)."""
        by_key = {id_key(eid): eid for eid in ids}
        return {by_key[key]: paths for key, paths in self.paths_of_keys(by_key).items()}

    def paths_with_prefix(self, hex_prefix: str) -> list[str]:
        """Batch paths holding an event whose id starts with evt_<hex_prefix> (at least 1 hex digit; the range is
        on an id's first 12 digits, so longer prefixes narrow nothing more here: the caller checks ids)."""
        digits = hex_prefix[:12]
        shift = 4 * (12 - len(digits))
        low = int(digits, 16) << shift
        high = (int(digits, 16) + 1) << shift
        rows = self.db.execute(
            "SELECT DISTINCT blobs.path FROM ids JOIN blobs ON blobs.n = ids.blob WHERE ids.hi >= ? AND ids.hi < ?"
            " LIMIT 1000", (low, high))
        return [path for (path,) in rows]
