"""Index maintenance: the vector index of the LanceDB texts table, created when due, and the table compacted
with new texts now and then."""

from __future__ import annotations

from datetime import timedelta

ANN_MIN_TEXTS = 100_000  # distinct texts ranked exactly in memory below this (<= 150 MB); IVF_PQ above
ANN_ROWS_PER_PARTITION = 4096
OPTIMIZE_UNINDEXED = 4000  # texts appended since the indexes were last updated
OPTIMIZE_FRAGMENTS = 24


def maintain(index) -> list[str]:
    """Create the ANN index of the texts when it is due; fold new texts into it now and then. (Keywords are
    ranked by the row store's FTS5 table, kept in the same transaction as the rows.)"""
    from lancedb.index import IvfPq

    done: list[str] = []
    texts = index.table("texts")
    if texts is None or texts.count_rows() == 0:
        return done
    text_indices = {tuple(i.columns): i for i in texts.list_indices()}
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
        index.rows.set_meta({"ann": "1"})
        done.append(f"ivf_pq:{partitions}")
    unindexed = max([(i.num_unindexed_rows or 0) for i in texts.list_indices()] or [0])
    if unindexed >= OPTIMIZE_UNINDEXED or fragments(texts) > OPTIMIZE_FRAGMENTS:
        # Compact small appends and fold new texts into every index (no retraining). Old versions can go
        # at once: readers wait on the shared lock while we hold it exclusively.
        index.report("optimizing the texts table", 0, 1)
        optimize(texts)
        done.append("optimize:texts")
    return done


def optimize(table) -> None:
    import warnings

    with warnings.catch_warnings():
        # lancedb warns that dropping old versions breaks concurrent readers: ours wait on the index lock.
        warnings.simplefilter("ignore", UserWarning)
        table.optimize(cleanup_older_than=timedelta(0))


def fragments(table) -> int:
    return int(table.stats()["fragment_stats"]["num_fragments"])
