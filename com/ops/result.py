"""What every use-case returns: a dataclass whose `to_json()` is the stable `--json` shape."""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from typing import Callable, Iterable


@dataclass
class Result:
    """Fields are the JSON keys, in order (a trailing underscore, as in `from_`, is dropped)."""

    def to_json(self, lazy: bool = False) -> dict:
        """The `--json` shape. With lazy, a `Stream` stays a stream (a front end writes it as it is read, or
        only counts it) instead of becoming a list."""
        return {f.name.rstrip("_"): plain(getattr(self, f.name), lazy) for f in fields(self)
                if not f.name.startswith("_")}


class Stream:
    """A long list of stored events, read one day's worth at a time when iterated: its length is known before any
    is read. `chunks()` gives the events' stored JSON text (lists of lines) for a front end to write as it comes;
    iterating gives the events; `to_json()` of the result holding it makes the list."""

    def __init__(self, count: int, chunks: Callable[[], Iterable[list[bytes]]]):
        self.count = count
        self._chunks = chunks

    def __len__(self) -> int:
        return self.count

    def chunks(self) -> Iterable[list[bytes]]:
        return self._chunks()

    def __iter__(self):
        for chunk in self.chunks():
            for line in chunk:
                yield json.loads(line)

    def __repr__(self) -> str:
        return f"Stream({self.count} events)"


def plain(value, lazy: bool = False):
    if isinstance(value, Stream):
        return value if lazy else list(value)
    if hasattr(value, "to_json"):
        return value.to_json(lazy) if isinstance(value, Result) else value.to_json()
    if isinstance(value, (list, tuple)):
        if all(type(v) is str for v in value):  # e.g. the million ids of a bulk ingest
            return list(value)
        return [plain(v, lazy) for v in value]
    if isinstance(value, dict):
        return {k: plain(v, lazy) for k, v in value.items()}
    return value
