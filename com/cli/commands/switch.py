"""`com switch`."""

from __future__ import annotations

import typer

from com.cli import context
from com.cli.options import json_option
from com.cli.output import emit, handled

app = typer.Typer()


@app.command("switch")
@handled
def switch_cmd(
    name: str = typer.Argument(..., help="The branch to write to and read from."),
    create: bool = typer.Option(False, "-c", "--create", help="Create it from HEAD first."),
    as_json: bool = json_option(),
):
    """Make NAME the current journal branch."""
    from com.ops import refs

    refs.switch(context.memory(), name, create=create)
    emit({"branch": name}, as_json, lambda o: f"Switched to branch '{name}'")
