"""The semantic index: LanceDB tables derived from the journal, kept up to date by the commands that read them,
and the filter that makes `--at REV` exact for vector and keyword search alike.

Tables at the index URI (`.com/index/`, or `index_uri` / `COM_INDEX_URI`, which may be s3:// or gs://):
  events   one row per event per batch: id, type, project, test_id, status, ts, importance, tags, the event
           itself (JSON), `text_no` (the text it was embedded as) and `batch_no` (the batch it came from);
  texts    one row per distinct embedded text: number, content hash, the text, its vector. A million results
           carry a few thousand texts: each is embedded once and its events point at it. (An ANN index over a
           vector per event row was measured first: a million rows of a few thousand repeated vectors gave
           unbalanced IVF partitions, p95 37 ms for IVF_PQ, and a 4.5-minute IVF_HNSW_SQ build.)
  batches  batch path (`events/<project>/<day>/<batch-id>.jsonl`) -> batch_no;
  commits  journal commits whose whole snapshot is indexed, with the highest batch_no written by then;
  meta     format, text version, model name and vector size: a different model forces a rebuild.

Time travel. A journal snapshot is exactly the set of batch paths in its tree (batch paths are content-derived
and never rewritten), so a query at REV keeps the rows whose batch is in REV's tree. That holds on any branch,
after merges, and after a rebuild on a fresh clone, because it depends on the journal alone (Lance versions or
a commit->version map would not survive a rebuild or describe a second branch). The filter is written in its
shortest form: none when REV's tree holds every indexed batch (HEAD of the only branch: the common case);
`batch_no NOT IN (...)` for the few batches of later commits or other branches; BETWEEN ranges for long runs
(batches are numbered in history order, so an old revision is one range). It is a prefilter on the event rows
for both the vector and the keyword side, so no later event can come back from either.

Updating. Any reader calls `ensure(commit)`: a commit already in `commits` costs a set lookup; otherwise its
unindexed ancestors are walked (as the catalog does), the batches they added are read, new texts embedded
(through the cache) and rows appended. Writes go batches -> texts -> events -> commits under an exclusive lock
(.com/cache/index.lock); readers hold it shared, and an interrupted update is rolled back by the next one (rows
above the high-water mark are removed), so a reader never sees half an update.
"""

from __future__ import annotations

import json
import os
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from com.errors import ComError
from com.locks import flock

FORMAT = 3
TABLES = ("events", "texts", "batches", "commits", "meta")
ANN_MIN_TEXTS = 100_000  # distinct texts ranked exactly in memory below this (<= 150 MB); IVF_PQ above
ANN_ROWS_PER_PARTITION = 4096
PRESCAN_ROWS = 5000  # a user filter matching fewer rows than this restricts the ranking to their texts
EXPAND_ROWS = 20_000  # most rows read (narrow) to pick the newest events of a group of texts
WHOLE_ROWS = 64  # a group of texts with at most this many rows is read whole in one query (more: narrow, then take)
OPTIMIZE_UNINDEXED = 4000  # rows appended since the indexes were last updated
OPTIMIZE_FRAGMENTS = 24
CHUNK_EVENTS = 50_000
NPROBES = 20
REFINE = 4
RANGE_COST = 50  # measured: one BETWEEN range filters about as fast as an IN list of ~50 numbers


def index_uri(memory) -> str:
    from com import config

    uri = config.get("index_uri")
    if not uri:
        return str(memory.index_path)
    uri = str(uri)
    if "://" in uri:
        return uri
    return str(Path(uri).expanduser().resolve())


@dataclass
class UpdateStats:
    commit: str | None = None
    rebuilt: bool = False
    reason: str | None = None
    commits: int = 0
    batches: int = 0
    rows: int = 0
    texts: int = 0
    embedded: int = 0
    seconds: float = 0.0
    maintenance: list = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "commit": self.commit, "rebuilt": self.rebuilt, "reason": self.reason, "commits": self.commits,
            "batches": self.batches, "rows": self.rows, "texts": self.texts, "embedded": self.embedded,
            "seconds": round(self.seconds, 3), "maintenance": self.maintenance,
        }


