"""`com search` (hybrid semantic + keyword search over a snapshot) and `com index` (update or rebuild the index)."""

from __future__ import annotations

from typing import Optional

import typer

from com.cli import AT_HELP, JSON_HELP, _memory, command
from com.output import clip, emit, table


@command("search")
def search_cmd(
    text: str = typer.Argument(..., help="What to look for, in words: a failure, an error code, a symptom."),
    k: int = typer.Option(10, "-k", "--limit", help="How many results."),
    type: Optional[str] = typer.Option(None, "--type", "-t", help="Only events of this type."),
    project: Optional[str] = typer.Option(None, "--project", "-p", help="Only events of this project."),
    test: Optional[str] = typer.Option(None, "--test", help="Only results of this test id."),
    status: Optional[str] = typer.Option(None, "--status", help="passed, failed, error or skipped."),
    since: Optional[str] = typer.Option(None, "--since", help="Only events at or after this ISO date/time."),
    at: Optional[str] = typer.Option(None, "--at", help=AT_HELP),
    mode: str = typer.Option("hybrid", "--mode", help="hybrid (default), vector (meaning only) or keyword (BM25 only)."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
):
    """Hybrid search: events similar in meaning to TEXT plus events sharing its keywords, fused by rank.

    Filters and --at apply before ranking. The index is brought up to date first (embedding only new texts)."""
    from com.index import tty_progress
    from com.search import searcher

    found = searcher(_memory(), progress=tty_progress("com search")).search(
        text, k, type=type, project=project, test=test, status=status, since=since, at=at, mode=mode,
    )

    def human(o):
        rows = []
        for r in o["results"]:
            e = r["event"]
            what = e["data"].get("test_id") or e["data"].get("error_message") or e["type"]
            message = e["data"].get("error_message") or e["data"].get("message") or ""
            if message and message != what:
                what = f"{what}: {message}"
            rows.append([f"{r['score']:.4f}", e["ts"][:19].replace("T", " "), e["project"],
                         e["data"].get("status", e["type"]), clip(what, 80)])
        return table(rows, ["score", "time", "project", "status", "what"]) if rows else "no matching events"

    emit({"results": found}, as_json, human)


@command("index")
def index_cmd(
    rebuild: bool = typer.Option(False, "--rebuild", help="Drop the index and rebuild it from the journal alone."),
    at: Optional[str] = typer.Option(None, "--at", help="Index up to this revision (default: HEAD). " + AT_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
):
    """Update the semantic index (any command that reads it does this by itself), or rebuild it."""
    from com.index import tty_progress
    from com.search import searcher

    s = searcher(_memory(), progress=tty_progress("com index"))
    stats = s.update(at=at, rebuild=rebuild)
    obj = {**stats.to_json(), "uri": s.index.uri, "model": s.embedder.model_name, "total_rows": s.index.row_count(),
           "total_texts": s.index.text_count()}

    def human(o):
        head = f"rebuilt ({o['reason']}): " if o["rebuilt"] else ""
        return (f"{head}indexed {o['rows']} event row(s) from {o['batches']} batch(es) and {o['commits']} commit(s); "
                f"{o['texts']} new text(s), {o['embedded']} embedded; {o['total_rows']} row(s), "
                f"{o['total_texts']} distinct text(s) in {o['uri']}")

    emit(obj, as_json, human)
