"""Taking journal batches into the index: event rows and new texts as Arrow tables, each new text embedded once.

Writes go batches -> texts -> events -> commits under the index's exclusive lock; an update killed midway is
rolled back by the next one (rows and batches above the high-water mark are removed), so a reader never sees
half an update.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import dataclass, field

from com.model.event import to_line, ts_us
from com.model.text import event_text, text_hash
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
    """An update killed midway left batches (and maybe rows) above the high-water mark: remove them."""
    if not index.registry or max(index.registry.values()) <= index.hwm:
        return
    index.table("events").delete(f"batch_no > {index.hwm}")
    index.table("batches").delete(f"batch_no > {index.hwm}")
    index.registry = {p: n for p, n in index.registry.items() if n <= index.hwm}


@contextmanager
def taking(index, shas: list[str], stats: UpdateStats):
    """The index's side of the view protocol (the caller holds the exclusive lock): number each batch in the
    order it comes (history order), append rows a chunk at a time, then record the commits as complete."""
    import pyarrow as pa

    tables = schemas(index.embedder.dim)
    numbers = iter(range(max(index.registry.values(), default=-1) + 1, 1 << 31))
    batches: list[tuple[int, str]] = []  # numbered, not yet registered
    rows: list[tuple[int, str]] = []

    def flush() -> None:
        # A batch is registered before its rows, a text written before the rows pointing at it; a crash
        # between chunks is rolled back by the next update, and a text it left behind is harmless.
        if batches:
            index.table("batches").add(pa.table(
                {"batch_no": pa.array([n for n, _ in batches], pa.int32()), "path": [p for _, p in batches]},
                schema=tables["batches"]))
            index.registry.update({p: n for n, p in batches})
            stats.batches += len(batches)
            batches.clear()
        if rows:
            pending = len(index.pending)
            events_table, texts_table = arrow_rows(index, rows, stats, tables)
            if len(index.pending) != pending:
                # Recorded before the texts with stand-in vectors are written: none can go unnoticed.
                index.write_meta({"pending": json.dumps(sorted(index.pending))})
            if texts_table is not None:
                index.table("texts").add(texts_table)
            index.table("events").add(events_table)
            rows.clear()

    def add(batch, events) -> None:
        number = next(numbers)
        batches.append((number, batch.path))
        lines = batch.lines()
        if lines is None:
            lines = [to_line(e) for e in events]
        rows.extend((number, line if isinstance(line, str) else line.decode("utf-8")) for line in lines)
        if len(rows) >= CHUNK_EVENTS:
            flush()

    yield add
    flush()
    hwm = max(index.registry.values(), default=-1)
    index.table("commits").add(pa.table({"sha": shas, "hwm": pa.array([hwm] * len(shas), pa.int32())},
                                        schema=tables["commits"]))
    index.commits.update(shas)
    index.hwm = hwm
    index.batch_filters.clear()
    stats.commits += len(shas)


def arrow_rows(index, rows: list[tuple[int, str]], stats: UpdateStats, tables: dict):
    """(events, texts) Arrow tables of rows (batch number, stored line); each new text embedded once."""
    import numpy as np
    import pyarrow as pa

    cols = {name: [] for name in ("id", "type", "project", "test_id", "status", "ts", "ts_us", "importance",
                                  "tags", "text_no", "batch_no", "event")}
    hash_of: dict[str, str] = {}
    new_texts: list[tuple[int, str, str]] = []
    for batch_no, line in rows:
        event = json.loads(line)
        data = event.get("data") or {}
        text = event_text(event)
        digest = hash_of.get(text)
        if digest is None:
            digest = hash_of[text] = text_hash(text)
        is_result = event["type"] == "test_result"
        cols["id"].append(event["id"])
        cols["type"].append(event["type"])
        cols["project"].append(event["project"])
        cols["test_id"].append(str(data.get("test_id") or "") if is_result else "")
        cols["status"].append(str(data.get("status") or "") if is_result else "")
        cols["ts"].append(event["ts"])
        cols["ts_us"].append(ts_us(event["ts"]))
        cols["importance"].append(float(event.get("importance", 0.0)))
        cols["tags"].append(list(event.get("tags") or []))
        number = index.text_no.get(digest)
        if number is None:
            # A new text: numbered now (rows carry the small int, cheap to filter and to read back).
            number = index.text_no[digest] = len(index.text_no)
            new_texts.append((number, digest, text))
        cols["text_no"].append(number)
        cols["batch_no"].append(batch_no)
        cols["event"].append(line)
    stats.rows += len(rows)
    texts_table = None
    if new_texts:
        if index.defer_embedding:
            # Keyword search needs no vectors: texts the cache lacks get zero vectors, embedded later by the
            # first command that ranks by meaning (Index.embed_pending).
            vectors, missing = index.embedder.lookup([t for _, _, t in new_texts])
            index.pending.update(new_texts[i][0] for i in missing)
        else:
            vectors = index.embedder.embed([t for _, _, t in new_texts], progress=index.report)
        texts_table = pa.table({
            "text_no": pa.array([n for n, _, _ in new_texts], pa.int32()),
            "text_hash": pa.array([h for _, h, _ in new_texts], pa.string()),
            "text": pa.array([t for _, _, t in new_texts], pa.string()),
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(np.ascontiguousarray(vectors).reshape(-1), pa.float32()),
                                                        vectors.shape[1]),
        }, schema=tables["texts"])
        stats.texts += len(new_texts)
    events_table = pa.table({name: pa.array(values, tables["events"].field(name).type)
                             for name, values in cols.items()}, schema=tables["events"])
    return events_table, texts_table