def _runs(numbers: list[int]) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for n in numbers:
        if runs and n == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], n)
        else:
            runs.append((n, n))
    return runs


def _set_expr(numbers: list[int], negate: bool) -> tuple[int, str]:
    """(cost, SQL) selecting batch_no in `numbers` (or not in, if negate): long runs as ranges, the rest listed."""
    ranges, singles = [], []
    for lo, hi in _runs(sorted(numbers)):
        if hi - lo + 1 > RANGE_COST:
            ranges.append((lo, hi))
        else:
            singles.extend(range(lo, hi + 1))
    terms = [f"(batch_no BETWEEN {lo} AND {hi})" for lo, hi in ranges]
    if singles:
        terms.append(f"batch_no {'NOT IN' if negate and not ranges else 'IN'} ({','.join(map(str, singles))})")
    expr = " OR ".join(terms) if terms else "FALSE"
    if negate and ranges:
        expr = f"NOT ({expr})"
    return len(ranges) * RANGE_COST + len(singles), expr


def snapshot_expr(included: set[int], universe: set[int]) -> str | None:
    """The shortest prefilter keeping exactly the batch numbers `included` out of `universe`."""
    if len(included) == len(universe):
        return None
    if not included:
        return "FALSE"
    excluded = universe - included
    cost_in, expr_in = _set_expr(sorted(included), negate=False)
    cost_out, expr_out = _set_expr(sorted(excluded), negate=True)
    return expr_out if cost_out < cost_in else expr_in


@dataclass(frozen=True)
class Snapshot:
    sql: str | None  # the prefilter keeping its rows, None for every row
    batches: frozenset | None  # its batch numbers, None for every batch


