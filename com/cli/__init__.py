"""The command line: the only layer that touches argv, stdin, stdout/stderr, progress and exit codes."""

from __future__ import annotations

import os
import sys


def main() -> None:
    try:
        if "ingest" in sys.argv[1:3]:
            # One event from flags, the shell-loop case: answered without loading typer when it is the plain form.
            from com.cli.quick import ingest

            code = ingest(sys.argv[1:])
            if code is not None:
                sys.exit(code)
        from com.cli.app import app

        app()
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # a bug: one line for the user, the traceback only when asked for
        if os.environ.get("COM_DEBUG"):
            raise
        from com.cli.output import note

        note(f"com: internal error: {type(exc).__name__}: {exc} (set COM_DEBUG=1 for the traceback)")
        sys.exit(3)
