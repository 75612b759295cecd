"""Hybrid search over the journal: vector similarity and BM25 keywords over the distinct texts, fused by
reciprocal rank, then expanded into the events of one snapshot that match the caller's filters.

Why texts first: a million results carry a few thousand distinct texts, and every event of one text has the
same similarity and the same BM25 score. Ranking the texts (exactly, in memory, below 100,000 of them; IVF_PQ
above) and then fetching their events is both faster and exact, where an ANN index over a million rows of
repeated vectors was slow and unbalanced (measured: see scripts/bench_search.py and the README).

1. The query is normalised like an event's text and embedded through the same cache (a repeated query never
   loads the model).
2. Texts are ranked by cosine similarity and by BM25 (LanceDB native full-text search); reciprocal rank fusion,
   score = sum of 1/(60 + rank) over the two lists, needs no calibration between cosine and BM25.
3. Texts are expanded in fused order into events with one SQL prefilter: the `--at` snapshot (batch numbers)
   AND the user's filters. Texts with no matching event are passed over, so k results come back whenever k
   matching events exist, and nothing outside the snapshot can appear. Within one text, newest events first.
   (The best few texts, when they hold few rows, are read whole in one query and the snapshot applied to those
   rows here: same result, a third of the queries; see Index.events_of_texts.)
"""

from __future__ import annotations

from com.errors import ComError
from com.events import SEED_TYPES, STATUSES, parse_time

RRF_K = 60
MODES = ("hybrid", "vector", "keyword")
KEYWORD_TEXTS = 50  # BM25 hits kept for fusion; more cost time (measured) and change no top result


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


def fuse(ranking, keyword_order: list[str]):
    """Reciprocal rank fusion of the texts' similarity ranking and their keyword (BM25) ranking, lazily: yields
    (text hash, score, vector rank, keyword rank), best first. Only the few keyword hits need scoring; every
    other text follows in similarity order, so a search that needs one text reads one."""
    keyword_rank = {h: r for r, h in enumerate(keyword_order, 1)}
    boosted = []
    for h, kr in keyword_rank.items():
        vr = ranking.rank(h) if ranking is not None else None
        score = 1.0 / (RRF_K + kr) + (1.0 / (RRF_K + vr) if vr is not None else 0.0)
        boosted.append((score, h, vr, kr))
    boosted.sort(key=lambda item: (-item[0], item[2] or 1 << 30))
    b = 0
    for r, h in enumerate(ranking if ranking is not None else (), 1):
        if h in keyword_rank:
            continue
        score = 1.0 / (RRF_K + r)
        while b < len(boosted) and boosted[b][0] >= score:
            yield boosted[b][1], boosted[b][0], boosted[b][2], boosted[b][3]
            b += 1
        yield h, score, r, None
    for score, h, vr, kr in boosted[b:]:
        yield h, score, vr, kr


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
        with self.index.reading():
            snapshot = self.index.snapshot(self.journal, commit)
            return self._ranked_events(text, vector, mode, snapshot, conds, k, set(exclude))

    def _ranked_events(self, text, vector, mode, snapshot, conds, k, exclude) -> list[dict]:
        index = self.index
        limit = None
        # A narrow filter (one test, a rare status): rank only the texts its rows carry. It and the BM25 query
        # run in LanceDB's event loop while numpy ranks the vectors here (all of them release the GIL).
        where = " AND ".join(f"({c})" for c in conds) or None
        both = " AND ".join(f"({c})" for c in (snapshot.sql, *conds) if c) or None
        prescan = index.texts_matching_async(both) if conds else None
        allowed = None
        while True:
            keywords = index.keyword_texts_async(text, KEYWORD_TEXTS) if mode != "vector" else None
            ranking = index.rank_texts(vector, limit) if vector is not None else None
            keyword_order = keywords.result() if keywords is not None else []
            ranked = fuse(ranking, keyword_order)
            if prescan is not None:
                allowed, prescan = prescan.result(), None
            if allowed is not None:
                ranked = (r for r in ranked if r[0] in allowed)
            out = self._expand(ranked, ranking, where, snapshot, k, exclude)
            if len(out) >= k or ranking is None or ranking.complete:
                return out
            limit = max(1000, len(ranking)) * 8  # the ANN's best texts ran out of matching events: widen

    def _expand(self, ranked, ranking, where, snapshot, k, exclude) -> list[dict]:
        import itertools

        out: list[dict] = []
        skip = set(exclude)
        chunk = 4
        # Groups grow 4, 16, 64 ... texts: the best few texts usually hold k events; sparse matches cost few queries.
        while len(out) < k:
            group = list(itertools.islice(ranked, chunk))
            if not group:
                break
            info = {digest: (score, v, kw) for digest, score, v, kw in group}
            rows = self.index.events_of_texts([g[0] for g in group], where, k - len(out), skip, snapshot)
            for row in rows:
                score, v, kw = info[row["text_no"]]
                sim = ranking.similarity(row["text_no"]) if ranking is not None else None
                skip.add(row["event"]["id"])
                out.append({
                    "event": row["event"],
                    "score": round(score, 6),
                    "similarity": round(sim, 4) if sim is not None else None,
                    "vector_rank": v,
                    "keyword_rank": kw,
                })
            chunk = min(chunk * 4, 256)
        return out

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
