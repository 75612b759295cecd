"""The `com` command line: a typer app whose commands are loaded lazily, one module per verb under
`com.cli.commands`, so `com --help` and `com ingest` import only what they run."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Optional

import click
import typer
from typer.core import TyperGroup

from com.cli import context

# verb -> (module under com.cli.commands, one line of help for `com --help`). A test checks each line
# against the command's own docstring.
COMMANDS: dict[str, tuple[str, str]] = {
    "init": ("init", "Create the memory (.com/ or $COM_DIR): a bare git journal, the index folder, a cache."),
    "config": ("config", "Show the effective configuration and where each value came from."),
    "ingest": ("ingest", "Record events: one from flags, JSON/JSONL from stdin (-) or --file, or JUnit XML reports (--junit)."),
    "commit": ("commit", "Record an analysis commit: a message and the events it is about, with no new events."),
    "events": ("events", "List events of a snapshot, newest first."),
    "log": ("log", "Journal history, newest first."),
    "show": ("show", "One journal commit: its message, the events it added, the events it is about."),
    "diff": ("diff", "Events added and removed between two snapshots; tests newly failing and fixed."),
    "branch": ("branch", "List journal branches, create one from a revision, or delete one."),
    "switch": ("switch", "Make NAME the current journal branch."),
    "tag": ("tag", "List tags, tag a revision (annotated with -m), or delete a tag."),
    "search": ("search", "Hybrid search: events similar in meaning to TEXT plus events sharing its keywords, fused by rank."),
    "index": ("index", "Update the semantic index (any command that reads it does this by itself), or rebuild it."),
    "remote": ("remote", "Remotes the journal is shared through (any git URL: file, ssh, https, git)."),
    "fetch": ("fetch", "Download the remote's journal branches and tags without changing local ones."),
    "pull": ("pull", "Fetch and bring the remote's batches in: fast-forward, or a merge commit holding both sides' batches."),
    "push": ("push", "Push the journal branch and new tags. If others pushed first: fetch, merge, retry (bounded, jittered)."),
    "clone": ("clone", "Create a memory from a shared journal: init, add the remote as 'origin', pull."),
    "select": ("select", "Tests to run for a code change (--diff REV), most likely to fail first; or an order by history (--tests)."),
    "hook": ("hook", "Git hooks: a pre-push hook that runs the tests a push can break."),
    "fsck": ("fsck", "Check the journal (git fsck, every batch, duplicate ids) and the derived data; exit 1 if a problem remains."),
}


def load_command(name: str) -> click.Command | None:
    """The click command of a verb, importing its module now."""
    entry = COMMANDS.get(name)
    if entry is None:
        return None
    module = importlib.import_module(f"com.cli.commands.{entry[0]}")
    command = typer.main.get_command(module.app)
    command.name = name
    return command


class LazyGroup(TyperGroup):
    """A group that knows its commands by name and help line, and imports a command's module only to run it."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        return load_command(name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, help_line) for name, (_, help_line) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


app = typer.Typer(
    cls=LazyGroup,
    help="A git-native memory of test runs: record results, read history, decide what to run.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _main(
    memory: Optional[Path] = typer.Option(
        None, "--memory", help="The memory folder to use (default: $COM_DIR, else the nearest .com/ upwards)."
    ),
):
    context.set_memory_option(memory)
