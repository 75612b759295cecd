"""`com remote add|remove|list`."""

from __future__ import annotations

import typer

from com.cli import context
from com.cli.options import json_option
from com.cli.output import emit, handled

app = typer.Typer(
    name="remote",
    help="Remotes the journal is shared through (any git URL: file, ssh, https, git).",
    no_args_is_help=True,
    rich_markup_mode=None,
)


@app.command("add")
@handled
def remote_add_cmd(
    name: str = typer.Argument(..., help="A short name, e.g. origin."),
    url: str = typer.Argument(..., help="Any URL git can push to (the code's own remote works)."),
    mirror: bool = typer.Option(False, "--mirror", help="Use refs/heads/* and refs/tags/* on the remote as they are, "
                                                         "instead of the refs/com/* namespace."),
    as_json: bool = json_option(),
):
    """Add a remote to share the journal through."""
    from com.ops.sync import remote_add

    emit(remote_add(context.memory(), name, url, mirror), as_json,
         lambda o: f"Added remote {o['name']} {o['url']} (branches at {o['branches']})")


@app.command("remove")
@handled
def remote_remove_cmd(
    name: str = typer.Argument(..., help="The remote to forget (its tracking refs go with it)."),
    as_json: bool = json_option(),
):
    """Remove a remote; nothing on the remote is touched."""
    from com.ops.sync import remote_remove

    emit({"removed": remote_remove(context.memory(), name)}, as_json, lambda o: f"Removed remote {o['removed']}")


@app.command("list")
@handled
def remote_list_cmd(as_json: bool = json_option()):
    """List remotes."""
    from com.ops.sync import remotes
    from com.render.sync import remotes as render

    emit(remotes(context.memory()), as_json, render)
