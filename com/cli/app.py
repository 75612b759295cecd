"""The `com` command line: a typer app whose commands are loaded lazily, one module per verb under
`com.cli.commands`, so `com --help` and `com ingest` import only what they run.

The group also owns how a run ends: a usage error is one line and a hint (a JSON object under `--json`), a
`ComError` its own exit code, anything else an internal error (exit 3). So a test driving the app in-process
sees exactly what a user sees."""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Optional

import click
import typer
from typer.core import TyperGroup

from com.cli import context, output

# verb -> (module under com.cli.commands, one line of help for `com --help`). A test checks each line
# against the command's own docstring.
COMMANDS: dict[str, tuple[str, str]] = {
    "init": ("init", "Create the memory (.com/ or $COM_DIR): a bare git journal, the index folder, a cache."),
    "config": ("config", "Show the effective configuration and where each value came from."),
    "ingest": ("ingest", "Record events: one from flags, JSON/JSONL from stdin (-) or --file, or JUnit XML reports (--junit)."),
    "commit": ("commit", "Record an analysis commit: a message and the events it is about, with no new events."),
    "events": ("events", "List events of a snapshot, newest first."),
    "log": ("log", "Journal history, newest first."),
    "show": ("show", "One journal commit (its message, the events it added or is about), or one event whole."),
    "diff": ("diff", "Events added and removed between two snapshots; tests newly failing and fixed, flaky flips apart."),
    "branch": ("branch", "List journal branches, create one from a revision, or delete one."),
    "switch": ("switch", "Make NAME the current journal branch."),
    "tag": ("tag", "List tags, tag a revision (annotated with -m), or delete a tag."),
    "search": ("search", "Hybrid search: events similar in meaning to TEXT plus events sharing its keywords."),
    "retrieve": ("retrieve", "A context pack for a task: the evidence a policy picks, within a token budget, as Markdown or JSON."),
    "policies": ("policies", "List, show or validate policies: what a context pack (com retrieve) is for and what goes in it."),
    "flaky": ("flaky", "The flaky test registry: detect flaky and broken tests, explain, mark, heal, report, quarantine."),
    "rollup": ("rollup", "Summaries of a day, a week or a failure pattern: facts, and a narrative from a local GGUF model."),
    "index": ("index", "Update the semantic index (any command that reads it does this by itself), or rebuild it."),
    "serve": ("serve", "Answer search requests, one JSON object per line, from a resident process (stdin/stdout or a unix socket)."),
    "remote": ("remote", "Remotes the journal is shared through (any git URL: file, ssh, https, git)."),
    "fetch": ("fetch", "Download the remote's journal branches and tags without changing local ones."),
    "pull": ("pull", "Fetch and bring the remote's batches in: fast-forward, or a merge commit holding both sides' batches."),
    "push": ("push", "Push the journal branch and new tags. If others pushed first: fetch, merge, retry (bounded, jittered)."),
    "clone": ("clone", "Create a memory from a shared journal: init, add the remote as 'origin', pull."),
    "select": ("select", "Tests to run for a code change (--diff REV), most likely to fail first; or an order by history (--tests)."),
    "hook": ("hook", "Git hooks: a pre-push hook that runs the tests a push can break."),
    "fsck": ("fsck", "Check the journal (git fsck, every batch, duplicate ids) and the derived data; exit 1 if a problem remains."),
    "completion": ("completion", "Print the shell completion script for bash, zsh or fish."),
}


class HelpFormatter(click.HelpFormatter):
    """click's formatter, minus the backslashes typer puts before '[' for rich (`\\[required]`)."""

    def write_dl(self, rows, col_max: int = 30, col_spacing: int = 2) -> None:
        super().write_dl([(a, b.replace("\\[", "[") if b else b) for a, b in rows], col_max, col_spacing)

    def write_text(self, text: str) -> None:
        super().write_text(text.replace("\\[", "["))


class Context(click.Context):
    formatter_class = HelpFormatter


def _plain(command: click.Command) -> click.Command:
    """One look for every help page: click's plain text (typer would use rich for single commands)."""
    command.context_class = Context
    if hasattr(command, "rich_markup_mode"):
        command.rich_markup_mode = None
    if hasattr(command, "suggest_commands"):
        command.suggest_commands = False  # said once, by com.cli.output.usage_error
    for sub in getattr(command, "commands", {}).values():
        _plain(sub)
    return command


def load_command(name: str) -> click.Command | None:
    """The click command of a verb, importing its module now."""
    entry = COMMANDS.get(name)
    if entry is None:
        return None
    module = importlib.import_module(f"com.cli.commands.{entry[0]}")
    module.app._add_completion = False  # `com completion SHELL` instead of per-command install options
    module.app.rich_markup_mode = None
    command = typer.main.get_command(module.app)
    command.name = name
    return _plain(command)


class LazyGroup(TyperGroup):
    """A group that knows its commands by name and help line, and imports a command's module only to run it."""

    context_class = Context

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        return load_command(name)

    def resolve_command(self, ctx: click.Context, args: list[str]):
        name = click.utils.make_str(args[0])
        if name not in COMMANDS and not name.startswith("-"):
            raise click.UsageError(f"no such command '{name}'{output.suggest(name, COMMANDS)}", ctx)
        return click.Group.resolve_command(self, ctx, args)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, help_line) for name, (_, help_line) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def _main_shell_completion(self, ctx_args, prog_name: str, complete_var: str | None = None) -> None:
        # click's own protocol (`_COM_COMPLETE=bash_source com`), the one `com completion` prints.
        click.Command._main_shell_completion(self, ctx_args, "com", complete_var or "_COM_COMPLETE")

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        from com.cli.output import fail, internal_error, usage_error

        args = list(sys.argv[1:] if args is None else args)
        context.reset(as_json="--json" in args)
        try:
            result = super().main(args, "com", complete_var, False, **extra)
            code = result if isinstance(result, int) else 0
        except click.exceptions.NoArgsIsHelpError as exc:
            click.echo(exc.ctx.get_help() if exc.ctx else self.get_help(click.Context(self)))
            code = 0
        except click.UsageError as exc:
            code = usage_error(exc, args, COMMANDS)
        except click.exceptions.Exit as exc:
            code = exc.exit_code
        except (click.Abort, KeyboardInterrupt):
            sys.stderr.write("\n")
            code = 130
        except BrokenPipeError:
            # The reader went away (`com log | head`): nothing more to say, and nothing to say it to.
            _silence_stdout()
            code = 0
        except Exception as exc:
            from com.model.errors import ComError

            code = fail(exc) if isinstance(exc, ComError) else internal_error(exc)
        finally:
            context.finish()
        sys.exit(code)


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _version(value: bool) -> None:
    if value:
        from com import __version__

        click.echo(f"com {__version__}")
        raise typer.Exit(0)


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
    no_pager: bool = typer.Option(False, "--no-pager", "-P",
                                  help="Never page long output (default: page through $COM_PAGER, $PAGER or less "
                                       "in a terminal)."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print com's version and exit."),
):
    context.set_memory_option(memory)
    output.set_pager(not no_pager)
