"""`com ingest`."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from com.cli import context
from com.cli.options import json_option
from com.cli.output import emit, handled, warn
from com.model.errors import ComError

app = typer.Typer()


@app.command("ingest")
@handled
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
    as_json: bool = json_option(),
):
    """Record events: one from flags, JSON/JSONL from stdin (-) or --file, or JUnit XML reports (--junit).

    One invocation is one atomic batch and one journal commit; known events are skipped."""
    import gc
    import sys

    from com.ops import ingest
    from com.render import history as render

    # A bulk ingest makes hundreds of thousands of small objects and no cycles: the collector would only
    # rescan them again and again (a fifth of the parse time); this process ends when the batch is written.
    gc.disable()
    memory = context.memory()
    inputs = list(inputs or [])
    if junit:
        # `--junit a.xml b.xml c.xml` (a shell-expanded glob): the paths after the first arrive as arguments.
        events = ingest.from_junit(memory, list(junit) + [i for i in inputs if i != "-"], warn, project=project,
                                   commit=commit, run_id=run_id, repo=repo, branch=branch, source=source)
    elif inputs or file is not None:
        if inputs not in ([], ["-"]) or (inputs and file is not None):
            raise ComError(f"unexpected argument '{' '.join(inputs)}' (use '-' for stdin, --file PATH or --junit)")
        if file is not None:
            text, origin = ingest.read_text_file(file), str(file)
        else:
            try:
                text, origin = sys.stdin.read(), "<stdin>"
            except UnicodeDecodeError as exc:
                raise ComError(f"<stdin>: not UTF-8 text ({exc.reason})") from None
        events = ingest.from_json_text(text, origin, project=project, source=source, memory=memory)
    else:
        events = ingest.from_flags(memory, type, project=project, source=source, importance=importance, tags=tag,
                                   data=data, ts=ts)
    result = ingest.record(memory, events, message=message)
    for line in result.warnings:
        warn(line)
    emit(result, as_json, render.ingest)
