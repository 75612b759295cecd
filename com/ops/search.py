"""Hybrid search over a snapshot (meaning and keywords, see `com.views.index.query`), and bringing the index up
to date or rebuilding it."""

from __future__ import annotations

from dataclasses import dataclass

from com.memory import Memory
from com.model.errors import ComError
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


def update(memory: Memory, at: str | None = None, rebuild: bool = False, progress=None) -> IndexResult:
    """Bring the index up to the snapshot `at` (default HEAD); rebuild it from the journal if asked."""
    index = memory.index(progress)
    stats = index.ensure(memory.journal, memory.journal.resolve_or_none(at), rebuild=rebuild)
    return IndexResult(**stats.to_json(), uri=index.uri, model=index.embedder.model_name,
                       total_rows=index.row_count(), total_texts=index.text_count())


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
    index = memory.index(progress)
    index.ensure(memory.journal, snapshot.commit)
    text = normalise(query)
    vector = memory.embedder().embed([text])[0] if mode != "keyword" else None
    with index.reading():
        rows = index.batch_filter(snapshot)
        found = ranked_events(index, text, vector, mode, rows, where, k, exclude)
    return SearchResult(found)


def similar(memory: Memory, event: dict, k: int = 10, **options) -> SearchResult:
    """Events most like `event` (a failure, say), the event itself left out."""
    return search(memory, event_text(event), k, exclude=(event["id"],), **options)
