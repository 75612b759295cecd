"""Queries of the index: texts ranked by cosine similarity (exactly, in memory, below 100,000 texts; IVF_PQ
above) and by BM25, fused by reciprocal rank, then expanded into the events of one snapshot that match a
filter.

Why texts first: a million results carry about ten thousand distinct texts, and every event of one text has
the same similarity and the same BM25 score. Ranking the texts and then fetching their events is both faster
and exact, where an ANN index over a million rows of repeated vectors was slow and unbalanced (measured: see
scripts/bench_search.py and docs/search.md).

1. A filter first picks the texts it can return at all: the kinds (type, project, status, importance, tags)
   and tests it accepts, and the texts that have rows of them (`text_keys` of the row store). `--status
   failed` ranks the failure texts only, `--test T` the texts of T.
2. Texts are ranked by cosine similarity (their vectors mapped from the row store's file; the LanceDB IVF_PQ
   index past ANN_MIN_TEXTS texts) and by BM25 (the row store's SQLite FTS5 table); reciprocal rank fusion,
   score = sum of 1/(60 + rank) over the two lists, needs no calibration between cosine and BM25.
3. Texts are expanded in fused order into their rows, newest first, through the row store (a text's rows are
   one run of its B-tree): rows of the wrong kind, test or time are skipped by SQLite, rows outside the
   `--at` snapshot (batch numbers) here; the walk stops as soon as k rows are found. Texts with no matching
   row are passed over, so k results come back whenever k matching events exist, and nothing outside the
   snapshot can appear.
4. Each event is rebuilt from its row (id, shape, run context, duration: see rows.py), exactly as stored;
   an event stored in two batches of the snapshot (both sides of a merge) counts once.
"""

from __future__ import annotations

from com.model.filter import EventFilter
from com.views.index.snapshot import BatchFilter

RRF_K = 60
KEYWORD_TEXTS = 50  # BM25 hits kept for fusion; more cost time (measured) and change no top result
NPROBES = 20
REFINE = 4


def fuse(ranking, keyword_order: list[str], stop_below: float | None = None, cut: dict | None = None):
    """Reciprocal rank fusion of the texts' similarity ranking and their keyword (BM25) ranking, lazily: yields
    (text number, score, vector rank, keyword rank), best first. Only the few keyword hits need scoring; every
    other text follows in similarity order, so a search that needs one text reads one. With `stop_below`, texts
    less similar than that are left out unless they are keyword hits (`cut["weak"]` then says so)."""
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
        if stop_below is not None and ranking.similarity(h) < stop_below:
            if cut is not None:
                cut["weak"] = True
            break  # in similarity order: every text after it is weaker still
        score = 1.0 / (RRF_K + r)
        while b < len(boosted) and boosted[b][0] >= score:
            yield boosted[b][1], boosted[b][0], boosted[b][2], boosted[b][3]
            b += 1
        yield h, score, r, None
    for score, h, vr, kr in boosted[b:]:
        yield h, score, vr, kr


def ranked_events(index, text: str, vector, mode: str, snapshot: BatchFilter, where: EventFilter | None, k: int,
                   exclude=(), weak: tuple[float, float] | None = None, collapse: bool = False,
                   info: dict | None = None) -> list[dict]:
    """The k best events for a query text (normalised) and its vector (None: keyword mode) among the snapshot's
    events that `where` matches: [{"event", "score", "similarity", "vector_rank", "keyword_rank", "count"}],
    best first.

    `weak` = (floor, share): texts less similar than the floor, or than `share` of the best similarity among
    the texts that can match, are left out unless they share keywords (`info["weak"]` says some were).
    `collapse`: one result per distinct text, its newest event, `count` saying how many events of the
    snapshot matching the filter carry that text."""
    info = info if info is not None else {}
    where = where or EventFilter()
    kinds, tests, allowed, members = index.prefilter(where)
    if allowed is not None and not len(allowed):
        return []
    condition = row_condition(kinds, tests, where)
    accept = None if where.empty else where.matches
    limit = None
    while True:
        keyword_order = index.rows.keyword_texts(text, KEYWORD_TEXTS, members) if mode != "vector" else []
        ranking = rank_texts(index, vector, limit, allowed) if vector is not None else None
        ranked = fuse(ranking, keyword_order, _threshold(ranking, allowed, weak), info)
        if members is not None and (ranking is None or ranking.subset is None):
            ranked = (r for r in ranked if r[0] in members)
        out = _expand(index, ranked, ranking, condition, snapshot, k, set(exclude), accept, collapse)
        if len(out) >= k or ranking is None or ranking.complete or info.get("weak"):
            return out
        limit = max(1000, len(ranking)) * 8  # the ANN's best texts ran out of matching events: widen


