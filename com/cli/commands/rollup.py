"""`com rollup daily|weekly|pattern`: summaries of a day, a week or a failure pattern, told by a local model."""

from __future__ import annotations

from typing import Optional

import typer

from com.cli import context
from com.cli.options import at_option, json_option
from com.cli.output import emit, handled, progress

app = typer.Typer(
    name="rollup",
    help="Summaries of a day, a week or a failure pattern: facts, and a narrative from a local GGUF model.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)


def _project():
    return typer.Option(None, "--project", "-p", help="Only results of this project.")


def _no_llm():
    return typer.Option(False, "--no-llm", help="Write the narrative from the facts without any model.")


def _model():
    return typer.Option(None, "--model", help="A .gguf file (or a packaged model's name: gemma3-270m, "
                                              "smollm2-135m) instead of COM_LLM_MODEL / the packaged default.")


def _no_save():
    return typer.Option(False, "--no-save", help="Do not record the roll-up as a journal event.")


def _emit(result, as_json: bool) -> None:
    from com.render import rollup as render

    emit(result, as_json, render.rollup)


@app.command("daily")
@handled
def daily_cmd(
    day: Optional[str] = typer.Option(None, "--date", help="The UTC day, YYYY-MM-DD, today or yesterday "
                                                           "(default: the day of the newest result)."),
    project: Optional[str] = _project(),
    at: Optional[str] = at_option(),
    as_json: bool = json_option(),
    no_llm: bool = _no_llm(),
    model: Optional[str] = _model(),
    no_save: bool = _no_save(),
):
    """One day: runs, pass rate and its change, new failures, fixes, flaky tests, errors, durations, healing."""
    from com.ops.rollup import daily

    _emit(daily(context.memory(), day=day, project=project, at=at, llm=not no_llm, model=model, save=not no_save,
                progress=progress("com rollup")),
          as_json)


@app.command("weekly")
@handled
def weekly_cmd(
    week: Optional[str] = typer.Option(None, "--week", help="An ISO week, e.g. 2026-W48 (default: the week of "
                                                            "the newest result)."),
    start: Optional[str] = typer.Option(None, "--from", help="First day (YYYY-MM-DD), instead of --week."),
    end: Optional[str] = typer.Option(None, "--to", help="Last day, included (YYYY-MM-DD), instead of --week."),
    project: Optional[str] = _project(),
    at: Optional[str] = at_option(),
    as_json: bool = json_option(),
    no_llm: bool = _no_llm(),
    model: Optional[str] = _model(),
    no_save: bool = _no_save(),
):
    """A week (or any span of days): the daily facts over it, a day-by-day trend, issues that recurred."""
    from com.ops.rollup import weekly

    _emit(weekly(context.memory(), week=week, start=start, end=end, project=project, at=at, llm=not no_llm,
                 model=model, save=not no_save, progress=progress("com rollup")), as_json)


@app.command("pattern")
@handled
def pattern_cmd(
    test: Optional[str] = typer.Option(None, "--test", help="One test's failures (its exact id)."),
    signature: Optional[str] = typer.Option(None, "--signature", help="Failures whose error signature contains "
                                                                      "TEXT (case-insensitive)."),
    tag: Optional[str] = typer.Option(None, "--tag", help="Failures of tests carrying this tag or marker."),
    days: int = typer.Option(30, "--days", help="How many days, up to the newest result's day."),
    project: Optional[str] = _project(),
    at: Optional[str] = at_option(),
    as_json: bool = json_option(),
    no_llm: bool = _no_llm(),
    model: Optional[str] = _model(),
    no_save: bool = _no_save(),
):
    """One failure pattern: occurrences, affected tests, first and last seen, evidence, a root-cause hypothesis."""
    from com.ops.rollup import pattern

    _emit(pattern(context.memory(), test=test, signature=signature, tag=tag, days=days, project=project, at=at,
                  llm=not no_llm, model=model, save=not no_save, progress=progress("com rollup")), as_json)
