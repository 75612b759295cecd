"""`com config`."""

from __future__ import annotations

import typer

from com.cli.options import json_option
from com.cli.output import emit, handled

app = typer.Typer()


@app.command("config")
@handled
def config_cmd(as_json: bool = json_option()):
    """Show the effective configuration and where each value came from."""
    from com.ops.setup import settings_report
    from com.render.text import table
    from com.settings import load

    emit(settings_report(load()), as_json,
         lambda o: table([[s["key"], s["value"], s["source"]] for s in o["settings"]], ["key", "value", "source"]))
