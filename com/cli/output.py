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
    """Print a use-case's result (anything with `to_json()`, or a dict). Long lists of events (`Stream`) are
    written as they are read with --json, and only counted by the human renderings."""
    from com.ops.result import Result

    if isinstance(result, Result):
        obj = result.to_json(lazy=True)
    else:
        obj = result.to_json() if hasattr(result, "to_json") else result
    if as_json:
        write_json(obj, sys.stdout)
        return
    text = human(obj)
    if text:
        sys.stdout.write(text.rstrip("\n") + "\n")


def write_json(obj, out) -> None:
    """One JSON document and a newline, as `json.dumps` writes it, except that a `Stream` is written chunk by
    chunk from its stored JSON text (compact, as events are stored): a million events never sit in memory."""
    from com.ops.result import Stream

    def has_stream(value) -> bool:
        if isinstance(value, Stream):
            return True
        if isinstance(value, dict):
            return any(has_stream(v) for v in value.values())
        return isinstance(value, list) and any(has_stream(v) for v in value)

    if not has_stream(obj):
        out.write(json.dumps(obj, ensure_ascii=False, indent=None) + "\n")
        return
    out.flush()
    raw = getattr(out, "buffer", None)
    write = raw.write if raw is not None else (lambda data: out.write(data.decode("utf-8")))

    def put(value) -> None:
        if isinstance(value, Stream):
            write(b"[")
            first = True
            for chunk in value.chunks():
                if chunk:
                    write((b"" if first else b", ") + b", ".join(chunk))
                    first = False
            write(b"]")
        elif isinstance(value, dict) and has_stream(value):
            write(b"{")
            for n, (key, item) in enumerate(value.items()):
                write((", " if n else "").encode() + json.dumps(key, ensure_ascii=False).encode("utf-8") + b": ")
                put(item)
            write(b"}")
        elif isinstance(value, list) and has_stream(value):
            write(b"[")
            for n, item in enumerate(value):
                if n:
                    write(b", ")
                put(item)
            write(b"]")
        else:
            write(json.dumps(value, ensure_ascii=False).encode("utf-8"))

    put(obj)
    write(b"\n")
    if raw is not None:
        raw.flush()


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


def tag_conflicts(conflicts: list) -> int:
    """Warn about tags that differ between the sides; the exit code says whether there were any."""
    for c in conflicts:
        warn(f"tag '{c['name']}' is {c['local'][:10]} here but {c['remote'][:10]} on the remote; kept as it is on each side")
    return 1 if conflicts else 0
