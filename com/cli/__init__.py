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

    code = 0
    try:
        app()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
        if not isinstance(exc.code, (int, type(None))):
            sys.stderr.write(f"{exc.code}\n")
    _leave(code)


def _leave(code: int) -> None:
    """End the process once a command is done, without tearing the interpreter down: by now the memory is
    closed (`context.finish`), so what teardown would add is freeing every module and object one by one, 25-30
    ms after the answer is out (a tenth of `com diff HEAD~1`). Running threads are waited for and exit handlers
    run (a scratch copy of a read-only cache is removed, a loaded model closed); the output is flushed."""
    import atexit
    import os
    import sys

    threading = sys.modules.get("threading")
    if threading is not None:  # as the interpreter's own exit does: threads still at work are waited for
        threading._shutdown()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # the reader went away (`com log | head`), or the stream is closed
            pass
    os._exit(code)
