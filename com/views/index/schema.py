"""The index's tables and what a rebuild depends on.

  events   one row per event per batch: what a query filters and orders on (type, project, test_id, status,
           ts_us, importance, tags), `text_no` (the text it was embedded as) and where the event is: `batch_no`
           (its batch) and `seq` (its line in the batch). Not the event itself: results are given back from
           the test-results view (test results) or the batch (anything else), which hold them already, so
           the index costs about 40 bytes an event instead of 290 (format 3 kept the event's JSON);
  texts    one row per distinct embedded text: number, content hash, the text, its vector. A million results
           carry a few thousand texts: each is embedded once and its events point at it. (An ANN index over a
           vector per event row was measured first: a million rows of a few thousand repeated vectors gave
           unbalanced IVF partitions, p95 37 ms for IVF_PQ, and a 4.5-minute IVF_HNSW_SQ build.)
  batches  batch path (`events/<project>/<day>/<batch-id>.jsonl`) -> batch_no;
  commits  journal commits whose whole snapshot is indexed, with the highest batch_no written by then;
  meta     format, text version, model name and vector size: a different model forces a rebuild.
"""

from __future__ import annotations

from com.model.text import TEXT_VERSION

FORMAT = 4
TABLES = ("events", "texts", "batches", "commits", "meta")


def schemas(dim: int) -> dict:
    import pyarrow as pa

    events = pa.schema([
        ("text_no", pa.int32()), ("batch_no", pa.int32()), ("seq", pa.int32()), ("ts_us", pa.int64()),
        ("type", pa.string()), ("project", pa.string()), ("test_id", pa.string()), ("status", pa.string()),
        ("importance", pa.float32()), ("tags", pa.list_(pa.string())),
    ])
    texts = pa.schema([("text_no", pa.int32()), ("text_hash", pa.string()), ("text", pa.string()),
                       ("vector", pa.list_(pa.float32(), dim))])
    batches = pa.schema([("batch_no", pa.int32()), ("path", pa.string())])
    commits = pa.schema([("sha", pa.string()), ("hwm", pa.int32())])
    meta = pa.schema([("key", pa.string()), ("value", pa.string())])
    return {"events": events, "texts": texts, "batches": batches, "commits": commits, "meta": meta}


def expected_meta(model_name: str, dim: int) -> dict:
    return {"format": str(FORMAT), "text_version": str(TEXT_VERSION), "model": model_name, "dim": str(dim)}


def rebuild_reason(meta: dict, missing_tables: list[str], expected: dict) -> str | None:
    """Why the index must be rebuilt before use, or None."""
    if not meta:
        return "no index yet"
    if missing_tables:
        return f"the index is incomplete (no {missing_tables[0]} table)"
    if meta.get("model") != expected["model"]:
        return f"the embedding model changed from '{meta.get('model')}' to '{expected['model']}'"
    for key in ("dim", "format", "text_version"):
        if meta.get(key) != expected[key]:
            return f"the index {key} changed from {meta.get(key)} to {expected[key]}"
    return None
