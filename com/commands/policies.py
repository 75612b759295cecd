"""`com policies [list | show ID | validate FILE]`: the shipped policies and the memory's own (.com/policies/).

Thin glue over com.policies (imported inside each command, so `com --help` stays fast)."""

from __future__ import annotations

from pathlib import Path

import typer

from com.cli import JSON_HELP, _state, app, command
from com.errors import ComError
from com.output import clip, emit, note, table

policies_app = typer.Typer(
    help="Policies: what a context pack (com retrieve) is for and what goes in it. Without a subcommand: list.",
    invoke_without_command=True,
    rich_markup_mode=None,
)
app.add_typer(policies_app, name="policies")


def _user_dir() -> Path | None:
    """The memory's policies folder; without a memory (and none named), the shipped policies alone."""
    from com.memory import find_memory
    from com.policies import user_dir

    try:
        return user_dir(find_memory(_state["memory"]).root)
    except ComError:
        if _state["memory"]:
            raise
        return None


def _list(as_json: bool) -> None:
    from com.policies import list_policies

    emit(list_policies(_user_dir()), as_json, lambda o: table(
        [[p["id"], p["task"], p["budget_tokens"], p["origin"], clip(p["description"], 70)] for p in o["policies"]],
        ["id", "task", "budget", "from", "description"]))


@policies_app.callback()
def policies_main(ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help=JSON_HELP)):
    if ctx.invoked_subcommand is None:
        try:
            _list(as_json)
        except ComError as exc:
            note(f"com: error: {exc}")
            raise typer.Exit(exc.exit_code) from None


@command("list", group=policies_app)
def policies_list_cmd(as_json: bool = typer.Option(False, "--json", help=JSON_HELP)):
    """List the policies, the memory's own first (a memory's file with a shipped id changes that policy)."""
    _list(as_json)


@command("show", group=policies_app)
def policies_show_cmd(
    name: str = typer.Argument(..., help="A policy id, or a task name."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
):
    """Every key of one policy, where it comes from, and the event filter it decides."""
    import yaml

    from com.policies import show_policy

    def human(o):
        p = dict(o["policy"])
        source = f"# {p.pop('origin')}: {p.pop('path')}" + (f" (changes {p['overrides']})" if p["overrides"] else "")
        p.pop("overrides")
        return source + "\n" + yaml.safe_dump(p, sort_keys=False, default_flow_style=None, width=110).rstrip()

    emit(show_policy(name, _user_dir()), as_json, human)


@command("validate", group=policies_app)
def policies_validate_cmd(
    file: Path = typer.Argument(..., help="A policy YAML file."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
):
    """Check a policy file as com would read it; exit 1 with the file and the key when it is invalid."""
    from com.policies import validate_file

    emit(validate_file(file, _user_dir()), as_json, lambda o: (
        f"{o['path']}: valid policy {o['policy']['id']} (task {o['policy']['task']})"
        + (f", changes the shipped {o['overrides']}" if o["overrides"] else "")))
