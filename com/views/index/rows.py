"""The index's rows: which event of which batch carries which text, in SQLite (`.com/cache/search.sqlite`).

One row per event per batch: (text, time, batch, line) as the key, clustered so that a text's events are one
run of the B-tree, newest last; its test and its "kind" (type, project, status, importance and tags: the
few combinations a history has, numbered once) as two small integers. A query walks a text's run backwards
and stops at the first events that match: about 30 us a text, where an indexed LanceDB query cost 3-15 ms of
CPU (measured at 1M rows). A row is a pointer, not the event: results are read back from the test-results
view or the batch. `text_keys` says which (kind, test) pairs each text has rows of, so a filter ranks only
the texts it can return. The texts' vectors are kept beside it too (`search.vectors`, float32 in text-number
order, mapped), so a query process ranks them without reading the LanceDB table.

Local and derived, like the other views: rebuilt from the journal alone (texts and their vectors from the
embedding cache). It belongs to one LanceDB texts table (`index_id`): text numbers mean nothing elsewhere.
"""

from __future__ import annotations

import hashlib
import json
import re
import zlib
from contextlib import contextmanager

from com.files import sqlite
from com.model.event import FIELDS, canonical_json, format_us, ts_us
from com.model.errors import ComError
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
CREATE TABLE IF NOT EXISTS shapes (shape_no INTEGER PRIMARY KEY, hash INTEGER NOT NULL UNIQUE, body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS contexts (ctx_no INTEGER PRIMARY KEY, json TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS rows (text_no INTEGER NOT NULL, ts_us INTEGER NOT NULL, batch_no INTEGER NOT NULL,
    seq INTEGER NOT NULL, test_no INTEGER NOT NULL, kind INTEGER NOT NULL, eid BLOB, shape INTEGER NOT NULL,
    ctx INTEGER, duration INTEGER, PRIMARY KEY (text_no, ts_us, batch_no, seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS text_keys (kind INTEGER NOT NULL, test_no INTEGER NOT NULL, text_no INTEGER NOT NULL,
    PRIMARY KEY (kind, test_no, text_no)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS text_keys_test ON text_keys (test_no);
"""
# BM25 over the distinct texts, stemmed and case-folded; contentless (the texts themselves are in LanceDB).
_FTS = "CREATE VIRTUAL TABLE IF NOT EXISTS texts_fts USING fts5(text, content='', tokenize='porter unicode61')"
RUN_KEYS = ("branch", "commit", "report", "run_id")  # data a run's events share: one context per run
_ID_RE = re.compile(r"evt_[0-9a-f]{24}\Z")
_FIELD_SET = frozenset(FIELDS)
_INT64 = 1 << 63
_WORD = re.compile(r"\w+")
# Left out of a keyword query (BM25 would weigh them little; LanceDB's full-text index dropped them too).
STOP_WORDS = frozenset("""a an and are as at be but by for if in into is it no not of on or such that the their then
there these they this to was will with""".split())


def _has_fts5(db) -> bool:
    return any(o == "ENABLE_FTS5" for (o,) in db.execute("PRAGMA compile_options"))


class RowStore(SqliteView):
    name = "search index rows"
    FILE = "search.sqlite"
    SCHEMA_VERSION = 3
    SCHEMA = _SCHEMA
    TABLES = ("meta", "commits", "batches", "tests", "kinds", "texts", "vectors", "shapes", "contexts", "rows",
              "text_keys", "texts_fts")

    def __init__(self, folder):
        super().__init__(folder)
        self.vectors_path = self.path.with_name("search.vectors")
        self._shapes: dict[int, dict] = {}
        self._contexts: dict[int, dict] = {}
        self._in_cache: tuple | None = None

    # -- what it belongs to ------------------------------------------------------------------------
    def meta(self) -> dict[str, str]:
        return dict(self.db.execute("SELECT key, value FROM meta"))

    def index_id(self) -> str | None:
        return self.meta().get("index_id")

    def set_meta(self, values: dict) -> None:
        self.db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", [(k, str(v)) for k, v in values.items()])

    def reset(self) -> None:
        super().reset()
        self.vectors_path.unlink(missing_ok=True)
        self._shapes.clear()
        self._contexts.clear()

    def start(self, index_id: str, meta: dict) -> None:
        """Empty, and bound to the LanceDB texts table `index_id` (whose meta it mirrors, so a query checks
        the model and format here without opening LanceDB)."""
        self.reset()
        if not _has_fts5(self.db):
            raise ComError("semantic search needs SQLite with FTS5, which this Python's sqlite3 lacks")
        self.db.execute(_FTS)
        self.set_meta({**meta, "index_id": index_id})

    # -- reading -------------------------------------------------------------------------------------
    def has_batch(self, path: str) -> bool:
        return self.db.execute("SELECT 1 FROM batches WHERE path=?", (path,)).fetchone() is not None

    def registry(self) -> dict[str, int]:
        """Batch path -> batch number, of every indexed batch."""
        return dict(self.db.execute("SELECT path, batch_no FROM batches"))

    def row_count(self) -> int:
        row = self.db.execute("SELECT value FROM meta WHERE key='rows'").fetchone()
        return int(row[0]) if row else 0

    def text_count(self) -> int:
        return self.db.execute("SELECT COALESCE(MAX(text_no) + 1, 0) FROM texts").fetchone()[0]

    def vectors(self, dim: int):
        """Every text's vector, row i = text number i (float32, unit length), mapped from `search.vectors`
        (a query process reads only the pages it touches, and nothing when nothing changed since)."""
        import numpy as np

        count = self.text_count()
        if not count:
            return np.zeros((0, dim), np.float32)
        return np.memmap(self.vectors_path, dtype="<f4", mode="r", shape=(count, dim))

    def write_vectors(self, numbers: list[int], vectors, dim: int) -> None:
        """Vectors written over the stand-ins of texts indexed without theirs (keyword search)."""
        import numpy as np

        with open(self.vectors_path, "r+b") as f:
            for n, vector in zip(numbers, np.ascontiguousarray(vectors, dtype="<f4")):
                f.seek(n * dim * 4)
                f.write(vector.tobytes())

    def vectors_damaged(self, dim: int) -> bool:
        """Is the vectors file shorter than the texts it must hold (deleted or cut by hand)?"""
        try:
            size = self.vectors_path.stat().st_size
        except OSError:
            size = 0
        return size < self.text_count() * dim * 4

    def keyword_texts(self, text: str, limit: int, allowed=None) -> list[int]:
        """Text numbers by BM25 for the words of `text` (any of them; stemmed, case-folded), best first (ties by
        text number); only texts in `allowed` (a set of text numbers) if given.

        FTS5 finds a query's matches cheaply (its doclists) but scores every match with bm25() before sorting:
        about 2 us a match, and a word every test id holds matches thousands of texts. A small `allowed` (a
        quarter of the texts at most: `--status failed` is 4% of them) is therefore checked before the scoring,
        as `+rowid IN (...)` (the `+` keeps it a plain condition: FTS5 given `rowid IN` seeks each rowid in
        every doclist, 30 ms against 0.3 ms), so only the allowed matches are scored; a larger one is checked
        on the ranked matches here, where the IN list would cost more to build than the scoring it saves."""
        terms = [t for t in dict.fromkeys(_WORD.findall(text.lower())) if t not in STOP_WORDS]
        if not terms:
            return []
        match = " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)
        if allowed is None:
            return [n for (n,) in self.db.execute(
                "SELECT rowid FROM texts_fts WHERE texts_fts MATCH ? ORDER BY bm25(texts_fts), rowid LIMIT ?",
                (match, limit))]
        if not allowed:
            return []
        if len(allowed) * 4 <= self.text_count():
            return [n for (n,) in self.db.execute(
                f"SELECT rowid FROM texts_fts WHERE texts_fts MATCH ? AND +rowid IN ({self._in_list(allowed)}) "
                "ORDER BY bm25(texts_fts), rowid LIMIT ?", (match, limit))]
        out = []
        for (n,) in self.db.execute(
                "SELECT rowid FROM texts_fts WHERE texts_fts MATCH ? ORDER BY bm25(texts_fts), rowid", (match,)):
            if n in allowed:
                out.append(n)
                if len(out) >= limit:
                    break
        return out

    def _in_list(self, numbers) -> str:
        """`numbers` as an SQL list, remembered for the last set asked (a filter's texts come again and again;
        the set itself is kept, so its id cannot be reused while remembered)."""
        if self._in_cache is None or self._in_cache[0] is not numbers:
            self._in_cache = (numbers, ",".join(map(str, sorted(numbers))))
        return self._in_cache[1]

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

    def texts_with(self, kinds: list[int] | None, tests: list[int] | None):
        """The texts that have rows of one of `kinds` and one of `tests` (a superset of those with a row in a
        given snapshot and time range: the ranking passes over the others)."""
        conds = []
        if kinds is not None:
            conds.append(f"kind IN ({','.join(map(str, kinds))})")
        if tests is not None:
            conds.append(f"test_no IN ({','.join(map(str, tests))})")
        where = " AND ".join(conds) or "1"
        return sorted({n for (n,) in self.db.execute(f"SELECT text_no FROM text_keys WHERE {where}")})

    def rows_of_text(self, text_no: int, condition: str):
        """A cursor over a text's rows that meet `condition` (SQL over kind, test_no, ts_us), newest first:
        (ts_us, batch_no, eid, shape, ctx, duration), what `event` rebuilds an event from. Read only as far as
        the caller goes."""
        return self.db.execute(f"SELECT ts_us, batch_no, eid, shape, ctx, duration FROM rows WHERE text_no = ?"
                               f"{condition} ORDER BY ts_us DESC, batch_no DESC, seq DESC", (text_no,))

    def count_of_text(self, text_no: int, condition: str, snapshot_sql: str | None) -> int:
        """How many rows of a text meet `condition` and lie in the snapshot (`snapshot_sql`: None for all)."""
        extra = f" AND ({snapshot_sql})" if snapshot_sql else ""
        return self.db.execute(f"SELECT COUNT(*) FROM rows WHERE text_no = ?{condition}{extra}", (text_no,)).fetchone()[0]

    def event(self, ts: int, eid: bytes | None, shape_no: int, ctx_no: int | None, duration: int | None) -> dict:
        """The stored event of a row, exactly (equal to the JSON of its line; keys in the stored order)."""
        shape = self._shapes.get(shape_no)
        if shape is None:
            body = self.db.execute("SELECT body FROM shapes WHERE shape_no = ?", (shape_no,)).fetchone()[0]
            shape = self._shapes[shape_no] = json.loads(zlib.decompress(body).decode("utf-8", "surrogatepass"))
        values = dict(shape)
        if eid is not None:
            values["id"] = "evt_" + eid.hex()
        if "ts" not in values:
            values["ts"] = format_us(ts)
        if ctx_no is not None or duration is not None:
            data = dict(values["data"])
            if ctx_no is not None:
                context = self._contexts.get(ctx_no)
                if context is None:
                    context = self._contexts[ctx_no] = json.loads(
                        self.db.execute("SELECT json FROM contexts WHERE ctx_no = ?", (ctx_no,)).fetchone()[0])
                data.update(context)
            if duration is not None:
                data["duration_ms"] = duration
            values["data"] = dict(sorted(data.items()))
        return {**{key: values[key] for key in FIELDS if key in values},
                **{key: value for key, value in values.items() if key not in _FIELD_SET}}

    # -- writing (inside `taking`) ------------------------------------------------------------------
    @contextmanager
    def writing(self, shas: list[str], dim: int):
        with sqlite.transaction(self.db):
            writer = RowWriter(self.db, self.vectors_path, dim)
            try:
                yield writer
                writer.flush()
            finally:
                writer.close()
            self.mark_seen(shas)
            self.db.execute("INSERT OR REPLACE INTO meta VALUES ('rows', ?)", (str(self.row_count() + writer.added),))


class RowWriter:
    """Rows of a take as tuples, texts never seen before numbered (and their vectors stored at the flush)."""

    def __init__(self, db, vectors_path, dim: int):
        self.db = db
        self.added = 0
        # Vectors are appended to a file; what lies past the texts committed so far was left by an update
        # that never committed: cut off first.
        self.vectors = open(vectors_path, "ab")
        self.vectors.truncate(db.execute("SELECT COUNT(*) FROM texts").fetchone()[0] * dim * 4)
        self.next_batch = db.execute("SELECT COALESCE(MAX(batch_no) + 1, 0) FROM batches").fetchone()[0]
        self.text_no: dict[str, int] | None = None  # read on the first event: a take of nothing needs none
        self.next_text = 0
        self.tests: dict[str, int] = {}
        self.kinds: dict[tuple, int] = {}
        self.hash_of: dict[str, str] = {}
        self.times: dict[str, int] = {}
        self.keys: set[tuple[int, int, int]] = set()
        self.shapes: dict[str, int] = {}
        self.contexts: dict[str, int] = {}
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
                us = ts_us(event["ts"])  # a run's results share one time
                when = times[event["ts"]] = (us, format_us(us) == event["ts"])
            is_result = event["type"] == "test_result"
            test_id = data.get("test_id") if is_result else None
            test_no = self._test(test_id) if isinstance(test_id, str) and test_id else -1
            status = data.get("status") if is_result else None
            kind = self._kind(event["type"], event["project"], status if isinstance(status, str) else "",
                              float(event.get("importance", 0.0)), event.get("tags") or [])
            rows.append((number, when[0], batch_no, seq, test_no, kind, *self._encode(event, when[1])))
            key = (kind, test_no, number)
            if key not in keys:
                keys.add(key)
                self.db.execute("INSERT OR IGNORE INTO text_keys VALUES (?, ?, ?)", key)
        return batch_no

    def _encode(self, event: dict, canonical_ts: bool) -> tuple:
        """(eid, shape, ctx, duration) of an event: what `RowStore.event` gives it back from. The id, a
        canonical time, the run's values and an integer duration are taken out; the rest is its shape, stored
        once for every event that has it (a test's passing results share one)."""
        shape = dict(event)
        eid = None
        if isinstance(shape.get("id"), str) and _ID_RE.match(shape["id"]):
            eid = bytes.fromhex(shape.pop("id")[4:])
        if canonical_ts:
            del shape["ts"]
        ctx = duration = None
        data = shape.get("data")
        if type(data) is dict:
            data = dict(data)
            run = {k: data.pop(k) for k in RUN_KEYS if k in data}
            if run:
                ctx = self._context(run)
            value = data.get("duration_ms")
            if type(value) is int and -_INT64 <= value < _INT64:
                duration = data.pop("duration_ms")
            shape["data"] = data
        return eid, self._shape(canonical_json(shape)), ctx, duration

    def _shape(self, text: str) -> int:
        found = self.shapes.get(text)
        if found is None:
            data = text.encode("utf-8", "surrogatepass")
            digest = int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big", signed=True)
            row = self.db.execute("SELECT shape_no FROM shapes WHERE hash = ?", (digest,)).fetchone()
            found = row[0] if row else self.db.execute("INSERT INTO shapes (hash, body) VALUES (?, ?)",
                                                       (digest, zlib.compress(data, 6))).lastrowid
            if len(self.shapes) > 100_000:
                self.shapes.clear()
            self.shapes[text] = found
        return found

    def _context(self, run: dict) -> int:
        text = canonical_json(run)
        found = self.contexts.get(text)
        if found is None:
            row = self.db.execute("SELECT ctx_no FROM contexts WHERE json = ?", (text,)).fetchone()
            found = row[0] if row else self.db.execute("INSERT INTO contexts (json) VALUES (?)", (text,)).lastrowid
            if len(self.contexts) > 100_000:
                self.contexts.clear()
            self.contexts[text] = found
        return found

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

    def add_pending(self, numbers: list[int]) -> None:
        """Texts stored with stand-in vectors (recorded in the same transaction as the texts)."""
        if numbers:
            row = self.db.execute("SELECT value FROM meta WHERE key='pending'").fetchone()
            pending = sorted(set(json.loads(row[0]) if row else []) | set(numbers))
            self.db.execute("INSERT OR REPLACE INTO meta VALUES ('pending', ?)", (json.dumps(pending),))

    def take_new_texts(self) -> list[tuple[int, str, str]]:
        new, self.new_texts = self.new_texts, []
        return new

    def store_texts(self, texts: list[tuple[int, str, str]], vectors) -> None:
        """Record texts (numbers follow on from the last) and append their vectors to the vectors file."""
        import numpy as np

        if not texts:
            return
        self.db.executemany("INSERT INTO texts (text_no, hash) VALUES (?, ?)", [(n, h) for n, h, _ in texts])
        self.db.executemany("INSERT INTO texts_fts (rowid, text) VALUES (?, ?)", [(n, t) for n, _, t in texts])
        self.vectors.write(np.ascontiguousarray(vectors, dtype="<f4").tobytes())
        self.vectors.flush()

    def close(self) -> None:
        self.vectors.close()

    def flush(self) -> None:
        # Sorted by key first: the B-tree is filled in order, not page by random page.
        self.rows.sort()
        self.added += self.db.executemany("INSERT OR IGNORE INTO rows VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                          self.rows).rowcount
        self.rows = []