class Index:
    """One LanceDB index of one memory. Cheap to keep for many queries in one process."""

    def __init__(self, memory, embedder, uri: str | None = None, progress=None):
        # Lance logs deprecation notes at WARN on stderr; a user of com cannot act on them.
        os.environ.setdefault("LANCE_LOG", "error")
        try:
            import lancedb
        except ImportError:
            raise ComError("semantic search needs lancedb, which is not installed (install com with the [search] extra)") from None
        self.memory = memory
        self.embedder = embedder
        self.uri = uri or index_uri(memory)
        self.progress = progress
        try:
            self.db = lancedb.connect(self.uri)
        except Exception as exc:
            raise ComError(f"cannot open the index at {self.uri}: {exc}") from None
        memory.cache_path.mkdir(parents=True, exist_ok=True)
        self._lock_path = memory.cache_path / "index.lock"
        self._gen_path = memory.cache_path / "index.generation"
        self._gen = None
        self._tables: dict = {}
        self._registry: dict[str, int] | None = None
        self._commits: set[str] = set()
        self._hwm = -1
        self._snapshots: dict[str, Snapshot] = {}
        self._ann: bool | None = None
        self._text_no: dict[str, int] = {}  # text hash -> text number, for every indexed text
        self._vectors = None  # (text numbers, matrix, position) of every indexed text, for exact ranking

    # -- locking and freshness ---------------------------------------------------------------------
    def _flock(self, exclusive: bool):
        return flock(self._lock_path, exclusive=exclusive)

    def _generation(self) -> str:
        try:
            return self._gen_path.read_text()
        except OSError:
            return ""

    def _bump_generation(self) -> None:
        tmp = self._gen_path.with_suffix(".tmp")
        tmp.write_text(f"{os.getpid()}-{time.time_ns()}")
        os.replace(tmp, self._gen_path)

    def _stale(self) -> bool:
        """Did another process change the index (or someone delete it) since this process read it?"""
        if self._registry is None or self._generation() != self._gen:
            return True
        # Deleting .com/index by hand bumps no generation; a stat notices it (local indexes only).
        return "://" not in self.uri and bool(self._tables) and not os.path.isdir(os.path.join(self.uri, "events.lance"))

    def _refresh(self) -> None:
        """Forget what this process knew if another process changed the index since."""
        if self._stale():
            gen = self._generation()
            self._tables = {}
            self._registry = None
            self._snapshots = {}
            self._ann = None
            self._load_state()
            self._gen = gen

    def _table(self, name: str):
        if name not in self._tables:
            try:
                self._tables[name] = self.db.open_table(name)
            except Exception:  # not created yet (lancedb raises ValueError or FileNotFoundError by version)
                return None
        return self._tables[name]

    @contextmanager
    def _forget_on_error(self):
        """An update that failed midway leaves this process's picture of the index unreliable: reload it."""
        try:
            yield
        except BaseException:
            self._registry = None
            raise

    @contextmanager
    def reading(self):
        """Hold the index still (shared lock) and fresh for a query."""
        with self._flock(exclusive=False):
            self._refresh()
            yield self

    # -- meta and (re)creation -----------------------------------------------------------------------
    def meta(self) -> dict:
        table = self._table("meta")
        if table is None:
            return {}
        return {row["key"]: row["value"] for row in table.to_arrow().to_pylist()}

    def _expected_meta(self) -> dict:
        return {
            "format": str(FORMAT),
            "text_version": str(_text_version()),
            "model": self.embedder.model_name,
            "dim": str(self.embedder.dim),
        }

    def rebuild_reason(self) -> str | None:
        meta = self.meta()
        if not meta:
            return "no index yet"
        missing = [name for name in TABLES if self._table(name) is None]
        if missing:
            return f"the index is incomplete (no {missing[0]} table)"
        expected = self._expected_meta()
        if meta.get("model") != expected["model"]:
            return f"the embedding model changed from '{meta.get('model')}' to '{expected['model']}'"
        for key in ("dim", "format", "text_version"):
            if meta.get(key) != expected[key]:
                return f"the index {key} changed from {meta.get(key)} to {expected[key]}"
        return None

    def _schemas(self):
        import pyarrow as pa

        dim = self.embedder.dim
        events = pa.schema([
            ("id", pa.string()), ("type", pa.string()), ("project", pa.string()), ("test_id", pa.string()),
            ("status", pa.string()), ("ts", pa.string()), ("ts_us", pa.int64()), ("importance", pa.float32()),
            ("tags", pa.list_(pa.string())), ("text_no", pa.int32()), ("batch_no", pa.int32()),
            ("event", pa.string()),
        ])
        texts = pa.schema([("text_no", pa.int32()), ("text_hash", pa.string()), ("text", pa.string()),
                           ("vector", pa.list_(pa.float32(), dim))])
        batches = pa.schema([("batch_no", pa.int32()), ("path", pa.string())])
        commits = pa.schema([("sha", pa.string()), ("hwm", pa.int32())])
        meta = pa.schema([("key", pa.string()), ("value", pa.string())])
        return {"events": events, "texts": texts, "batches": batches, "commits": commits, "meta": meta}

    def _write_meta(self, extra: dict | None = None) -> None:
        import pyarrow as pa

        meta = {**self.meta(), **self._expected_meta(), **(extra or {})}
        rows = pa.table({"key": list(meta), "value": [str(v) for v in meta.values()]}, schema=self._schemas()["meta"])
        if self._table("meta") is None:
            self._tables["meta"] = self.db.create_table("meta", rows)
        else:
            self._tables["meta"] = self.db.create_table("meta", rows, mode="overwrite")

    def _create(self) -> None:
        """Drop and recreate every table (caller holds the exclusive lock)."""
        for name in TABLES:
            try:
                self.db.drop_table(name)
            except Exception:  # absent: nothing to drop
                pass
        self._tables = {}
        schemas = self._schemas()
        for name in ("events", "texts", "batches", "commits"):
            self._tables[name] = self.db.create_table(name, schema=schemas[name])
        self._write_meta()
        self._registry, self._commits, self._hwm = {}, set(), -1
        self._text_no = {}
        self._snapshots = {}
        self._vectors = None

    def _load_state(self) -> None:
        batches, commits, texts = self._table("batches"), self._table("commits"), self._table("texts")
        self._registry, self._commits, self._hwm = {}, set(), -1
        self._text_no = {}
        self._vectors = None
        if self.rebuild_reason() is not None:
            return  # another format or model: the caller rebuilds, nothing here is worth reading
        if texts is not None:
            arrow = texts.to_arrow().select(["text_hash", "text_no"])
            self._text_no = dict(zip(arrow.column(0).to_pylist(), arrow.column(1).to_pylist()))
        if batches is not None:
            arrow = batches.to_arrow()
            self._registry = dict(zip(arrow.column("path").to_pylist(), arrow.column("batch_no").to_pylist()))
        if commits is not None:
            arrow = commits.to_arrow()
            self._commits = set(arrow.column("sha").to_pylist())
            if arrow.num_rows:
                self._hwm = max(arrow.column("hwm").to_pylist())

    # -- keeping up with the journal ---------------------------------------------------------------------
    def ensure(self, journal, commit, rebuild: bool = False) -> UpdateStats:
        """Index everything in `commit`'s snapshot that is not indexed yet; rebuild first if asked or needed."""
        started = time.monotonic()
        stats = UpdateStats(commit=str(commit.id) if commit is not None else None)
        if not rebuild and commit is not None and str(commit.id) in self._commits and not self._stale():
            return stats  # the common case: one set lookup, no lock
        with self._flock(exclusive=True), self._forget_on_error():
            self._refresh()
            reason = "asked for (--rebuild)" if rebuild else self.rebuild_reason()
            if reason is not None:
                self._create()
                stats.rebuilt, stats.reason = True, reason
            if commit is not None and str(commit.id) not in self._commits:
                self._roll_back_interrupted()
                embedded_before = self.embedder.embedded
                self._index_commits(journal, commit, stats)
                stats.embedded = self.embedder.embedded - embedded_before
            stats.maintenance = self._maintain()
            self._ann, self._vectors = None, None
            if stats.rebuilt or stats.rows or stats.commits or stats.maintenance:
                self._bump_generation()
                self._gen = self._generation()
        stats.seconds = time.monotonic() - started
        return stats

    def _roll_back_interrupted(self) -> None:
        """An update killed midway left batches (and maybe rows) above the high-water mark: remove them."""
        if not self._registry or max(self._registry.values()) <= self._hwm:
            return
        self._table("events").delete(f"batch_no > {self._hwm}")
        self._table("batches").delete(f"batch_no > {self._hwm}")
        self._registry = {p: n for p, n in self._registry.items() if n <= self._hwm}

    def _pending_commits(self, journal, commit) -> list:
        from com.journal import unseen_ancestors

        pending = unseen_ancestors(commit, self._commits.__contains__)
        # Oldest first, so batch numbers follow history and an old snapshot is one range of numbers.
        pending.sort(key=lambda c: (c.commit_time, str(c.id)))
        return pending

    def _index_commits(self, journal, commit, stats: UpdateStats) -> None:
        import pyarrow as pa

        pending = self._pending_commits(journal, commit)
        new: dict[str, object] = {}
        for c in pending:
            for path, oid in sorted(journal.added_blobs(c)):
                if path not in self._registry and path not in new:
                    new[path] = oid
        next_no = max(self._registry.values(), default=-1) + 1
        numbered = [(next_no + i, path, oid) for i, (path, oid) in enumerate(new.items())]
        hwm = numbered[-1][0] if numbered else self._hwm
        if numbered:
            # Order matters for readers and for a crash: batches, then rows, then the commits that are complete.
            self._table("batches").add(pa.table(
                {"batch_no": pa.array([n for n, _, _ in numbered], pa.int32()), "path": [p for _, p, _ in numbered]},
                schema=self._schemas()["batches"],
            ))
            self._registry.update({p: n for n, p, _ in numbered})
            # One Lance append per chunk, from this thread (embedding may raise a clean ComError); a crash
            # between chunks is rolled back by the next update (rows above the high-water mark). A text is
            # written before the rows pointing at it; a text left by a crash is harmless and kept.
            for events_table, texts_table in self._event_batches(journal, numbered, stats):
                if texts_table is not None:
                    self._table("texts").add(texts_table)
                self._table("events").add(events_table)
        self._table("commits").add(pa.table(
            {"sha": [str(c.id) for c in pending], "hwm": pa.array([hwm] * len(pending), pa.int32())},
            schema=self._schemas()["commits"],
        ))
        self._commits.update(str(c.id) for c in pending)
        self._hwm = hwm
        self._snapshots = {}
        stats.commits += len(pending)
        stats.batches += len(numbered)

    def _event_batches(self, journal, numbered, stats: UpdateStats):
        """(events, texts) Arrow tables about CHUNK_EVENTS rows at a time; each new text embedded once."""
        rows: list[tuple] = []
        done = 0
        for batch_no, _, oid in numbered:
            for line in journal.repo[oid].data.splitlines():
                if line.strip():
                    rows.append((batch_no, line))
            done += 1
            if len(rows) >= CHUNK_EVENTS:
                yield self._arrow_rows(rows, stats)
                rows = []
                self._report("indexing", done, len(numbered))
        if rows:
            yield self._arrow_rows(rows, stats)
        self._report("indexing", done, len(numbered))

    def _arrow_rows(self, rows, stats: UpdateStats):
        import numpy as np
        import pyarrow as pa

        from com.embed import event_text, text_hash

        schemas = self._schemas()
        cols = {name: [] for name in ("id", "type", "project", "test_id", "status", "ts", "ts_us", "importance",
                                      "tags", "text_no", "batch_no", "event")}
        hash_of: dict[str, str] = {}
        new_texts: list[tuple[int, str, str]] = []
        for batch_no, line in rows:
            text_line = line.decode("utf-8")
            event = json.loads(text_line)
            data = event.get("data") or {}
            text = event_text(event)
            digest = hash_of.get(text)
            if digest is None:
                digest = hash_of[text] = text_hash(text)
            is_result = event["type"] == "test_result"
            cols["id"].append(event["id"])
            cols["type"].append(event["type"])
            cols["project"].append(event["project"])
            cols["test_id"].append(str(data.get("test_id") or "") if is_result else "")
            cols["status"].append(str(data.get("status") or "") if is_result else "")
            cols["ts"].append(event["ts"])
            cols["ts_us"].append(_ts_us(event["ts"]))
            cols["importance"].append(float(event.get("importance", 0.0)))
            cols["tags"].append(list(event.get("tags") or []))
            number = self._text_no.get(digest)
            if number is None:
                # A new text: numbered now (rows carry the small int, cheap to filter and to read back).
                number = self._text_no[digest] = len(self._text_no)
                new_texts.append((number, digest, text))
            cols["text_no"].append(number)
            cols["batch_no"].append(batch_no)
            cols["event"].append(text_line)
        stats.rows += len(rows)
        texts_table = None
        if new_texts:
            vectors = self.embedder.embed([t for _, _, t in new_texts], progress=self._report)
            texts_table = pa.table({
                "text_no": pa.array([n for n, _, _ in new_texts], pa.int32()),
                "text_hash": pa.array([h for _, h, _ in new_texts], pa.string()),
                "text": pa.array([t for _, _, t in new_texts], pa.string()),
                "vector": pa.FixedSizeListArray.from_arrays(pa.array(np.ascontiguousarray(vectors).reshape(-1), pa.float32()),
                                                            vectors.shape[1]),
            }, schema=schemas["texts"])
            stats.texts += len(new_texts)
        events_table = pa.table({name: pa.array(values, schemas["events"].field(name).type)
                                 for name, values in cols.items()}, schema=schemas["events"])
        return events_table, texts_table

    def _report(self, stage: str, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress(stage, done, total)

    # -- index maintenance -------------------------------------------------------------------------
    def _maintain(self) -> list[str]:
        """Create the FTS, scalar and ANN indexes when they are due; fold new rows into them now and then."""
        from lancedb.index import FTS, BTree, Bitmap, IvfPq

        done: list[str] = []
        events, texts = self._table("events"), self._table("texts")
        if events is None or texts is None or events.count_rows() == 0:
            return done
        indices = {tuple(i.columns): i for i in events.list_indices()}
        # text_no finds a text's events; the rest serve the user's filters and the snapshot filter.
        for column, config in (("text_no", BTree()), ("batch_no", BTree()), ("test_id", BTree()),
                               ("ts_us", BTree()), ("type", Bitmap()), ("project", Bitmap()), ("status", Bitmap())):
            if (column,) not in indices:
                events.create_index(column, config=config)
                done.append(f"scalar:{column}")
        text_indices = {tuple(i.columns): i for i in texts.list_indices()}
        if ("text",) not in text_indices:
            # BM25 over the distinct texts: stemmed, lower-cased, stop words removed.
            texts.create_index("text", config=FTS(with_position=False))
            done.append("fts")
        count = texts.count_rows()
        ann_rows = int(self.meta().get("ann_rows", "0"))
        if count >= ANN_MIN_TEXTS and (("vector",) not in text_indices or count >= 4 * ann_rows):
            # Past this many distinct texts an exact scan in memory costs too much: IVF_PQ, retrained when
            # the texts have grown 4x since.
            self._report("training the vector index", 0, 1)
            partitions = max(1, count // ANN_ROWS_PER_PARTITION)
            texts.create_index("vector", config=IvfPq(distance_type="cosine", num_partitions=partitions,
                                                       num_sub_vectors=max(1, self.embedder.dim // 8)), replace=True)
            self._write_meta({"ann_rows": count})
            done.append(f"ivf_pq:{partitions}")
        for name, table in (("events", events), ("texts", texts)):
            unindexed = max([(i.num_unindexed_rows or 0) for i in table.list_indices()] or [0])
            if unindexed >= OPTIMIZE_UNINDEXED or _fragments(table) > OPTIMIZE_FRAGMENTS:
                # Compact small appends and fold new rows into every index (no retraining). Old versions can
                # go at once: readers wait on the shared lock while we hold it exclusively.
                self._report(f"optimizing the {name} table", 0, 1)
                _optimize(table)
                done.append(f"optimize:{name}")
        for name in ("batches", "commits"):
            table = self._table(name)
            if table is not None and _fragments(table) > OPTIMIZE_FRAGMENTS:
                _optimize(table)
        return done

    # -- queries ---------------------------------------------------------------------------------------
    def row_count(self) -> int:
        events = self._table("events")
        return events.count_rows() if events is not None else 0

    def text_count(self) -> int:
        return len(self._text_no)

    def has_ann(self) -> bool:
        if self._ann is None:
            texts = self._table("texts")
            self._ann = texts is not None and any(tuple(i.columns) == ("vector",) for i in texts.list_indices())
        return self._ann

    def snapshot(self, journal, commit) -> Snapshot:
        """The rows of `commit`'s snapshot: as SQL (None: every row) and as a set of batch numbers. Call inside
        reading()."""
        key = str(commit.tree_id)
        if key not in self._snapshots:
            included = set()
            for path, _, _ in journal.batches(commit.tree):
                number = self._registry.get(path)
                if number is None:
                    raise ComError(f"the index is behind journal commit {str(commit.id)[:10]} (run 'com index')")
                included.add(number)
            if len(self._snapshots) > 64:
                self._snapshots.clear()
            expr = snapshot_expr(included, set(self._registry.values()))
            self._snapshots[key] = Snapshot(expr, frozenset(included) if expr is not None else None)
        return self._snapshots[key]

    def rank_texts(self, vector, limit: int | None = None) -> "TextRanking":
        """Indexed texts by cosine similarity to `vector`: all of them, exactly, in memory below ANN_MIN_TEXTS
        texts; else the `limit` best from the IVF_PQ index over the texts."""
        import numpy as np

        if self.has_ann():
            table = self._table("texts")
            rows = (table.search(vector, vector_column_name="vector").distance_type("cosine")
                    .minimum_nprobes(NPROBES).refine_factor(REFINE).limit(limit or 1000)
                    .select(["text_no", "_distance"]).to_arrow())
            numbers = rows.column("text_no").to_pylist()
            sims = 1.0 - np.asarray(rows.column("_distance").to_numpy(), dtype=np.float32)
            return TextRanking(numbers, sims, None, complete=len(numbers) >= self.text_count())
        if self._vectors is None:
            arrow = self._table("texts").to_arrow()
            flat = arrow.column("vector").combine_chunks().flatten().to_numpy(zero_copy_only=False)
            matrix = np.asarray(flat, dtype=np.float32).reshape(arrow.num_rows, -1) if arrow.num_rows else \
                np.zeros((0, self.embedder.dim), np.float32)
            numbers = arrow.column("text_no").to_pylist()
            self._vectors = (numbers, matrix, {n: i for i, n in enumerate(numbers)})
        numbers, matrix, position = self._vectors
        # einsum, not BLAS: a matrix-vector product through a multi-threaded BLAS costs 8 ms of thread wake-up
        # on this 2-core machine for a 0.3 ms job.
        sims = np.einsum("ij,j->i", matrix, np.asarray(vector, dtype=np.float32))
        return TextRanking(numbers, sims, position, complete=True)

    def keyword_texts_async(self, text: str, limit: int):
        """Start the BM25 ranking of the indexed texts for `text` in LanceDB's event loop: a future of text
        numbers, best first (the caller ranks the vectors meanwhile; both release the GIL)."""
        texts = self._table("texts")
        if texts is None or not any(ch.isalnum() for ch in text):
            return _Done([])
        query = texts._table.query().nearest_to_text(text, columns="text").limit(limit).select(["text_no", "_score"])
        return _submit(_column(query, "text_no"))

    def texts_matching_async(self, where: str, cap: int = PRESCAN_ROWS):
        """A future of the texts of the rows matching a narrow filter, or of None when more than `cap` rows match."""
        return _submit(_texts_matching(self._table("events")._table, where, cap))

    def events_of_texts(self, numbers: list[int], where: str | None, need: int, skip: set[str],
                        snapshot: Snapshot | None = None) -> list[dict]:
        """Up to `need` events whose text is in `numbers`, that match `where` and lie in `snapshot` (default:
        every batch), in the order of `numbers`, newest first within a text: [{"text_no", "event" (decoded)}];
        events whose id is in `skip` are left out (and not counted)."""
        events = self._table("events")._table
        snapshot = snapshot or Snapshot(None, None)
        cond = f"text_no IN ({','.join(map(str, numbers))})" + (f" AND ({where})" if where else "")
        position = {n: i for i, n in enumerate(numbers)}
        # The best texts are mostly failures seen a few times: one query reads all their rows whole, and the
        # snapshot is applied here to so few rows (a batch_no range in the query costs 3 ms more at 1M rows:
        # Lance intersects it through the batch_no index). Only when the texts hold many rows (a test's
        # `passed` text: one per run) is it narrow first, two int columns (strings cost 5x to read back) with
        # the snapshot as a prefilter, then only the events shown are read whole.
        whole = _run(events.query().where(cond).select(["text_no", "ts_us", "batch_no", "event"])
                     .limit(WHOLE_ROWS + 1).to_arrow())
        if whole.num_rows <= WHOLE_ROWS:
            batches = snapshot.batches
            keyed = sorted(((t, ts, e) for t, ts, b, e in zip(
                whole.column("text_no").to_pylist(), whole.column("ts_us").to_pylist(),
                whole.column("batch_no").to_pylist(), whole.column("event").to_pylist()) if batches is None or b in batches),
                key=lambda r: (position[r[0]], -r[1]))
            return _pick(((r[0], r[2]) for r in keyed), need, skip)
        if snapshot.sql:
            cond = f"{cond} AND ({snapshot.sql})"
        narrow = _run(events.query().where(cond).select(["text_no", "ts_us"]).with_row_id().limit(EXPAND_ROWS).to_arrow())
        keyed = sorted(zip(narrow.column("text_no").to_pylist(), narrow.column("ts_us").to_pylist(),
                           narrow.column("_rowid").to_pylist()), key=lambda r: (position[r[0]], -r[1]))
        out: list[dict] = []
        skip = set(skip)
        start = 0
        while len(out) < need and start < len(keyed):
            picked = keyed[start:start + need - len(out)]
            start += len(picked)
            rows = _run(events.take_row_ids([r[2] for r in picked]).select(["event"]).with_row_id().to_arrow())
            by_rowid = dict(zip(rows.column("_rowid").to_pylist(), rows.column("event").to_pylist()))
            found = _pick(((r[0], by_rowid.get(r[2])) for r in picked), need - len(out), skip)
            skip.update(row["event"]["id"] for row in found)
            out.extend(found)
        return out


async def _texts_matching(events, where: str, cap: int):
    # Counting uses the scalar indexes alone: a broad filter (--status failed over a million rows) costs 0.5 ms
    # to rule out instead of reading `cap` rows for nothing.
    if await events.count_rows(where) > cap:
        return None
    return set(await _column(events.query().where(where).select(["text_no"]), "text_no"))


def _pick(rows, need: int, skip: set[str]) -> list[dict]:
    """The first `need` (text number, event JSON) rows as results, leaving out events already taken."""
    out: list[dict] = []
    seen = set(skip)
    for text_no, line in rows:
        if line is None:
            continue
        event = json.loads(line)
        if event["id"] in seen:
            continue  # the same event in a second batch of this snapshot (both sides of a merge wrote it)
        seen.add(event["id"])
        out.append({"text_no": text_no, "event": event})
        if len(out) >= need:
            break
    return out


# Reads go through LanceDB's async API in its own event loop, one hop per query: the sync API hops once per
# record batch (a batch per fragment), which cost 1.3 ms of a 4 ms query (measured at 1M rows). The async table
# is the one behind the sync handle (`_table`), so it sees this process's own writes at once.
def _submit(coro):
    import asyncio

    from lancedb.background_loop import LOOP

    return asyncio.run_coroutine_threadsafe(coro, LOOP.loop)


def _run(coro):
    return _submit(coro).result()


async def _column(query, name: str) -> list:
    return (await query.to_arrow()).column(name).to_pylist()


class _Done:
    def __init__(self, value):
        self.value = value

    def result(self):
        return self.value


class TextRanking:
    """Texts ordered by similarity, sorted lazily: a search that reads the best few texts sorts only those."""

    FIRST = 256

    def __init__(self, keys: list[int], sims, position: dict | None, complete: bool):
        self.keys, self.sims, self.position, self.complete = keys, sims, position, complete
        self._order = None
        self._sorted = None

    def __len__(self) -> int:
        return len(self.keys)

    def __iter__(self):
        import numpy as np

        n = len(self.keys)
        if n == 0:
            return
        negated = -self.sims
        head = min(self.FIRST, n)
        top = np.argpartition(negated, head - 1)[:head] if head < n else np.arange(n)
        top = top[np.argsort(negated[top], kind="stable")]
        for i in top:
            yield self.keys[i]
        if head < n:
            shown = set(top.tolist())
            for i in np.argsort(negated, kind="stable"):
                if i not in shown:
                    yield self.keys[i]

    def similarity(self, key: int) -> float | None:
        i = self._index(key)
        return float(self.sims[i]) if i is not None else None

    def rank(self, key: int) -> int | None:
        import numpy as np

        i = self._index(key)
        if i is None:
            return None
        if self._sorted is None:
            self._sorted = np.sort(self.sims)
        # 1 + how many texts are strictly more similar.
        return int(len(self._sorted) - np.searchsorted(self._sorted, self.sims[i], side="right")) + 1

    def _index(self, key: int):
        if self.position is None:  # an ANN ranking: only its own texts are known
            if self._order is None:
                self._order = {h: i for i, h in enumerate(self.keys)}
            return self._order.get(key)
        return self.position.get(key)


def _optimize(table) -> None:
    import warnings

    with warnings.catch_warnings():
        # lancedb warns that dropping old versions breaks concurrent readers: ours wait on the index lock.
        warnings.simplefilter("ignore", UserWarning)
        table.optimize(cleanup_older_than=timedelta(0))


def _fragments(table) -> int:
    return int(table.stats()["fragment_stats"]["num_fragments"])


def _ts_us(ts: str) -> int:
    text = ts[:-1] + "+00:00" if ts.endswith("Z") else ts
    return int(datetime.fromisoformat(text).timestamp() * 1_000_000)


def _text_version() -> int:
    from com.embed import TEXT_VERSION

    return TEXT_VERSION


def tty_progress(label: str = "com index"):
    """A progress callback writing one updating line to stderr, only on a terminal and only after a second."""
    if not sys.stderr.isatty():
        return None
    started = time.monotonic()

    def report(stage: str, done: int, total: int) -> None:
        if time.monotonic() - started < 1.0:
            return
        sys.stderr.write(f"\r{label}: {stage} {done}/{total}\033[K")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return report
