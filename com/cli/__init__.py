"""The command line: the only layer that touches argv, stdin, stdout/stderr, progress and exit codes."""

from __future__ import annotations


def main() -> None:
    """The `com` entry point (and `python -m com`): the app ends the process with its exit code."""
    import os
    import sys

    # numpy's OpenBLAS starts a thread per core that spins for about 0.1 s of CPU when numpy is imported; com's
    # column work is element-wise, not BLAS, and the other core is the test run's or CI's. One thread, unless
    # the user says otherwise.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    if "ingest" in sys.argv[1:4]:  # `ingest ...`, `--memory=PATH ingest ...` or `--memory PATH ingest ...`
        # One event from flags, the shell-loop case: answered without loading typer when it is the plain form.
        from com.cli.quick import ingest

        code = ingest(sys.argv[1:])
        if code is not None:
            # Ended here, without closing the SQLite stores: the last connection to close checkpoints its WAL
            # with two fsyncs per store (three stores), most of a one-event ingest's time on a busy disk. The
            # next process takes the WAL as it is (exactly what SQLite does after a crash); the data is saved.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    from com.cli.app import app

    app()
