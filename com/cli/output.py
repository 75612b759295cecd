"""The one way commands speak: results to stdout (`--json`: one stable JSON object; else the human rendering),
notes, warnings, progress and errors to stderr (the secret part of URLs redacted), and the exit code."""

from __future__ import annotations

import functools
import json
import sys
import time
from typing import Callable

from com.model.errors import ComError


def emit(result, as_json: bool, human: Callable[[dict], str | None]) -> None:
    """Print a use-case's result (anything with `to_json()`, or a dict)."""
    obj = result.to_json() if hasattr(result, "to_json") else result
    if as_json:
        sys.stdout.write(json.dumps(obj, ensure_ascii=False, indent=None) + "\n")
        return
    text = human(obj)
    if text:
        sys.stdout.write(text.rstrip("\n") + "\n")


def note(message: str) -> None:
    # Every note, warning and error line: no URL's credentials ever reach a terminal or a CI log.
    from com.journal.gitsafe import redact

    sys.stderr.write(redact(message).rstrip("\n") + "\n")


def warn(message: str) -> None:
    note(f"com: warning: {message}")


def flag_of(param: str | None) -> str | None:
    """The flag the user typed for a library parameter, from the running command (None for an argument: its
    value is named in the message already)."""
    if not param:
        return None
    import click

    ctx = click.get_current_context(silent=True)
    while ctx is not None:
        for p in ctx.command.params:
            if p.name == param or p.name == param.replace("-", "_"):
                if not isinstance(p, click.Option):
                    return None
                return ([o for o in p.opts if o.startswith("--")] or list(p.opts))[0]
        ctx = ctx.parent
    return None


def handled(fn):
    """A command's body: a ComError becomes one line on stderr naming the flag at fault, and its exit code; a
    fault of the machine or of the memory's files (disk full, read-only, damaged) one line with its real cause,
    exit 2. What the memory noted on the way (derived data rebuilt, ...) is said as warnings."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        import typer

        try:
            return fn(*args, **kwargs)
        except ComError as exc:
            flag = flag_of(exc.param)
            message = exc.message
            if flag and not message.startswith(flag):
                message = f"{flag}: {message}"
            _notes()
            note(f"com: error: {message}")
            raise typer.Exit(exc.exit_code) from None
        except Exception as exc:  # noqa: BLE001 - only faults named by `fault` are handled here
            message = fault(exc)
            if message is None:
                raise
            _notes()
            note(f"com: error: {message}")
            raise typer.Exit(2) from None
        finally:
            _notes()

    return wrapper


def _notes() -> None:
    from com.cli import context

    memory = context.opened()
    if memory is not None:
        for line in memory.warnings():
            warn(line)


def fault(exc: BaseException) -> str | None:
    """One line for a fault outside com's code: the machine (disk full, read-only, permissions), a damaged
    derived store or journal object. None for anything else (a bug: the entry point reports it, exit 3)."""
    import errno
    import sqlite3

    from com.files.space import disk_full

    if isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, (sqlite3.ProgrammingError,
                                                                      sqlite3.InterfaceError)):
        from com.files.sqlite import cause

        memory = _opened_memory()
        where = memory.cache_path if memory is not None else "."
        return f"{cause(exc, where)} (derived data: 'com fsck --repair' rebuilds it from the journal)"
    if isinstance(exc, OSError):
        name = f"{exc.filename}: " if exc.filename else ""
        if exc.errno == errno.ENOSPC or (exc.filename and disk_full(exc.filename)):
            return f"{name}no space left on device"
        if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            return f"{name}{exc.strerror} (the memory cannot be written here)"
        if exc.errno is not None:
            return f"{name}{exc.strerror}"
        return None
    if isinstance(exc, RecursionError):
        return "an event nests too deeply to be read (written by an older com or by hand): run 'com fsck'"
    pygit2 = sys.modules.get("pygit2")
    if pygit2 is not None and isinstance(exc, pygit2.GitError):
        return f"the journal cannot be read or written ({exc}): run 'com fsck'"
    return None


def _opened_memory():
    from com.cli import context

    return context.opened()


def progress(label: str):
    """A progress callback writing one updating line to stderr, only on a terminal and only after a second."""
    if not sys.stderr.isatty():
        return None
    started = time.monotonic()

    def report(stage: str, done: int, total: int) -> None:
        if time.monotonic() - started < 1.0:
            return
        sys.stderr.write(f"\r{label}: {stage} {done}/{total}\033[K")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return report


def event_conflicts(events) -> None:
    """Warn about event ids a merge found with two contents (the version kept is the earliest recorded)."""
    for c in events.conflicts:
        dropped = ", ".join(d["batch"] for d in c["dropped"])
        warn(f"event {c['id']} had other content on the two sides; kept the version in {c['kept']['batch']} "
             f"(ts {c['kept']['ts']}), dropped the one in {dropped} (it stays in the history)")


def tag_conflicts(conflicts: list) -> int:
    """Warn about tags that differ between the sides; the exit code says whether there were any."""
    for c in conflicts:
        warn(f"tag '{c['name']}' is {c['local'][:10]} here but {c['remote'][:10]} on the remote; kept as it is on each side")
    return 1 if conflicts else 0
