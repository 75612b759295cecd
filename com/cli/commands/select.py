"""`com select` (tests to run for a change, or an order by history) and `com select report` (observation mode)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from com.cli import context
from com.cli.options import at_option, json_option
from com.cli.output import emit, handled, note
from com.model.errors import ComError

FORMATS = ("ids", "json", "table")

app = typer.Typer(name="select", invoke_without_command=True, rich_markup_mode=None)


def read_tests(source: str) -> list[str]:
    """Test ids from FILE or '-' (stdin): one per line; blank lines and '#' comments are ignored."""
    if source == "-":
        text = sys.stdin.read()
    else:
        try:
            text = Path(source).read_text(encoding="utf-8")
        except OSError as exc:
            raise ComError(f"cannot read {source}: {exc.strerror or exc}", param="tests") from None
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


@app.callback()
@handled
def select_cmd(
    ctx: typer.Context,
    diff: Optional[str] = typer.Option(None, "--diff", metavar="REV",
                                       help="The change: REV (REV..HEAD), A..B, or A...B of the code repository."),
    repo: Optional[str] = typer.Option(None, "--repo", metavar="PATH",
                                       help="The code repository (default: the one holding the working directory)."),
    budget: Optional[str] = typer.Option(None, "--budget", help="At most this share of the suite's time, e.g. 30%."),
    time_limit: Optional[str] = typer.Option(None, "--time", help="At most this much test time, e.g. 5m, 90s."),
    max_tests: Optional[int] = typer.Option(None, "--max", help="At most N tests."),
    fmt: str = typer.Option("ids", "--format", help="ids (one runnable id per line), json, or table."),
    rest: Optional[Path] = typer.Option(None, "--rest", metavar="FILE", help="Write the skipped ids to FILE."),
    at: Optional[str] = at_option("Read the test history as of this journal revision."),
    explain: bool = typer.Option(False, "--explain", help="Say why each test is selected or skipped."),
    worktree: bool = typer.Option(False, "--worktree", help="Include uncommitted changes (staged, unstaged, untracked)."),
    tests: Optional[str] = typer.Option(None, "--tests", metavar="FILE|-",
                                        help="Candidates: these ids only (one per line). Without --diff: order them "
                                             "by history alone."),
    no_fallback: bool = typer.Option(False, "--no-fallback",
                                     help="A global change (pyproject.toml, lock files, CI config, ...) does not "
                                          "select every test."),
    semantic: Optional[bool] = typer.Option(None, "--semantic/--no-semantic",
                                            help="Add similarity of the change to tests and past failures (the index)."),
    observe: Optional[bool] = typer.Option(None, "--observe/--no-observe",
                                           help="Run everything, record what the selection would have skipped."),
    project: Optional[str] = typer.Option(None, "--project", "-p", help="History of this project only."),
    as_json: bool = json_option(),
):
    """Tests to run for a code change (--diff REV), most likely to fail first; or an order by history (--tests).

    Ids go to stdout, one per line (`pytest $(com select --diff HEAD~1)`); the summary goes to stderr.
    Tests never run before and tests that failed in their latest run always run; a change to a global file
    selects everything unless --no-fallback. `com select report` shows what observation mode recorded."""
    if ctx.invoked_subcommand is not None:
        return
    from com.ops.select import SelectOptions, select
    from com.render import select as render

    if fmt not in FORMATS:
        raise ComError(f"unknown format '{fmt}' (expected {', '.join(FORMATS)})", param="fmt")
    if as_json:
        fmt = "json"
    candidates = read_tests(tests) if tests is not None else None
    opts = SelectOptions(diff=diff, repo=repo, budget=budget, time=time_limit, max_tests=max_tests, at=at,
                         worktree=worktree, tests=candidates, fallback=not no_fallback, semantic=semantic,
                         project=project, observe=observe)
    result = select(context.memory(), opts)
    obj = result.to_json()
    if rest is not None:
        try:
            rest.write_text("".join(f"{t}\n" for t in obj["skipped"]), encoding="utf-8")
        except OSError as exc:
            raise ComError(f"cannot write {rest}: {exc.strerror or exc}", param="rest") from None
    if fmt == "json":
        emit(obj, True, render.human)
        return
    if fmt == "table":
        emit(obj, False, render.human if explain else render.summary)
        return
    emit(obj, False, render.ids)
    note(render.summary(obj))
    if explain:
        note(render.explain(obj))


@app.command("report")
@handled
def select_report_cmd(
    at: Optional[str] = at_option(),
    project: Optional[str] = typer.Option(None, "--project", "-p", help="Only this project's selections and runs."),
    as_json: bool = json_option(),
):
    """What observation mode recorded: failures a real selection would have missed, and time it would have saved."""
    from com.ops.select import report
    from com.render.select import report as render

    emit(report(context.memory(), at=at, project=project), as_json, render)
