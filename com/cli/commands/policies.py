"""`com policies [list | show ID | validate FILE]`: the shipped policies and the memory's own (.com/policies/)."""

from __future__ import annotations

from pathlib import Path

import typer

from com.cli import context
from com.cli.options import json_option
from com.cli.output import emit, handled

app = typer.Typer(
    name="policies",
    help="List, show or validate policies: what a context pack (com retrieve) is for and what goes in it.",
    invoke_without_command=True,
    add_completion=False,
    rich_markup_mode=None,
)


def _user_dir() -> Path | None:
    """The memory's policies folder; without a memory (and none named), the shipped policies alone."""
    from com.model.errors import NotFound
    from com.policies import user_dir

    try:
        return user_dir(context.memory().root)
    except NotFound:
        if context.memory_option():
            raise
        return None


def _list(as_json: bool) -> None:
    from com.policies import list_policies
    from com.render.policies import listing

    emit(list_policies(_user_dir()), as_json, listing)


@app.callback()
@handled
def policies_main(ctx: typer.Context, as_json: bool = json_option()):
    """List, show or validate policies: what a context pack (com retrieve) is for and what goes in it.

    Without a subcommand: list them."""
    if ctx.invoked_subcommand is None:
        _list(as_json)


@app.command("list")
@handled
def policies_list_cmd(as_json: bool = json_option()):
    """List the policies, the memory's own first (a memory's file with a shipped id changes that policy)."""
    _list(as_json)


@app.command("show")
@handled
def policies_show_cmd(
    name: str = typer.Argument(..., help="A policy id, or a task name."),
    as_json: bool = json_option(),
):
    """Every key of one policy, where it comes from, and the event filter it decides."""
    from com.policies import show_policy
    from com.render.policies import shown

    emit(show_policy(name, _user_dir()), as_json, shown)


@app.command("validate")
@handled
def policies_validate_cmd(
    file: Path = typer.Argument(..., help="A policy YAML file."),
    as_json: bool = json_option(),
):
    """Check a policy file as com would read it; exit 1 with the file and the key when it is invalid."""
    from com.policies import validate_file
    from com.render.policies import validated

    emit(validate_file(file, _user_dir()), as_json, validated)
