"""`com config`."""

from __future__ import annotations

import typer

from com.cli import context
from com.cli.options import json_option
from com.cli.output import emit, handled

app = typer.Typer()


@app.command("config")
@handled
def config_cmd(as_json: bool = json_option()):
    """Show the effective configuration and where each value came from.

    Keys com does not know ([tool.com] typos, stray COM_* variables) are warned about on stderr and listed
    under "unknown" in --json."""
    from com.ops.setup import settings_report
    from com.render.text import table
    from com.settings import load

    settings = load()
    context.settings_checked(settings)
    emit(settings_report(settings), as_json,
         lambda o: table([[s["key"], s["value"], s["source"]] for s in o["settings"]], ["key", "value", "source"]))
