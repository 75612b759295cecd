"""`com tag`."""

from __future__ import annotations

from typing import Optional

import typer

from com.cli import context
from com.cli.options import json_option
from com.cli.output import emit, handled
from com.model.errors import ComError

app = typer.Typer()


@app.command("tag")
@handled
def tag_cmd(
    name: Optional[str] = typer.Argument(None, help="Create this tag (or delete it with -d)."),
    rev: Optional[str] = typer.Argument(None, help="Tag this revision (default: HEAD)."),
    message: Optional[str] = typer.Option(None, "-m", "--message", help="Make an annotated tag with MSG."),
    delete: bool = typer.Option(False, "-d", "--delete", help="Delete the tag."),
    as_json: bool = json_option(),
):
    """List tags, tag a revision (annotated with -m), or delete a tag."""
    from com.ops import refs
    from com.render import history as render
    from com.render.text import short

    memory = context.memory()
    if delete:
        if not name:
            raise ComError("tag -d needs a tag name")
        refs.delete_tag(memory, name)
        emit({"deleted": name}, as_json, lambda o: f"Deleted tag '{name}'")
    elif name is not None:
        emit(refs.create_tag(memory, name, rev, message), as_json, lambda o: f"Tagged {short(o['commit'])} as {o['name']}")
    else:
        emit(refs.tags(memory), as_json, render.tags)
