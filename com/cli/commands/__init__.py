"""One module per verb; each defines `app`, a typer app holding that verb (a command or a group)."""
