"""`com completion`."""

from __future__ import annotations

import click
import typer

from com.cli.output import handled

app = typer.Typer()

SHELLS = ("bash", "zsh", "fish")


@app.command("completion")
@handled
def completion_cmd(
    shell: str = typer.Argument(..., click_type=click.Choice(SHELLS), help="bash, zsh or fish."),
):
    """Print the shell completion script for bash, zsh or fish.

    bash: eval "$(com completion bash)" in ~/.bashrc; zsh: eval "$(com completion zsh)" in ~/.zshrc;
    fish: com completion fish > ~/.config/fish/completions/com.fish"""
    from click.shell_completion import get_completion_class

    root = click.get_current_context().find_root().command
    cls = get_completion_class(shell)
    typer.echo(cls(root, {}, "com", "_COM_COMPLETE").source())
