"""`com pull`."""

from __future__ import annotations

from typing import Optional

import typer

from com.cli import context
from com.cli.options import json_option
from com.cli.output import emit, event_conflicts, handled, tag_conflicts

app = typer.Typer()


@app.command("pull")
@handled
def pull_cmd(
    remote: Optional[str] = typer.Argument(None, help="The remote (default: origin, or the only one)."),
    branch: Optional[str] = typer.Argument(None, help="The journal branch (default: the current one)."),
    as_json: bool = json_option(),
):
    """Fetch and bring the remote's batches in: fast-forward, or a merge commit holding both sides' batches.

    New tags are adopted; a tag that names another commit on the remote is reported (exit 1) and kept."""
    from com.ops.sync import pull
    from com.render.sync import pull as render

    result = pull(context.memory(), remote, branch)
    event_conflicts(result.events)
    emit(result, as_json, render)
    raise typer.Exit(tag_conflicts(result.tags.conflicts))
