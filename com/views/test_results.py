"""The test-results view: one row per recorded test result, columnar, in SQLite (`.com/cache/results.sqlite`).

What flaky detection, selection, roll-ups, `com diff` and `com events --test` read instead of parsing the
journal. Derived and disposable: rebuilt from the journal alone gives the same rows.

Rows live in segments: one SQLite row per segment whose columns are packed arrays (test, time, batch, line,
status, attempt, duration, signature, shape, context, id), appended by each take and merged when they grow
many. Analyses load whole columns straight into numpy; a take writes them with the stdlib `array` module, so a
one-event ingest never imports numpy. Strings are numbered once in small tables (tests, runs, code commits,
signatures), so a million results cost about 60 bytes each.

A row also holds what it takes to give the stored event back exactly, without reading its batch: the
per-row values (id, ts, status, attempt, duration) as columns, the run's values (run_id, commit, branch,
report) as a shared "context", and everything else (project, source, importance, tags, the other data keys)
as a shared, compressed "shape". A value that does not fit its column exactly stays in the shape.

A snapshot's rows are the rows of its batches (`batch` numbers), so `--at REV` is exact here too.
"""

from __future__ import annotations

import hashlib
import json
import math
import sqlite3
import zlib
from array import array
from contextlib import contextmanager

from com.files import sqlite
from com.views.base import SqliteView
from com.model.event import FIELDS, canonical_json, format_us, ts_us
from com.model.filter import EventFilter, TestMatch
from com.model.result import STATUS_CODE, STATUS_CODES, ResultColumns
from com.model.text import signature as error_signature

