"""`com search`."""

from __future__ import annotations

from typing import Optional

import typer

from com.cli import context
from com.cli.options import at_option, filter_options, json_option
from com.cli.output import emit, handled, progress

app = typer.Typer()


@app.command("search")
@handled
@filter_options
def search_cmd(
    text: str = typer.Argument(..., help="What to look for, in words: a failure, an error code, a symptom."),
    k: int = typer.Option(10, "-k", "--limit", help="How many results."),
    at: Optional[str] = at_option(),
    mode: str = typer.Option("hybrid", "--mode", help="hybrid (default), vector (meaning only) or keyword (BM25 only)."),
    as_json: bool = json_option(),
    where=None,
):
    """Hybrid search: events similar in meaning to TEXT plus events sharing its keywords, fused by rank.

    Filters and --at apply before ranking. The index is brought up to date first (embedding only new texts)."""
    from com.ops.search import search
    from com.render.search import results

    found = search(context.memory(), text, k, where, at=at, mode=mode, progress=progress("com search"))
    emit(found, as_json, results)
