"""Hybrid search over a snapshot (meaning and keywords, see `com.views.index.query`), and bringing the index up
to date or rebuilding it."""

from __future__ import annotations

from dataclasses import dataclass

from com.memory import Memory
from com.model.errors import ComError, Damaged
from com.model.filter import EventFilter
from com.model.text import event_text, normalise
from com.ops.result import Result

MODES = ("hybrid", "vector", "keyword")
WEAK_FLOOR = 0.15  # cosine similarity under which a match by meaning alone is noise (MiniLM: unrelated ~0-0.1)
WEAK_SHARE = 0.6  # ... or under this share of the best match's similarity


@dataclass
class SearchResult(Result):
    results: list
    mode: str = "hybrid"
    weak_left_out: bool = False  # matches by meaning alone, weaker than the threshold, were left out


@dataclass
class IndexResult(Result):
    commit: str | None
    rebuilt: bool
    reason: str | None
    commits: int
    batches: int
    rows: int
    texts: int
    embedded: int
    seconds: float
    maintenance: list
    uri: str
    model: str
    total_rows: int
    total_texts: int


def _lance_fault(exc: BaseException) -> bool:
    """Is this how LanceDB or SQLite reports damaged index files (a truncated .lance file, a missing fragment, a
    corrupt row store)? Not a locked store, a full disk or a file com may not write: rebuilding cures none of
    those, and would throw away an index that is whole."""
    import errno
    import sqlite3

    from com.files import sqlite as sqlite_files

    if isinstance(exc, sqlite3.DatabaseError):
        return sqlite_files.damaged(exc)
    if isinstance(exc, OSError):
        return exc.errno not in (errno.ENOSPC, errno.EACCES, errno.EPERM, errno.EROFS)
    text = str(exc).lower()
    return isinstance(exc, (RuntimeError, ValueError)) and ("lance" in text or "arrow" in text)


def with_index(memory: Memory, progress, use):
    """`use(index)`; if the index's files turn out damaged, rebuild it from the journal (it is derived; embeddings
    are cached) and try once more, saying so; if that fails too, one line saying how to rebuild it by hand."""
    index = memory.index(progress)
    try:
        return use(index)
    except ComError:
        raise
    except Exception as exc:  # noqa: BLE001 - only LanceDB's reports of damage are handled
        if not _lance_fault(exc):
            raise
        first = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
    index.reset()
    memory.notes.append(f"the search index could not be read ({first}); it was rebuilt from the journal")
    try:
        return use(index)
    except ComError:
        raise
    except Exception as exc:  # noqa: BLE001
        if not _lance_fault(exc):
            raise
        raise Damaged(f"the search index at {index.uri} cannot be read ({first}): remove it and run "
                      "'com index --rebuild'") from None


def update(memory: Memory, at: str | None = None, rebuild: bool = False, progress=None) -> IndexResult:
    """Bring the index up to the snapshot `at` (default HEAD); rebuild it from the journal if asked."""
    commit = memory.journal.resolve_or_none(at)

    def run(index):
        stats = index.ensure(memory.journal, commit, rebuild=rebuild)
        return IndexResult(**stats.to_json(), uri=index.uri, model=index.embedder.model_name,
                           total_rows=index.row_count(), total_texts=index.text_count())

    return with_index(memory, progress, run)


def search(memory: Memory, query: str, k: int = 10, where: EventFilter | None = None, at: str | None = None,
           mode: str = "hybrid", exclude=(), progress=None, collapse: bool = False,
           min_similarity: float | None = None) -> SearchResult:
    """The k events of the snapshot `at` that best match `query`, best first:
    [{"event", "score", "similarity", "vector_rank", "keyword_rank", "count"}].

    `score` orders the results: in hybrid mode the reciprocal-rank fusion of the two rankings (only its order
    means something); `similarity` is the cosine similarity of meaning (1: the same text), `vector_rank` and
    `keyword_rank` the places in each ranking. `collapse`: one result per distinct text (its newest event,
    `count` events in all). `min_similarity`: leave out matches by meaning alone that are less similar than
    this, or than 60% of the best match (None: keep all). Keyword mode never loads the embedding model: texts
    new to the index wait for their vectors until a search by meaning."""
    from com.views.index.query import ranked_events

    if k < 1:
        raise ComError(f"must be at least 1, got {k}", param="k")
    if mode not in MODES:
        raise ComError(f"unknown mode '{mode}' (expected {', '.join(MODES)})", param="mode")
    if not query or not query.strip():
        raise ComError("the search text is empty", param="query")
    if min_similarity is not None and not -1.0 <= min_similarity <= 1.0:
        raise ComError(f"a similarity lies between -1 and 1, got {min_similarity}", param="min_similarity")
    where = where or EventFilter()
    snapshot = memory.snapshot(at)
    if not snapshot:
        return SearchResult([], mode)
    text = normalise(query)
    weak = (min_similarity, WEAK_SHARE) if min_similarity else None
    info: dict = {}

    def run(index):
        index.defer_embedding = mode == "keyword"
        try:
            index.ensure(memory.journal, snapshot.commit)
        finally:
            index.defer_embedding = False
        vector = memory.embedder().embed([text], progress=progress)[0] if mode != "keyword" else None
        with index.reading():
            rows = index.batch_filter(snapshot)
            return ranked_events(index, text, vector, mode, rows, where, k, exclude, weak=weak, collapse=collapse,
                                 info=info)

    found = with_index(memory, progress, run)
    return SearchResult(found, mode, bool(info.get("weak")))


def similar(memory: Memory, event: dict, k: int = 10, **options) -> SearchResult:
    """Events most like `event` (a failure, say), the event itself left out."""
    return search(memory, event_text(event), k, exclude=(event["id"],), **options)
