"""The semantic index: LanceDB tables derived from the journal (`schema`), kept up to date through the view
protocol by the commands that read them (`update`), filtered to a snapshot exactly (`snapshot`), queried by
meaning and keywords (`query`) and maintained (`maintain`).

The index lives at `.com/index/`, or `index_uri` / `COM_INDEX_URI`, which may be s3:// or gs://; its lock and
generation file stay in the local `.com/cache/`. Readers hold the lock shared, an update holds it exclusively.
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from pathlib import Path

from com.files.locks import flock
from com.model.errors import ComError
from com.views.base import follow
from com.views.index import maintain as _maintain
from com.views.index import schema
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
    """One LanceDB index of one memory. Cheap to keep for many queries in one process."""

    name = "search index"

    def __init__(self, uri: str, cache_path: Path, embedder, progress=None):
        # Lance logs deprecation notes at WARN on stderr; a user of com cannot act on them.
        os.environ.setdefault("LANCE_LOG", "error")
        try:
            import lancedb
        except ImportError:
            raise ComError("semantic search needs lancedb, which is not installed (install com with the [search] extra)") from None
        self.embedder = embedder
        self.uri = uri
        self.progress = progress
        try:
            self.db = lancedb.connect(self.uri)
        except Exception as exc:
            raise ComError(f"cannot open the index at {self.uri}: {exc}") from None
        cache_path.mkdir(parents=True, exist_ok=True)
        self._lock_path = cache_path / "index.lock"
        self._gen_path = cache_path / "index.generation"
        self._gen = None
        self._tables: dict = {}
        self.registry: dict[str, int] | None = None  # batch path -> batch number
        self.commits: set[str] = set()
        self.hwm = -1
        self.batch_filters: dict[str, BatchFilter] = {}
        self._ann: bool | None = None
        self.text_no: dict[str, int] = {}  # text hash -> text number, for every indexed text
        self.vectors = None  # (text numbers, matrix, position) of every indexed text, for exact ranking
        self._stats: UpdateStats | None = None
        # Keyword search sets this: new texts are indexed without running the model (zero vectors, their
        # numbers kept in `pending` and in the meta table) until a ranking by meaning embeds them.
        self.defer_embedding = False
        self.pending: set[int] = set()

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
        return "://" not in self.uri and bool(self._tables) and not os.path.isdir(os.path.join(self.uri, "events.lance"))

    def _refresh(self) -> None:
        """Forget what this process knew if another process changed the index since."""
        if self._stale():
            gen = self._generation()
            self._tables = {}
            self.registry = None
            self.batch_filters = {}
            self._ann = None
            self._load_state()
            self._gen = gen

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
            self.registry = None
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
        return schema.rebuild_reason(self.meta(), [n for n in schema.TABLES if self.table(n) is None],
                                     schema.expected_meta(self.embedder.model_name, self.embedder.dim))

    def write_meta(self, extra: dict | None = None) -> None:
        import pyarrow as pa

        meta = {**self.meta(), **schema.expected_meta(self.embedder.model_name, self.embedder.dim), **(extra or {})}
        rows = pa.table({"key": list(meta), "value": [str(v) for v in meta.values()]},
                        schema=schema.schemas(self.embedder.dim)["meta"])
        mode = "create" if self.table("meta") is None else "overwrite"
        self._tables["meta"] = self.db.create_table("meta", rows, mode=mode)

    def _create(self) -> None:
        """Drop and recreate every table (caller holds the exclusive lock)."""
        for name in schema.TABLES:
            try:
                self.db.drop_table(name)
            except Exception:  # absent: nothing to drop
                pass
        self._tables = {}
        tables = schema.schemas(self.embedder.dim)
        for name in ("events", "texts", "batches", "commits"):
            self._tables[name] = self.db.create_table(name, schema=tables[name])
        self.write_meta()
        self.registry, self.commits, self.hwm = {}, set(), -1
        self.text_no = {}
        self.batch_filters = {}
        self.vectors = None
        self.pending = set()

    def _load_state(self) -> None:
        batches, commits, texts = self.table("batches"), self.table("commits"), self.table("texts")
        self.registry, self.commits, self.hwm = {}, set(), -1
        self.text_no = {}
        self.vectors = None
        self.pending = set()
        if self.rebuild_reason() is not None:
            return  # another format or model: the caller rebuilds, nothing here is worth reading
        import json

        self.pending = set(json.loads(self.meta().get("pending") or "[]"))
        if texts is not None:
            arrow = texts.to_arrow().select(["text_hash", "text_no"])
            self.text_no = dict(zip(arrow.column(0).to_pylist(), arrow.column(1).to_pylist()))
        if batches is not None:
            arrow = batches.to_arrow()
            self.registry = dict(zip(arrow.column("path").to_pylist(), arrow.column("batch_no").to_pylist()))
        if commits is not None:
            arrow = commits.to_arrow()
            self.commits = set(arrow.column("sha").to_pylist())
            if arrow.num_rows:
                self.hwm = max(arrow.column("hwm").to_pylist())

    # -- the view protocol (taking happens inside ensure, which holds the exclusive lock) ---------------
    def seen(self, sha: str) -> bool:
        return sha in self.commits

    def has_batch(self, path: str) -> bool:
        return path in self.registry

    def taking(self, shas: list[str]):
        return taking(self, shas, self._stats)

    def reset(self) -> None:
        """Drop every table under the exclusive lock (the next reader rebuilds from the journal; the embedding
        cache stays, so nothing is embedded twice)."""
        with self._flock(exclusive=True):
            for name in schema.TABLES:
                try:
                    self.db.drop_table(name)
                except Exception:  # absent, or unreadable: gone either way below
                    pass
            if "://" not in self.uri:
                import shutil

                # A damaged table that lancedb cannot drop is removed with its folder (ours: under the index).
                for name in schema.TABLES:
                    shutil.rmtree(os.path.join(self.uri, f"{name}.lance"), ignore_errors=True)
            self._tables, self.registry = {}, None
            self._bump_generation()

    def health(self) -> str | None:
        """Every table there is opens and counts its rows (a damaged one is named)."""
        try:
            if "://" in self.uri:
                names = [n for n in self.db.table_names() if n in schema.TABLES]
            else:
                names = [n for n in schema.TABLES if os.path.isdir(os.path.join(self.uri, f"{n}.lance"))]
            for name in names:
                self.db.open_table(name).count_rows()
        except Exception as exc:  # any damage lancedb reports
            return f"the search index cannot be read ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})"
        return None

    def present(self) -> bool:
        return bool(self.meta())

    # -- keeping up with the journal ---------------------------------------------------------------------
    def ensure(self, journal, commit, rebuild: bool = False) -> UpdateStats:
        """Index everything in `commit`'s snapshot that is not indexed yet; rebuild first if asked or needed."""
        started = time.monotonic()
        stats = UpdateStats(commit=str(commit.id) if commit is not None else None)
        embed_now = not self.defer_embedding
        if (not rebuild and commit is not None and str(commit.id) in self.commits and not self._stale()
                and not (embed_now and self.pending)):
            return stats  # the common case: one set lookup, no lock
        with self._flock(exclusive=True), self._forget_on_error():
            self._refresh()
            reason = "asked for" if rebuild else self.rebuild_reason()
            if reason is not None:
                self._create()
                stats.rebuilt, stats.reason = True, reason
            embedded_before = self.embedder.embedded
            if commit is not None and str(commit.id) not in self.commits:
                roll_back_interrupted(self)
                self._stats = stats
                try:
                    follow(journal, commit, [self], progress=self.report)
                finally:
                    self._stats = None
            filled = self._embed_pending() if embed_now and self.pending else 0
            stats.embedded = self.embedder.embedded - embedded_before
            stats.maintenance = _maintain.maintain(self)
            self._ann, self.vectors = None, None
            if stats.rebuilt or stats.rows or stats.commits or stats.maintenance or filled:
                self._bump_generation()
                self._gen = self._generation()
        stats.seconds = time.monotonic() - started
        return stats

    def _embed_pending(self) -> int:
        """Embed the texts a keyword search indexed without vectors (caller holds the exclusive lock)."""
        import json

        import numpy as np
        import pyarrow as pa

        from com.views.index.query import _run

        texts = self.table("texts")
        numbers = sorted(self.pending)
        parts = []
        for start in range(0, len(numbers), 5000):
            chunk = numbers[start:start + 5000]
            parts.append(_run(texts._table.query().where(f"text_no IN ({','.join(map(str, chunk))})")
                              .select(["text_no", "text_hash", "text"]).to_arrow()))
        rows = pa.concat_tables(parts) if parts else None
        done = 0
        if rows is not None and rows.num_rows:
            vectors = self.embedder.embed(rows.column("text").to_pylist(), progress=self.report)
            fresh = pa.table({
                "text_no": rows.column("text_no"), "text_hash": rows.column("text_hash"), "text": rows.column("text"),
                "vector": pa.FixedSizeListArray.from_arrays(
                    pa.array(np.ascontiguousarray(vectors).reshape(-1), pa.float32()), vectors.shape[1]),
            }, schema=schema.schemas(self.embedder.dim)["texts"])
            texts.merge_insert("text_no").when_matched_update_all().execute(fresh)
            done = rows.num_rows
        self.pending = set()
        self.write_meta({"pending": json.dumps([])})
        self.vectors, self._ann = None, None
        return done

    # -- what queries need ---------------------------------------------------------------------------------
    def row_count(self) -> int:
        events = self.table("events")
        return events.count_rows() if events is not None else 0

    def text_count(self) -> int:
        return len(self.text_no)

    def has_ann(self) -> bool:
        if self._ann is None:
            texts = self.table("texts")
            self._ann = texts is not None and any(tuple(i.columns) == ("vector",) for i in texts.list_indices())
        return self._ann

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