def newest_events(index, wants: dict[str, int], snapshot: BatchFilter, accept=None) -> dict[str, list[dict]]:
    """The newest events of some types in the snapshot, for evidence found by what it is rather than by meaning
    (a commit's code changes, a test's healing attempts, the last roll-ups): `wants` maps a type to how many;
    `accept(event)`, if given, is the exact check. Returns {type: [stored event, newest first]}. One query per
    type over the rows of the texts that type has (its rows are few beside the test results')."""
    rows = index.rows
    batches = snapshot.batches
    out: dict[str, list[dict]] = {etype: [] for etype in wants}
    for etype, limit in wants.items():
        kinds = rows.kinds_for(EventFilter(types=(etype,)))
        texts = rows.texts_with(kinds, None) if kinds else []
        if not texts:
            continue
        seen: set[str] = set()
        cursor = rows.db.execute(
            "SELECT ts_us, batch_no, eid, shape, ctx, duration FROM rows WHERE text_no IN "
            f"({','.join(map(str, texts))}){row_condition(kinds, None, EventFilter())} "
            "ORDER BY ts_us DESC, batch_no DESC, seq DESC")
        for ts, batch_no, eid, shape, ctx, duration in cursor:
            if batches is not None and batch_no not in batches:
                continue
            event = rows.event(ts, eid, shape, ctx, duration)
            if event["id"] in seen or (accept is not None and not accept(event)):
                continue
            seen.add(event["id"])
            out[etype].append(event)
            if len(out[etype]) >= limit:
                break
    return out


def row_condition(kinds: list[int] | None, tests: list[int] | None, where: EventFilter) -> str:
    """The filter as SQL over a row's kind, test and time (` AND ...`, or '' for none)."""
    conds = []
    if kinds is not None:
        conds.append(f"kind IN ({','.join(map(str, kinds))})")
    if tests is not None:
        conds.append(f"test_no IN ({','.join(map(str, tests))})")
    if where.since_us is not None:
        conds.append(f"ts_us >= {int(where.since_us)}")
    if where.until_us is not None:
        conds.append(f"ts_us <= {int(where.until_us)}")
    return "".join(f" AND {c}" for c in conds)


def _threshold(ranking, allowed, weak) -> float | None:
    """The similarity below which a text is a weak match (None: keep every text)."""
    if weak is None or ranking is None or not len(ranking):
        return None
    floor, share = weak
    if allowed is None:
        best = ranking.best()
    elif ranking.keys is None:  # the exact ranking: the filter's texts' similarities at once
        best = float(ranking.sims[allowed].max()) if len(allowed) else 0.0
    else:
        best = max((s for s in (ranking.similarity(int(h)) for h in allowed) if s is not None), default=0.0)
    level = max(floor, share * best)
    return level if level > 0 else None


