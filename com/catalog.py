"""The catalog: which event ids and test results live in which journal blob, kept in SQLite.

Derived and disposable (delete `.com/cache/` and it is rebuilt from the journal). It lets ingest
deduplicate against a snapshot of a million events without reading them, and lets `com diff` find a
test's status before a change. Because batch paths are derived from their content and blobs are never
rewritten, "this event is in snapshot C" is exactly "one of its paths exists in C's tree".
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

from com import cache_db

SCHEMA_VERSION = 5

# Everything is an integer where it can be: event ids as a 60-bit key (the first 15 hex digits of the
# 96-bit id), test ids as a 64-bit hash, blobs by rowid. Integer B-trees keep the catalog small (no test id
# text per result) and make cataloguing 100,000 events a small part of a bulk ingest. The
# tables are WITHOUT ROWID, clustered on what they are looked up by: one B-tree each instead of a table
# and an index (a third faster to fill, half the size). `seq` is the event's line in its batch: attempts
# of one test share a timestamp, and the later line is the later attempt.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS blobs (n INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS ids (key INTEGER NOT NULL, blob INTEGER NOT NULL, PRIMARY KEY (key, blob)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS results (
    test INTEGER NOT NULL, ts TEXT NOT NULL, blob INTEGER NOT NULL, seq INTEGER NOT NULL, status TEXT NOT NULL,
    PRIMARY KEY (test, ts, blob, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS commits (sha TEXT PRIMARY KEY);
"""
_TABLES = ("blobs", "ids", "tests", "results", "commits")  # "tests": schema 3-4, dropped on upgrade


_test_keys: dict[str, int] = {}


def key_of_test(test_id: str) -> int:
    """A signed 64-bit hash of a test id (a suite repeats its ids run after run, so each is hashed once)."""
    key = _test_keys.get(test_id)
    if key is None:
        if len(_test_keys) > 200_000:
            _test_keys.clear()
        digest = hashlib.blake2b(test_id.encode("utf-8", "surrogatepass"), digest_size=8).digest()
        key = _test_keys[test_id] = int.from_bytes(digest, "big", signed=True)
    return key


def id_key(event_id: str) -> int:
    return int(event_id[4:19], 16)


class Catalog:
    def __init__(self, folder: Path):
        self.db = cache_db.connect(folder / "catalog.sqlite")
        # A big ingest writes a big WAL; without a limit the file keeps that size after checkpointing.
        self.db.execute("PRAGMA journal_size_limit=16777216")
        # The default 2 MB page cache spills a 100,000-event transaction to the WAL page by page and reads
        # it back (130,000 pread/pwrite calls measured); a bigger cache, used only as needed, writes it once.
        self.db.execute("PRAGMA cache_size=-262144")
        version = None
        try:
            row = self.db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
            version = int(row[0]) if row else None
        except sqlite3.OperationalError:
            pass
        if version != SCHEMA_VERSION:
            self.db.executescript("".join(f"DROP TABLE IF EXISTS {t};" for t in _TABLES) + _SCHEMA)
            self.db.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))

    def close(self):
        self.db.close()

    # -- keeping up with the journal ---------------------------------------------------------
    def is_scanned(self, sha: str) -> bool:
        return self.db.execute("SELECT 1 FROM commits WHERE sha=?", (sha,)).fetchone() is not None

    def ensure(self, journal, commit) -> None:
        """Catalog every blob reachable from `commit` that is not catalogued yet."""
        if commit is None or self.is_scanned(str(commit.id)):
            return
        from com.journal import unseen_ancestors

        pending = unseen_ancestors(commit, self.is_scanned)
        self.db.execute("BEGIN IMMEDIATE")
        try:
            for c in pending:
                for path, blob_id in journal.added_blobs(c):
                    if self.db.execute("SELECT 1 FROM blobs WHERE path=?", (path,)).fetchone():
                        continue
                    self._insert(path, journal.read_blob(blob_id))
            self.db.executemany("INSERT OR IGNORE INTO commits VALUES (?)", [(str(c.id),) for c in pending])
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def _insert(self, path: str, events) -> None:
        n = self.db.execute("INSERT INTO blobs (path) VALUES (?)", (path,)).lastrowid
        # Rows sorted in index order: B-tree inserts in order cost about a third less than random ones.
        # OR IGNORE: one batch can hold one event twice only if it was written by hand; the catalog needs it once.
        self.db.executemany(
            "INSERT OR IGNORE INTO ids VALUES (?, ?)", sorted((int(ev["id"][4:19], 16), n) for ev in events)
        )
        results = [
            (ev["data"]["test_id"], ev["ts"], seq, ev["data"].get("status", ""))
            for seq, ev in enumerate(events)
            if ev["type"] == "test_result" and type(ev["data"].get("test_id")) is str
        ]
        if results:
            self.db.executemany(
                "INSERT INTO results VALUES (?, ?, ?, ?, ?)",
                sorted((key_of_test(t), ts, n, seq, st) for t, ts, seq, st in results),
            )

    def record_write(self, parent_sha: str | None, commit_sha: str, blobs: dict[str, list]) -> None:
        """Catalog a commit this process just wrote, without reading it back."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            for path, events in blobs.items():
                if not self.db.execute("SELECT 1 FROM blobs WHERE path=?", (path,)).fetchone():
                    self._insert(path, events)
            # Only a commit whose ancestors are all catalogued may be marked, or ensure() would stop early.
            if parent_sha is None or self.is_scanned(parent_sha):
                self.db.execute("INSERT OR IGNORE INTO commits VALUES (?)", (commit_sha,))
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    # -- questions ------------------------------------------------------------------------------
    def paths_of(self, ids) -> dict[str, list[str]]:
        """Blob paths that hold each of `ids` (on any branch ever catalogued)."""
        by_key = {id_key(eid): eid for eid in ids}
        out: dict[str, list[str]] = {}
        keys = list(by_key)
        for chunk, marks in cache_db.chunks(keys):
            rows = self.db.execute(
                f"SELECT ids.key, blobs.path FROM ids JOIN blobs ON blobs.n = ids.blob WHERE ids.key IN ({marks})", chunk
            )
            for key, path in rows:
                out.setdefault(by_key[key], []).append(path)
        return out

    def latest_status(self, test_id: str, contains_path) -> str | None:
        """The newest recorded status of a test among the blobs for which contains_path(path) is true."""
        key = key_of_test(test_id)
        offset, page = 0, 8
        while True:
            rows = self.db.execute(
                "SELECT status, path FROM results JOIN blobs ON blobs.n = results.blob"
                " WHERE test=? ORDER BY ts DESC, blob DESC, seq DESC LIMIT ? OFFSET ?",
                (key, page, offset),
            ).fetchall()
            for status, path in rows:
                if contains_path(path):
                    return status
            if len(rows) < page:
                return None
            offset += page
            page = min(page * 4, 4096)


def parse_lines(data: bytes) -> list[dict]:
    return [json.loads(line) for line in data.splitlines() if line.strip()]
