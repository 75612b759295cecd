"""The test-results view: one row per recorded test result, columnar, in SQLite (`.com/cache/results.sqlite`).

What flaky detection, selection, roll-ups, `com diff` and `com events --test` read instead of parsing the
journal. Derived and disposable: rebuilt from the journal alone gives the same rows.

Rows live in segments whose columns are packed arrays (test, time, batch, line, status, attempt, duration,
signature, shape, context, id), one SQLite row per column of a segment (SQLite finds a byte of a big value by
walking its chain of pages: with all the columns in one row, reading the last walked through the others), appended
by each take and merged when they grow many. Analyses load whole columns straight into numpy; a take writes them
with the stdlib `array` module, so a one-event ingest never imports numpy. Strings are numbered once in small
tables (tests, runs, code commits, signatures), so a million results cost about 60 bytes each.

A row also holds what it takes to give the stored event back exactly, without reading its batch: the
per-row values (id, ts, status, attempt, duration) as columns, the run's values (run_id, commit, branch,
report) as a shared "context", and everything else (project, source, importance, tags, the other data keys)
as a shared, compressed "shape". A value that does not fit its column exactly stays in the shape.

A snapshot's rows are the rows of its batches (`batch` numbers), so `--at REV` is exact here too.
"""

from __future__ import annotations

import functools
import json
import marshal
import math
import sqlite3
import zlib
from array import array
from contextlib import contextmanager

from com.files import sqlite
from com.views.base import SqliteView
from com.model.event import FIELDS, blake2b, canonical_json, format_us, ts_us
from com.model.result import STATUS_CODE, STATUS_CODES, ResultColumns, distinct

FEW_NAMES = 500  # up to this many codes are looked up by number; more read the whole table

SCHEMA_VERSION = 8  # 5: code_dirty, a run on uncommitted changes has no code commit; 6: test_runs' last rows;
# 7: a row per column of a segment; 8: test_runs' previous rows, each batch's segment and number of tests
MAX_UNSORTED = 8  # this many segments appended by takes are merged (and sorted by test) by the next reader
MAX_SEGMENTS = 16
SMALL_ROWS = 20_000  # takes up to this size are merged with the standard library inside the take itself
FLUSH_ROWS = 200_000  # a long catch-up writes a segment every this many rows (bounded memory)
SORT_AFTER = 100_000  # a take of this many rows sorts its segments at once (with numpy)
LATEST_SLICE = 1 << 17  # `latest` reads a segment this many rows at a time (bounded memory)
WALK_STEPS = 64  # `latest` walks a sorted segment's runs back this many rows at most, else reads it whole
WALKS_PER_COLUMN_READ = 1000  # `newest` reads whole columns when it walks more than one test in this many rows
# Data keys shared by a run's results (kept once per run, not in every test's shape).
RUN_KEYS = ("branch", "code_dirty", "commit", "random_plugin", "random_seed", "report", "report_digest",
            "run_id")
_ROW_KEYS = frozenset(("test_id", "status", "attempt", "duration_ms", *RUN_KEYS))
_FAILING = frozenset(("failed", "error", "xpassed"))

