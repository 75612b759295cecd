"""`com events`."""

from __future__ import annotations

from typing import Optional

import typer

from com.cli import context
from com.cli.options import at_option, filter_options, json_option
from com.cli.output import emit, handled

app = typer.Typer()


@app.command("events")
@handled
@filter_options
def events_cmd(
    limit: int = typer.Option(50, "--limit", "-n", help="At most this many (0: all)."),
    at: Optional[str] = at_option(),
    as_json: bool = json_option(),
    where=None,
):
    """List events of a snapshot, newest first."""
    from com.ops.history import events
    from com.render import history as render

    emit(events(context.memory(), where, at=at, limit=limit or None), as_json, render.events)
