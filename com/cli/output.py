"""The one way commands speak: results to stdout (`--json`: one stable JSON object; else the human rendering,
fitted to the terminal, coloured only there, paged like git when long), notes, warnings, progress and errors to
stderr (the secret part of URLs redacted; under `--json` an error is one JSON object), and the exit code."""

from __future__ import annotations

import functools
import json
import os
import shutil
import sys
import time
from typing import Callable

from com.model.errors import ComError

# How this run of the command line speaks: set once by the app (`start_run`, `--no-pager`).
_run = {"as_json": False, "pager": True}


def start_run(as_json: bool = False) -> None:
    _run.update(as_json=as_json, pager=True, memory=None)


def set_pager(enabled: bool) -> None:
    _run["pager"] = enabled


def _terminal_out() -> bool:
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


def colour_wanted(stream=None) -> bool:
    """Colour only on a terminal, never with NO_COLOR set (https://no-color.org) or TERM=dumb."""
    stream = stream or sys.stdout
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        return False
    return tty and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"


def emit(result, as_json: bool, human: Callable[[dict], str | None]) -> None:
    """Print a use-case's result (anything with `to_json()`, or a dict). Long lists of events (`Stream`) are
    written as they are read with --json, and only counted by the human renderings."""
    from com.ops.result import Result

    if isinstance(result, Result):
        obj = result.to_json(lazy=True)
    else:
        obj = result.to_json() if hasattr(result, "to_json") else result
    clear_progress()
    if as_json:
        write_json(obj, sys.stdout)
        return
    from com.render import text as render_text

    tty = _terminal_out()
    render_text.configure(width=shutil.get_terminal_size().columns if tty else None, color=colour_wanted())
    text = human(obj)
    if text:
        page(text.rstrip("\n") + "\n")


def pager_command() -> str | None:
    """The pager a terminal user gets, as git chooses it: $COM_PAGER, else $PAGER, else less ('' or 'cat': none)."""
    for name in ("COM_PAGER", "PAGER"):
        value = os.environ.get(name)
        if value is not None:
            value = value.strip()
            return None if value in ("", "cat") else value
    return "less" if shutil.which("less") else None


def page(text: str) -> None:
    """Write `text` to stdout; through a pager when stdout is a terminal and the text is taller than it."""
    if _run["pager"] and _terminal_out():
        rows = shutil.get_terminal_size().lines
        command = pager_command()
        if command and text.count("\n") >= rows - 1:
            if _run_pager(command, text):
                return
    sys.stdout.write(text)


def _run_pager(command: str, text: str) -> bool:
    import subprocess

    env = dict(os.environ)
    env.setdefault("LESS", "FRX")  # as git: quit if one screen, keep colours, leave the text on screen
    env.setdefault("LV", "-c")
    sys.stdout.flush()
    try:
        proc = subprocess.Popen(command, shell=True, stdin=subprocess.PIPE, env=env)
    except OSError:
        return False
    try:
        proc.stdin.write(text.encode(sys.stdout.encoding or "utf-8", errors="replace"))
        proc.stdin.close()
    except BrokenPipeError:  # the reader quit early (q in less)
        pass
    try:
        proc.wait()
    except KeyboardInterrupt:
        proc.wait()
    return True


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


def flag_of(param: str | None, ctx=None) -> str | None:
    """The flag the user typed for a library parameter, from the running command (None for an argument: its
    value is named in the message already)."""
    if not param:
        return None
    import click

    ctx = ctx or click.get_current_context(silent=True)
    while ctx is not None:
        for p in ctx.command.params:
            if p.name == param or p.name == param.replace("-", "_"):
                if not isinstance(p, click.Option):
                    return None
                return ([o for o in p.opts if o.startswith("--")] or list(p.opts))[0]
        ctx = ctx.parent
    return None


def error(code: str, param: str | None, message: str, hint: str | None = None) -> None:
    """One error: a JSON object on stderr under --json, else one line (and a hint line)."""
    from com.journal.gitsafe import redact

    clear_progress()
    message = " ".join(message.split())  # one line, whatever the library said
    if _run["as_json"]:
        obj = {"error": {"code": code, "param": param, "message": redact(message)}}
        sys.stderr.write(json.dumps(obj, ensure_ascii=False) + "\n")
        return
    note(f"com: error: {message}")
    if hint:
        note(f"hint: {hint}")


def fail(exc: ComError, ctx=None) -> int:
    """Say a ComError (naming the flag at fault) and give its exit code."""
    flag = flag_of(exc.param, ctx)
    message = exc.message
    if flag and not message.startswith(flag):
        message = f"{flag}: {message}"
    error(exc.code, exc.param, message)
    return exc.exit_code


def internal_error(exc: BaseException) -> int:
    """A bug: one line for the user, the traceback only when asked for (COM_DEBUG=1)."""
    if os.environ.get("COM_DEBUG"):
        import traceback

        traceback.print_exception(exc)
    error("internal", None, f"internal error: {type(exc).__name__}: {exc}",
          hint="set COM_DEBUG=1 for the traceback, and please report it")
    return 3


