"""The catalog: which batch paths hold each event id, kept in SQLite (`.com/cache/catalog.sqlite`).

Derived and disposable. It lets an ingest deduplicate against a snapshot of a million events without reading
them, and `com show evt_…` find an event: with the batch paths of an id, the snapshot says whether it holds
one of them (`Snapshot.holding`).
"""

from __future__ import annotations

import sqlite3
from contextlib import contextmanager
from pathlib import Path

from com.files import sqlite

SCHEMA_VERSION = 6

# Event ids as a 60-bit integer key (the first 15 hex digits of the 96-bit id), blobs by rowid: integer
# B-trees keep the catalog small. WITHOUT ROWID, clustered on the key: one B-tree instead of a table and an
# index (a third faster to fill, half the size).
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS blobs (n INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS ids (key INTEGER NOT NULL, blob INTEGER NOT NULL, PRIMARY KEY (key, blob)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS commits (sha TEXT PRIMARY KEY);
"""
_TABLES = ("blobs", "ids", "tests", "results", "commits")  # "tests", "results": older schemas, dropped


def id_key(event_id: str) -> int:
    return int(event_id[4:19], 16)


class Catalog:
    name = "catalog"

    def __init__(self, folder: Path):
        self.path = Path(folder) / "catalog.sqlite"
        self._db: sqlite3.Connection | None = None

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            self._db = self._open()
        return self._db

    def _open(self) -> sqlite3.Connection:
        db = sqlite.connect(self.path)
        # A big ingest writes a big WAL; without a limit the file keeps that size after checkpointing.
        db.execute("PRAGMA journal_size_limit=16777216")
        # The default 2 MB page cache spills a 100,000-event transaction to the WAL page by page and reads
        # it back (130,000 pread/pwrite calls measured); a bigger cache, used only as needed, writes it once.
        db.execute("PRAGMA cache_size=-262144")
        version = None
        try:
            row = db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
            version = int(row[0]) if row else None
        except sqlite3.OperationalError:
            pass
        if version != SCHEMA_VERSION:
            db.executescript("".join(f"DROP TABLE IF EXISTS {t};" for t in _TABLES) + _SCHEMA)
            db.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
        return db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    # -- the view protocol ------------------------------------------------------------------------
    def seen(self, sha: str) -> bool:
        return self.db.execute("SELECT 1 FROM commits WHERE sha=?", (sha,)).fetchone() is not None

    def has_batch(self, path: str) -> bool:
        return self.db.execute("SELECT 1 FROM blobs WHERE path=?", (path,)).fetchone() is not None

    @contextmanager
    def taking(self, shas: list[str]):
        db = self.db
        with sqlite.transaction(db):
            def add(batch, events) -> None:
                n = db.execute("INSERT INTO blobs (path) VALUES (?)", (batch.path,)).lastrowid
                # Rows sorted in index order: B-tree inserts in order cost about a third less than random ones.
                # OR IGNORE: one batch holds one event twice only if written by hand; the catalog needs it once.
                db.executemany("INSERT OR IGNORE INTO ids VALUES (?, ?)",
                               sorted((int(ev["id"][4:19], 16), n) for ev in events))

            yield add
            db.executemany("INSERT OR IGNORE INTO commits VALUES (?)", [(sha,) for sha in shas])

    def reset(self) -> None:
        self.close()
        for suffix in ("", "-wal", "-shm"):
            Path(str(self.path) + suffix).unlink(missing_ok=True)

    def health(self) -> str | None:
        try:
            self.db.execute("PRAGMA quick_check").fetchone()
            self.db.execute("SELECT COUNT(*) FROM commits").fetchone()
        except sqlite3.DatabaseError as exc:
            return f"the catalog cannot be read ({exc})"
        return None

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