def _expand(index, ranked, ranking, condition: str, snapshot: BatchFilter, k: int, skip: set, accept,
            collapse: bool = False) -> list[dict]:
    """Walk the texts in fused order and their rows newest first, until k events are found (with `collapse`,
    k texts: each one's newest event and how many events of the snapshot carry it)."""
    batches = snapshot.batches
    rows = index.rows
    out: list[dict] = []
    for text_no, score, v, kw in ranked:
        sim = None
        for ts, batch_no, eid, shape, ctx, duration in rows.rows_of_text(text_no, condition):
            if batches is not None and batch_no not in batches:
                continue
            event = rows.event(ts, eid, shape, ctx, duration)
            if event["id"] in skip:
                continue  # the same event in a second batch of this snapshot (both sides of a merge wrote it)
            if accept is not None and not accept(event):
                continue  # never, as the row store filters exactly; kept as the last word
            skip.add(event["id"])
            if sim is None and ranking is not None:
                sim = ranking.similarity(text_no)
            out.append({
                "event": event,
                "score": round(score, 6),
                "similarity": round(sim, 4) if sim is not None else None,
                "vector_rank": v,
                "keyword_rank": kw,
                "count": rows.count_of_text(text_no, condition, snapshot.sql) if collapse else 1,
            })
            if len(out) >= k:
                return out
            if collapse:
                break
    return out


def rank_texts(index, vector, limit: int | None = None, allowed=None) -> "TextRanking":
    """Indexed texts by cosine similarity to `vector`: all of them, exactly, in memory below ANN_MIN_TEXTS
    texts (walked in order only over `allowed`, a sorted array of text numbers, if given; ranks stay ranks
    among all texts); else the `limit` best from the IVF_PQ index over the texts."""
    import numpy as np

    if index.has_ann():
        table = index.table("texts")
        rows = (table.search(vector, vector_column_name="vector").distance_type("cosine")
                .minimum_nprobes(NPROBES).refine_factor(REFINE).limit(limit or 1000)
                .select(["text_no", "_distance"]).to_arrow())
        numbers = rows.column("text_no").to_pylist()
        sims = 1.0 - np.asarray(rows.column("_distance").to_numpy(), dtype=np.float32)
        return TextRanking(numbers, sims, complete=len(numbers) >= index.text_count())
    if index.vectors is None:
        index.vectors = index.rows.vectors(index.embedder.dim)  # row i: text number i
    # einsum, not BLAS: a matrix-vector product through a multi-threaded BLAS costs 8 ms of thread wake-up
    # on this 2-core machine for a 0.3 ms job.
    sims = np.einsum("ij,j->i", index.vectors, np.asarray(vector, dtype=np.float32))
    return TextRanking(None, sims, complete=True, subset=allowed)


class TextRanking:
    """Texts ordered by similarity, sorted lazily: a search that reads the best few texts sorts only those.
    `keys` None: the texts are numbered by position (the exact ranking over every text)."""

    FIRST = 256

    def __init__(self, keys: list[int] | None, sims, complete: bool, subset=None):
        self.keys, self.sims, self.complete = keys, sims, complete
        self.subset = subset  # text numbers (sorted array) the walk is limited to: a filter's texts
        self._order = None
        self._sorted = None

    def __len__(self) -> int:
        return len(self.sims)

    def _key(self, i: int) -> int:
        return int(i) if self.keys is None else self.keys[i]

    def __iter__(self):
        import numpy as np

        members = self.subset
        negated = -self.sims if members is None else -self.sims[members]
        n = len(negated)
        if n == 0:
            return
        head = min(self.FIRST, n)
        top = np.argpartition(negated, head - 1)[:head] if head < n else np.arange(n)
        top = top[np.argsort(negated[top], kind="stable")]
        for i in top.tolist():
            yield self._key(i if members is None else int(members[i]))
        if head < n:
            shown = set(top.tolist())
            for i in np.argsort(negated, kind="stable").tolist():
                if i not in shown:
                    yield self._key(i if members is None else int(members[i]))

    def best(self) -> float:
        """The highest similarity of any text ranked."""
        return float(self.sims.max()) if len(self.sims) else 0.0

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
        if self.keys is None:
            return key if 0 <= key < len(self.sims) else None
        # an ANN ranking: only its own texts are known
        if self._order is None:
            self._order = {h: i for i, h in enumerate(self.keys)}
        return self._order.get(key)