# column -> array typecode (numpy reads the same bytes: 'i' int32, 'q' int64, 'b' int8, 'h' int16,
# 'B' uint8, 'd' float64, 'Q' uint64, 'I' uint32 on every platform com runs on).
COLUMNS = {
    "test": "i", "ts": "q", "batch": "i", "seq": "i", "status": "b", "attempt": "h", "flags": "B",
    "duration": "d", "sig": "i", "shape": "i", "ctx": "i", "id_hi": "Q", "id_lo": "I",
}
_NUMPY = {"i": "<i4", "q": "<i8", "b": "i1", "h": "<i2", "B": "u1", "d": "<f8", "Q": "<u8", "I": "<u4"}
# flags: which per-row values the row's columns hold (else they are absent or kept in the shape)
HAS_ATTEMPT, HAS_DURATION, DURATION_INT = 1, 2, 4

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS commits (sha TEXT PRIMARY KEY);
-- seg_no: the segment holding the batch's rows (one: a take writes a batch whole, a merge moves it whole), NULL
-- while it has none; tests: how many tests it holds results of.
CREATE TABLE IF NOT EXISTS batches (batch_no INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE, project TEXT NOT NULL,
    seg_no INTEGER, tests INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS tests (test_no INTEGER PRIMARY KEY, test_id TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS runs (run_no INTEGER PRIMARY KEY, run_id TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS codes (code_no INTEGER PRIMARY KEY, sha TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS signatures (sig_no INTEGER PRIMARY KEY, text TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS contexts (ctx_no INTEGER PRIMARY KEY, json TEXT NOT NULL UNIQUE,
    run_no INTEGER NOT NULL, code_no INTEGER NOT NULL);
-- A test's run of rows in a sorted segment, its last row's sort key and status (a test's newest result is
-- usually that row: `newest` then reads no column), and the same of its previous row: the last one of another
-- batch (position `prev`, -1 and zeros when there is none), the test's newest result in a snapshot that lacks
-- the last row's batch (a diff of the newest run, `--at HEAD~1`).
CREATE TABLE IF NOT EXISTS test_runs (seg_no INTEGER NOT NULL, test_no INTEGER NOT NULL, start INTEGER NOT NULL,
    count INTEGER NOT NULL, last_ts INTEGER NOT NULL, last_batch INTEGER NOT NULL, last_seq INTEGER NOT NULL,
    last_status INTEGER NOT NULL, prev INTEGER NOT NULL, prev_ts INTEGER NOT NULL, prev_batch INTEGER NOT NULL,
    prev_seq INTEGER NOT NULL, prev_status INTEGER NOT NULL, PRIMARY KEY (seg_no, test_no)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS shapes (shape_no INTEGER PRIMARY KEY, hash INTEGER NOT NULL UNIQUE, body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS segments (seg_no INTEGER PRIMARY KEY, rows INTEGER NOT NULL, sorted INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS seg_columns (col_no INTEGER PRIMARY KEY, seg_no INTEGER NOT NULL, name TEXT NOT NULL,
    data BLOB NOT NULL, UNIQUE (seg_no, name));
"""
_TABLES = ("meta", "commits", "batches", "tests", "runs", "codes", "signatures", "contexts", "shapes", "segments",
           "seg_columns", "test_runs")


def _reads(method):
    """A read of the view: its blob handles are kept for the whole read, then closed (`_reading`)."""
    @functools.wraps(method)
    def read(self, *args, **kwargs):
        with self._reading():
            return method(self, *args, **kwargs)
    return read


class TestResultsView(SqliteView):
    name = "test-results view"
    FILE = "results.sqlite"
    SCHEMA_VERSION = SCHEMA_VERSION
    SCHEMA = _SCHEMA
    TABLES = _TABLES
    __test__ = False
    # snapshot -> whether an event may sit in two of its batches; unset, every read removes second copies.
    ids_may_repeat = None
    # A read goes through each column's pages once: a small page cache, so that reading a million rows' columns
    # does not leave 64 MB of pages in the reader's memory. Writes (a take, a merge of segments) get the big
    # cache the base class explains.
    CACHE_KIB = 8192
    WRITE_CACHE_KIB = 65536
    _handles = None  # (segment, column) -> open blob handle, inside `_reading`

    @contextmanager
    def _writing(self):
        self.db.execute(f"PRAGMA cache_size=-{self.WRITE_CACHE_KIB}")
        try:
            yield
        finally:
            self.db.execute(f"PRAGMA cache_size=-{self.CACHE_KIB}")

    def has_batch(self, path: str) -> bool:
        return self.db.execute("SELECT 1 FROM batches WHERE path=?", (path,)).fetchone() is not None

    @contextmanager
    def taking(self, shas: list[str]):
        db = self.db
        with self._writing(), sqlite.transaction(db):
            writer = _Writer(db)
            yield writer.add
            writer.flush()
            self.mark_seen(shas)
            self._merge_small()
        if writer.taken >= SORT_AFTER:
            # A catch-up of many runs (a rebuild, a first read after a big import) leaves big unsorted segments:
            # sorted now, by this reader, so one-test questions read their runs instead of scanning.
            self._compact()

    # -- reading -----------------------------------------------------------------------------------
    def row_count(self) -> int:
        return self.db.execute("SELECT COALESCE(SUM(rows), 0) FROM segments").fetchone()[0]

    def test_numbers(self, match: TestMatch) -> dict[int, str]:
        """The tests a selector names: test number -> test id."""
        if match.kind == "exact":
            rows = self.db.execute("SELECT test_no, test_id FROM tests WHERE test_id = ?", (match.pattern,))
        elif match.kind == "prefix":
            from com.model.filter import _after_prefix

            rows = self.db.execute("SELECT test_no, test_id FROM tests WHERE test_id >= ? AND test_id < ?",
                                   (match.pattern, _after_prefix(match.pattern)))
        else:
            rows = self.db.execute("SELECT test_no, test_id FROM tests")
        return {no: tid for no, tid in rows if match.matches(tid)}

    def test_ids(self) -> list[str]:
        """Every test id the view has numbered (for suggestions when a selector names none)."""
        return [tid for (tid,) in self.db.execute("SELECT test_id FROM tests")]

    def _segments(self) -> list[tuple[int, int, int]]:
        """(segment number, rows, sorted) of every segment, merging small ones first when they are many."""
        segments = self.db.execute("SELECT seg_no, rows, sorted FROM segments ORDER BY seg_no").fetchall()
        if sum(1 for _, _, done in segments if not done) >= MAX_UNSORTED or len(segments) > MAX_SEGMENTS:
            self._compact()
            segments = self.db.execute("SELECT seg_no, rows, sorted FROM segments ORDER BY seg_no").fetchall()
        return segments

    def _merge_small(self) -> None:
        """Inside a take: once MAX_UNSORTED small segments are there, merge them into one sorted segment with
        the standard library (a stream of one-event ingests must not pile up segments, nor import numpy)."""
        small = self.db.execute("SELECT seg_no FROM segments WHERE sorted = 0 AND rows <= ? ORDER BY seg_no",
                                (SMALL_ROWS,)).fetchall()
        if len(small) < MAX_UNSORTED:
            return
        chosen = [seg for (seg,) in small]
        cols = {name: array(code) for name, code in COLUMNS.items()}
        for seg in chosen:
            for name, blob in self.db.execute("SELECT name, data FROM seg_columns WHERE seg_no = ?", (seg,)):
                cols[name].frombytes(blob)
        order = sorted(range(len(cols["test"])), key=lambda i: (cols["test"][i], cols["ts"][i], cols["batch"][i],
                                                              cols["seq"][i]))
        self._replace(chosen, {name: array(COLUMNS[name], (values[i] for i in order)) for name, values in cols.items()})

    def _replace(self, chosen: list[int], sorted_cols: dict) -> None:
        """Put one sorted segment (columns as arrays or numpy arrays) in place of the `chosen` segments, with
        where each test's run of rows starts and how long it is."""
        self._delete_segments(chosen)
        tests = sorted_cols["test"]
        seg = _insert_segment(self.db, len(tests), True, {name: sorted_cols[name].tobytes() for name in COLUMNS})
        ts, batch, seq, status = (sorted_cols[name] for name in ("ts", "batch", "seq", "status"))
        if hasattr(tests, "dtype"):  # numpy (a big merge): the runs without a Python loop over every row
            runs = _runs_numpy(seg, tests, ts, batch, seq, status)
        else:
            runs, start = [], 0
            for i in range(1, len(tests) + 1):
                if i == len(tests) or tests[i] != tests[start]:
                    last = prev = i - 1
                    while prev >= start and batch[prev] == batch[last]:
                        prev -= 1
                    before = (prev, ts[prev], batch[prev], seq[prev], status[prev]) if prev >= start else _NO_PREV
                    runs.append((seg, tests[start], start, i - start, ts[last], batch[last], seq[last],
                                 status[last], *before))
                    start = i
        self.db.executemany(_INSERT_RUNS, runs)
        self._moved(chosen, seg)

    def _column(self, seg_no: int, name: str, start: int | None = None, stop: int | None = None):
        """One column of one segment, or rows start:stop of it (read straight from the blob, not the whole)."""
        import numpy as np

        dtype = np.dtype(_NUMPY[COLUMNS[name]])
        if start is None:
            return np.frombuffer(self._blob(seg_no, name), dtype=dtype)
        return np.frombuffer(self._read(seg_no, name, start * dtype.itemsize, (stop - start) * dtype.itemsize),
                             dtype=dtype)

    def _read(self, seg_no: int, name: str, offset: int, size: int) -> bytes:
        """Bytes of one column's blob. Inside `_reading`, through one handle per blob: SQLite finds a page of a
        big blob by walking its chain of pages, once per handle (a new handle per read would walk it again)."""
        handles = self._handles
        handle = None if handles is None else handles.get((seg_no, name))
        if handle is None:
            handle = self.db.blobopen("seg_columns", "data", self._col_no(seg_no, name), readonly=True)
            if handles is None:
                with handle:
                    handle.seek(offset)
                    return handle.read(size)
            handles[(seg_no, name)] = handle
        handle.seek(offset)
        return handle.read(size)

    def _blob(self, seg_no: int, name: str) -> bytes:
        """One column of one segment, whole."""
        return self.db.execute("SELECT data FROM seg_columns WHERE seg_no = ? AND name = ?",
                               (seg_no, name)).fetchone()[0]

    def _col_no(self, seg_no: int, name: str) -> int:
        return self.db.execute("SELECT col_no FROM seg_columns WHERE seg_no = ? AND name = ?",
                               (seg_no, name)).fetchone()[0]

    def _moved(self, chosen: list[int], seg: int) -> None:
        """The batches of the `chosen` segments are in `seg` now."""
        marks = ",".join("?" * len(chosen))
        self.db.execute(f"UPDATE batches SET seg_no = ? WHERE seg_no IN ({marks})", (seg, *chosen))

    def _delete_segments(self, chosen: list[int]) -> None:
        marks = ",".join("?" * len(chosen))
        for table in ("segments", "seg_columns", "test_runs"):
            self.db.execute(f"DELETE FROM {table} WHERE seg_no IN ({marks})", chosen)

    @contextmanager
    def _reading(self):
        """Blob handles kept for the reads inside, all closed at the end (an open one holds a read transaction:
        a long-lived process, the server, must not keep seeing an old state)."""
        if self._handles is not None:  # nested
            yield
            return
        self._handles = {}
        try:
            yield
        finally:
            handles, self._handles = self._handles, None
            for handle in handles.values():
                handle.close()

    def _compact(self) -> None:
        """Merge the unsorted segments (and the sorted ones not much bigger than them) into one segment sorted by
        test, so a test's rows are one run of every column. Sizes grow geometrically, as in a log-structured
        merge: each row is rewritten a few times, not once per take. One transaction; readers keep seeing the
        old segments until it commits."""
        import numpy as np

        with self._writing(), sqlite.transaction(self.db):
            segments = self.db.execute("SELECT seg_no, rows, sorted FROM segments ORDER BY rows").fetchall()
            chosen = [seg for seg, _, done in segments if not done]
            size = sum(rows for _, rows, done in segments if not done)
            for seg, rows, done in segments:
                if done and (rows <= 4 * size or len(segments) - len(chosen) > MAX_SEGMENTS // 2):
                    chosen.append(seg)
                    size += rows
            if len(chosen) <= 1 and all(done for _, _, done in segments):
                return
            # The sort keys first, then one column at a time written in place (a million rows of thirteen
            # columns are never all in memory, twice, at once).
            keys = {name: np.concatenate([self._column(seg, name) for seg in chosen])
                    for name in ("test", "ts", "batch", "seq")}
            order = np.lexsort((keys["seq"], keys["batch"], keys["ts"], keys["test"]))
            rows = len(order)
            seg_new = _insert_segment(self.db, rows, True, {name: rows * np.dtype(_NUMPY[code]).itemsize
                                                            for name, code in COLUMNS.items()})
            kept = {}  # the columns test_runs is made of (the last row of each test's run)
            for name in COLUMNS:
                column = keys.pop(name) if name in keys else np.concatenate([self._column(seg, name) for seg in chosen])
                column = np.ascontiguousarray(column[order])
                with self.db.blobopen("seg_columns", "data", self._col_no(seg_new, name)) as blob:
                    blob.write(memoryview(column).cast("B"))
                if name in ("test", "ts", "batch", "seq", "status"):
                    kept[name] = column
                del column
            self._delete_segments(chosen)
            self.db.executemany(_INSERT_RUNS, _runs_numpy(seg_new, kept["test"], kept["ts"], kept["batch"],
                                                          kept["seq"], kept["status"]))
            self._moved(chosen, seg_new)

    @_reads
    def shortcuts_wrong(self) -> str | None:
        """What reads take on trust, checked against the rows (for `com fsck`): each sorted segment's test_runs
        (runs, last and previous rows) and each batch's segment and number of tests. None when all agree."""
        import numpy as np

        wrong = []
        tests_of: dict[int, int] = {}
        segment_of: dict[int, int] = {}
        for seg, rows, done in self.db.execute("SELECT seg_no, rows, sorted FROM segments").fetchall():
            cols = {name: self._column(seg, name) for name in ("test", "ts", "batch", "seq", "status")}
            pairs = distinct((cols["batch"].astype(np.int64) << 32) | cols["test"].astype(np.int64))
            batches, counts = np.unique(pairs >> 32, return_counts=True)
            for batch, count in zip(batches.tolist(), counts.tolist()):
                segment_of[batch] = seg
                tests_of[batch] = tests_of.get(batch, 0) + count
            if done:
                kept = sorted(self.db.execute("SELECT * FROM test_runs WHERE seg_no = ?", (seg,)))
                if kept != sorted(_runs_numpy(seg, cols["test"], cols["ts"], cols["batch"], cols["seq"],
                                              cols["status"])):
                    wrong.append(f"the runs of tests in segment {seg} disagree with its rows")
        held = self.db.execute("SELECT batch_no, seg_no, tests FROM batches").fetchall()
        off = sum(1 for batch, seg, count in held if seg != segment_of.get(batch) or count != tests_of.get(batch, 0))
        if off:
            wrong.append(f"{off} batch(es) have their segment or number of tests wrong")
        return "; ".join(wrong) or None

    def batch_numbers(self, paths) -> tuple[object, bool]:
        """(the numbers of the batches at `paths` that the view holds, whether that is every batch it holds)."""
        import numpy as np

        held = dict(self.db.execute("SELECT path, batch_no FROM batches"))
        numbers = [held[p] for p in paths if p in held]
        return np.asarray(numbers, dtype=np.int32), len(numbers) == len(held)

    @_reads
    def select(self, snapshot, where: EventFilter | None = None, columns=("test", "ts", "status"),
               paths=None, test_nos=None) -> dict:
        """The rows of `snapshot` (or, given `paths`, of those batches) that `where` may match (test, status,
        time, project; each event once), as numpy columns plus "row" (their positions). Tags, importance and
        source are not columns: apply `where.matches` to the events if they matter. The filter's columns are
        read whole; the others only over the run of rows that matched (one run per sorted segment when one test
        is asked for)."""
        import numpy as np

        from com.model.filter import EventFilter

        where = where or EventFilter()
        batches, everything = self.batch_numbers(snapshot.batch_paths() if paths is None else paths)
        if where.projects:
            held = self.db.execute(
                f"SELECT batch_no FROM batches WHERE project IN ({','.join('?' * len(where.projects))})",
                where.projects).fetchall()
            batches = np.intersect1d(batches, np.asarray([b for (b,) in held], dtype=np.int32))
            everything = False
        tests = (np.asarray(list(self.test_numbers(where.test)), dtype=np.int32)
                 if where.test is not None else None)
        if test_nos is not None:  # given test numbers (and the filter's test, if any)
            tests = test_nos if tests is None else np.intersect1d(tests, test_nos)
        statuses = where.result_status_set
        codes = np.asarray([STATUS_CODE[s] for s in statuses if s in STATUS_CODE], dtype=np.int8)
        dedupe = snapshot is None or self.ids_may_repeat is None or self.ids_may_repeat(snapshot)
        names = list(dict.fromkeys([*columns, "id_hi", "id_lo"] if dedupe else columns))
        parts = {name: [] for name in names}
        positions, base = [], 0
        nothing = (where.types and "test_result" not in where.types) or (tests is not None and not len(tests))
        # A few tests in a sorted segment: their runs of rows only (test_runs), never a whole column.
        few = None if tests is None or len(tests) > FEW_NAMES else [int(t) for t in tests]
        for seg, rows, done in ([] if nothing else self._segments()):
            if few is not None and done:
                marks = ",".join("?" * len(few))
                runs = self.db.execute(f"SELECT start, count FROM test_runs WHERE seg_no = ? AND test_no IN ({marks})"
                                       " ORDER BY start", (seg, *few)).fetchall()
                idx = np.concatenate([np.arange(start, start + count) for start, count in runs]) if runs else \
                    np.zeros(0, np.int64)

                def gather(name, seg=seg, runs=runs):
                    if not runs:
                        return np.zeros(0, _NUMPY[COLUMNS[name]])
                    return np.concatenate([self._column(seg, name, start, start + count) for start, count in runs])
            else:
                idx, gather = None, None
            loaded = {}
            keep = np.ones(rows if idx is None else len(idx), dtype=bool)
            if idx is not None:
                loaded["test"] = gather("test")
            column_of = (lambda name, seg=seg: self._column(seg, name)) if idx is None else gather
            if not everything:
                loaded["batch"] = column_of("batch")
                keep &= np.isin(loaded["batch"], batches)
            if tests is not None and idx is None:
                loaded["test"] = column_of("test")
                keep &= np.isin(loaded["test"], tests)
            if statuses:
                loaded["status"] = column_of("status")
                keep &= np.isin(loaded["status"], codes)
            if where.since_us is not None or where.until_us is not None:
                loaded["ts"] = ts = column_of("ts")
                if where.since_us is not None:
                    keep &= ts >= where.since_us
                if where.until_us is not None:
                    keep &= ts <= where.until_us
            kept = np.flatnonzero(keep)
            if not len(kept):
                base += rows
                continue
            if idx is not None:  # rows of the tests' runs: every column gathered the same way
                for name in names:
                    parts[name].append((loaded[name] if name in loaded else gather(name))[kept])
                positions.append(idx[kept] + base)
                base += rows
                continue
            idx = kept
            lo, hi = int(idx[0]), int(idx[-1]) + 1
            narrow = hi - lo < rows // 4  # a run much shorter than the segment: read just that run
            whole = len(idx) == rows  # every row: the columns as read, not a copy of them
            for name in names:
                if name in loaded:
                    parts[name].append(loaded[name] if whole else loaded[name][idx])
                elif narrow:
                    parts[name].append(self._column(seg, name, lo, hi)[idx - lo])
                else:
                    column = self._column(seg, name)
                    parts[name].append(column if whole else column[idx])
            positions.append(idx + base)
            base += rows
        # One part (one segment, the usual case once merged) is used as it is: a million rows are not copied.
        out = {name: (chunks[0] if len(chunks) == 1 else np.concatenate(chunks) if chunks
                      else np.zeros(0, _NUMPY[COLUMNS[name]])) for name, chunks in parts.items()}
        out["row"] = (positions[0] if len(positions) == 1 else np.concatenate(positions) if positions
                      else np.zeros(0, np.int64))
        if dedupe:
            unique = _first_of_each_id(out["id_hi"], out["id_lo"], np.arange(len(out["row"])))
            if len(unique) < len(out["row"]):
                out = {name: values[unique] for name, values in out.items()}
        return out

    @_reads
    def latest(self, snapshot=None, paths=None, tests=None, without_keys=None) -> tuple[object, object]:
        """Each test's newest result among the rows of `snapshot`, or of the batches at `paths`: (test numbers,
        their status codes), by test number. Of equal times the later batch wins (in the order of `paths` when
        given, else the view's), then the later line. `tests` keeps those test numbers only; `without_keys`
        leaves out events by their catalog key ((hi, lo): the id's first and last 12 hex digits).

        Segment by segment, reading only the columns that decide: in a segment sorted by test, a test's newest
        row is the last of its run (only rows tied with it on time are compared further), so a million rows
        cost a few column reads and no sort of them all; given batches, only the segments holding them are read,
        and one batch whose tests' last rows are all its own (the newest run) reads test_runs alone."""
        import numpy as np

        numbers, everything = self.batch_numbers(snapshot.batch_paths() if paths is None else paths)
        if not len(numbers):
            return np.zeros(0, np.int32), np.zeros(0, np.int8)
        size = int(self.db.execute("SELECT COALESCE(MAX(batch_no), 0) FROM batches").fetchone()[0]) + 1
        rank = np.full(size, -1, dtype=np.int32)  # -1: not one of the batches asked about
        rank[numbers] = np.arange(len(numbers)) if paths is not None else numbers
        wanted = None
        if tests is not None:
            tests = np.asarray(tests, dtype=np.int64)
            wanted = np.zeros(int(tests.max(initial=0)) + 1, dtype=bool)
            wanted[tests] = True
        # The catalog's key of an id is (first 12 hex digits, last 12); here an id is (first 16, last 8).
        pairs = {((hi << 16) | (lo >> 32), lo & 0xFFFFFFFF) for hi, lo in without_keys} if without_keys else None
        keys = np.fromiter({hi for hi, _ in pairs}, dtype=np.uint64) if pairs else None
        found = []
        segments = self._segments()
        holding = None  # given batches: segment -> [(batch, its number of tests)]; the other segments are skipped
        if paths is not None:
            holding = {}
            for chunk, marks in sqlite.chunks(numbers.tolist()):
                for batch, seg, count in self.db.execute(
                        f"SELECT batch_no, seg_no, tests FROM batches WHERE batch_no IN ({marks})", chunk):
                    holding.setdefault(seg, []).append((batch, count))
        for seg, rows, done in segments:
            part = False
            if holding is not None:
                if seg not in holding:
                    continue
                if done and pairs is None and len(holding[seg]) == 1:
                    part = self._latest_of_batch(seg, *holding[seg][0], rank, wanted)
            elif done and pairs is None:
                part = self._latest_by_runs(seg, rank, everything, wanted)
            if part is not False:
                if part is not None:
                    found.append(part)
                continue
            # A slice of rows at a time bounds memory by the slice, not the segment; a test whose run a slice
            # boundary cuts gives a candidate from each side, and the sort below keeps the newer.
            for lo in range(0, rows, LATEST_SLICE):
                hi = min(rows, lo + LATEST_SLICE)
                column = (lambda name: self._column(seg, name)) if hi - lo == rows else \
                    (lambda name, lo=lo, hi=hi: self._column(seg, name, lo, hi))
                part = self._latest_in(column, hi - lo, done, rank, everything, wanted, keys, pairs)
                if part is not None:
                    found.append(part)
        if not found:
            return np.zeros(0, np.int32), np.zeros(0, np.int8)
        test, ts, batch, seq, status = (np.concatenate(parts) for parts in zip(*found))
        order = np.lexsort((seq, batch, ts, test))  # per test, the last row is its newest result
        last = order[np.r_[test[order][1:] != test[order][:-1], True]]
        return test[last], status[last]

    def _latest_by_runs(self, seg: int, rank, everything: bool, wanted):
        """`latest`'s candidates in a sorted segment, for a snapshot (ranked by batch number, the segment's own
        order): each test's last row the snapshot holds. test_runs gives each test's last row and its previous
        one (the last of another batch), so a snapshot that lacks at most the newest batch of each test reads no
        column; the tests it lacks both of are walked back over the batch column a row at a time, all at once
        (a step or two: the batches a snapshot lacks are few and new). False when that takes more than
        WALK_STEPS steps (then the segment is read slice by slice)."""
        import numpy as np

        runs = np.asarray(self.db.execute(
            "SELECT test_no, start, last_ts, last_batch, last_seq, last_status, prev, prev_ts, prev_batch, prev_seq,"
            " prev_status FROM test_runs WHERE seg_no = ?", (seg,)).fetchall(), dtype=np.int64).reshape(-1, 11)
        if wanted is not None:
            runs = runs[_among(runs[:, 0], wanted)]
        test, start, prev = runs[:, 0], runs[:, 1], runs[:, 6]
        found = runs[:, 2:6]  # (ts, batch, seq, status) of each test's newest row the snapshot holds
        if not everything:
            lacked = rank[runs[:, 3]] < 0
            if lacked.any():
                before = lacked & (prev >= 0)
                found = np.where(before[:, None], runs[:, 7:11], found)
                kept = ~lacked | before
                pos = np.where(before, prev, -1)
                walking = before & (rank[runs[:, 8]] < 0)  # the previous row's batch is lacked too
                if walking.any():
                    stepped, batch = walking.copy(), self._column(seg, "batch")
                    for _ in range(WALK_STEPS):
                        pos[walking] -= 1
                        gone = walking & (pos < start)  # no row of the snapshot: the test is not in it
                        walking &= ~gone
                        kept &= ~gone
                        walking[walking] = rank[batch[pos[walking]]] < 0
                        if not walking.any():
                            break
                    else:
                        return False
                    walked = np.flatnonzero(kept & stepped)
                    if len(walked):
                        at = pos[walked]
                        found = found.copy()
                        for j, name in enumerate(("ts", "batch", "seq", "status")):
                            found[walked, j] = (self._column(seg, name)[at] if len(at) > 512 else
                                                [self._column(seg, name, p, p + 1)[0] for p in at.tolist()])
                test, found = test[kept], found[kept]
        if not len(test):
            return None
        return (test.astype(np.int32), found[:, 0], rank[found[:, 1]], found[:, 2].astype(np.int32),
                found[:, 3].astype(np.int8))

    def _latest_of_batch(self, seg: int, batch: int, tests: int, rank, wanted):
        """`latest`'s candidates of one batch in a sorted segment: the tests whose last row is of that batch
        (test_runs), when they are all the tests it holds; else False (its rows are read)."""
        import numpy as np

        runs = np.asarray(self.db.execute(
            "SELECT test_no, last_ts, last_seq, last_status FROM test_runs WHERE seg_no = ? AND last_batch = ?",
            (seg, batch)).fetchall(), dtype=np.int64).reshape(-1, 4)
        if len(runs) != tests:  # a test with a newer row of another batch: where its row of this one is is unknown
            return False
        if wanted is not None:
            runs = runs[_among(runs[:, 0], wanted)]
        if not len(runs):
            return None
        return (runs[:, 0].astype(np.int32), runs[:, 1], np.full(len(runs), rank[batch], dtype=np.int32),
                runs[:, 2].astype(np.int32), runs[:, 3].astype(np.int8))

    @staticmethod
    def _latest_in(column, rows: int, done: bool, rank, everything: bool, wanted, keys, pairs):
        """`latest`'s candidates among some rows (`column(name)` reads them): (test, time, batch rank, line,
        status) arrays, or None."""
        import numpy as np

        batch_rank = rank[column("batch")]
        keep = batch_rank >= 0 if not everything else np.ones(rows, dtype=bool)
        test = column("test")
        if wanted is not None:
            keep &= _among(test, wanted)
        if keys is not None:
            id_hi = column("id_hi")
            maybe = np.flatnonzero(keep & np.isin(id_hi, keys))
            if len(maybe):  # rare (ids both sides of a merge wrote): compared whole, one by one
                id_lo = column("id_lo")
                keep[[i for i in maybe if (int(id_hi[i]), int(id_lo[i])) in pairs]] = False
        idx = np.flatnonzero(keep)
        if not len(idx):
            return None
        ts = column("ts")
        if done:  # rows sorted by (test, time): only a run's last rows at its newest time can be its newest
            t, when = test[idx], ts[idx]
            last = np.r_[t[1:] != t[:-1], True]
            group = np.cumsum(np.r_[True, t[1:] != t[:-1]]) - 1
            newest = when[last][group]
            idx = idx[when == newest]
        return test[idx], ts[idx], batch_rank[idx], column("seq")[idx], column("status")[idx]

    @_reads
    def newest(self, snapshot, tests=None, budget: int = 100_000) -> dict[int, int] | None:
        """What `latest(snapshot, tests=tests)` answers (test number -> status code of its newest result), with
        the standard library only, or None when that would visit more than `budget` rows one by one (then numpy,
        whose import costs more than the usual answer, is the cheaper way): `com diff` of a few added results.

        In a segment sorted by test, a test's last row is its newest (test_runs keeps it, and the last row of
        another batch before it): only when the snapshot lacks both rows' batches are the test's rows walked back
        from there (a step or two: the batches a snapshot lacks are few and new)."""
        held = dict(self.db.execute("SELECT path, batch_no FROM batches"))
        numbers = {held[p] for p in snapshot.batch_paths() if p in held}
        if not numbers:
            return {}
        everything = len(numbers) == len(held)
        wanted = None if tests is None else {int(t) for t in tests}
        segments = self.db.execute("SELECT seg_no, rows, sorted FROM segments ORDER BY seg_no").fetchall()
        if len(segments) > MAX_SEGMENTS or sum(rows for _, rows, done in segments if not done) > budget:
            return None
        best: dict[int, tuple] = {}
        visits = 0
        for seg, rows, done in segments:
            visits = self._newest_in(seg, rows, done, numbers, everything, wanted, best, visits, budget)
            if visits > budget:
                return None
        return {t: code for t, (_, code) in best.items()}

    def newest_in_batches(self, batches_events, without_keys=None) -> dict[int, int]:
        """`latest(paths=...)` answered from the batches' own events (each a list of events, in the order of
        `paths`), for batches the view holds: parsing a CI run's lines costs less than finding its rows among a
        million. Rows are ranked as the view ranks them: time, then batch, then line."""
        from com.model.event import id_key

        best: dict[str, tuple] = {}
        times: dict[str, int] = {}
        for rank, events in enumerate(batches_events):
            for seq, event in enumerate(events):
                row = result_row(event)
                if row is None or (without_keys and id_key(event["id"]) in without_keys):
                    continue
                ts = event["ts"]
                when = times.get(ts)
                if when is None:
                    when = times[ts] = ts_us(ts)
                key = (when, rank, seq)
                current = best.get(row[1])
                if current is None or key > current[0]:
                    best[row[1]] = (key, STATUS_CODE[row[2]])
        numbers: dict[str, int] = {}
        for chunk, marks in sqlite.chunks(list(best)):
            numbers.update(self.db.execute(f"SELECT test_id, test_no FROM tests WHERE test_id IN ({marks})", chunk))
        return {numbers[t]: code for t, (_, code) in best.items() if t in numbers}

    def _newest_in(self, seg: int, rows: int, done: bool, numbers: set, everything: bool, wanted, best: dict,
                   visits: int, budget: int) -> int:
        """`newest` in one segment: updates `best` (test -> ((time, batch, line), status)); returns the rows
        visited so far (over `budget`: stop, numpy's turn)."""
        def offer(t: int, key: tuple, code: int) -> None:
            current = best.get(t)
            if current is None or key > current[0]:
                best[t] = (key, code)

        walks = []
        if done:
            for t, start, when, b, line, code, prev, *before in self.db.execute(
                    "SELECT test_no, start, last_ts, last_batch, last_seq, last_status, prev, prev_ts, prev_batch, "
                    "prev_seq, prev_status FROM test_runs WHERE seg_no = ?", (seg,)):
                if wanted is None or t in wanted:
                    if everything or b in numbers:
                        offer(t, (when, b, line), code)
                    elif prev >= 0:  # the last row's batch is not in the snapshot: the last row of another one
                        if before[1] in numbers:
                            offer(t, tuple(before[:3]), before[3])
                        else:
                            walks.append((t, start, prev))
            if not walks:
                return visits
        # Cell by cell when few rows are walked: a blob read costs microseconds, a column of a million rows ms.
        cells = _Cells(self, seg, whole=not done or len(walks) > rows // WALKS_PER_COLUMN_READ)
        batch, ts, seq, status = (cells.column(n) for n in ("batch", "ts", "seq", "status"))
        if not done:
            test = cells.column("test")
            for i in range(rows):
                t = test[i]
                if (wanted is None or t in wanted) and (everything or batch[i] in numbers):
                    offer(t, (ts[i], batch[i], seq[i]), status[i])
            return visits + rows
        for t, start, prev in walks:
            # Sorted by (time, batch, line): walking back, the first row of the snapshot is the test's newest.
            i = prev - 1
            while i >= start and batch[i] not in numbers:
                i -= 1
            if i >= start:
                offer(t, (ts[i], batch[i], seq[i]), status[i])
            visits += prev - i
            if visits > budget:
                break
        return visits

    @_reads
    def run_outcomes(self, snapshot) -> tuple[list[str], object, object, object] | None:
        """Per run of the snapshot: (names, first-attempt verdicts, failures among them, code commit number or
        -1), runs named as `analysis.flaky.with_runs` names them (the run id, or "at:<time>" for results recorded
        without one at one time). What a mass-failure check needs, counted per run context rather than given
        a row per result. None when an event may sit in two batches (then `columns` removes second copies)."""
        import numpy as np

        from com.analysis.flaky import iso

        if self.ids_may_repeat is None or self.ids_may_repeat(snapshot):
            return None
        numbers, everything = self.batch_numbers(snapshot.batch_paths())
        passed, error = STATUS_CODE["passed"], STATUS_CODE["error"]
        contexts = {ctx: (run, code) for ctx, run, code in
                    self.db.execute("SELECT ctx_no, run_no, code_no FROM contexts")}
        width = max(contexts, default=0) + 1
        no_run = np.zeros(width, dtype=bool)
        no_run[[ctx for ctx, (run, _) in contexts.items() if run < 0]] = True
        ctx_total, ctx_failed = np.zeros(width, np.int64), np.zeros(width, np.int64)
        at: dict[int, list] = {}  # results without a run id: time -> [verdicts, failures, commit]
        for seg, rows, _ in self._segments():
            for lo in range(0, rows, LATEST_SLICE):  # bounded memory, as in `latest`
                hi = min(rows, lo + LATEST_SLICE)
                status = self._column(seg, "status", lo, hi)
                sel = (status <= error) & ((self._column(seg, "flags", lo, hi) & HAS_ATTEMPT == 0)
                                           | (self._column(seg, "attempt", lo, hi) <= 1))
                if not everything:
                    sel &= np.isin(self._column(seg, "batch", lo, hi), numbers)
                idx = np.flatnonzero(sel)
                ctx, fails = self._column(seg, "ctx", lo, hi)[idx], status[idx] != passed
                ctx_total += np.bincount(ctx, minlength=width)
                ctx_failed += np.bincount(ctx[fails], minlength=width)
                missing = no_run[ctx]
                if missing.any():  # one run per time; its commit that of its last result
                    times, inverse = np.unique(self._column(seg, "ts", lo, hi)[idx[missing]], return_inverse=True)
                    last = np.zeros(len(times), np.int64)
                    last[inverse] = ctx[missing]
                    for when, n, failed, c in zip(times.tolist(), np.bincount(inverse).tolist(),
                                                  np.bincount(inverse, weights=fails[missing]).tolist(), last.tolist()):
                        entry = at.setdefault(when, [0, 0, -1])
                        entry[0] += n
                        entry[1] += int(failed)
                        entry[2] = contexts[c][1]
        by_run: dict[int, list] = {}
        for c in np.flatnonzero((ctx_total > 0) & ~no_run).tolist():
            run, code = contexts[c]
            entry = by_run.setdefault(run, [0, 0, -1])
            entry[0] += int(ctx_total[c])
            entry[1] += int(ctx_failed[c])
            entry[2] = code
        run_names = self._names("runs", "run_no", "run_id", list(by_run))
        names = [run_names[r] for r in by_run] + [f"at:{iso(t)}" for t in at]
        counts = list(by_run.values()) + list(at.values())
        total, failed, code = (np.asarray([c[i] for c in counts], dtype=np.int64) for i in range(3))
        return names, total, failed, code

    def test_names(self, numbers) -> dict[int, str]:
        """test number -> test id, for these numbers."""
        out: dict[int, str] = {}
        for chunk, marks in sqlite.chunks([int(n) for n in numbers]):
            out.update(self.db.execute(f"SELECT test_no, test_id FROM tests WHERE test_no IN ({marks})", chunk))
        return out

    def columns(self, snapshot, where: EventFilter | None = None, tests: list[str] | None = None,
                runs_only: bool = False) -> ResultColumns:
        """The snapshot's results as `ResultColumns` (one row per attempt, each event once). `tests`: only these
        test ids. `runs_only`: what a question about whole runs needs (time, status, attempt, run, commit); the
        test, duration and signature columns are not read (zeros, NaN and -1 stand in)."""
        import numpy as np

        test_nos = None
        if tests is not None:
            found = []
            for chunk, marks in sqlite.chunks(list(dict.fromkeys(tests))):
                found += [no for (no,) in self.db.execute(f"SELECT test_no FROM tests WHERE test_id IN ({marks})",
                                                           chunk)]
            test_nos = np.asarray(found, dtype=np.int32)
        names = ("ts", "status", "attempt", "flags", "ctx") if runs_only else \
            ("test", "ts", "status", "attempt", "flags", "duration", "ctx", "sig")
        sel = self.select(snapshot, where, names, test_nos=test_nos)
        attempt = np.where(sel["flags"] & HAS_ATTEMPT, sel["attempt"], 0).astype(np.int16)
        if runs_only:
            rows = len(sel["ts"])
            tests, test, signatures, sig = [], np.zeros(rows, np.int32), [], np.full(rows, -1, np.int32)
            duration = np.full(rows, np.nan)
        else:
            duration = np.where(sel["flags"] & HAS_DURATION, sel["duration"], np.nan)
            tests, test = _renumber(sel["test"], lambda used: self._names("tests", "test_no", "test_id", used))
            signatures, sig = _renumber(sel["sig"], lambda used: self._names("signatures", "sig_no", "text", used))
        ctx_used = distinct(sel["ctx"][sel["ctx"] >= 0])
        ctx_rows = self._names("contexts", "ctx_no", "run_no, code_no", ctx_used, pairs=True)
        size = max(ctx_rows, default=-1) + 2
        ctx_run, ctx_code = np.full(size, -1, np.int32), np.full(size, -1, np.int32)
        for c, (run, code) in ctx_rows.items():
            ctx_run[c], ctx_code[c] = run, code
        runs, run = _renumber(ctx_run[sel["ctx"]], lambda used: self._names("runs", "run_no", "run_id", used))
        commits, commit = _renumber(ctx_code[sel["ctx"]], lambda used: self._names("codes", "code_no", "sha", used))
        return ResultColumns(test=test, tests=tests, ts_us=sel["ts"], status=sel["status"].astype(np.int8),
                             attempt=attempt, duration_ms=duration, run=run, runs=runs, commit=commit,
                             commits=commits, signature=sig, signatures=signatures)

    def events(self, snapshot, where: EventFilter | None = None, limit: int | None = None) -> tuple[list[dict], int]:
        """The snapshot's test_result events that `where` matches, newest first, at most `limit`, given back
        exactly as stored; and how many match in all. A question about some tests reads only their rows
        (`rows_of_tests`, no numpy); others read whole columns."""
        from com.model.filter import EventFilter

        where = where or EventFilter()
        if where.test is not None:
            sel = self.rows_of_tests(snapshot, where)
            order = sorted(range(len(sel["ts"])), key=lambda i: (sel["ts"][i], sel["batch"][i], sel["seq"][i]),
                           reverse=True)
        else:
            import numpy as np

            sel = self.select(snapshot, where, tuple(COLUMNS))
            order = np.lexsort((sel["seq"], sel["batch"], sel["ts"]))[::-1]
        # Newest first; within one run (one time) the later line is the later attempt.
        needs_check = bool(where.tags_include or where.tags_exclude or where.min_importance is not None)
        events, total = [], len(order)
        rebuild = _Rebuilder(self.db)
        for i in order:
            if limit is not None and len(events) >= limit and not needs_check:
                break
            event = rebuild(sel, i)
            if where.matches(event):
                events.append(event)
        if needs_check:
            total = len(events)
        return (events[:limit] if limit is not None else events), total

    def test_tags(self, snapshot, where: EventFilter | None = None) -> dict[str, set[str]]:
        """test id -> the tags its results carry in the snapshot: the events' own tags, and the values of a
        `markers` or `tags` property (comma-separated, as a conftest records pytest markers with
        record_property). Read once per distinct shape: thousands of results share one."""
        import numpy as np

        sel = self.select(snapshot, where, ("test", "shape"))
        if not len(sel["test"]):
            return {}
        pairs = distinct(sel["test"].astype(np.int64) << 32 | sel["shape"].astype(np.int64))
        tests, shapes = (pairs >> 32).astype(np.int64), (pairs & 0xFFFFFFFF).astype(np.int64)
        tags_of: dict[int, frozenset] = {}
        for chunk, marks in sqlite.chunks(distinct(shapes).tolist()):
            for no, body in self.db.execute(f"SELECT shape_no, body FROM shapes WHERE shape_no IN ({marks})", chunk):
                shape = json.loads(zlib.decompress(body).decode("utf-8", "surrogatepass"))
                found = {t for t in shape.get("tags") or () if isinstance(t, str)}
                props = (shape.get("data") or {}).get("properties")
                if isinstance(props, dict):
                    for key in ("markers", "tags"):
                        values = props.get(key)
                        for value in values if isinstance(values, list) else [values]:
                            if isinstance(value, str):
                                found.update(v.strip() for v in value.split(",") if v.strip())
                tags_of[no] = frozenset(found)
        names = self._names("tests", "test_no", "test_id")
        out: dict[str, set[str]] = {}
        for t, s in zip(tests.tolist(), shapes.tolist()):
            out.setdefault(names[t], set()).update(tags_of.get(s, ()))
        return out

    @_reads
    def rows_of_tests(self, snapshot, where: EventFilter) -> dict[str, list]:
        """Every column of the rows of the tests `where.test` names, in the snapshot and matching its other
        conditions, each event once: through the per-test runs of sorted segments (`test_runs`) and a scan of
        the small unsorted ones, with the standard library only (a one-test question pays no numpy import)."""
        numbers = set(self.test_numbers(where.test))
        out: dict[str, list] = {name: [] for name in COLUMNS}
        if not numbers or (where.types and "test_result" not in where.types):
            return out
        segments = self.db.execute("SELECT seg_no, rows, sorted FROM segments ORDER BY seg_no").fetchall()
        for seg, rows, done in segments:
            if done:
                marks = ",".join("?" * len(numbers))
                runs = self.db.execute(f"SELECT start, count FROM test_runs WHERE seg_no = ? AND test_no IN ({marks})"
                                       " ORDER BY start", (seg, *numbers)).fetchall()
            else:
                tests = array(COLUMNS["test"], self._blob(seg, "test"))
                runs = _runs_of([i for i, t in enumerate(tests) if t in numbers])
            for start, count in runs:
                for name, code in COLUMNS.items():
                    size = array(code).itemsize
                    out[name].extend(array(code, self._read(seg, name, start * size, count * size)))
        return _kept(out, self._batch_paths_held(), snapshot, where)

    def _batch_paths_held(self) -> dict[int, str]:
        return dict(self.db.execute("SELECT batch_no, path FROM batches"))

    def _names(self, table: str, key: str, value: str, used=None, pairs: bool = False) -> dict:
        """key -> value of a table of numbered strings: the codes `used` only, when they are few (one test's
        history names a few runs and commits of thousands), else the whole table."""
        if used is not None and len(used) <= FEW_NAMES:
            rows = []
            for chunk, marks in sqlite.chunks([int(u) for u in used]):
                rows.extend(self.db.execute(f"SELECT {key}, {value} FROM {table} WHERE {key} IN ({marks})", chunk))
        else:
            rows = self.db.execute(f"SELECT {key}, {value} FROM {table}").fetchall()
        return {r[0]: r[1:] for r in rows} if pairs else {r[0]: r[1] for r in rows}


def result_row(event: dict) -> tuple[dict, str, str] | None:
    """(data, test id, status) of an event that is a row of this view; None for any other event."""
    data = event.get("data")
    if event.get("type") != "test_result" or type(data) is not dict:
        return None
    test_id, status = data.get("test_id"), data.get("status")
    if type(test_id) is not str or not test_id or status not in STATUS_CODE:
        return None
    return data, test_id, status


def _runs_of(positions: list[int]) -> list[tuple[int, int]]:
    """Consecutive positions as (start, count) runs."""
    runs: list[list[int]] = []
    for p in positions:
        if runs and p == runs[-1][0] + runs[-1][1]:
            runs[-1][1] += 1
        else:
            runs.append([p, 1])
    return [(start, count) for start, count in runs]


def _kept(rows: dict[str, list], held: dict[int, str], snapshot, where: EventFilter) -> dict[str, list]:
    """The rows (columns as lists) that lie in the snapshot and meet the filter's other column conditions,
    each event once."""
    paths = snapshot.batch_paths()
    in_snapshot = {no for no, path in held.items() if path in paths}
    projects = set(where.projects)
    statuses = where.result_status_set
    codes = {STATUS_CODE[s] for s in statuses if s in STATUS_CODE}
    seen, keep = set(), []
    for i, (batch, status, ts) in enumerate(zip(rows["batch"], rows["status"], rows["ts"])):
        if batch not in in_snapshot or (statuses and status not in codes):
            continue
        if projects and held[batch].split("/", 2)[1] not in projects:
            continue
        if (where.since_us is not None and ts < where.since_us) or (where.until_us is not None and ts > where.until_us):
            continue
        key = (rows["id_hi"][i], rows["id_lo"][i])
        if key not in seen:
            seen.add(key)
            keep.append(i)
    return {name: [values[i] for i in keep] for name, values in rows.items()}


class _Cells:
    """A segment's columns, each read whole when first asked for (`whole`), or cell by cell through a blob
    handle (a few hundred cells of a million-row segment cost less than its columns)."""

    def __init__(self, view: "TestResultsView", seg: int, whole: bool):
        self.view, self.seg, self.whole = view, seg, whole
        self.blobs: dict[str, bytes] = {}

    def blob(self, name: str) -> bytes:
        if name not in self.blobs:
            self.blobs[name] = self.view._blob(self.seg, name)
        return self.blobs[name]

    def column(self, name: str):
        """The column's values by row: its bytes seen as values (not copied again), or a cell reader."""
        if self.whole or name in self.blobs:
            return memoryview(self.blob(name)).cast(COLUMNS[name])
        return _CellReader(self.view, self.seg, name, COLUMNS[name])


class _CellReader:
    def __init__(self, view: "TestResultsView", seg: int, name: str, code: str):
        self.view, self.seg, self.name, self.code = view, seg, name, code
        self.size = array(code).itemsize

    def __getitem__(self, i: int):
        return memoryview(self.view._read(self.seg, self.name, i * self.size, self.size)).cast(self.code)[0]


def _insert_segment(db: sqlite3.Connection, rows: int, done: bool, columns: dict) -> int:
    """A new segment: its columns' bytes, or (an int) the size of a zeroed blob to write in place."""
    seg = db.execute("INSERT INTO segments (rows, sorted) VALUES (?, ?)", (rows, int(done))).lastrowid
    for name, data in columns.items():
        if isinstance(data, int):
            db.execute("INSERT INTO seg_columns (seg_no, name, data) VALUES (?, ?, zeroblob(?))", (seg, name, data))
        else:
            db.execute("INSERT INTO seg_columns (seg_no, name, data) VALUES (?, ?, ?)", (seg, name, data))
    return seg


def _among(tests, wanted):
    """Which of `tests` (test numbers) a bool array by test number marks as wanted (past its end: none)."""
    import numpy as np

    return (tests < len(wanted)) & wanted[np.minimum(tests, len(wanted) - 1)]


_INSERT_RUNS = f"INSERT INTO test_runs VALUES ({', '.join('?' * 13)})"
_NO_PREV = (-1, 0, 0, 0, 0)  # test_runs' previous row of a test whose rows are all of one batch


def _runs_numpy(seg: int, tests, ts, batch, seq, status):
    """test_runs rows of a sorted segment's columns (numpy arrays): each test's start, count, last row and
    previous row (the last of another batch)."""
    import numpy as np

    numbers, starts, counts = np.unique(tests, return_index=True, return_counts=True)
    last = starts + counts - 1
    # Rows i where row i+1 is of another test or another batch: the last such row before a test's last row
    # ends the block before the last row's batch (its previous row), if it is the test's at all.
    ends = np.flatnonzero((batch[1:] != batch[:-1]) | (tests[1:] != tests[:-1]))
    k = np.searchsorted(ends, last) - 1
    prev = np.where(k >= 0, ends[np.maximum(k, 0)], -1)
    prev = np.where(prev >= starts, prev, -1)
    has, at = prev >= 0, np.maximum(prev, 0)
    return zip([seg] * len(numbers), numbers.tolist(), starts.tolist(), counts.tolist(), ts[last].tolist(),
               batch[last].tolist(), seq[last].tolist(), status[last].tolist(), prev.tolist(),
               np.where(has, ts[at], 0).tolist(), np.where(has, batch[at], 0).tolist(),
               np.where(has, seq[at], 0).tolist(), np.where(has, status[at], 0).tolist())


def _renumber(codes, names_of):
    """Codes of the view's tables -> (list of the names used, codes into that list); -1 stays -1.
    `names_of(used codes)` gives their names (code -> name)."""
    import numpy as np

    used = distinct(codes[codes >= 0])
    names = names_of(used)
    lookup = np.full(int(used.max()) + 2 if len(used) else 1, -1, dtype=np.int32)
    lookup[used] = np.arange(len(used), dtype=np.int32)
    out = np.where(codes >= 0, lookup[np.maximum(codes, 0)], -1).astype(np.int32)
    return [names[int(c)] for c in used], out


def _first_of_each_id(hi, lo, rows):
    """`rows` without a second copy of an event (both sides of a merge wrote it into different batches)."""
    import numpy as np

    if len(rows) < 2:
        return rows
    keys = hi[rows]
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    same = sorted_keys[1:] == sorted_keys[:-1]
    if not same.any():
        return rows
    lo_sorted = lo[rows][order]
    dup = np.zeros(len(rows), dtype=bool)
    dup[order[1:][same & (lo_sorted[1:] == lo_sorted[:-1])]] = True
    return rows[~dup]


class _Numbers:
    """Strings numbered in one of the view's tables, remembered for the take: looked up one by one at first,
    the whole table read in once a take asks for many (a CI run's 10,000 tests)."""

    PRELOAD_AFTER = 256

    def __init__(self, db: sqlite3.Connection, table: str, key: str, column: str):
        self.db, self.table, self.key, self.column = db, table, key, column
        self.known: dict = {}
        self.misses = 0
        self.preloaded = False

    def get(self, value) -> int:
        found = self.known.get(value)
        if found is not None:
            return found
        if not self.preloaded:
            self.misses += 1
            if self.misses > self.PRELOAD_AFTER:
                self.known.update(self.db.execute(f"SELECT {self.column}, {self.key} FROM {self.table}"))
                self.preloaded = True
                found = self.known.get(value)
            else:
                row = self.db.execute(f"SELECT {self.key} FROM {self.table} WHERE {self.column} = ?", (value,)).fetchone()
                found = row[0] if row else None
        if found is None:
            found = self.insert(value)
        self.known[value] = found
        return found

    def insert(self, value) -> int:
        return self.db.execute(f"INSERT INTO {self.table} ({self.column}) VALUES (?)", (value,)).lastrowid


class _Shapes(_Numbers):
    """Shapes are found by a 64-bit hash of their text and stored compressed."""

    def __init__(self, db: sqlite3.Connection):
        super().__init__(db, "shapes", "shape_no", "hash")
        self.by_text: dict[str, int] = {}

    def number(self, text: str) -> int:
        found = self.by_text.get(text)
        if found is None:
            data = text.encode("utf-8", "surrogatepass")
            self.body = data
            found = self.by_text[text] = self.get(int.from_bytes(blake2b(data, digest_size=8).digest(),
                                                                  "big", signed=True))
        return found

    def insert(self, digest) -> int:
        return self.db.execute("INSERT INTO shapes (hash, body) VALUES (?, ?)",
                               (digest, zlib.compress(self.body, 6))).lastrowid


class _Writer:
    """Turns events into column arrays inside one take transaction; strings numbered through the tables."""

    def __init__(self, db: sqlite3.Connection):
        self.db = db
        self.cols = {name: array(code) for name, code in COLUMNS.items()}
        self.tests = _Numbers(db, "tests", "test_no", "test_id")
        self.signatures = _Numbers(db, "signatures", "sig_no", "text")
        self.runs = _Numbers(db, "runs", "run_no", "run_id")
        self.codes = _Numbers(db, "codes", "code_no", "sha")
        self.shapes = _Shapes(db)
        self.contexts: dict = {}
        self.times: dict[str, tuple[int, bool]] = {}  # ts text -> (microseconds, canonical); a run shares one
        self.shape_of: dict[bytes, int] = {}  # marshalled values of a shape -> its number
        self.taken = 0  # rows written so far
        self.pending: list[int] = []  # batches whose rows the next segment holds

    def add(self, batch, events: list[dict]) -> None:
        batch_no = self.db.execute("INSERT INTO batches (path, project) VALUES (?, ?)",
                                   (batch.path, batch.project)).lastrowid
        cols = self.cols
        test_col, ts_col, batch_col, seq_col = cols["test"], cols["ts"], cols["batch"], cols["seq"]
        status_col, attempt_col, flags_col, duration_col = cols["status"], cols["attempt"], cols["flags"], cols["duration"]
        sig_col, shape_col, ctx_col, hi_col, lo_col = cols["sig"], cols["shape"], cols["ctx"], cols["id_hi"], cols["id_lo"]
        tests, known_tests, times, shape_of = self.tests, self.tests.known, self.times, self.shape_of
        first = len(test_col)
        contexts, context_of = self.contexts, self._context
        dumps, status_code, row_keys, run_keys = marshal.dumps, STATUS_CODE, _ROW_KEYS, RUN_KEYS
        for seq, event in enumerate(events):
            row = result_row(event)
            if row is None:
                continue
            data, test_id, status = row
            shape_data = data.copy()
            for key in row_keys:
                if key in shape_data:
                    del shape_data[key]
            flags = 0
            attempt = data.get("attempt")
            if type(attempt) is int and 0 <= attempt < 32768:
                flags = HAS_ATTEMPT
            else:
                attempt = 0
                if "attempt" in data:
                    shape_data["attempt"] = data["attempt"]
            duration = data.get("duration_ms")
            if type(duration) is int and abs(duration) < 2 ** 53:
                flags |= HAS_DURATION | DURATION_INT
            elif type(duration) is float and math.isfinite(duration):
                flags |= HAS_DURATION
            else:
                duration = 0
                if "duration_ms" in data:
                    shape_data["duration_ms"] = data["duration_ms"]
            ts = event["ts"]
            when = times.get(ts)
            if when is None:
                us = ts_us(ts)
                when = times[ts] = (us, format_us(us) == ts)
            # The shape's canonical JSON and its hash cost more than the rest of the row: a run repeats each
            # test's shape, so it is found by the exact bytes of its values (marshal keeps 1, 1.0 and True apart).
            key = dumps((shape_data, event["importance"], event["project"], event["source"], event["tags"],
                         None if when[1] else ts))
            shape = shape_of.get(key)
            if shape is None:
                body = {"data": shape_data, "importance": event["importance"], "project": event["project"],
                        "source": event["source"], "tags": event["tags"], "type": "test_result"}
                if not when[1]:  # not the canonical text (written by hand): keep it as it is
                    body["ts"] = ts
                shape = shape_of[key] = self.shapes.number(canonical_json(body))
            test = known_tests.get(test_id)
            test_col.append(test if test is not None else tests.get(test_id))
            ts_col.append(when[0])
            batch_col.append(batch_no)
            seq_col.append(seq)
            status_col.append(status_code[status])
            attempt_col.append(attempt)
            flags_col.append(flags)
            duration_col.append(duration)
            if status in _FAILING:
                from com.model.text import signature as error_signature  # imported by a failure only

                sig = error_signature(data)
                sig_col.append(self.signatures.get(sig) if sig else -1)
            else:
                sig_col.append(-1)
            shape_col.append(shape)
            context = contexts.get(dumps(tuple([data.get(k, ...) for k in run_keys])))
            ctx_col.append(context if context is not None else context_of(data))
            eid = event["id"]
            hi_col.append(int(eid[4:20], 16))
            lo_col.append(int(eid[20:28], 16))
        if len(test_col) > first:
            self.pending.append(batch_no)
            self.db.execute("UPDATE batches SET tests = ? WHERE batch_no = ?",
                            (len(set(test_col[first:])), batch_no))
        if len(test_col) >= FLUSH_ROWS:
            self.flush()

    def _context(self, data: dict) -> int:
        """The run's values (run id, commit, branch, report, seed) numbered once per distinct combination."""
        # Keyed by the exact bytes of the values (... stands for an absent key: no JSON value is Ellipsis).
        key = marshal.dumps(tuple([data.get(k, ...) for k in RUN_KEYS]))
        found = self.contexts.get(key)
        if found is None:
            context = {k: data[k] for k in RUN_KEYS if k in data}
            text = canonical_json(context)
            row = self.db.execute("SELECT ctx_no FROM contexts WHERE json = ?", (text,)).fetchone()
            if row:
                found = row[0]
            else:
                run, code = context.get("run_id"), context.get("commit")
                run_no = self.runs.get(run) if isinstance(run, str) and run else -1
                # A run on uncommitted changes ran code that is no commit: each such run is its own revision.
                dirty = context.get("code_dirty") is True
                code_no = self.codes.get(code) if isinstance(code, str) and code and not dirty else -1
                found = self.db.execute("INSERT INTO contexts (json, run_no, code_no) VALUES (?, ?, ?)",
                                        (text, run_no, code_no)).lastrowid
            self.contexts[key] = found
        return found

    def flush(self) -> None:
        rows = len(self.cols["test"])
        if not rows:
            return
        self.taken += rows
        seg = _insert_segment(self.db, rows, False, {name: self.cols[name].tobytes() for name in COLUMNS})
        for chunk, marks in sqlite.chunks(self.pending):
            self.db.execute(f"UPDATE batches SET seg_no = ? WHERE batch_no IN ({marks})", (seg, *chunk))
        self.pending = []
        self.cols = {name: array(code) for name, code in COLUMNS.items()}




class _Rebuilder:
    """Gives a row's event back exactly as it is stored, from its columns, its shape and its context."""

    def __init__(self, db: sqlite3.Connection):
        self.db = db
        self.tests: dict[int, str] = {}
        self.shapes: dict[int, dict] = {}
        self.contexts: dict[int, dict] = {}

    def _lookup(self, cache: dict, sql: str, key: int, decode):
        value = cache.get(key)
        if value is None:
            value = cache[key] = decode(self.db.execute(sql, (key,)).fetchone()[0])
        return value

    def __call__(self, sel: dict, i: int) -> dict:
        shape = self._lookup(self.shapes, "SELECT body FROM shapes WHERE shape_no = ?", int(sel["shape"][i]),
                             lambda body: json.loads(zlib.decompress(body).decode("utf-8", "surrogatepass")))
        context = self._lookup(self.contexts, "SELECT json FROM contexts WHERE ctx_no = ?", int(sel["ctx"][i]),
                               json.loads)
        test_id = self._lookup(self.tests, "SELECT test_id FROM tests WHERE test_no = ?", int(sel["test"][i]), str)
        flags = int(sel["flags"][i])
        data = {**shape["data"], **context, "test_id": test_id, "status": STATUS_CODES[int(sel["status"][i])]}
        if flags & HAS_ATTEMPT:
            data["attempt"] = int(sel["attempt"][i])
        if flags & HAS_DURATION:
            duration = float(sel["duration"][i])
            data["duration_ms"] = int(duration) if flags & DURATION_INT else duration
        event_id = f"evt_{int(sel['id_hi'][i]):016x}{int(sel['id_lo'][i]):08x}"
        values = {"id": event_id, "ts": shape.get("ts") or format_us(int(sel["ts"][i])), **shape,
                  "data": dict(sorted(data.items()))}
        return {key: values[key] for key in FIELDS}
