"""The command line: the only layer that touches argv, stdin, stdout/stderr, progress and exit codes."""

from __future__ import annotations


def main() -> None:
    """The `com` entry point (and `python -m com`): the app ends the process with its exit code."""
    from com.cli.app import app

    app()
