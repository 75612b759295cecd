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
    _run.update(as_json=as_json, pager=True)


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
    """Print a use-case's result (anything with `to_json()`, or a dict)."""
    obj = result.to_json() if hasattr(result, "to_json") else result
    clear_progress()
    if as_json:
        sys.stdout.write(json.dumps(obj, ensure_ascii=False, indent=None) + "\n")
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
    its exit code."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        import typer

        try:
            return fn(*args, **kwargs)
        except ComError as exc:
            raise typer.Exit(fail(exc)) from None

    return wrapper


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


def tag_conflicts(conflicts: list) -> int:
    """Warn about tags that differ between the sides; the exit code says whether there were any."""
    for c in conflicts:
        warn(f"tag '{c['name']}' is {c['local'][:10]} here but {c['remote'][:10]} on the remote; kept as it is on each side")
    return 1 if conflicts else 0
