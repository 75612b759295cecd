"""JSON and JSONL input: one object, an array of objects, or one object per line (streamed: `stream`)."""

from __future__ import annotations

import json
from typing import Iterable, Iterator

from com.model.errors import ComError, InvalidEvent
from com.model.event import MAX_DEPTH, MAX_INT, common_event, format_ts, now_utc, validate


def _where_json(exc: Exception, line_no: int | None) -> str:
    """One line naming the place and what is wrong: bad syntax, or JSON beyond what an event may hold."""
    if isinstance(exc, json.JSONDecodeError):
        line = line_no if line_no is not None else exc.lineno
        return f"line {line}: invalid JSON: {exc.msg} (column {exc.colno})"
    where = f"line {line_no}: " if line_no is not None else ""
    if isinstance(exc, RecursionError):
        return f"{where}the JSON nests more than {MAX_DEPTH} levels deep"
    return f"{where}a number is out of range (integers from {-MAX_INT} to {MAX_INT - 1})"


# Besides bad syntax: nesting deeper than the parser's stack (RecursionError) and integers of thousands of digits
# (ValueError from Python's int conversion limit) are refused as input errors.
_UNREADABLE = (json.JSONDecodeError, RecursionError, ValueError)


_scan_once = json.scanner.make_scanner(json.JSONDecoder())


def _loads_line(line: str):
    """json.loads for one line, calling the C scanner directly: bulk ingest parses 100,000s of lines."""
    try:
        value, end = _scan_once(line, 0)
    except (StopIteration, RecursionError):
        return json.loads(line)  # raises the precise JSONDecodeError
    if end != len(line) and line[end:].strip():
        return json.loads(line)
    return value


def parse(text: str, defaults: dict | None = None, origin: str = "<stdin>") -> list[dict]:
    """Validated events from JSON/JSONL text; any bad line refuses the whole input with its place named."""
    default_ts = format_ts(now_utc())
    stripped = text.lstrip()
    if not stripped:
        raise ComError(f"{origin}: no events in the input")
    if stripped.startswith("["):
        try:
            items = json.loads(text)
        except _UNREADABLE as exc:
            raise ComError(f"{origin}: {_where_json(exc, None)}") from None
        return [
            validate(item, where=f"{origin}: item {n}: ", default_ts=default_ts, defaults=defaults)
            for n, item in enumerate(items, 1)
        ]
    # Only "\n" ends a JSON line: str.splitlines() would also split on U+2028, U+0085 etc., legal inside strings.
    lines = text.split("\n")
    events = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            raw = _loads_line(line)
        except _UNREADABLE as exc:
            # A single pretty-printed object spans lines; accept it whole if that is what this is.
            if not events and isinstance(exc, json.JSONDecodeError):
                try:
                    raw = json.loads(text)
                except _UNREADABLE:
                    raise ComError(f"{origin}: {_where_json(exc, n)}") from None
                return [validate(raw, where=f"{origin}: ", default_ts=default_ts, defaults=defaults)]
            raise ComError(f"{origin}: {_where_json(exc, n)}") from None
        try:
            events.append(validate(raw, where=f"line {n}: ", default_ts=default_ts, defaults=defaults))
        except InvalidEvent as exc:
            raise InvalidEvent(f"{origin}: {exc}") from None
    return events


def stream(lines: Iterable[str], defaults: dict | None = None, origin: str = "<stdin>") -> Iterator[dict]:
    """Validated events from JSONL read line by line, so an input of any size is never held whole. A JSON array
    or a single pretty-printed object (the first line alone is not JSON) is read whole, as `parse` does. A bad
    line raises with its number once reached: the caller writes nothing until the stream is exhausted."""
    default_ts = format_ts(now_utc())
    lines = iter(lines)
    head: list[str] = []
    for line in lines:
        head.append(line)
        if line.strip():
            break
    else:
        raise ComError(f"{origin}: no events in the input")
    first = head[-1]
    raw = None
    if not first.lstrip().startswith("["):
        try:
            raw = _loads_line(first.rstrip("\n"))
        except json.JSONDecodeError:
            pass  # perhaps one pretty-printed object: read whole below
        except _UNREADABLE as exc:
            raise ComError(f"{origin}: {_where_json(exc, len(head))}") from None
    if raw is None:
        yield from parse("".join(head) + "".join(lines), defaults, origin)
        return
    n = len(head)
    # The common event is checked the short way, without a place to name (none is refused there).
    common = defaults is None or defaults.keys() <= {"project", "source"}
    project, source = (defaults.get("project"), defaults.get("source")) if defaults else (None, None)
    text = first
    while True:
        event = common_event(raw, default_ts, project, source, text) if common else None
        if event is None:
            try:
                event = validate(raw, where=f"line {n}: ", default_ts=default_ts, defaults=defaults)
            except InvalidEvent as exc:
                raise InvalidEvent(f"{origin}: {exc}") from None
        yield event
        for line in lines:
            n += 1
            if not line.isspace():  # no copy of the line, unlike strip() (a line from a file is never "")
                break
        else:
            return
        text = line
        try:
            raw = _loads_line(line)  # a trailing newline is whitespace after the value
        except _UNREADABLE as exc:
            raise ComError(f"{origin}: {_where_json(exc, n)}") from None
