"""Recording events: one from flags, many from JSON/JSONL text or JUnit XML reports, as one atomic batch."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from com.ingest.jsonl import _where_json
from com.ingest.reading import file_lines, limit_bytes, stream_lines
from com.memory import Memory, WriteResult
from com.model.errors import ComError
from com.model.event import validate
from com.ops.result import Result


@dataclass
class IngestResult(Result):
    commit: str | None
    added: int
    duplicates: int
    ids: list
    _warnings: list = field(default_factory=list)  # said on stderr by the CLI, not part of the JSON

    @property
    def warnings(self) -> list[str]:
        return self._warnings

    @classmethod
    def of(cls, written: WriteResult, warnings: list[str]) -> "IngestResult":
        return cls(written.commit, written.added, written.duplicates, written.ids, [*warnings, *written.warnings])


def record(memory: Memory, events: Iterable[dict], message: str | None = None, warnings=()) -> IngestResult:
    return IngestResult.of(memory.record(events, message=message), list(warnings))


def from_flags(memory: Memory, type: str | None, *, project=None, source=None, importance=None, tags=None,
               data: str | None = None, ts=None) -> list[dict]:
    """One event from command-line values; project and source default to the settings."""
    if type is None:
        raise ComError("nothing to ingest: give an event type (with a project), JSON on stdin, a file or JUnit reports",
                       param="type")
    payload = {}
    if data is not None:
        try:
            payload = json.loads(data)
        except json.JSONDecodeError as exc:
            raise ComError(f"invalid JSON: {exc.msg} (column {exc.colno})", param="data") from None
        except (RecursionError, ValueError) as exc:  # nesting beyond the parser's stack, a number of 4,300+ digits
            raise ComError(_where_json(exc, None), param="data") from None
        if not isinstance(payload, dict):
            raise ComError("expected a JSON object", param="data")
    raw = {
        "type": type,
        "project": project or memory.settings.get("project"),
        "source": source or memory.settings.get("source"),
        "importance": importance,
        "tags": list(tags or []),
        "data": payload,
    }
    if ts is not None:
        raw["ts"] = ts
    if raw["project"] is None:
        raise ComError("field 'project': missing (give a project or set [tool.com] project)", param="project")
    return [validate(raw)]


def input_limit(memory: Memory) -> int:
    """Bytes `com ingest` reads at most from a file, stdin or one report (the max_input_mb setting)."""
    return limit_bytes(memory.settings.get("max_input_mb"))


def from_json_lines(lines: Iterable[str], origin: str, *, project=None, source=None,
                    memory: Memory | None = None) -> Iterator[dict]:
    """Events from JSON or JSONL read line by line (a file, stdin, `io.StringIO(text)`; of any size), validated
    as they come. An event without a project gets `project`, else the memory's configured project ([tool.com]
    project, COM_PROJECT), as every other ingest path does."""
    from com.ingest import jsonl

    if project is None and memory is not None:
        project = memory.settings.get("project")
    return jsonl.stream(lines, defaults={"project": project, "source": source}, origin=origin)


def text_file_lines(memory: Memory, path: Path) -> Iterator[str]:
    """The lines of a regular UTF-8 file within the input limit, read as they are asked for."""
    return file_lines(path, input_limit(memory))


def stream_text_lines(memory: Memory, stream, origin: str = "<stdin>") -> Iterator[str]:
    """The lines of a binary stream (stdin) within the input limit: an endless stream is refused, not read to
    the end."""
    return stream_lines(stream, input_limit(memory), origin)


def from_junit(memory: Memory, paths: list[str], warn, *, project=None, commit=None, run_id=None,
               repo=None, branch=None, source=None) -> list[dict]:
    """test_result events from JUnit XML reports (files, folders or globs); `warn(text)` hears what was skipped."""
    from com.ingest import junit

    return junit.events_from_reports(
        paths, project=project or memory.settings.get("project"), commit=commit, run_id=run_id, repo=repo,
        branch=branch, source=source, warn=warn, max_bytes=input_limit(memory),
    )
