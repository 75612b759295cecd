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
    rev: str = typer.Argument("HEAD", help="A journal revision, or an event id (evt_…, at least 6 hex digits)."),
    as_json: bool = json_option(),
):
    """One journal commit (its message, the events it added or is about), or one event whole.

    An event is printed with all its data, its error message and trace in full, and the batch and journal
    commit it was recorded in. --json: the commit as in 'com log' plus "events", "about", "about_events"; or
    {"event", "batch", "commit"} for an event."""
    from com.ops.history import show
    from com.render import history as render

    emit(show(context.memory(), rev), as_json, render.show)
