"""`com index`."""

from __future__ import annotations

from typing import Optional

import typer

from com.cli import context
from com.cli.options import AT_HELP, at_option, json_option
from com.cli.output import emit, handled, progress

app = typer.Typer()


@app.command("index")
@handled
def index_cmd(
    rebuild: bool = typer.Option(False, "--rebuild", help="Drop the index and rebuild it from the journal alone."),
    at: Optional[str] = at_option("Index up to this revision (default: HEAD). " + AT_HELP),
    as_json: bool = json_option(),
):
    """Update the semantic index (any command that reads it does this by itself), or rebuild it."""
    from com.ops.search import update
    from com.render.sync import index

    emit(update(context.memory(), at=at, rebuild=rebuild, progress=progress("com index")), as_json, index)