def usage_error(exc, args=(), commands=()) -> int:
    """A command line click could not parse: one line naming the option, and where help is (the command the
    words in `args` name, among `commands`, when click does not say)."""
    import click

    ctx = exc.ctx
    param = getattr(exc, "param", None)
    if isinstance(exc, click.NoSuchOption):
        message = f"no such option '{exc.option_name}'"
        close = [p for p in (exc.possibilities or []) if p.startswith("--")] or list(exc.possibilities or [])
        if close:
            import difflib

            best = difflib.get_close_matches(exc.option_name, close, n=1, cutoff=0.0)
            message += f" (did you mean '{best[0]}'?)" if best else ""
    elif isinstance(exc, click.BadOptionUsage):
        message = exc.message
    elif isinstance(exc, click.MissingParameter) and param is not None:
        name = _param_name(param, ctx)
        message = f"missing {name}" if isinstance(param, click.Option) else f"missing argument {name}"
    elif isinstance(exc, click.BadParameter) and param is not None:
        message = f"{_param_name(param, ctx)}: {exc.message}"
    else:
        message = exc.format_message()
        command = getattr(ctx, "command", None)
        if message.startswith("No such command") and isinstance(command, click.Group):
            word = message.split("'")[1] if message.count("'") >= 2 else ""
            message = f"no such command '{word}'{suggest(word, command.list_commands(ctx))}"
    message = message[:1].lower() + message[1:] if message[:2] != message[:2].upper() else message
    message = message.rstrip(".")
    if ctx is not None and ctx.parent is not None:
        path = ctx.command_path
    else:
        words = [a for a in args if not a.startswith("-")]
        path = f"com {words[0]}" if words and words[0] in commands else "com"
    error("usage", getattr(param, "name", None), message, hint=f"'{path} --help' shows the usage")
    return 2


def suggest(word: str, choices) -> str:
    """" (did you mean 'log'?)" for a close match, else ""."""
    import difflib

    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _param_name(param, ctx) -> str:
    import click

    if isinstance(param, click.Option):
        return ([o for o in param.opts if o.startswith("--")] or list(param.opts))[0]
    return (param.metavar or param.name or "").upper()


def handled(fn):
    """A command's body: a ComError becomes one line on stderr naming the flag at fault (or a JSON object), and
    its exit code; a fault of the machine or of the memory's files (disk full, read-only, damaged) one line with
    its real cause, exit 2. What the memory noted on the way (derived data rebuilt, ...) is said as warnings."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        import typer

        try:
            return fn(*args, **kwargs)
        except ComError as exc:
            _notes()
            raise typer.Exit(fail(exc)) from None
        except Exception as exc:  # noqa: BLE001 - only faults named by `fault` are handled here
            message = fault(exc)
            if message is None:
                raise
            _notes()
            error("fault", None, message)
            raise typer.Exit(2) from None
        finally:
            _notes()

    return wrapper


def remember(memory) -> None:
    """The memory this run opened, whose notes (derived data rebuilt, ...) are said as warnings."""
    _run["memory"] = memory


def _notes() -> None:
    memory = _run.get("memory")
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

        memory = _run.get("memory")
        where = memory.cache_path if memory is not None else "."
        return f"{cause(exc, where)} (derived data: 'com fsck --repair' rebuilds it from the journal)"
    if isinstance(exc, OSError):
        name = f"{exc.filename}: " if exc.filename else ""
        if exc.errno == errno.ENOSPC or (exc.filename and disk_full(exc.filename)):
            return f"{name}no space left on device"
        if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            return f"{name}{exc.strerror} (the memory cannot be written here)"
        return f"{name}{exc.strerror}" if exc.errno is not None else str(exc)  # libgit2's have no errno
    if isinstance(exc, RecursionError):
        return "an event nests too deeply to be read (written by an older com or by hand): run 'com fsck'"
    pygit2 = sys.modules.get("pygit2")
    if pygit2 is not None and isinstance(exc, pygit2.GitError):
        return f"the journal cannot be read or written ({exc}): run 'com fsck'"
    return None


class Progress:
    """Progress of a long step on one updating stderr line, only on a terminal. A stage reported with total 0
    (loading a model: nothing to count) shows at once; counted stages after a second. The line is cleared
    when the command is done."""

    def __init__(self, label: str, stream=None):
        self.label = label
        self.stream = stream or sys.stderr
        self.started = time.monotonic()
        self.open = False
        _showing.append(self)

    def __call__(self, stage: str, done: int, total: int) -> None:
        if total and time.monotonic() - self.started < 1.0:
            return
        text = f"{self.label}: {stage}…" if not total else f"{self.label}: {stage} {done:,}/{total:,}"
        self.stream.write(f"\r{text}\033[K")
        self.stream.flush()
        self.open = True

    def close(self) -> None:
        if self.open:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self.open = False


_showing: list[Progress] = []


def clear_progress() -> None:
    """Clear progress lines before a result or an error is printed."""
    while _showing:
        _showing.pop().close()


def progress(label: str) -> Progress | None:
    """A progress callback for a long step (None when stderr is not a terminal)."""
    try:
        tty = sys.stderr.isatty()
    except (AttributeError, ValueError):
        tty = False
    return Progress(label) if tty else None


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
