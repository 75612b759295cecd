"""The semantic index: distinct texts and their vectors in LanceDB (`schema`), which event carries which text
in a local SQLite row store (`rows`), kept up to date through the view protocol by the commands that read
them (`update`), filtered to a snapshot exactly (`snapshot`), queried by meaning and keywords (`query`) and
maintained (`maintain`).

The texts live at `.com/index/`, or `index_uri` / `COM_INDEX_URI`, which may be s3:// or gs://; the row
store, the lock and the generation file stay in the local `.com/cache/`. Readers hold the lock shared, an
update holds it exclusively.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

from com.files.locks import flock
from com.model.errors import ComError
from com.views.base import follow
from com.views.index import maintain as _maintain
from com.views.index import schema
from com.views.index.rows import RowStore
from com.views.index.snapshot import BatchFilter, snapshot_expr
from com.views.index.update import UpdateStats, roll_back_interrupted, taking


def index_uri(settings, memory_root: Path) -> str:
    """Where the index lives: the `index_uri` setting (a folder or an object-store URI), else .com/index."""
    uri = settings.get("index_uri")
    if not uri:
        return str(memory_root / "index")
    uri = str(uri)
    if "://" in uri:
        return uri
    return str(Path(uri).expanduser().resolve())


class Index:
    """One index of one memory. Cheap to keep for many queries in one process."""

    name = "search index"

    def __init__(self, uri: str, cache_path: Path, embedder, progress=None):
        self.embedder = embedder
        self.uri = uri
        self.progress = progress
        self._db = None
        cache_path.mkdir(parents=True, exist_ok=True)
        self.rows = RowStore(cache_path)
        self._lock_path = cache_path / "index.lock"
        self._gen_path = cache_path / "index.generation"
        self._gen = None
        self._tables: dict = {}
        self.registry: dict[str, int] | None = None  # batch path -> batch number (None: not read yet)
        self.batch_filters: dict[str, BatchFilter] = {}
        self._ann: bool | None = None
        self._usable: bool | None = None
        self._prefilters: dict = {}
        self._texts_checked = False
        self._text_count: int | None = None
        self.vectors = None  # (text numbers, matrix, position) of every indexed text, for exact ranking
        self._stats: UpdateStats | None = None
        # Keyword search sets this: new texts are indexed without running the model (zero vectors, their
        # numbers kept in the row store's `pending`) until a ranking by meaning embeds them.
        self.defer_embedding = False
        self._pending: set[int] | None = None

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
        if self.registry is None or self._generation() != self._gen:
            return True
        # Deleting .com/index by hand bumps no generation; a stat notices it (local indexes only).
        return "://" not in self.uri and bool(self._tables) and not os.path.isdir(os.path.join(self.uri, "texts.lance"))

    def _forget(self) -> None:
        self._tables = {}
        self.registry = self._text_count = self._ann = self._usable = self._pending = None
        self._prefilters = {}
        self._texts_checked = False
        self.batch_filters = {}
        self.vectors = None

    def _refresh(self) -> None:
        """Forget what this process knew if another process changed the index since."""
        if self._stale():
            gen = self._generation()
            self._forget()
            self.registry = self.rows.registry()
            self._gen = gen

    @property
    def db(self):
        """The LanceDB connection, opened (and lancedb imported) on first use: a query of fewer than
        ANN_MIN_TEXTS texts reads only the local row store and never needs it."""
        if self._db is None:
            from com.views.index.lance import lancedb as import_lancedb

            try:
                lancedb = import_lancedb()
            except ImportError:
                raise ComError("semantic search needs lancedb, which is not installed (install com with the [search] "
                               "extra)") from None
            try:
                self._db = lancedb.connect(self.uri)
            except Exception as exc:
                raise ComError(f"cannot open the index at {self.uri}: {exc}") from None
        return self._db

    def usable(self) -> bool:
        """Can queries run on what is there, as far as the row store says (model, format and text version as
        expected, its vectors whole, the LanceDB folder present)? Checked once per generation; anything
        deeper (the LanceDB meta and its index id) is checked by every update, under the exclusive lock."""
        if self._usable is None:
            meta = self.rows.meta()
            expected = schema.expected_meta(self.embedder.model_name, self.embedder.dim)
            self._usable = (bool(meta.get("index_id")) and all(meta.get(k) == v for k, v in expected.items())
                            and not self.rows.vectors_damaged(self.embedder.dim)
                            and ("://" in self.uri or os.path.isdir(os.path.join(self.uri, "texts.lance"))))
        return self._usable

    def table(self, name: str):
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
            self._forget()
            raise

    @contextmanager
    def reading(self):
        """Hold the index still (shared lock) and fresh for a query."""
        with self._flock(exclusive=False):
            self._refresh()
            yield self

    def report(self, stage: str, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress(stage, done, total)

    # -- meta and (re)creation -----------------------------------------------------------------------
    def meta(self) -> dict:
        table = self.table("meta")
        if table is None:
            return {}
        return {row["key"]: row["value"] for row in table.to_arrow().to_pylist()}

    def rebuild_reason(self) -> str | None:
        meta = self.meta()
        reason = schema.rebuild_reason(meta, [n for n in schema.TABLES if self.table(n) is None],
                                       schema.expected_meta(self.embedder.model_name, self.embedder.dim))
        if reason is None and self.rows.index_id() != meta.get("index_id"):
            reason = "the local search rows belong to another index"
        if reason is None and (self.table("texts").count_rows() < self.rows.text_count()
                               or self.rows.vectors_damaged(self.embedder.dim)):
            reason = "the index lost texts"
        return reason

    def write_meta(self, extra: dict | None = None) -> None:
        import pyarrow as pa

        meta = {**self.meta(), **schema.expected_meta(self.embedder.model_name, self.embedder.dim), **(extra or {})}
        rows = pa.table({"key": list(meta), "value": [str(v) for v in meta.values()]},
                        schema=schema.schemas(self.embedder.dim)["meta"])
        mode = "create" if self.table("meta") is None else "overwrite"
        self._tables["meta"] = self.db.create_table("meta", rows, mode=mode)

    def _drop_tables(self) -> None:
        for name in (*schema.TABLES, *schema.OLD_TABLES):
            try:
                self.db.drop_table(name)
            except Exception:  # absent: nothing to drop
                pass
        self._tables = {}

    def _create(self) -> None:
        """Drop and recreate every table and the row store (caller holds the exclusive lock)."""
        self._drop_tables()
        self._forget()
        self._tables["texts"] = self.db.create_table("texts", schema=schema.schemas(self.embedder.dim)["texts"])
        index_id = uuid.uuid4().hex
        self.write_meta({"index_id": index_id})
        self.rows.start(index_id, schema.expected_meta(self.embedder.model_name, self.embedder.dim))
        self.registry = {}

    # -- the view protocol (taking happens inside ensure, which holds the exclusive lock) ---------------
    def seen(self, sha: str) -> bool:
        return self.rows.seen(sha)

    def has_batch(self, path: str) -> bool:
        return self.rows.has_batch(path)

    def taking(self, shas: list[str]):
        self._forget()
        return taking(self, shas, self._stats)

    def reset(self) -> None:
        """Drop every table and the row store under the exclusive lock (the next reader rebuilds from the
        journal; the embedding cache stays, so nothing is embedded twice)."""
        with self._flock(exclusive=True):
            self._drop_tables()
            if "://" not in self.uri:
                import shutil

                # A damaged table that lancedb cannot drop is removed with its folder (ours: under the index).
                for name in (*schema.TABLES, *schema.OLD_TABLES):
                    shutil.rmtree(os.path.join(self.uri, f"{name}.lance"), ignore_errors=True)
            self.rows.reset()
            self._forget()
            self._bump_generation()

    def health(self) -> str | None:
        """Every table there is opens and counts its rows (a damaged one is named); the row store reads."""
        try:
            if "://" in self.uri:
                names = [n for n in self.db.table_names() if n in schema.TABLES]
            else:
                names = [n for n in (*schema.TABLES, *schema.OLD_TABLES)
                         if os.path.isdir(os.path.join(self.uri, f"{n}.lance"))]
            for name in names:
                self.db.open_table(name).count_rows()
        except Exception as exc:  # any damage lancedb reports
            return f"the search index cannot be read ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})"
        return self.rows.health()

    # -- keeping up with the journal ---------------------------------------------------------------------
    def ensure(self, journal, commit, rebuild: bool = False) -> UpdateStats:
        """Index everything in `commit`'s snapshot that is not indexed yet; rebuild first if asked or needed."""
        started = time.monotonic()
        stats = UpdateStats(commit=str(commit.id) if commit is not None else None)
        if not rebuild and commit is not None:
            with self._flock(exclusive=False):  # the common case: a few SQLite lookups, LanceDB not opened
                self._refresh()
                if (self.usable() and self.rows.seen(str(commit.id))
                        and (self.defer_embedding or not self.pending)):
                    return stats
        with self._flock(exclusive=True), self._forget_on_error():
            self._refresh()
            if rebuild:
                reason = "asked for"
            elif self.usable():
                reason = None  # LanceDB is checked when texts are written to it (see texts_written)
            else:
                reason = self.rebuild_reason() or "the local search rows are incomplete"
            if reason is not None:
                self._create()
                stats.rebuilt, stats.reason = True, reason
            embedded_before = self.embedder.embedded
            if commit is not None and not self.rows.seen(str(commit.id)):
                self._stats = stats
                try:
                    follow(journal, commit, [self], progress=self.report)
                finally:
                    self._stats = None
            filled = self._embed_pending() if not self.defer_embedding and self.pending else 0
            stats.embedded = self.embedder.embedded - embedded_before
            if stats.rebuilt or stats.texts or filled:
                # Texts were added: the LanceDB table may be due for its vector index or a compaction. (An
                # update that adds rows only never opens LanceDB: 0.6 s of import saved.)
                stats.maintenance = _maintain.maintain(self)
            self._forget()
            self.registry = self.rows.registry()
            if stats.rebuilt or stats.rows or stats.commits or stats.maintenance or filled:
                self._bump_generation()
            self._gen = self._generation()
        stats.seconds = time.monotonic() - started
        return stats

    @property
    def pending(self) -> set[int]:
        """Texts a keyword search indexed without their vectors (zero vectors stand in until a search by
        meaning embeds them)."""
        if self._pending is None:
            self._pending = set(json.loads(self.rows.meta().get("pending") or "[]"))
        return self._pending

    def _embed_pending(self) -> int:
        """Embed the texts a keyword search indexed without vectors (caller holds the exclusive lock): their
        vectors written over the stand-ins in the vectors file and in LanceDB, then `pending` emptied (a crash
        before that embeds them again: the same vectors)."""
        numbers = sorted(self.pending)
        texts = self.texts_table()
        found: dict[int, tuple[str, str]] = {}
        for start in range(0, len(numbers), 5000):
            chunk = numbers[start:start + 5000]
            rows = (texts.search().where(f"text_no IN ({','.join(map(str, chunk))})")
                    .select(["text_no", "text_hash", "text"]).limit(len(chunk)).to_arrow())
            found.update(zip(rows.column("text_no").to_pylist(),
                             zip(rows.column("text_hash").to_pylist(), rows.column("text").to_pylist())))
        new = [(n, *found[n]) for n in numbers if n in found]
        if new:
            from com.views.index.update import texts_table

            vectors = self.embedder.embed([t for _, _, t in new], progress=self.report)
            self.rows.write_vectors([n for n, _, _ in new], vectors, self.embedder.dim)
            texts.merge_insert("text_no").when_matched_update_all().execute(
                texts_table(new, vectors, schema.schemas(self.embedder.dim)["texts"]))
        self.rows.set_meta({"pending": "[]"})
        self._pending, self.vectors = set(), None
        return len(new)

    def texts_table(self):
        """The LanceDB texts table, ready for new texts: it must be this row store's (its index id), and texts
        an interrupted update left there are removed first (their numbers are given again)."""
        if not self._texts_checked:
            meta_id = self.meta().get("index_id")
            if meta_id != self.rows.index_id():
                raise ComError(f"the index at {self.uri} is not the one the local search rows were built for "
                               "(run 'com index --rebuild')")
            roll_back_interrupted(self)
            self._texts_checked = True
        return self.table("texts")

    # -- what queries need ---------------------------------------------------------------------------------
    def row_count(self) -> int:
        return self.rows.row_count()

    def text_count(self) -> int:
        if self._text_count is None:
            self._text_count = self.rows.text_count()
        return self._text_count

    def has_ann(self) -> bool:
        """Is there an IVF_PQ index over the texts (maintain records it in the row store)?"""
        if self._ann is None:
            self._ann = self.rows.meta().get("ann") == "1"
        return self._ann

    def prefilter(self, where):
        """(kinds, tests, texts, texts as a set) a filter can return: the kind and test numbers it accepts
        (None: any) and the texts that have rows of them, as a sorted array (None: every text). Remembered until
        the index changes (a resident process asks the same few filters again and again)."""
        key = (where.types, where.projects, where.statuses, where.test, where.min_importance, where.tags_include,
               where.tags_exclude)
        found = self._prefilters.get(key)
        if found is None:
            kinds, tests = self.rows.kinds_for(where), self.rows.tests_for(where)
            allowed = None
            members = None
            if kinds is not None or tests is not None:
                import numpy as np

                members = self.rows.texts_with(kinds, tests)
                allowed = np.asarray(members, dtype=np.int64)
                members = set(members)
            if len(self._prefilters) > 64:
                self._prefilters.clear()
            found = self._prefilters[key] = (kinds, tests, allowed, members)
        return found

    def batch_filter(self, snapshot) -> BatchFilter:
        """The rows of a journal snapshot: as SQL (None: every row) and as a set of batch numbers. Call inside
        reading()."""
        key = str(snapshot.commit.tree_id)
        if key not in self.batch_filters:
            included = set()
            for path in snapshot.batch_paths():
                number = self.registry.get(path)
                if number is None:
                    raise ComError(f"the index is behind journal commit {snapshot.sha[:10]} (run 'com index')")
                included.add(number)
            if len(self.batch_filters) > 64:
                self.batch_filters.clear()
            expr = snapshot_expr(included, set(self.registry.values()))
            self.batch_filters[key] = BatchFilter(expr, frozenset(included) if expr is not None else None)
        return self.batch_filters[key]
