"""`com ingest` of one event from flags, without loading typer: a shell loop or a CI step calling it once per
event pays for Python and pygit2, not for a command-line framework (typer and click cost about as much as
pygit2 itself). Only the plain forms are read here (`-p/--project`, `-t/--type`, `-s/--source`,
`-i/--importance`, `--tag`, `-d/--data`, `--ts`, `-m/--message`, `--json`, a leading `--memory`); anything else
(help, another input, an unknown or malformed flag, a value refused before writing) goes to the typer command,
which says it the usual way. The command itself is the same use-case and rendering as `commands/ingest.py`.
"""

from __future__ import annotations

# flag -> parameter, for the flags that take a value
_VALUED = {
    "-p": "project", "--project": "project", "-t": "type", "--type": "type", "-s": "source", "--source": "source",
    "-i": "importance", "--importance": "importance", "--tag": "tag", "-d": "data", "--data": "data",
    "--ts": "ts", "-m": "message", "--message": "message",
}
# parameter -> the flag named in an error (the long form, as the typer command names it)
_FLAG = {"project": "--project", "type": "--type", "source": "--source", "importance": "--importance",
         "tag": "--tag", "data": "--data", "ts": "--ts", "message": "--message", "memory": "--memory"}


def parse(argv: list[str]) -> dict | None:
    """The options of `[--memory PATH] ingest FLAGS...`, or None when this is not the plain one-event form."""
    args = list(argv)
    opts: dict = {"memory": None, "tag": [], "json": False}
    if args and (args[0] == "--memory" or args[0].startswith("--memory=")):
        if args[0] == "--memory":
            if len(args) < 2:
                return None
            opts["memory"] = args[1]
            args = args[2:]
        else:
            opts["memory"] = args[0][len("--memory="):]
            args = args[1:]
    if not args or args[0] != "ingest":
        return None
    n = 1
    while n < len(args):
        arg = args[n]
        if arg == "--json":
            opts["json"] = True
            n += 1
            continue
        flag, eq, value = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        name = _VALUED.get(flag)
        if name is None:
            return None
        if not eq:
            if n + 1 >= len(args):
                return None
            value = args[n + 1]
            n += 2
        else:
            n += 1
        if name == "tag":
            opts["tag"].append(value)
        elif name in opts:
            return None  # given twice: left to the typer command
        else:
            opts[name] = value
    if "type" not in opts:
        return None
    if "importance" in opts:
        try:
            opts["importance"] = float(opts["importance"])
        except ValueError:
            return None
    return opts


def ingest(argv: list[str]) -> int | None:
    """Run a plain one-event ingest; None when the typer command should run instead (nothing was written)."""
    opts = parse(argv)
    if opts is None:
        return None
    from pathlib import Path

    from com.cli import context, output
    from com.memory import Memory
    from com.model.errors import ComError
    from com.ops import ingest as ops
    from com.render import history as render

    try:
        memory = Memory.find(Path(opts["memory"]) if opts["memory"] else None)
        events = ops.from_flags(memory, opts["type"], project=opts.get("project"), source=opts.get("source"),
                                importance=opts.get("importance"), tags=opts["tag"], data=opts.get("data"),
                                ts=opts.get("ts"))
    except ComError:
        return None  # refused before writing: the typer command says it, naming the flag
    output.start_run(opts["json"])
    try:
        context.settings_checked(memory.settings)
        result = ops.record(memory, events, message=opts.get("message"))
        for line in result.warnings:
            output.warn(line)
        output.emit(result, opts["json"], render.ingest)
        return 0
    except ComError as exc:
        flag = _FLAG.get(exc.param) if exc.param else None
        message = exc.message
        if flag and not message.startswith(flag):
            message = f"{flag}: {message}"
        output.error(exc.code, exc.param, message)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a bug: said as the typer command says it
        return output.internal_error(exc)
