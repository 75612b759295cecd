"""`com hook install` (a pre-push hook that selects, runs and records the tests a push can break) and
`com hook run pre-push` (what that hook runs)."""

from __future__ import annotations

import sys
from typing import List, Optional

import typer

from com.cli import context
from com.cli.options import json_option
from com.cli.output import emit, handled, note

app = typer.Typer(name="hook", help="Git hooks: a pre-push hook that runs the tests a push can break.",
                  no_args_is_help=True, rich_markup_mode=None)


@app.command("install")
@handled
def hook_install_cmd(
    runner: str = typer.Option("pytest -q", "--runner", help="The test command; the selected ids are appended."),
    repo: Optional[str] = typer.Option(None, "--repo", metavar="PATH", help="The code repository (default: here)."),
    as_json: bool = json_option(),
):
    """Install the pre-push hook: select the tests the pushed commits can break, run them (recorded by the
    pytest plugin), block the push if one fails. An existing pre-push hook is kept and runs first."""
    from com.ops.hook import install

    def human(o: dict) -> str:
        lines = [("Updated" if o["updated"] else "Installed") + f" {o['hook']} (runner: {o['runner']})"]
        if o["chained"]:
            lines.append(f"The earlier hook runs first: {o['chained']}")
        return "\n".join(lines)

    emit(install(context.memory(), repo, runner), as_json, human)


@app.command("run", hidden=True)
@handled
def hook_run_cmd(
    name: str = typer.Argument(..., help="The hook: pre-push."),
    args: Optional[List[str]] = typer.Argument(None, help="What git passed the hook (remote name and URL)."),
    runner: str = typer.Option("pytest -q", "--runner", help="The test command; the selected ids are appended."),
    observe: Optional[bool] = typer.Option(None, "--observe/--no-observe",
                                           help="Run everything, record what the selection would have skipped."),
    from_pre_commit: bool = typer.Option(False, "--from-pre-commit",
                                         help="Read the pushed range from pre-commit's PRE_COMMIT_* variables."),
    as_json: bool = json_option(),
):
    """Run a hook as git runs it (the installed pre-push hook calls this with git's arguments and input)."""
    import os

    from com.model.errors import ComError
    from com.ops.hook import check_exit, pre_commit_input, run_pre_push

    if name != "pre-push":
        raise ComError(f"unknown hook '{name}' (com installs pre-push)", param="name")
    args = list(args or [])
    remote = args[0] if args else os.environ.get("PRE_COMMIT_REMOTE_NAME", "origin")
    url = args[1] if len(args) > 1 else os.environ.get("PRE_COMMIT_REMOTE_URL", "")
    text = pre_commit_input(os.environ) if from_pre_commit else sys.stdin.read()
    run = run_pre_push(context.memory(), remote, url, text, runner=runner, observe=observe)
    obj = run.to_json()
    if as_json:
        emit(obj, True, str)
    else:
        what = "every test" if obj["selected"] == ["<every test>"] else f"{len(obj['selected'])} selected tests"
        if obj["command"]:
            note(f"com pre-push: ran {what} ({obj['fallback']})" if obj["fallback"] else f"com pre-push: ran {what}")
        for m in obj["messages"]:
            note(f"com pre-push: {m}")
    check_exit(run)
