"""`com clone`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from com.cli import context
from com.cli.options import json_option
from com.cli.output import emit, handled

app = typer.Typer()


@app.command("clone")
@handled
def clone_cmd(
    url: str = typer.Argument(..., help="The remote holding a shared journal."),
    path: Optional[Path] = typer.Argument(None, help="Memory folder to create (default: --memory, $COM_DIR or ./.com)."),
    branch: Optional[str] = typer.Option(None, "--branch", "-b", help="The journal branch to check out."),
    mirror: bool = typer.Option(False, "--mirror", help="The remote is a plain mirror (see 'com remote add')."),
    as_json: bool = json_option(),
):
    """Create a memory from a shared journal: init, add the remote as 'origin', pull."""
    from com.ops.sync import clone
    from com.render.sync import clone as render

    emit(clone(url, path or context.memory_option(), mirror=mirror, branch=branch), as_json, render)
