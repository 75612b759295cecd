"""`com branch`."""

from __future__ import annotations

from typing import Optional

import typer

from com.cli import context
from com.cli.options import json_option
from com.cli.output import emit, handled
from com.model.errors import ComError

app = typer.Typer()


@app.command("branch")
@handled
def branch_cmd(
    name: Optional[str] = typer.Argument(None, help="Create this branch (or delete it with -d)."),
    rev: Optional[str] = typer.Argument(None, help="Start the new branch here (default: HEAD)."),
    delete: bool = typer.Option(False, "-d", "--delete", help="Delete the branch."),
    as_json: bool = json_option(),
):
    """List journal branches, create one from a revision, or delete one."""
    from com.ops import refs
    from com.render import history as render
    from com.render.text import short

    memory = context.memory()
    if delete:
        if not name:
            raise ComError("branch -d needs a branch name")
        refs.delete_branch(memory, name)
        emit({"deleted": name}, as_json, lambda o: f"Deleted branch {name}")
    elif name is not None:
        emit(refs.create_branch(memory, name, rev), as_json, lambda o: f"Created branch {o['name']} at {short(o['commit'])}")
    else:
        emit(refs.branches(memory), as_json, render.branches)
