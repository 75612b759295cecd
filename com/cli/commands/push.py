"""`com push`."""

from __future__ import annotations

from typing import Optional

import typer

from com.cli import context
from com.cli.options import json_option
from com.cli.output import emit, event_conflicts, handled, tag_conflicts

app = typer.Typer()


@app.command("push")
@handled
def push_cmd(
    remote: Optional[str] = typer.Argument(None, help="The remote (default: origin, or the only one)."),
    branch: Optional[str] = typer.Argument(None, help="The journal branch (default: the current one)."),
    as_json: bool = json_option(),
):
    """Push the journal branch and new tags. If others pushed first: fetch, merge, retry (bounded, jittered)."""
    from com.ops.sync import push
    from com.render.sync import push as render

    result = push(context.memory(), remote, branch)
    event_conflicts(result.events)
    emit(result, as_json, render)
    raise typer.Exit(tag_conflicts(result.tags.conflicts))
