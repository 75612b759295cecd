"""`com fsck`."""

from __future__ import annotations

import typer

from com.cli import context
from com.cli.options import json_option
from com.cli.output import emit, handled

app = typer.Typer()


@app.command("fsck")
@handled
def fsck_cmd(
    repair: bool = typer.Option(False, "--repair", help="Rebuild derived data (catalog, test results, search index) "
                                                         "that is damaged, and remove leftovers of killed processes."),
    as_json: bool = json_option(),
):
    """Check the journal (git fsck, every batch, duplicate ids) and the derived data; exit 1 if a problem remains."""
    from com.ops.fsck import fsck
    from com.render.sync import fsck as render

    report = fsck(context.memory(), repair=repair)
    emit(report, as_json, render)
    raise typer.Exit(0 if report.ok else 1)
