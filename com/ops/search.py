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


@dataclass
class SearchResult(Result):
    results: list


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
    """Is this how LanceDB reports damaged index files (a truncated .lance file, a missing fragment)?"""
    text = str(exc).lower()
    return isinstance(exc, OSError) or (isinstance(exc, (RuntimeError, ValueError)) and ("lance" in text
                                                                                       or "arrow" in text))


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
           mode: str = "hybrid", exclude=(), progress=None) -> SearchResult:
    """The k events of the snapshot `at` that best match `query`, best first:
    [{"event", "score", "similarity", "vector_rank", "keyword_rank"}]."""
    from com.views.index.query import ranked_events

    if k < 1:
        raise ComError(f"must be at least 1, got {k}", param="k")
    if mode not in MODES:
        raise ComError(f"unknown mode '{mode}' (expected {', '.join(MODES)})", param="mode")
    if not query or not query.strip():
        raise ComError("the search text is empty", param="query")
    where = where or EventFilter()
    snapshot = memory.snapshot(at)
    if not snapshot:
        return SearchResult([])
    text = normalise(query)

    def run(index):
        index.ensure(memory.journal, snapshot.commit)
        vector = memory.embedder().embed([text])[0] if mode != "keyword" else None
        with index.reading():
            rows = index.batch_filter(snapshot)
            return ranked_events(index, text, vector, mode, rows, where.to_sql(), k, exclude,
                                 accept=None if where.empty else where.matches)

    return SearchResult(with_index(memory, progress, run))


def similar(memory: Memory, event: dict, k: int = 10, **options) -> SearchResult:
    """Events most like `event` (a failure, say), the event itself left out."""
    return search(memory, event_text(event), k, exclude=(event["id"],), **options)
