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
    """A command's body: a ComError becomes one line on stderr naming the flag at fault, and its exit code."""

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
            note(f"com: error: {message}")
            raise typer.Exit(exc.exit_code) from None

    return wrapper


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
