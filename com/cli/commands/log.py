"""`com log`."""

from __future__ import annotations

from typing import Optional

import typer

from com.cli import context
from com.cli.options import at_option, count_option, json_option
from com.cli.output import emit, handled

app = typer.Typer()


@app.command("log")
@handled
def log_cmd(
    rev: Optional[str] = typer.Argument(None, help="Start from this revision (default: the current branch)."),
    n: int = count_option(0, "-n", "--max-count", help="Show at most N commits (0: all).", zero="all"),
    at: Optional[str] = at_option(),
    as_json: bool = json_option(),
):
    """Journal history, newest first."""
    from com.ops.history import log
    from com.render import history as render

    emit(log(context.memory(), rev if rev is not None else at, n), as_json, render.log)