SCHEMA_VERSION = 3
MAX_UNSORTED = 8  # this many segments appended by takes are merged (and sorted by test) by the next reader
MAX_SEGMENTS = 16
SMALL_ROWS = 20_000  # takes up to this size are merged with the standard library inside the take itself
FLUSH_ROWS = 200_000  # a long catch-up writes a segment every this many rows (bounded memory)
RUN_KEYS = ("branch", "commit", "report", "run_id")  # data keys shared by a run's results
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

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS commits (sha TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS batches (batch_no INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE, project TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tests (test_no INTEGER PRIMARY KEY, test_id TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS runs (run_no INTEGER PRIMARY KEY, run_id TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS codes (code_no INTEGER PRIMARY KEY, sha TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS signatures (sig_no INTEGER PRIMARY KEY, text TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS contexts (ctx_no INTEGER PRIMARY KEY, json TEXT NOT NULL UNIQUE,
    run_no INTEGER NOT NULL, code_no INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS test_runs (seg_no INTEGER NOT NULL, test_no INTEGER NOT NULL, start INTEGER NOT NULL,
    count INTEGER NOT NULL, PRIMARY KEY (seg_no, test_no)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS shapes (shape_no INTEGER PRIMARY KEY, hash INTEGER NOT NULL UNIQUE, body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS segments (seg_no INTEGER PRIMARY KEY, rows INTEGER NOT NULL, sorted INTEGER NOT NULL,
    {", ".join(f"{name} BLOB NOT NULL" for name in COLUMNS)});
"""
_TABLES = ("meta", "commits", "batches", "tests", "runs", "codes", "signatures", "contexts", "shapes", "segments",
           "test_runs")


class TestResultsView(SqliteView):
    name = "test-results view"
    FILE = "results.sqlite"
    SCHEMA_VERSION = SCHEMA_VERSION
    SCHEMA = _SCHEMA
    TABLES = _TABLES
    __test__ = False

    def has_batch(self, path: str) -> bool:
        return self.db.execute("SELECT 1 FROM batches WHERE path=?", (path,)).fetchone() is not None

    @contextmanager
    def taking(self, shas: list[str]):
        db = self.db
        with sqlite.transaction(db):
            writer = _Writer(db)
            yield writer.add
            writer.flush()
            self.mark_seen(shas)
            self._merge_small()

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
            blobs = self.db.execute(f"SELECT {', '.join(COLUMNS)} FROM segments WHERE seg_no = ?", (seg,)).fetchone()
            for (name, code), blob in zip(COLUMNS.items(), blobs):
                cols[name].frombytes(blob)
        order = sorted(range(len(cols["test"])), key=lambda i: (cols["test"][i], cols["ts"][i], cols["batch"][i],
                                                              cols["seq"][i]))
        self._replace(chosen, {name: array(COLUMNS[name], (values[i] for i in order)) for name, values in cols.items()})

    def _replace(self, chosen: list[int], sorted_cols: dict) -> None:
        """Put one sorted segment (columns as arrays or numpy arrays) in place of the `chosen` segments, with
        where each test's run of rows starts and how long it is."""
        marks = ",".join("?" * len(chosen))
        self.db.execute(f"DELETE FROM segments WHERE seg_no IN ({marks})", chosen)
        self.db.execute(f"DELETE FROM test_runs WHERE seg_no IN ({marks})", chosen)
        tests = sorted_cols["test"]
        seg = self.db.execute(
            f"INSERT INTO segments (rows, sorted, {', '.join(COLUMNS)}) VALUES (?, 1{', ?' * len(COLUMNS)})",
            (len(tests), *(sorted_cols[name].tobytes() for name in COLUMNS))).lastrowid
        if hasattr(tests, "dtype"):  # numpy (a big merge): the runs without a Python loop over every row
            import numpy as np

            numbers, starts, counts = np.unique(tests, return_index=True, return_counts=True)
            runs = zip([seg] * len(numbers), numbers.tolist(), starts.tolist(), counts.tolist())
        else:
            runs, start = [], 0
            for i in range(1, len(tests) + 1):
                if i == len(tests) or tests[i] != tests[start]:
                    runs.append((seg, tests[start], start, i - start))
                    start = i
        self.db.executemany("INSERT INTO test_runs VALUES (?, ?, ?, ?)", runs)

    def _column(self, seg_no: int, name: str, start: int | None = None, stop: int | None = None):
        """One column of one segment, or rows start:stop of it (read straight from the blob, not the whole)."""
        import numpy as np

        dtype = np.dtype(_NUMPY[COLUMNS[name]])
        if start is None:
            blob = self.db.execute(f"SELECT {name} FROM segments WHERE seg_no = ?", (seg_no,)).fetchone()[0]
            return np.frombuffer(blob, dtype=dtype)
        with self.db.blobopen("segments", name, seg_no, readonly=True) as blob:
            blob.seek(start * dtype.itemsize)
            return np.frombuffer(blob.read((stop - start) * dtype.itemsize), dtype=dtype)

    def _compact(self) -> None:
        """Merge the unsorted segments (and the sorted ones not much bigger than them) into one segment sorted by
        test, so a test's rows are one run of every column. Sizes grow geometrically, as in a log-structured
        merge: each row is rewritten a few times, not once per take. One transaction; readers keep seeing the
        old segments until it commits."""
        import numpy as np

        with sqlite.transaction(self.db):
            segments = self.db.execute("SELECT seg_no, rows, sorted FROM segments ORDER BY rows").fetchall()
            chosen = [seg for seg, _, done in segments if not done]
            size = sum(rows for _, rows, done in segments if not done)
            for seg, rows, done in segments:
                if done and (rows <= 4 * size or len(segments) - len(chosen) > MAX_SEGMENTS // 2):
                    chosen.append(seg)
                    size += rows
            if len(chosen) <= 1 and all(done for _, _, done in segments):
                return
            cols = {name: np.concatenate([self._column(seg, name) for seg in chosen]) for name in COLUMNS}
            order = np.lexsort((cols["seq"], cols["batch"], cols["ts"], cols["test"]))
            self._replace(chosen, {name: values[order] for name, values in cols.items()})

    def _batch_numbers(self, snapshot) -> tuple[object, bool]:
        """(the batch numbers of the snapshot's batches, whether that is every batch the view holds)."""
        import numpy as np

        held = dict(self.db.execute("SELECT path, batch_no FROM batches"))
        numbers = [held[p] for p in snapshot.batch_paths() if p in held]
        return np.asarray(numbers, dtype=np.int32), len(numbers) == len(held)

    def select(self, snapshot, where: EventFilter | None = None, columns=("test", "ts", "status")) -> dict:
        """The rows of `snapshot` that `where` may match (test, status, time, project; each event once), as
        numpy columns plus "row" (their positions). Tags, importance and source are not columns: apply
        `where.matches` to the events if they matter. The filter's columns are read whole; the others only
        over the run of rows that matched (one run per sorted segment when one test is asked for)."""
        import numpy as np

        where = where or EventFilter()
        batches, everything = self._batch_numbers(snapshot)
        if where.projects:
            held = self.db.execute(
                f"SELECT batch_no FROM batches WHERE project IN ({','.join('?' * len(where.projects))})",
                where.projects).fetchall()
            batches = np.intersect1d(batches, np.asarray([b for (b,) in held], dtype=np.int32))
            everything = False
        tests = (np.asarray(list(self.test_numbers(where.test)), dtype=np.int32)
                 if where.test is not None else None)
        codes = np.asarray([STATUS_CODE[s] for s in where.statuses if s in STATUS_CODE], dtype=np.int8)
        names = list(dict.fromkeys([*columns, "id_hi", "id_lo"]))
        parts = {name: [] for name in names}
        positions, base = [], 0
        nothing = (where.types and "test_result" not in where.types) or (tests is not None and not len(tests))
        for seg, rows, done in ([] if nothing else self._segments()):
            loaded, keep = {}, np.ones(rows, dtype=bool)
            if not everything:
                loaded["batch"] = self._column(seg, "batch")
                keep &= np.isin(loaded["batch"], batches)
            if tests is not None:
                loaded["test"] = self._column(seg, "test")
                keep &= np.isin(loaded["test"], tests)
            if where.statuses:
                loaded["status"] = self._column(seg, "status")
                keep &= np.isin(loaded["status"], codes)
            if where.since_us is not None or where.until_us is not None:
                loaded["ts"] = ts = self._column(seg, "ts")
                if where.since_us is not None:
                    keep &= ts >= where.since_us
                if where.until_us is not None:
                    keep &= ts <= where.until_us
            idx = np.flatnonzero(keep)
            if not len(idx):
                base += rows
                continue
            lo, hi = int(idx[0]), int(idx[-1]) + 1
            narrow = hi - lo < rows // 4  # a run much shorter than the segment: read just that run
            for name in names:
                if name in loaded:
                    parts[name].append(loaded[name][idx])
                elif narrow:
                    parts[name].append(self._column(seg, name, lo, hi)[idx - lo])
                else:
                    parts[name].append(self._column(seg, name)[idx])
            positions.append(idx + base)
            base += rows
        out = {name: (np.concatenate(chunks) if chunks else np.zeros(0, _NUMPY[COLUMNS[name]]))
               for name, chunks in parts.items()}
        out["row"] = np.concatenate(positions) if positions else np.zeros(0, np.int64)
        unique = _first_of_each_id(out["id_hi"], out["id_lo"], np.arange(len(out["row"])))
        if len(unique) < len(out["row"]):
            out = {name: values[unique] for name, values in out.items()}
        return out

    def columns(self, snapshot, where: EventFilter | None = None) -> ResultColumns:
        """The snapshot's results as `ResultColumns` (one row per attempt, each event once)."""
        import numpy as np

        sel = self.select(snapshot, where, ("test", "ts", "status", "attempt", "flags", "duration", "ctx", "sig"))
        duration = np.where(sel["flags"] & HAS_DURATION, sel["duration"], np.nan)
        attempt = np.where(sel["flags"] & HAS_ATTEMPT, sel["attempt"], 0).astype(np.int16)
        tests, test = _renumber(sel["test"], self._names("tests", "test_no", "test_id"))
        signatures, sig = _renumber(sel["sig"], self._names("signatures", "sig_no", "text"))
        ctx_rows = self.db.execute("SELECT ctx_no, run_no, code_no FROM contexts").fetchall()
        size = max([c for c, _, _ in ctx_rows], default=-1) + 2
        ctx_run, ctx_code = np.full(size, -1, np.int32), np.full(size, -1, np.int32)
        for c, run, code in ctx_rows:
            ctx_run[c], ctx_code[c] = run, code
        runs, run = _renumber(ctx_run[sel["ctx"]], self._names("runs", "run_no", "run_id"))
        commits, commit = _renumber(ctx_code[sel["ctx"]], self._names("codes", "code_no", "sha"))
        return ResultColumns(test=test, tests=tests, ts_us=sel["ts"], status=sel["status"].astype(np.int8),
                             attempt=attempt, duration_ms=duration, run=run, runs=runs, commit=commit,
                             commits=commits, signature=sig, signatures=signatures)

    def events(self, snapshot, where: EventFilter | None = None, limit: int | None = None) -> tuple[list[dict], int]:
        """The snapshot's test_result events that `where` matches, newest first, at most `limit`, given back
        exactly as stored; and how many match in all. A question about some tests reads only their rows
        (`rows_of_tests`, no numpy); others read whole columns."""
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
                tests = array(COLUMNS["test"], self.db.execute("SELECT test FROM segments WHERE seg_no = ?",
                                                               (seg,)).fetchone()[0])
                runs = _runs_of([i for i, t in enumerate(tests) if t in numbers])
            for start, count in runs:
                for name, code in COLUMNS.items():
                    with self.db.blobopen("segments", name, seg, readonly=True) as blob:
                        size = array(code).itemsize
                        blob.seek(start * size)
                        out[name].extend(array(code, blob.read(count * size)))
        return _kept(out, self._batch_paths_held(), snapshot, where)

    def _batch_paths_held(self) -> dict[int, str]:
        return dict(self.db.execute("SELECT batch_no, path FROM batches"))

    def _names(self, table: str, key: str, value: str) -> dict[int, str]:
        return dict(self.db.execute(f"SELECT {key}, {value} FROM {table}"))


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
    codes = {STATUS_CODE[s] for s in where.statuses if s in STATUS_CODE}
    seen, keep = set(), []
    for i, (batch, status, ts) in enumerate(zip(rows["batch"], rows["status"], rows["ts"])):
        if batch not in in_snapshot or (codes and status not in codes):
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


def _renumber(codes, names: dict[int, str]):
    """Codes of the view's tables -> (list of the names used, codes into that list); -1 stays -1."""
    import numpy as np

    used = np.unique(codes[codes >= 0])
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
            found = self.by_text[text] = self.get(int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(),
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

    def add(self, batch, events: list[dict]) -> None:
        batch_no = self.db.execute("INSERT INTO batches (path, project) VALUES (?, ?)",
                                   (batch.path, batch.project)).lastrowid
        cols = self.cols
        test_col, ts_col, batch_col, seq_col = cols["test"], cols["ts"], cols["batch"], cols["seq"]
        status_col, attempt_col, flags_col, duration_col = cols["status"], cols["attempt"], cols["flags"], cols["duration"]
        sig_col, shape_col, ctx_col, hi_col, lo_col = cols["sig"], cols["shape"], cols["ctx"], cols["id_hi"], cols["id_lo"]
        for seq, event in enumerate(events):
            data = event.get("data")
            if event.get("type") != "test_result" or type(data) is not dict:
                continue
            test_id, status = data.get("test_id"), data.get("status")
            if type(test_id) is not str or not test_id or status not in STATUS_CODE:
                continue
            shape_data = {k: v for k, v in data.items() if k not in _ROW_KEYS}
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
            when = self.times.get(ts)
            if when is None:
                us = ts_us(ts)
                when = self.times[ts] = (us, format_us(us) == ts)
            shape = {"data": shape_data, "importance": event["importance"], "project": event["project"],
                     "source": event["source"], "tags": event["tags"], "type": "test_result"}
            if not when[1]:  # not the canonical text (written by hand): keep it as it is
                shape["ts"] = ts
            test_col.append(self.tests.get(test_id))
            ts_col.append(when[0])
            batch_col.append(batch_no)
            seq_col.append(seq)
            status_col.append(STATUS_CODE[status])
            attempt_col.append(attempt)
            flags_col.append(flags)
            duration_col.append(duration)
            sig = error_signature(data) if status in _FAILING else None
            sig_col.append(self.signatures.get(sig) if sig else -1)
            shape_col.append(self.shapes.number(canonical_json(shape)))
            ctx_col.append(self._context(data))
            eid = event["id"]
            hi_col.append(int(eid[4:20], 16))
            lo_col.append(int(eid[20:28], 16))
        if len(test_col) >= FLUSH_ROWS:
            self.flush()

    def _context(self, data: dict) -> int:
        """The run's values (run id, commit, branch, report) numbered once per distinct combination."""
        key = tuple(data.get(k, _ABSENT) for k in RUN_KEYS)
        try:
            found = self.contexts.get(key)
        except TypeError:  # a value that is a list or an object: keyed by its JSON instead
            key = canonical_json({k: data[k] for k in RUN_KEYS if k in data})
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
                code_no = self.codes.get(code) if isinstance(code, str) and code else -1
                found = self.db.execute("INSERT INTO contexts (json, run_no, code_no) VALUES (?, ?, ?)",
                                        (text, run_no, code_no)).lastrowid
            self.contexts[key] = found
        return found

    def flush(self) -> None:
        rows = len(self.cols["test"])
        if not rows:
            return
        self.db.execute(f"INSERT INTO segments (rows, sorted, {', '.join(COLUMNS)}) VALUES (?, 0{', ?' * len(COLUMNS)})",
                        (rows, *(self.cols[name].tobytes() for name in COLUMNS)))
        self.cols = {name: array(code) for name, code in COLUMNS.items()}


_ABSENT = object()


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
