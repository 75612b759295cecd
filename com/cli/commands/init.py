"""`com init`."""

from __future__ import annotations

import typer

from com.cli import context
from com.cli.options import json_option
from com.cli.output import emit, handled

app = typer.Typer()


@app.command("init")
@handled
def init_cmd(as_json: bool = json_option()):
    """Create the memory (.com/ or $COM_DIR): a bare git journal, the index folder, a cache. Idempotent."""
    from com.ops.setup import init

    result = init(context.memory_option())
    emit(result, as_json,
         lambda o: f"{'Initialised' if o['created'] else 'Already initialised'} com memory in {o['memory']}")
