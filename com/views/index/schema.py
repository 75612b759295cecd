"""The index's LanceDB tables and what a rebuild depends on.

  texts    one row per distinct embedded text: number, content hash, the text (BM25 full-text index), its
           vector (exact ranking below ANN_MIN_TEXTS texts, IVF_PQ above). A million results carry about
           ten thousand texts: each is embedded once and its events point at it.
  meta     format, text version, model name, vector size, and `index_id` (the row store's texts are numbered
           for this table only): a different model forces a rebuild.

Which event carries which text is not here but in the local row store (`rows.py`, SQLite): format 3 kept a
row per event in LanceDB with the event's JSON (290 bytes an event at 1M results, a 3-15 ms query per
lookup); format 4 keeps a 30-byte pointer per event in SQLite (about 30 us a lookup).
"""

from __future__ import annotations

from com.model.text import TEXT_VERSION

FORMAT = 4
TABLES = ("texts", "meta")
OLD_TABLES = ("events", "batches", "commits")  # format 3's: dropped by a rebuild or a reset


def schemas(dim: int) -> dict:
    import pyarrow as pa

    texts = pa.schema([("text_no", pa.int32()), ("text_hash", pa.string()), ("text", pa.string()),
                       ("vector", pa.list_(pa.float32(), dim))])
    meta = pa.schema([("key", pa.string()), ("value", pa.string())])
    return {"texts": texts, "meta": meta}


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
