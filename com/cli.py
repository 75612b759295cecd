"""The `com` command line: parse, call one library function, print through com.output. No logic here.

Heavy libraries are imported inside the commands that need them, so `com ingest` and `com --help`
start fast enough for a shell loop."""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import List, Optional

import typer

from com.errors import ComError
from com.output import clip, emit, note, short, table

app = typer.Typer(
    help="A git-native memory of test runs: record results, read history, decide what to run.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

_state = {"memory": None}

JSON_HELP = "Print one JSON object with stable keys."
AT_HELP = "Read the journal as of REV: a sha, branch, tag, HEAD~N, or an ISO date/time."


def command(*args, group: typer.Typer | None = None, **kwargs):
    """group.command (default: the top-level app), plus: a ComError becomes one line on stderr and its
    exit code (2 for bad input)."""

    def decorate(fn):
        @functools.wraps(fn)
        def wrapper(*a, **kw):
            try:
                return fn(*a, **kw)
            except ComError as exc:
                note(f"com: error: {exc}")
                raise typer.Exit(exc.exit_code) from None

        return (group or app).command(*args, **kwargs)(wrapper)

    return decorate


@app.callback()
def _main(
    memory: Optional[Path] = typer.Option(
        None, "--memory", help="The memory folder to use (default: $COM_DIR, else the nearest .com/ upwards)."
    ),
):
    _state["memory"] = memory


def _memory():
    from com.memory import find_memory

    return find_memory(_state["memory"])


def _journal():
    return _memory().journal()


# -- set-up ------------------------------------------------------------------------------------
@command("init")
def init_cmd(as_json: bool = typer.Option(False, "--json", help=JSON_HELP)):
    """Create the memory (.com/ or $COM_DIR): a bare git journal, the index folder, a cache. Idempotent."""
    from com.memory import init_memory

    memory, created = init_memory(_state["memory"])
    obj = {"memory": str(memory.root), "journal": str(memory.journal_path), "created": created}
    emit(obj, as_json, lambda o: f"{'Initialised' if created else 'Already initialised'} com memory in {o['memory']}")


@command("config")
def config_cmd(as_json: bool = typer.Option(False, "--json", help=JSON_HELP)):
    """Show the effective configuration and where each value came from."""
    from com import config

    settings = config.load()
    obj = {"settings": [{"key": s.key, "value": s.value, "source": s.source} for s in settings.values()]}
    emit(obj, as_json, lambda o: table([[s["key"], s["value"], s["source"]] for s in o["settings"]], ["key", "value", "source"]))


# -- writing -----------------------------------------------------------------------------------
@command("ingest")
def ingest_cmd(
    inputs: Optional[List[str]] = typer.Argument(
        None, metavar="[-|REPORT...]", help="'-' reads JSON or JSONL from stdin; with --junit, more report paths."
    ),
    file: Optional[Path] = typer.Option(None, "--file", "-f", help="Read JSON or JSONL events from a file."),
    junit: Optional[List[str]] = typer.Option(None, "--junit", help="JUnit XML reports: files, folders or globs."),
    project: Optional[str] = typer.Option(None, "--project", "-p", help="Project of the event(s)."),
    type: Optional[str] = typer.Option(None, "--type", "-t", help="Event type for one event from flags."),
    source: Optional[str] = typer.Option(None, "--source", "-s", help="Where the event came from."),
    importance: Optional[float] = typer.Option(None, "--importance", "-i", help="0 to 5 (default by type)."),
    tag: Optional[List[str]] = typer.Option(None, "--tag", help="A tag (repeatable)."),
    data: Optional[str] = typer.Option(None, "--data", "-d", help="The event's data as a JSON object."),
    ts: Optional[str] = typer.Option(None, "--ts", help="When it happened (ISO-8601; default now)."),
    commit: Optional[str] = typer.Option(None, "--commit", help="Code revision the results ran against."),
    run_id: Optional[str] = typer.Option(None, "--run-id", help="Id of the test run."),
    repo: Optional[Path] = typer.Option(None, "--repo", help="Code repository (for the default --commit)."),
    branch: Optional[str] = typer.Option(None, "--branch", help="Code branch the results ran on."),
    message: Optional[str] = typer.Option(None, "--message", "-m", help="Journal commit message."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
):
    """Record events: one from flags, JSON/JSONL from stdin (-) or --file, or JUnit XML reports (--junit).

    One invocation is one atomic batch and one journal commit; known events are skipped."""
    import gc

    from com import ingest

    # A bulk ingest makes hundreds of thousands of small objects and no cycles: the collector would only
    # rescan them again and again (a fifth of the parse time); this process ends when the batch is written.
    gc.disable()
    memory = _memory()
    inputs = list(inputs or [])
    if junit:
        # `--junit a.xml b.xml c.xml` (a shell-expanded glob): the paths after the first arrive as arguments.
        events = ingest.from_junit(
            list(junit) + [i for i in inputs if i != "-"], project=project, commit=commit, run_id=run_id,
            repo=repo, branch=branch, source=source,
        )
    elif inputs or file is not None:
        if inputs not in ([], ["-"]) or (inputs and file is not None):
            raise ComError(f"unexpected argument '{' '.join(inputs)}' (use '-' for stdin, --file PATH or --junit)")
        events = ingest.from_json_text(file, project=project, source=source)
    else:
        events = ingest.from_flags(type, project=project, source=source, importance=importance, tags=tag, data=data, ts=ts)
    result = ingest.record(memory, events, message=message)

    def human(o):
        lines = [f"added {o['added']} event(s), {o['duplicates']} already known"]
        lines.append(f"commit {o['commit']}" if o["commit"] else "nothing new: no commit")
        lines.extend(o["ids"][:20])
        if len(o["ids"]) > 20:
            lines.append(f"… and {len(o['ids']) - 20} more")
        return "\n".join(lines)

    emit(result.to_json(), as_json, human)


@command("commit")
def commit_cmd(
    message: str = typer.Option(..., "--message", "-m", help="What the analysis found."),
    event: Optional[List[str]] = typer.Option(None, "--event", help="An event id the commit is about (repeatable)."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
):
    """Record an analysis commit: a message and the events it is about, with no new events."""
    sha = _journal().commit_message(message, list(event or []))
    emit({"commit": sha, "about": list(event or [])}, as_json, lambda o: f"commit {o['commit']}")


# -- reading -----------------------------------------------------------------------------------
def _event_rows(events):
    return [
        [
            e["ts"][:19].replace("T", " "),
            e["type"],
            e["project"],
            e["data"].get("status", ""),
            clip(e["data"].get("test_id") or e["data"].get("error_message") or json.dumps(e["data"]), 70),
        ]
        for e in events
    ]


@command("events")
def events_cmd(
    type: Optional[str] = typer.Option(None, "--type", "-t"),
    project: Optional[str] = typer.Option(None, "--project", "-p"),
    test: Optional[str] = typer.Option(None, "--test", help="Only results of this test id."),
    status: Optional[str] = typer.Option(None, "--status", help="passed, failed, error or skipped."),
    since: Optional[str] = typer.Option(None, "--since", help="ISO date/time."),
    until: Optional[str] = typer.Option(None, "--until", help="ISO date/time."),
    limit: int = typer.Option(50, "--limit", "-n", help="At most this many (0: all)."),
    at: Optional[str] = typer.Option(None, "--at", help=AT_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
):
    """List events of a snapshot, newest first."""
    from com.history import list_events

    events = list_events(
        _journal(), at=at, type=type, project=project, test=test, status=status,
        since=since, until=until, limit=limit or None,
    )
    emit(
        {"events": events},
        as_json,
        lambda o: table(_event_rows(o["events"]), ["time", "type", "project", "status", "what"]) if o["events"] else "",
    )


@command("log")
def log_cmd(
    rev: Optional[str] = typer.Argument(None, help="Start from this revision (default: the current branch)."),
    n: Optional[int] = typer.Option(None, "-n", "--max-count", help="Show at most N commits."),
    at: Optional[str] = typer.Option(None, "--at", help=AT_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
):
    """Journal history, newest first."""
    from com.history import log

    commits = log(_journal(), rev or at, n)

    def human(o):
        return table(
            [[short(c["sha"]), c["time"][:19].replace("T", " "), f"+{c['added']}", clip(c["message"].splitlines()[0], 70)]
             for c in o["commits"]]
        )

    emit({"commits": commits}, as_json, human)


@command("show")
def show_cmd(
    rev: str = typer.Argument("HEAD", help="A journal revision."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
):
    """One journal commit: its message, the events it added, the events it is about."""
    from com.history import show

    info = show(_journal(), rev)

    def human(o):
        head = [f"commit {o['sha']}", f"Date:  {o['time']}", "", *("    " + l for l in o["message"].splitlines()), ""]
        if o["events"]:
            head.append(f"{o['added']} event(s) added:")
            head.append(table(_event_rows(o["events"][:50])))
            if len(o["events"]) > 50:
                head.append(f"… and {len(o['events']) - 50} more")
        return "\n".join(head)

    emit(info, as_json, human)


@command("diff")
def diff_cmd(
    a: str = typer.Argument(..., help="The older snapshot."),
    b: Optional[str] = typer.Argument(None, help="The newer snapshot (default: HEAD)."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
):
    """Events added and removed between two snapshots; tests newly failing and fixed."""
    from com.history import diff

    d = diff(_journal(), a, b)

    def human(o):
        s = o["summary"]
        lines = [f"{short(o['from'])}..{short(o['to'])}: +{len(o['added'])} -{len(o['removed'])} events"]
        if s["newly_failing"]:
            lines.append(f"newly failing ({len(s['newly_failing'])}):")
            lines.extend("  " + t for t in s["newly_failing"][:30])
        if s["fixed"]:
            lines.append(f"fixed ({len(s['fixed'])}):")
            lines.extend("  " + t for t in s["fixed"][:30])
        return "\n".join(lines)

    emit(d, as_json, human)


# -- branches and tags ---------------------------------------------------------------------
@command("branch")
def branch_cmd(
    name: Optional[str] = typer.Argument(None, help="Create this branch (or delete it with -d)."),
    rev: Optional[str] = typer.Argument(None, help="Start the new branch here (default: HEAD)."),
    delete: bool = typer.Option(False, "-d", "--delete", help="Delete the branch."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
):
    """List journal branches, create one from a revision, or delete one."""
    journal = _journal()
    if delete:
        if not name:
            raise ComError("branch -d needs a branch name")
        journal.delete_branch(name)
        emit({"deleted": name}, as_json, lambda o: f"Deleted branch {name}")
    elif name:
        emit(journal.create_branch(name, rev), as_json, lambda o: f"Created branch {o['name']} at {short(o['sha'])}")
    else:
        emit(
            {"branches": journal.branches(), "current": journal.branch},
            as_json,
            lambda o: "\n".join(f"{'*' if b['current'] else ' '} {b['name']}  {short(b['sha'])}" for b in o["branches"]),
        )


@command("switch")
def switch_cmd(
    name: str = typer.Argument(..., help="The branch to write to and read from."),
    create: bool = typer.Option(False, "-c", "--create", help="Create it from HEAD first."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
):
    """Make NAME the current journal branch."""
    _journal().switch(name, create=create)
    emit({"branch": name}, as_json, lambda o: f"Switched to branch '{name}'")


@command("tag")
def tag_cmd(
    name: Optional[str] = typer.Argument(None, help="Create this tag (or delete it with -d)."),
    rev: Optional[str] = typer.Argument(None, help="Tag this revision (default: HEAD)."),
    message: Optional[str] = typer.Option(None, "-m", "--message", help="Make an annotated tag with MSG."),
    delete: bool = typer.Option(False, "-d", "--delete", help="Delete the tag."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
):
    """List tags, tag a revision (annotated with -m), or delete a tag."""
    journal = _journal()
    if delete:
        if not name:
            raise ComError("tag -d needs a tag name")
        journal.delete_tag(name)
        emit({"deleted": name}, as_json, lambda o: f"Deleted tag '{name}'")
    elif name:
        emit(journal.create_tag(name, rev, message), as_json, lambda o: f"Tagged {short(o['sha'])} as {o['name']}")
    else:
        emit(
            {"tags": journal.tags()},
            as_json,
            lambda o: table([[t["name"], short(t["sha"]), clip(t["message"], 60)] for t in o["tags"]]),
        )


# Command modules register themselves on `app` when imported (one line each, kept light).
# -- command modules --
from com.commands import search as _search  # noqa: E402,F401
from com.commands import sync as _sync  # noqa: E402,F401
from com.commands import policies as _policies  # noqa: E402,F401

def main() -> None:
    import os

    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # a bug: one line for the user, the traceback only when asked for
        if os.environ.get("COM_DEBUG"):
            raise
        note(f"com: internal error: {type(exc).__name__}: {exc} (set COM_DEBUG=1 for the traceback)")
        sys.exit(3)


if __name__ == "__main__":
    main()
