"""Command groups too big for com/cli.py, one module each; importing a module registers its commands.

Each module imports only typer and light modules at the top: heavy libraries load inside commands."""
