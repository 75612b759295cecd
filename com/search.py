"""Hybrid search over the journal: vector similarity and BM25 keywords, both prefiltered to one snapshot and
the caller's filters, fused by reciprocal rank.

The query is normalised like an event's text (numbers, ids and paths become placeholders), embedded through the
same cache (a repeated query never loads the model), and sent to LanceDB twice: nearest vectors (cosine) and
full-text BM25 on the embedded text. Filters and the `--at` snapshot are SQL prefilters, so both lists hold
only rows that match, and k results come back whenever k matching events exist. Reciprocal rank fusion
(score = sum of 1/(60 + rank) over the lists an event is in) needs no calibration between cosine and BM25.
"""

from __future__ import annotations

import json

from com.errors import ComError
from com.events import SEED_TYPES, STATUSES, parse_time

RRF_K = 60
MODES = ("hybrid", "vector", "keyword")


def _sql(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def filter_sql(type=None, project=None, test=None, status=None, since=None) -> list[str]:
    """SQL conditions for the user's filters, validated (a bad value is one clear error, not an empty result)."""
    if type in SEED_TYPES:  # the seed's test_failure etc. are test_result with that status
        status = status or SEED_TYPES[type]
        type = "test_result"
    if status is not None and status not in STATUSES:
        raise ComError(f"--status: unknown status '{status}' (expected {', '.join(STATUSES)})")
    conds = []
    if type:
        conds.append(f"type = {_sql(type)}")
    if project:
        conds.append(f"project = {_sql(project)}")
    if test:
        conds.append(f"test_id = {_sql(test)}")
    if status:
        conds.append(f"status = {_sql(status)}")
    if since:
        when = parse_time(since, "--since")
        conds.append(f"ts_us >= {int(when.timestamp() * 1_000_000)}")
    return conds


def fuse(vector_rows: list[dict], keyword_rows: list[dict], k: int, exclude=()) -> list[dict]:
    """Reciprocal rank fusion of the two ranked lists, one entry per event id, best first."""
    found: dict[str, dict] = {}
    for leg, rows in (("vector", vector_rows), ("keyword", keyword_rows)):
        rank = 0
        for row in rows:
            eid = row["id"]
            if eid in exclude:
                continue
            hit = found.get(eid)
            if hit is not None and hit.get(f"{leg}_rank") is not None:
                continue  # the same event in a second batch of this snapshot (both sides of a merge wrote it)
            rank += 1
            if hit is None:
                hit = found[eid] = {"row": row, "score": 0.0, "similarity": None, "vector_rank": None, "keyword_rank": None}
            hit["score"] += 1.0 / (RRF_K + rank)
            hit[f"{leg}_rank"] = rank
            if leg == "vector":
                hit["similarity"] = round(1.0 - float(row["_distance"]), 4)
    # Ties (the same text in many runs) go to the newest event: sort by time first, then stably by score.
    ranked = sorted(found.values(), key=lambda h: h["row"]["ts"], reverse=True)
    ranked.sort(key=lambda h: (-h["score"], -(h["similarity"] if h["similarity"] is not None else -1.0)))
    out = []
    for hit in ranked[:k]:
        out.append({
            "event": json.loads(hit["row"]["event"]),
            "score": round(hit["score"], 6),
            "similarity": hit["similarity"],
            "vector_rank": hit["vector_rank"],
            "keyword_rank": hit["keyword_rank"],
        })
    return out


class Searcher:
    """The index, the embedder and the journal of one memory, kept together for many queries in one process."""

    def __init__(self, memory, progress=None):
        from com.embed import Embedder
        from com.index import Index

        self.memory = memory
        self.journal = memory.journal()
        self.embedder = Embedder.from_config(memory)
        self.index = Index(memory, self.embedder, progress=progress)

    def update(self, at: str | None = None, rebuild: bool = False):
        """Bring the index up to the snapshot `at` (default HEAD); rebuild it from the journal if asked."""
        commit = self.journal.resolve_or_none(at)
        return self.index.ensure(self.journal, commit, rebuild=rebuild)

    def search(self, query: str, k: int = 10, *, type=None, project=None, test=None, status=None, since=None,
               at=None, mode: str = "hybrid", exclude=()) -> list[dict]:
        """The k events of the snapshot `at` that best match `query`: [{"event", "score", ...}], best first."""
        from com.embed import normalise

        if k < 1:
            raise ComError(f"-k must be at least 1, got {k}")
        if mode not in MODES:
            raise ComError(f"--mode: unknown mode '{mode}' (expected {', '.join(MODES)})")
        if not query or not query.strip():
            raise ComError("the search text is empty")
        conds = filter_sql(type=type, project=project, test=test, status=status, since=since)
        commit = self.journal.resolve_or_none(at)
        if commit is None:
            return []
        self.index.ensure(self.journal, commit)
        text = normalise(query)
        vector = self.embedder.embed([text])[0] if mode != "keyword" else None
        limit = 2 * k + 10 + len(exclude)
        with self.index.reading():
            snapshot = self.index.snapshot_filter(self.journal, commit)
            where = " AND ".join(f"({c})" for c in (snapshot, *conds) if c) or None
            vector_rows = self.index.vector_search(vector, where, limit) if vector is not None else []
            keyword_rows = self.index.keyword_search(text, where, limit) if mode != "vector" else []
        return fuse(vector_rows, keyword_rows, k, exclude=set(exclude))

    def similar(self, event: dict, k: int = 10, **filters) -> list[dict]:
        """Events most like `event` (a failure, say), the event itself left out."""
        from com.embed import event_text

        return self.search(event_text(event), k, exclude=(event["id"],), **filters)


_searchers: dict[tuple, Searcher] = {}


def searcher(memory, progress=None) -> Searcher:
    """One Searcher per memory, model and index location per process (the model and tables load once)."""
    from com import config
    from com.index import index_uri

    key = (str(memory.root), str(config.get("embedding_model")), index_uri(memory))
    if key not in _searchers:
        _searchers[key] = Searcher(memory, progress=progress)
    found = _searchers[key]
    found.index.progress = progress
    return found


def search(memory, query: str, k: int = 10, **options) -> list[dict]:
    return searcher(memory).search(query, k, **options)
