"""Text of search results."""

from __future__ import annotations

from com.render.text import clip, table, when


def results(o: dict) -> str:
    rows = []
    for r in o["results"]:
        e = r["event"]
        what = e["data"].get("test_id") or e["data"].get("error_message") or e["type"]
        message = e["data"].get("error_message") or e["data"].get("message") or ""
        if message and message != what:
            what = f"{what}: {message}"
        rows.append([f"{r['score']:.4f}", when(e["ts"]), e["project"], e["data"].get("status", e["type"]), clip(what, 80)])
    return table(rows, ["score", "time", "project", "status", "what"]) if rows else "no matching events"
