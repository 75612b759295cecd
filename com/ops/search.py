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


def update(memory: Memory, at: str | None = None, rebuild: bool = False, progress=None) -> IndexResult:
    """Bring the index up to the snapshot `at` (default HEAD); rebuild it from the journal if asked."""
    index = memory.index(progress)
    stats = index.ensure(memory.journal, memory.journal.resolve_or_none(at), rebuild=rebuild)
    return IndexResult(**stats.to_json(), uri=index.uri, model=index.embedder.model_name,
                       total_rows=index.row_count(), total_texts=index.text_count())


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
    index = memory.index(progress)
    index.defer_embedding = mode == "keyword"
    try:
        index.ensure(memory.journal, snapshot.commit)
    finally:
        index.defer_embedding = False
    text = normalise(query)
    vector = memory.embedder().embed([text], progress=progress)[0] if mode != "keyword" else None
    weak = (min_similarity, WEAK_SHARE) if min_similarity else None
    info: dict = {}
    with index.reading():
        rows = index.batch_filter(snapshot)
        found = ranked_events(index, text, vector, mode, rows, where.to_sql(), k, exclude,
                              accept=None if where.empty else where.matches, weak=weak, collapse=collapse,
                              info=info)
    return SearchResult(found, mode, bool(info.get("weak")))


def similar(memory: Memory, event: dict, k: int = 10, **options) -> SearchResult:
    """Events most like `event` (a failure, say), the event itself left out."""
    return search(memory, event_text(event), k, exclude=(event["id"],), **options)
