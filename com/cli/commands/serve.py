"""`com serve`: a resident process answering searches, for agents and editors that ask many questions.

One JSON object per line in, one per line out, on stdin/stdout (the default: the caller owns the process) or
on a unix socket (`--socket PATH`, mode 0600, one connection at a time; never TCP). The memory, the embedding
model and the index stay open between requests, and each request sees the journal as it is then (new
commits are indexed first, as by `com search`).

    {"id": 1, "op": "search", "text": "db timeout", "k": 5, "status": "failed", "at": "HEAD~3"}
    -> {"id": 1, "ok": true, "results": [{"event": ..., "score": ...}], "ms": 4.2}
    {"id": 2, "op": "index"}  -> {"id": 2, "ok": true, "rows": ..., ...}      (the `com index --json` keys)
    {"id": 3, "op": "ping"}   -> {"id": 3, "ok": true}
    a bad request            -> {"id": ..., "ok": false, "error": "k: must be at least 1, got 0", "param": "k"}

Search fields are those of `com search`, with its defaults: text, k, mode, at, each (false: events with the
same text are one result, with their count), min_similarity (0.15; 0 keeps every match), and the filters
type, project, test, status, since, until, tag (a string or a list). The answer has the keys of
`com search --json`.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Optional

import typer

from com.cli import context
from com.cli.output import handled, note
from com.model.errors import ComError

app = typer.Typer()

MAX_LINE = 1 << 20  # a request longer than this is refused (a runaway client cannot fill the memory)


@app.command("serve")
@handled
def serve_cmd(
    socket_path: Optional[Path] = typer.Option(None, "--socket", help="Listen on this unix socket (mode 0600) "
                                                                      "instead of stdin/stdout."),
):
    """Answer search requests, one JSON object per line, from a resident process (stdin/stdout or a unix socket)."""
    memory = context.memory()
    if socket_path is None:
        serve_stream(memory, sys.stdin, sys.stdout)
        return
    serve_socket(memory, socket_path)


def serve_stream(memory, infile, outfile) -> None:
    """Answer each line of `infile` on `outfile` until end of input: one answer per request line, an overlong
    one refused whole (it is never read into memory past MAX_LINE)."""
    for line in _bounded(infile):
        if line is None:
            reply = {"id": None, "ok": False, "error": f"the request is longer than {MAX_LINE} characters",
                     "param": "request", "ms": 0.0}
        elif not line.strip():
            continue
        else:
            reply = answer(memory, line)
        outfile.write(json.dumps(reply, ensure_ascii=False) + "\n")
        outfile.flush()


def serve_socket(memory, path: Path) -> None:
    """Accept connections on a unix socket (only this user may connect) and answer them one at a time."""
    path = Path(path)
    if path.exists() or path.is_symlink():
        if not path.is_socket():
            raise ComError(f"{path} exists and is not a socket", param="socket_path")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(path))
            raise ComError(f"another server is listening on {path}", param="socket_path")
        except (ConnectionRefusedError, FileNotFoundError):
            path.unlink(missing_ok=True)  # left by a server that is gone
        finally:
            probe.close()
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)
    try:
        server.bind(str(path))
    finally:
        os.umask(old_umask)
    server.listen(8)
    note(f"com: serving on {path}")
    try:
        while True:
            conn, _ = server.accept()
            with conn, conn.makefile("r", encoding="utf-8", newline="\n") as reader, \
                    conn.makefile("w", encoding="utf-8", newline="\n") as writer:
                try:
                    serve_stream(memory, reader, writer)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client went away mid-answer
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
        path.unlink(missing_ok=True)


def _bounded(reader):
    """The lines of `reader`, each at most MAX_LINE characters (its newline aside); None for an overlong line,
    whose rest is read and dropped in pieces of that size."""
    while True:
        line = reader.readline(MAX_LINE + 1)
        if not line:
            return
        if len(line.rstrip("\n")) <= MAX_LINE:
            yield line
            continue
        while line and not line.endswith("\n"):
            line = reader.readline(MAX_LINE + 1)
        yield None


def answer(memory, line: str) -> dict:
    """One request line -> one response object (never raises for a bad request)."""
    started = time.perf_counter()
    request_id = None
    try:
        request = json.loads(line)
        if not isinstance(request, dict):
            raise ComError("a request is a JSON object", param="request")
        request_id = request.get("id")
        out = {"id": request_id, "ok": True, **handle(memory, request)}
    except json.JSONDecodeError as exc:
        out = {"id": request_id, "ok": False, "error": f"not JSON: {exc}", "param": "request"}
    except ComError as exc:
        message = f"{exc.param}: {exc.message}" if exc.param and not exc.message.startswith(exc.param) else exc.message
        out = {"id": request_id, "ok": False, "error": message, "param": exc.param}
    except Exception as exc:  # a resident server reports what went wrong and keeps serving
        out = {"id": request_id, "ok": False, "error": f"{type(exc).__name__}: {exc}", "param": None}
    out["ms"] = round((time.perf_counter() - started) * 1000, 2)
    return out


def handle(memory, request: dict) -> dict:
    op = request.get("op", "search")
    if op == "ping":
        return {}
    if op == "index":
        from com.ops.search import update

        return update(memory, at=request.get("at")).to_json()
    if op == "search":
        from com.model.filter import EventFilter
        from com.ops.search import WEAK_FLOOR, search

        text = request.get("text")
        if not isinstance(text, str):
            raise ComError("the search text is missing (a string)", param="text")
        k = request.get("k", 10)
        if not isinstance(k, int) or isinstance(k, bool):
            raise ComError(f"must be an integer, got {k!r}", param="k")
        values = {name: _strings(request.get(name), name) for name in ("type", "project", "status", "tag")}
        for name in ("test", "since", "until", "at", "mode"):
            if request.get(name) is not None and not isinstance(request[name], str):
                raise ComError(f"must be a string, got {request[name]!r}", param=name)
        where = EventFilter.create(types=values["type"], projects=values["project"], test=request.get("test"),
                                   statuses=values["status"], since=request.get("since"), until=request.get("until"),
                                   tags_include=values["tag"])
        each = request.get("each", False)
        if not isinstance(each, bool):
            raise ComError(f"must be true or false, got {each!r}", param="each")
        min_similarity = request.get("min_similarity", WEAK_FLOOR)
        if isinstance(min_similarity, bool) or not isinstance(min_similarity, (int, float)):
            raise ComError(f"must be a number, got {min_similarity!r}", param="min_similarity")
        return search(memory, text, k, where, at=request.get("at"), mode=request.get("mode", "hybrid"),
                      collapse=not each, min_similarity=float(min_similarity) or None).to_json()
    raise ComError(f"unknown op {op!r} (expected search, index or ping)", param="op")


def _strings(value, param: str) -> tuple:
    """A filter value: a string or a list of strings."""
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ComError(f"must be a string or a list of strings, got {value!r}", param=param)
