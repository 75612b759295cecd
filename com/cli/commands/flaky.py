"""`com flaky detect|show|mark|heal|stats|report|quarantine`: the flaky test registry."""

from __future__ import annotations

from typing import Optional

import typer

from com.cli import context
from com.cli.options import at_option, json_option
from com.cli.output import emit, handled, note
from com.model.errors import ComError

app = typer.Typer(
    name="flaky",
    help="The flaky test registry: detect flaky and broken tests, explain, mark, heal, report, quarantine.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)


def _project():
    return typer.Option(None, "--project", "-p", help="Only results of this project.")


def _days():
    return typer.Option(None, "--days", help="Only results of the last N days before the newest one.")


def _min_runs():
    return typer.Option(5, "--min-runs", help="Report a test as flaky only with at least N runs.")


@app.command("detect")
@handled
def detect_cmd(
    project: Optional[str] = _project(),
    days: Optional[float] = _days(),
    min_runs: int = _min_runs(),
    at: Optional[str] = at_option(),
    commit: bool = typer.Option(False, "--commit", help="Record this detection in the journal as a registry "
                                                        "snapshot (com diff between two tags then shows tests "
                                                        "that became flaky or were healed)."),
    as_json: bool = json_option(),
):
    """Flaky tests (flake rate, severity, confidence, evidence) and broken tests (the commit they broke at)."""
    from com.ops.flaky import detect
    from com.render import flaky as render

    emit(detect(context.memory(), at=at, project=project, days=days, min_runs=min_runs, commit=commit),
         as_json, render.detect)


@app.command("show")
@handled
def show_cmd(
    test_id: str = typer.Argument(..., help="The test's id (a pytest node id, or as recorded)."),
    project: Optional[str] = _project(),
    days: Optional[float] = _days(),
    min_runs: int = _min_runs(),
    at: Optional[str] = at_option(),
    no_embed: bool = typer.Option(False, "--no-embed", help="Group failures by exact signature only (no model)."),
    no_similar: bool = typer.Option(False, "--no-similar", help="Do not search for similar healed failures."),
    as_json: bool = json_option(),
):
    """One test: its history, manifestations, lifecycle, healing attempts and recommended strategies."""
    from com.ops.flaky import show
    from com.render import flaky as render

    emit(show(context.memory(), test_id, at=at, project=project, days=days, min_runs=min_runs, embed=not no_embed,
              similar=not no_similar), as_json, render.show)


@app.command("mark")
@handled
def mark_cmd(
    test_id: str = typer.Argument(..., help="The test's id."),
    status: str = typer.Argument(..., help="detected, investigating, healing_attempted, healed, quarantined or "
                                           "false_positive."),
    message: Optional[str] = typer.Option(None, "-m", "--message", help="Why (kept with the change)."),
    project: Optional[str] = typer.Option(None, "--project", "-p", help="Project to record the change in "
                                                                        "(default: the test's own)."),
    as_json: bool = json_option(),
):
    """Change a test's lifecycle status; the change is a journal event (versioned, diffable, read with --at)."""
    from com.ops.flaky import mark
    from com.render import flaky as render

    emit(mark(context.memory(), test_id, status, reason=message, project=project), as_json, render.mark)


@app.command("heal")
@handled
def heal_cmd(
    test_id: str = typer.Argument(..., help="The test's id."),
    strategy: str = typer.Option(..., "--strategy", "-s", help="What was tried, e.g. increase_timeout, "
                                                               "wait_for_selector, mock_network."),
    outcome: str = typer.Option(..., "--outcome", help="success or failure."),
    message: Optional[str] = typer.Option(None, "-m", "--message", help="Notes on the attempt."),
    category: Optional[str] = typer.Option(None, "--category", help="Manifestation category (default: that of "
                                                                    "the test's main way of failing)."),
    project: Optional[str] = typer.Option(None, "--project", "-p", help="Project to record the attempt in "
                                                                        "(default: the test's own)."),
    as_json: bool = json_option(),
):
    """Record a healing attempt (a success makes the test healed, a failure healing_attempted)."""
    from com.ops.flaky import heal
    from com.render import flaky as render

    emit(heal(context.memory(), test_id, strategy, outcome, notes=message, category=category, project=project),
         as_json, render.heal)


@app.command("stats")
@handled
def stats_cmd(at: Optional[str] = at_option(), as_json: bool = json_option()):
    """Success rates of healing attempts by strategy and by manifestation category."""
    from com.ops.flaky import stats
    from com.render import flaky as render

    emit(stats(context.memory(), at=at), as_json, render.stats)


@app.command("report")
@handled
def report_cmd(
    project: Optional[str] = _project(),
    days: Optional[float] = _days(),
    min_runs: int = _min_runs(),
    top: int = typer.Option(10, "--top", help="How many of the flakiest tests to list."),
    at: Optional[str] = at_option(),
    fmt: str = typer.Option("markdown", "--format", help="markdown or json."),
    as_json: bool = json_option(),
):
    """Summary by severity and status, the flakiest tests, ongoing breakages, healing success."""
    from com.ops.flaky import report
    from com.render import flaky as render

    if fmt not in ("markdown", "json"):
        raise ComError(f"unknown format '{fmt}' (expected markdown or json)", param="fmt")
    emit(report(context.memory(), at=at, project=project, days=days, min_runs=min_runs, top=top),
         as_json or fmt == "json", render.report)


@app.command("quarantine")
@handled
def quarantine_cmd(
    at: Optional[str] = at_option(),
    fmt: str = typer.Option("ids", "--format", help="ids (one per line, for CI) or json."),
    as_json: bool = json_option(),
):
    """Tests whose failures do not fail CI (pytest --com-quarantine): one id per line, or JSON."""
    from com.ops.flaky import quarantine
    from com.render import flaky as render

    if fmt not in ("ids", "json"):
        raise ComError(f"unknown format '{fmt}' (expected ids or json)", param="fmt")
    result = quarantine(context.memory(), at=at)
    emit(result, as_json or fmt == "json", render.quarantine_ids)
    if not result.quarantined and not (as_json or fmt == "json"):
        note("com: no test is quarantined")
