"""Queries of the index: texts ranked by cosine similarity (exactly, in memory, below 100,000 texts; IVF_PQ
above) and by BM25, fused by reciprocal rank, then expanded into the events of one snapshot that match a
filter.

Why texts first: a million results carry a few thousand distinct texts, and every event of one text has the
same similarity and the same BM25 score. Ranking the texts and then fetching their events is both faster and
exact, where an ANN index over a million rows of repeated vectors was slow and unbalanced (measured: see
scripts/bench_search.py and docs/benchmarks.md).

1. Texts are ranked by cosine similarity and by BM25 (LanceDB native full-text search); reciprocal rank fusion,
   score = sum of 1/(60 + rank) over the two lists, needs no calibration between cosine and BM25.
2. Texts are expanded in fused order into events with one SQL prefilter: the `--at` snapshot (batch numbers)
   AND the filter. Texts with no matching event are passed over, so k results come back whenever k matching
   events exist, and nothing outside the snapshot can appear. Within one text, newest events first. (The best
   few texts, when they hold few rows, are read whole in one query and the snapshot applied to those rows
   here: same result, a third of the queries; see events_of_texts.)
"""

from __future__ import annotations

import json

from com.views.index.snapshot import BatchFilter

RRF_K = 60
KEYWORD_TEXTS = 50  # BM25 hits kept for fusion; more cost time (measured) and change no top result
PRESCAN_ROWS = 5000  # a filter matching fewer rows than this restricts the ranking to their texts
EXPAND_ROWS = 20_000  # most rows read (narrow) to pick the newest events of a group of texts
WHOLE_ROWS = 64  # a group of texts with at most this many rows is read whole in one query (more: narrow, then take)
NPROBES = 20
REFINE = 4


