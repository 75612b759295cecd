"""Taking journal batches into the index: rows into the local row store, each new text embedded once and
appended to the LanceDB texts table.

One SQLite transaction holds the whole take (rows, batches, texts, the commits it completes), so a reader
never sees half an update. New texts go to LanceDB first; an update killed before its SQLite commit leaves
texts there that no row points at, which the next update removes (`roll_back_interrupted`) before it numbers
new texts from the same numbers.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field

from com.views.index.schema import schemas

CHUNK_EVENTS = 50_000


@dataclass
class UpdateStats:
    commit: str | None = None
    rebuilt: bool = False
    reason: str | None = None
    commits: int = 0
    batches: int = 0
    rows: int = 0
    texts: int = 0
    embedded: int = 0
    seconds: float = 0.0
    maintenance: list = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "commit": self.commit, "rebuilt": self.rebuilt, "reason": self.reason, "commits": self.commits,
            "batches": self.batches, "rows": self.rows, "texts": self.texts, "embedded": self.embedded,
            "seconds": round(self.seconds, 3), "maintenance": self.maintenance,
        }


def roll_back_interrupted(index) -> None:
    """Texts an interrupted update appended to LanceDB but never committed rows for: removed."""
    texts = index.table("texts")
    known = index.rows.text_count()
    if texts is not None and texts.count_rows() > known:
        texts.delete(f"text_no >= {known}")


@contextmanager
def taking(index, shas: list[str], stats: UpdateStats):
    """The index's side of the view protocol (the caller holds the exclusive lock): number each batch in the
    order it comes (history order), turn its events into rows, embed new texts a chunk at a time."""
    with index.rows.writing(shas, index.embedder.dim) as writer:
        def flush() -> None:
            new = writer.take_new_texts()
            if new:
                if index.defer_embedding:
                    # Keyword search needs no vectors: texts the cache lacks get zero vectors, embedded later by
                    # the first command that ranks by meaning (Index._embed_pending).
                    vectors, missing = index.embedder.lookup([t for _, _, t in new])
                    writer.add_pending([new[i][0] for i in missing])
                else:
                    vectors = index.embedder.embed([t for _, _, t in new], progress=index.report)
                index.texts_table().add(texts_table(new, vectors, schemas(index.embedder.dim)["texts"]))
                writer.store_texts(new, vectors)
                stats.texts += len(new)
            stats.rows += len(writer)
            writer.flush()

        def add(batch, events) -> None:
            writer.add(batch.path, events)
            stats.batches += 1
            if len(writer) >= CHUNK_EVENTS:
                flush()

        yield add
        flush()
    stats.commits += len(shas)


def texts_table(new: list[tuple[int, str, str]], vectors, schema):
    """New texts (number, hash, text) and their vectors as an Arrow table of the LanceDB texts table."""
    import numpy as np
    import pyarrow as pa

    return pa.table({
        "text_no": pa.array([n for n, _, _ in new], pa.int32()),
        "text_hash": pa.array([h for _, h, _ in new], pa.string()),
        "text": pa.array([t for _, _, t in new], pa.string()),
        "vector": pa.FixedSizeListArray.from_arrays(pa.array(np.ascontiguousarray(vectors).reshape(-1), pa.float32()),
                                                    vectors.shape[1]),
    }, schema=schema)
