"""`com events`."""

from __future__ import annotations

from typing import Optional

import typer

from com.cli import context
from com.cli.options import at_option, count_option, filter_options, json_option
from com.cli.output import emit, handled, note

app = typer.Typer()


@app.command("events")
@handled
@filter_options
def events_cmd(
    limit: int = count_option(50, "--limit", "-n", help="At most this many (0: all).", zero="all"),
    at: Optional[str] = at_option(),
    as_json: bool = json_option(),
    where=None,
):
    """List events of a snapshot, newest first.

    Failed results show the first line of their error; 'com show evt_…' prints one event whole."""
    from com.ops.history import events
    from com.render import history as render

    result = events(context.memory(), where, at=at, limit=limit)
    emit(result, as_json, render.events)
    obj = result.to_json()
    if not obj["events"]:
        if not where.empty:
            note(f"com: no events match {given_filters()}")
    else:
        footer = render.events_footer(obj, limit)
        if footer and not as_json:
            note(footer)


def given_filters() -> str:
    """The filter flags of this command line, as typed (for 'no events match --status failed')."""
    import click

    ctx = click.get_current_context()
    parts = []
    for p in ctx.command.params:
        value = ctx.params.get(p.name)
        if p.name in ("type", "project", "test", "status", "since", "until", "tag") and value:
            flag = ([o for o in p.opts if o.startswith("--")] or p.opts)[0]
            for v in value if isinstance(value, (list, tuple)) else [value]:
                parts.append(f"{flag} {v}")
    return " ".join(parts) or "the filters"
