"""The index's rows: which event of which batch carries which text, in SQLite (`.com/cache/search.sqlite`).

One row per event per batch: (text, time, batch, line) as the key, clustered so that a text's events are one
run of the B-tree, newest last; its test and its "kind" (type, project, status, importance and tags: the
few combinations a history has, numbered once) as two small integers. A query walks a text's run backwards
and stops at the first events that match: about 30 us a text, where an indexed LanceDB query cost 3-15 ms of
CPU (measured at 1M rows). A row is a pointer, not the event: results are read back from the test-results
view or the batch. `text_keys` says which (kind, test) pairs each text has rows of, so a filter ranks only
the texts it can return. The texts' vectors are kept here too (in text-number order, a few blobs), so a
query process ranks them without reading the LanceDB table.

Local and derived, like the other views: rebuilt from the journal alone (texts and their vectors from the
embedding cache). It belongs to one LanceDB texts table (`index_id`): text numbers mean nothing elsewhere.
"""

from __future__ import annotations

import json
from contextlib import contextmanager

from com.files import sqlite
from com.model.event import canonical_json, ts_us
from com.model.filter import EventFilter
from com.model.text import event_text, text_hash
from com.views.base import SqliteView

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS commits (sha TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS batches (batch_no INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS tests (test_no INTEGER PRIMARY KEY, test_id TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS kinds (kind_no INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, type TEXT NOT NULL,
    project TEXT NOT NULL, status TEXT NOT NULL, importance REAL NOT NULL, tags TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS texts (text_no INTEGER PRIMARY KEY, hash TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS vectors (first INTEGER PRIMARY KEY, count INTEGER NOT NULL, matrix BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS rows (text_no INTEGER NOT NULL, ts_us INTEGER NOT NULL, batch_no INTEGER NOT NULL,
    seq INTEGER NOT NULL, test_no INTEGER NOT NULL, kind INTEGER NOT NULL,
    PRIMARY KEY (text_no, ts_us, batch_no, seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS text_keys (kind INTEGER NOT NULL, test_no INTEGER NOT NULL, text_no INTEGER NOT NULL,
    PRIMARY KEY (kind, test_no, text_no)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS text_keys_test ON text_keys (test_no);
"""
MAX_VECTOR_BLOBS = 8  # appended per update; merged into one past this many


class RowStore(SqliteView):
    name = "search index rows"
    FILE = "search.sqlite"
    SCHEMA_VERSION = 1
    SCHEMA = _SCHEMA
    TABLES = ("meta", "commits", "batches", "tests", "kinds", "texts", "vectors", "rows", "text_keys")

    # -- what it belongs to ------------------------------------------------------------------------
    def index_id(self) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key='index_id'").fetchone()
        return row[0] if row else None

    def start(self, index_id: str) -> None:
        """Empty, and bound to the LanceDB texts table `index_id`."""
        self.reset()
        self.db.execute("INSERT OR REPLACE INTO meta VALUES ('index_id', ?)", (index_id,))

    # -- reading -------------------------------------------------------------------------------------
    def has_batch(self, path: str) -> bool:
        return self.db.execute("SELECT 1 FROM batches WHERE path=?", (path,)).fetchone() is not None

    def registry(self) -> dict[str, int]:
        """Batch path -> batch number, of every indexed batch."""
        return dict(self.db.execute("SELECT path, batch_no FROM batches"))

    def row_count(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM rows").fetchone()[0]

    def text_count(self) -> int:
        return self.db.execute("SELECT COALESCE(MAX(text_no) + 1, 0) FROM texts").fetchone()[0]

    def text_numbers(self) -> dict[str, int]:
        return dict(self.db.execute("SELECT hash, text_no FROM texts"))

    def vectors(self, dim: int):
        """Every text's vector, row i = text number i (float32, unit length)."""
        import numpy as np

        blobs = self.db.execute("SELECT matrix FROM vectors ORDER BY first").fetchall()
        if not blobs:
            return np.zeros((0, dim), np.float32)
        data = blobs[0][0] if len(blobs) == 1 else b"".join(b for (b,) in blobs)
        return np.frombuffer(data, dtype=np.float32).reshape(-1, dim)

    def kinds_for(self, where: EventFilter) -> list[int] | None:
        """The kinds whose events `where` may match on type, project, status, importance and tags (exactly:
        `where.matches` itself decides, on an event of that kind); None when it does not constrain them."""
        if not (where.types or where.projects or where.statuses or where.test is not None
                or where.min_importance is not None or where.tags_include or where.tags_exclude):
            return None
        judge = where.but(test=None, since_us=None, until_us=None)
        out = []
        for kind_no, kind, project, status, importance, tags in self.db.execute(
                "SELECT kind_no, type, project, status, importance, tags FROM kinds"):
            event = {"type": kind, "project": project, "importance": importance, "tags": json.loads(tags),
                     "data": {"status": status} if kind == "test_result" else {}}
            if where.test is not None and (kind != "test_result" or not status):
                continue  # a test condition keeps test results only (the test itself: tests_for)
            if judge.matches(event):
                out.append(kind_no)
        return out

    def tests_for(self, where: EventFilter) -> list[int] | None:
        """The test numbers `where.test` names (exactly: a SQL range or LIKE, then `TestMatch.matches`)."""
        if where.test is None:
            return None
        sql = EventFilter(test=where.test).to_sql()
        return [no for no, test_id in self.db.execute(f"SELECT test_no, test_id FROM tests WHERE {sql}")
                if where.test.matches(test_id)]

    def texts_with(self, kinds: list[int] | None, tests: list[int] | None) -> set[int]:
        """The texts that have rows of one of `kinds` and one of `tests` (a superset of those with a row in a
        given snapshot and time range: the ranking passes over the others)."""
        conds = []
        if kinds is not None:
            conds.append(f"kind IN ({','.join(map(str, kinds))})")
        if tests is not None:
            conds.append(f"test_no IN ({','.join(map(str, tests))})")
        where = " AND ".join(conds) or "1"
        return {n for (n,) in self.db.execute(f"SELECT DISTINCT text_no FROM text_keys WHERE {where}")}

    def rows_of_text(self, text_no: int, condition: str):
        """A cursor over a text's rows that meet `condition` (SQL over kind, test_no, ts_us), newest first:
        (ts_us, batch_no, seq, test_no, kind). Read only as far as the caller goes."""
        return self.db.execute(f"SELECT ts_us, batch_no, seq, test_no, kind FROM rows WHERE text_no = ?{condition}"
                               " ORDER BY ts_us DESC, batch_no DESC, seq DESC", (text_no,))

    def test_ids(self, numbers) -> dict[int, str]:
        numbers = sorted(set(numbers))
        out = {}
        for chunk, marks in sqlite.chunks(numbers):
            out.update(self.db.execute(f"SELECT test_no, test_id FROM tests WHERE test_no IN ({marks})", chunk))
        return out

    def kind_types(self) -> dict[int, str]:
        return dict(self.db.execute("SELECT kind_no, type FROM kinds"))

    # -- writing (inside `taking`) ------------------------------------------------------------------
    @contextmanager
    def writing(self, shas: list[str]):
        with sqlite.transaction(self.db):
            writer = RowWriter(self.db)
            yield writer
            writer.flush()
            self.mark_seen(shas)
            writer.merge_vectors()


class RowWriter:
    """Rows of a take as tuples, texts never seen before numbered (and their vectors stored at the flush)."""

    def __init__(self, db):
        self.db = db
        self.next_batch = db.execute("SELECT COALESCE(MAX(batch_no) + 1, 0) FROM batches").fetchone()[0]
        self.text_no: dict[str, int] | None = None  # read on the first event: a take of nothing needs none
        self.next_text = 0
        self.tests: dict[str, int] = {}
        self.kinds: dict[tuple, int] = {}
        self.hash_of: dict[str, str] = {}
        self.times: dict[str, int] = {}
        self.keys: set[tuple[int, int, int]] = set()
        self.rows: list[tuple] = []
        self.new_texts: list[tuple[int, str, str]] = []  # (number, hash, text), not yet stored

    def __len__(self) -> int:
        return len(self.rows)

    def add(self, path: str, events: list[dict]) -> int:
        """Register a batch and turn its events into rows; returns its batch number."""
        batch_no = self.next_batch
        self.next_batch += 1
        self.db.execute("INSERT INTO batches (batch_no, path) VALUES (?, ?)", (batch_no, path))
        if self.text_no is None and events:
            self.text_no = dict(self.db.execute("SELECT hash, text_no FROM texts"))
            self.next_text = max(self.text_no.values(), default=-1) + 1
        rows, keys, hash_of, times, text_no = self.rows, self.keys, self.hash_of, self.times, self.text_no
        for seq, event in enumerate(events):
            data = event.get("data") or {}
            text = event_text(event)
            digest = hash_of.get(text)
            if digest is None:
                if len(hash_of) > 200_000:
                    hash_of.clear()
                digest = hash_of[text] = text_hash(text)
            number = text_no.get(digest)
            if number is None:
                number = text_no[digest] = self.next_text
                self.next_text += 1
                self.new_texts.append((number, digest, text))
            when = times.get(event["ts"])
            if when is None:
                if len(times) > 200_000:
                    times.clear()
                when = times[event["ts"]] = ts_us(event["ts"])  # a run's results share one time
            is_result = event["type"] == "test_result"
            test_id = data.get("test_id") if is_result else None
            test_no = self._test(test_id) if isinstance(test_id, str) and test_id else -1
            status = data.get("status") if is_result else None
            kind = self._kind(event["type"], event["project"], status if isinstance(status, str) else "",
                              float(event.get("importance", 0.0)), event.get("tags") or [])
            rows.append((number, when, batch_no, seq, test_no, kind))
            key = (kind, test_no, number)
            if key not in keys:
                keys.add(key)
                self.db.execute("INSERT OR IGNORE INTO text_keys VALUES (?, ?, ?)", key)
        return batch_no

    def _test(self, test_id: str) -> int:
        found = self.tests.get(test_id)
        if found is None:
            row = self.db.execute("SELECT test_no FROM tests WHERE test_id = ?", (test_id,)).fetchone()
            found = row[0] if row else self.db.execute("INSERT INTO tests (test_id) VALUES (?)", (test_id,)).lastrowid
            self.tests[test_id] = found
        return found

    def _kind(self, kind: str, project: str, status: str, importance: float, tags: list) -> int:
        try:
            key = (kind, project, status, importance, tuple(tags))
            found = self.kinds.get(key)
        except TypeError:  # a tag that is not a string: keyed by its JSON
            key = (kind, project, status, importance, canonical_json(tags))
            found = self.kinds.get(key)
        if found is None:
            text = canonical_json([kind, project, status, importance, tags])
            row = self.db.execute("SELECT kind_no FROM kinds WHERE key = ?", (text,)).fetchone()
            found = row[0] if row else self.db.execute(
                "INSERT INTO kinds (key, type, project, status, importance, tags) VALUES (?, ?, ?, ?, ?, ?)",
                (text, kind, project, status, importance, canonical_json(tags))).lastrowid
            self.kinds[key] = found
        return found

    def take_new_texts(self) -> list[tuple[int, str, str]]:
        new, self.new_texts = self.new_texts, []
        return new

    def store_texts(self, texts: list[tuple[int, str, str]], vectors) -> None:
        """Record texts (numbers follow on from the last) and their vectors, one blob for the lot."""
        import numpy as np

        if not texts:
            return
        self.db.executemany("INSERT INTO texts (text_no, hash) VALUES (?, ?)", [(n, h) for n, h, _ in texts])
        matrix = np.ascontiguousarray(vectors, dtype=np.float32)
        self.db.execute("INSERT INTO vectors VALUES (?, ?, ?)", (texts[0][0], len(texts), matrix.tobytes()))

    def flush(self) -> None:
        # Sorted by key first: the B-tree is filled in order, not page by random page.
        self.rows.sort()
        self.db.executemany("INSERT OR IGNORE INTO rows VALUES (?, ?, ?, ?, ?, ?)", self.rows)
        self.rows = []

    def merge_vectors(self) -> None:
        if self.db.execute("SELECT COUNT(*) FROM vectors").fetchone()[0] > MAX_VECTOR_BLOBS:
            blobs = self.db.execute("SELECT first, count, matrix FROM vectors ORDER BY first").fetchall()
            self.db.execute("DELETE FROM vectors")
            self.db.execute("INSERT INTO vectors VALUES (?, ?, ?)",
                            (blobs[0][0], sum(c for _, c, _ in blobs), b"".join(m for _, _, m in blobs)))
