"""`com search`."""

from __future__ import annotations

from typing import Optional

import typer

from com.cli import context
from com.cli.options import at_option, choice, count_option, filter_options, json_option
from com.cli.output import emit, handled, note, progress

app = typer.Typer()

MODES = ("hybrid", "vector", "keyword")  # com.ops.search.MODES, without importing it for --help


@app.command("search")
@handled
@filter_options
def search_cmd(
    text: str = typer.Argument(..., help="What to look for, in words: a failure, an error code, a symptom."),
    k: int = count_option(10, "-k", "--limit", help="How many results.", minimum=1),
    at: Optional[str] = at_option(),
    mode: str = typer.Option("hybrid", "--mode", click_type=choice(MODES),
                             help="hybrid (default), vector (meaning only) or keyword (BM25 only; loads no model)."),
    each: bool = typer.Option(False, "--each", help="One row per event (default: events with the same text are "
                                                    "one row, with their count and the latest time)."),
    min_similarity: float = typer.Option(0.15, "--min-similarity", metavar="S",  # ops.search.WEAK_FLOOR
                                         help="Leave out matches by meaning alone less similar than S, or than 60% "
                                              "of the best match (0: keep all)."),
    as_json: bool = json_option(),
    where=None,
):
    """Hybrid search: events similar in meaning to TEXT plus events sharing its keywords.

    Filters and --at apply before ranking. The index is brought up to date first (embedding only new texts).
    Results show the cosine similarity of their meaning (1.00: the same text) and '+kw' when they also share
    the words; in keyword mode, their rank. --json: {"results": [{"event", "score" (the fused order),
    "similarity", "vector_rank", "keyword_rank", "count"}], "mode", "weak_left_out"}."""
    from com.ops.search import search
    from com.render import search as render

    found = search(context.memory(), text, k, where, at=at, mode=mode, progress=progress("com search"),
                   collapse=not each, min_similarity=min_similarity or None)
    emit(found, as_json, render.results)
    footer = render.footer(found.to_json())
    if footer and not as_json:
        note(footer)
