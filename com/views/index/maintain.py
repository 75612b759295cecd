"""Index maintenance: the full-text, scalar and vector indexes of the LanceDB tables, created when due and
folded together with new rows now and then."""

from __future__ import annotations

from datetime import timedelta

ANN_MIN_TEXTS = 100_000  # distinct texts ranked exactly in memory below this (<= 150 MB); IVF_PQ above
ANN_ROWS_PER_PARTITION = 4096
OPTIMIZE_UNINDEXED = 4000  # rows appended since the indexes were last updated
OPTIMIZE_FRAGMENTS = 24


def maintain(index) -> list[str]:
    """Create the FTS, scalar and ANN indexes when they are due; fold new rows into them now and then."""
    from lancedb.index import FTS, BTree, Bitmap, IvfPq

    done: list[str] = []
    events, texts = index.table("events"), index.table("texts")
    if events is None or texts is None or events.count_rows() == 0:
        return done
    indices = {tuple(i.columns): i for i in events.list_indices()}
    # text_no finds a text's events; the rest serve the user's filters and the snapshot filter.
    for column, config in (("text_no", BTree()), ("batch_no", BTree()), ("test_id", BTree()),
                           ("ts_us", BTree()), ("type", Bitmap()), ("project", Bitmap()), ("status", Bitmap())):
        if (column,) not in indices:
            events.create_index(column, config=config)
            done.append(f"scalar:{column}")
    text_indices = {tuple(i.columns): i for i in texts.list_indices()}
    if ("text",) not in text_indices:
        # BM25 over the distinct texts: stemmed, lower-cased, stop words removed.
        texts.create_index("text", config=FTS(with_position=False))
        done.append("fts")
    count = texts.count_rows()
    ann_rows = int(index.meta().get("ann_rows", "0"))
    if (count >= ANN_MIN_TEXTS and not index.pending
            and (("vector",) not in text_indices or count >= 4 * ann_rows)):
        # Past this many distinct texts an exact scan in memory costs too much: IVF_PQ, retrained when
        # the texts have grown 4x since.
        index.report("training the vector index", 0, 1)
        partitions = max(1, count // ANN_ROWS_PER_PARTITION)
        texts.create_index("vector", config=IvfPq(distance_type="cosine", num_partitions=partitions,
                                                   num_sub_vectors=max(1, index.embedder.dim // 8)), replace=True)
        index.write_meta({"ann_rows": count})
        done.append(f"ivf_pq:{partitions}")
    for name, table in (("events", events), ("texts", texts)):
        unindexed = max([(i.num_unindexed_rows or 0) for i in table.list_indices()] or [0])
        if unindexed >= OPTIMIZE_UNINDEXED or fragments(table) > OPTIMIZE_FRAGMENTS:
            # Compact small appends and fold new rows into every index (no retraining). Old versions can
            # go at once: readers wait on the shared lock while we hold it exclusively.
            index.report(f"optimizing the {name} table", 0, 1)
            optimize(table)
            done.append(f"optimize:{name}")
    for name in ("batches", "commits"):
        table = index.table(name)
        if table is not None and fragments(table) > OPTIMIZE_FRAGMENTS:
            optimize(table)
    return done


def optimize(table) -> None:
    import warnings

    with warnings.catch_warnings():
        # lancedb warns that dropping old versions breaks concurrent readers: ours wait on the index lock.
        warnings.simplefilter("ignore", UserWarning)
        table.optimize(cleanup_older_than=timedelta(0))


def fragments(table) -> int:
    return int(table.stats()["fragment_stats"]["num_fragments"])