def fuse(ranking, keyword_order: list[str], stop_below: float | None = None, cut: dict | None = None):
    """Reciprocal rank fusion of the texts' similarity ranking and their keyword (BM25) ranking, lazily: yields
    (text hash, score, vector rank, keyword rank), best first. Only the few keyword hits need scoring; every
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


def ranked_events(index, text: str, vector, mode: str, snapshot: BatchFilter, where: str | None, k: int,
                   exclude=(), accept=None, weak: tuple[float, float] | None = None, collapse: bool = False,
                   info: dict | None = None) -> list[dict]:
    """The k best events for a query text (normalised) and its vector (None: keyword mode) in the snapshot's
    rows that match the SQL condition `where` and, if given, `accept(event)` (the exact filter):
    [{"event", "score", "similarity", "vector_rank", "keyword_rank", "count"}], best first.

    `weak` = (floor, share): texts less similar than the floor, or than `share` of the best similarity among
    the texts that can match, are left out unless they share keywords (`info["weak"]` says some were).
    `collapse`: one result per distinct text, its newest event, `count` saying how many events of the
    snapshot matching the filter carry that text."""
    limit = None
    info = info if info is not None else {}
    exclude = set(exclude)
    # A narrow filter (one test, a rare status): rank only the texts its rows carry. It and the BM25 query
    # run in LanceDB's event loop while numpy ranks the vectors here (all of them release the GIL).
    both = " AND ".join(f"({c})" for c in (snapshot.sql, where) if c) or None
    prescan = texts_matching_async(index, both) if where else None
    allowed = None
    while True:
        keywords = keyword_texts_async(index, text, KEYWORD_TEXTS) if mode != "vector" else None
        ranking = rank_texts(index, vector, limit) if vector is not None else None
        keyword_order = keywords.result() if keywords is not None else []
        if prescan is not None:
            allowed, prescan = prescan.result(), None
        stop_below = _threshold(ranking, allowed, weak)
        ranked = fuse(ranking, keyword_order, stop_below, info)
        if allowed is not None:
            ranked = (r for r in ranked if r[0] in allowed)
        out = _expand(index, ranked, ranking, where, snapshot, k, exclude, accept, collapse)
        if len(out) >= k or ranking is None or ranking.complete or info.get("weak"):
            return out
        limit = max(1000, len(ranking)) * 8  # the ANN's best texts ran out of matching events: widen


def _threshold(ranking, allowed, weak) -> float | None:
    """The similarity below which a text is a weak match (None: keep every text)."""
    if weak is None or ranking is None or not len(ranking):
        return None
    floor, share = weak
    if allowed is not None:
        sims = [s for s in (ranking.similarity(h) for h in allowed) if s is not None]
        best = max(sims, default=0.0)
    else:
        best = ranking.best()
    level = max(floor, share * best)
    return level if level > 0 else None


def _expand(index, ranked, ranking, where, snapshot, k, exclude, accept, collapse=False) -> list[dict]:
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
        rows = events_of_texts(index, [g[0] for g in group], where, k - len(out), skip, snapshot, accept,
                               per_text=1 if collapse else None)
        counts = _counts(index, [r["text_no"] for r in rows], where, snapshot) if collapse else {}
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
                "count": max(1, counts.get(row["text_no"], 1)),
            })
        chunk = min(chunk * 4, 256)
    return out


def _counts(index, numbers: list[int], where: str | None, snapshot: BatchFilter) -> dict[int, int]:
    """How many rows of the snapshot matching `where` carry each text (counted by the scalar indexes)."""
    if not numbers:
        return {}
    events = index.table("events")._table
    extra = " AND ".join(f"({c})" for c in (where, snapshot.sql) if c)
    futures = {n: _submit(events.count_rows(f"text_no = {n}" + (f" AND {extra}" if extra else ""))) for n in numbers}
    return {n: f.result() for n, f in futures.items()}


def rank_texts(index, vector, limit: int | None = None) -> "TextRanking":
    """Indexed texts by cosine similarity to `vector`: all of them, exactly, in memory below ANN_MIN_TEXTS
    texts; else the `limit` best from the IVF_PQ index over the texts."""
    import numpy as np

    if index.has_ann():
        table = index.table("texts")
        rows = (table.search(vector, vector_column_name="vector").distance_type("cosine")
                .minimum_nprobes(NPROBES).refine_factor(REFINE).limit(limit or 1000)
                .select(["text_no", "_distance"]).to_arrow())
        numbers = rows.column("text_no").to_pylist()
        sims = 1.0 - np.asarray(rows.column("_distance").to_numpy(), dtype=np.float32)
        return TextRanking(numbers, sims, None, complete=len(numbers) >= index.text_count())
    if index.vectors is None:
        arrow = index.table("texts").to_arrow()
        flat = arrow.column("vector").combine_chunks().flatten().to_numpy(zero_copy_only=False)
        matrix = np.asarray(flat, dtype=np.float32).reshape(arrow.num_rows, -1) if arrow.num_rows else \
            np.zeros((0, index.embedder.dim), np.float32)
        numbers = arrow.column("text_no").to_pylist()
        index.vectors = (numbers, matrix, {n: i for i, n in enumerate(numbers)})
    numbers, matrix, position = index.vectors
    # einsum, not BLAS: a matrix-vector product through a multi-threaded BLAS costs 8 ms of thread wake-up
    # on this 2-core machine for a 0.3 ms job.
    sims = np.einsum("ij,j->i", matrix, np.asarray(vector, dtype=np.float32))
    return TextRanking(numbers, sims, position, complete=True)


def keyword_texts_async(index, text: str, limit: int):
    """Start the BM25 ranking of the indexed texts for `text` in LanceDB's event loop: a future of text
    numbers, best first (the caller ranks the vectors meanwhile; both release the GIL)."""
    texts = index.table("texts")
    if texts is None or not any(ch.isalnum() for ch in text):
        return _Done([])
    query = texts._table.query().nearest_to_text(text, columns="text").limit(limit).select(["text_no", "_score"])
    return _submit(_column(query, "text_no"))


def texts_matching_async(index, where: str, cap: int = PRESCAN_ROWS):
    """A future of the texts of the rows matching a narrow filter, or of None when more than `cap` rows match."""
    return _submit(_texts_matching(index.table("events")._table, where, cap))


def events_of_texts(index, numbers: list[int], where: str | None, need: int, skip: set[str],
                    snapshot: BatchFilter | None = None, accept=None, per_text: int | None = None) -> list[dict]:
    """Up to `need` events whose text is in `numbers`, that match `where` and lie in `snapshot` (default:
    every batch), in the order of `numbers`, newest first within a text: [{"text_no", "event" (decoded)}];
    events whose id is in `skip` are left out (and not counted); at most `per_text` events of one text."""
    events = index.table("events")._table
    snapshot = snapshot or BatchFilter(None, None)
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
        return _pick(((r[0], r[2]) for r in keyed), need, skip, accept, per_text)
    if snapshot.sql:
        cond = f"{cond} AND ({snapshot.sql})"
    narrow = _run(events.query().where(cond).select(["text_no", "ts_us"]).with_row_id().limit(EXPAND_ROWS).to_arrow())
    keyed = sorted(zip(narrow.column("text_no").to_pylist(), narrow.column("ts_us").to_pylist(),
                       narrow.column("_rowid").to_pylist()), key=lambda r: (position[r[0]], -r[1]))
    if per_text is not None:
        # A few rows per text are enough to find its newest matching events (the exact filter may refuse some).
        rows_of: dict[int, int] = {}
        few = []
        for r in keyed:
            if rows_of.get(r[0], 0) < 4 * per_text:
                rows_of[r[0]] = rows_of.get(r[0], 0) + 1
                few.append(r)
        keyed = few
    taken: dict[int, int] = {}
    out: list[dict] = []
    skip = set(skip)
    start = 0
    while len(out) < need and start < len(keyed):
        picked = keyed[start:start + need - len(out)]
        start += len(picked)
        rows = _run(events.take_row_ids([r[2] for r in picked]).select(["event"]).with_row_id().to_arrow())
        by_rowid = dict(zip(rows.column("_rowid").to_pylist(), rows.column("event").to_pylist()))
        found = _pick(((r[0], by_rowid.get(r[2])) for r in picked), need - len(out), skip, accept, per_text, taken)
        skip.update(row["event"]["id"] for row in found)
        out.extend(found)
    return out


async def _texts_matching(events, where: str, cap: int):
    # Counting uses the scalar indexes alone: a broad filter (--status failed over a million rows) costs 0.5 ms
    # to rule out instead of reading `cap` rows for nothing.
    if await events.count_rows(where) > cap:
        return None
    return set(await _column(events.query().where(where).select(["text_no"]), "text_no"))


def _pick(rows, need: int, skip: set[str], accept=None, per_text: int | None = None,
          taken: dict | None = None) -> list[dict]:
    """The first `need` (text number, event JSON) rows as results, leaving out events already taken, events
    `accept` refuses (the SQL condition may match more than the filter it stands for) and, with `per_text`,
    events of a text that has given that many already (`taken` counts across calls)."""
    out: list[dict] = []
    seen = set(skip)
    taken = taken if taken is not None else {}
    for text_no, line in rows:
        if line is None:
            continue
        if per_text is not None and taken.get(text_no, 0) >= per_text:
            continue
        event = json.loads(line)
        if event["id"] in seen:
            continue  # the same event in a second batch of this snapshot (both sides of a merge wrote it)
        if accept is not None and not accept(event):
            continue
        seen.add(event["id"])
        taken[text_no] = taken.get(text_no, 0) + 1
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

    def best(self) -> float:
        """The highest similarity of any text ranked."""
        return float(self.sims.max()) if len(self.keys) else 0.0

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
