"""The command line: the only layer that touches argv, stdin, stdout/stderr, progress and exit codes."""

from __future__ import annotations

import os
import sys


def main() -> None:
    from com.cli.app import app
    from com.cli.output import note

    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # a bug: one line for the user, the traceback only when asked for
        if os.environ.get("COM_DEBUG"):
            raise
        note(f"com: internal error: {type(exc).__name__}: {exc} (set COM_DEBUG=1 for the traceback)")
        sys.exit(3)
