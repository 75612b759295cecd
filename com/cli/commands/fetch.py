"""`com fetch`."""

from __future__ import annotations

from typing import Optional

import typer

from com.cli import context
from com.cli.options import json_option
from com.cli.output import emit, handled

app = typer.Typer()


@app.command("fetch")
@handled
def fetch_cmd(
    remote: Optional[str] = typer.Argument(None, help="The remote (default: origin, or the only one)."),
    as_json: bool = json_option(),
):
    """Download the remote's journal branches and tags without changing local ones."""
    from com.ops.sync import fetch
    from com.render.sync import fetch as render

    emit(fetch(context.memory(), remote), as_json, render)
