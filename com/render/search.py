"""Text of search results: what each match's number means is said in the header, never a bare fusion score."""

from __future__ import annotations

from com.render.history import short_id, what
from com.render.text import clip, status_colour, table, when


def match(r: dict, mode: str) -> str:
    """How a result matched: its similarity of meaning (0.00-1.00), '+kw' when it also shares the query's
    words; in keyword mode its place among keyword (BM25) matches."""
    if mode == "keyword" or r.get("similarity") is None:
        return f"#{r['keyword_rank']}" if r.get("keyword_rank") else ""
    sim = f"{r['similarity']:.2f}"
    return f"{sim} +kw" if r.get("keyword_rank") else sim


HEADERS = {"keyword": "keyword rank", "vector": "similarity", "hybrid": "similarity"}


def results(o: dict) -> str:
    mode = o.get("mode", "hybrid")
    rows = []
    for r in o["results"]:
        e = r["event"]
        data = e.get("data") or {}
        rows.append([match(r, mode), f"{r.get('count', 1)}x", when(e["ts"]), short_id(e["id"]), e["project"],
                     data.get("status", e["type"]), clip(what(e), 200)])
    if not rows:
        return "no matching events"
    return table(rows, [HEADERS.get(mode, "match"), "events", "latest", "id", "project", "status", "what"],
                 colours={3: lambda _: "yellow", 5: status_colour}, optional=(4,))


def footer(o: dict) -> str | None:
    """What the table does not say, for stderr."""
    notes = []
    if o.get("weak_left_out"):
        notes.append("weaker matches left out (--min-similarity 0 shows them)")
    return "; ".join(notes) or None
