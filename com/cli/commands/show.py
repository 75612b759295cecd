"""`com show`."""

from __future__ import annotations

import typer

from com.cli import context
from com.cli.options import json_option
from com.cli.output import emit, handled

app = typer.Typer()


@app.command("show")
@handled
def show_cmd(
    rev: str = typer.Argument("HEAD", help="A journal revision."),
    as_json: bool = json_option(),
):
    """One journal commit: its message, the events it added, the events it is about."""
    from com.ops.history import show
    from com.render import history as render

    emit(show(context.memory(), rev), as_json, render.show)
