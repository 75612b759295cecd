"""`com diff`."""

from __future__ import annotations

from typing import Optional

import typer

from com.cli import context
from com.cli.options import json_option
from com.cli.output import emit, handled

app = typer.Typer()


@app.command("diff")
@handled
def diff_cmd(
    a: str = typer.Argument(..., help="The older snapshot."),
    b: Optional[str] = typer.Argument(None, help="The newer snapshot (default: HEAD)."),
    exit_code: bool = typer.Option(False, "--exit-code", help="Exit 1 when a test is newly failing and not flaky "
                                                              "(a gate for CI)."),
    as_json: bool = json_option(),
):
    """Events added and removed between two snapshots; tests newly failing and fixed, flaky flips apart."""
    from com.ops.history import diff
    from com.render import history as render

    result = diff(context.memory(), a, b)
    emit(result, as_json, render.diff)
    if exit_code and result.summary.newly_failing:
        raise typer.Exit(1)
