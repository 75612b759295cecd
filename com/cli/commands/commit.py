"""`com commit`."""

from __future__ import annotations

from typing import List, Optional

import typer

from com.cli import context
from com.cli.options import json_option
from com.cli.output import emit, handled

app = typer.Typer()


@app.command("commit")
@handled
def commit_cmd(
    message: str = typer.Option(..., "--message", "-m", help="What the analysis found."),
    event: Optional[List[str]] = typer.Option(None, "--event", help="An event id the commit is about (repeatable)."),
    as_json: bool = json_option(),
):
    """Record an analysis commit: a message and the events it is about, with no new events."""
    from com.ops.refs import commit_about

    emit(commit_about(context.memory(), message, list(event or [])), as_json, lambda o: f"commit {o['commit']}")
