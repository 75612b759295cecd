"""Turning outside formats (flags, JSON/JSONL, JUnit XML, pytest) into validated events, and recording them."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING

from com.errors import ComError

if TYPE_CHECKING:  # the pytest plugin imports this package in every pytest run: no pygit2 at import time
    from pathlib import Path

    from com.journal import WriteResult


def record(memory, events: list[dict], message: str | None = None) -> WriteResult:
    """Write validated events to the memory's journal as one atomic batch."""
    return memory.journal().write(events, message=message)


def from_flags(type, *, project=None, source=None, importance=None, tags=None, data=None, ts=None) -> list[dict]:
    """One event from command-line flags; project and source default to the configuration."""
    from com import config
    from com.events import normalize

    if type is None:
        raise ComError("nothing to ingest: give -t/--type (with -p), '-' for stdin, --file or --junit")
    payload = {}
    if data is not None:
        try:
            payload = json.loads(data)
        except json.JSONDecodeError as exc:
            raise ComError(f"--data: invalid JSON: {exc.msg} (column {exc.colno})") from None
        if not isinstance(payload, dict):
            raise ComError("--data: expected a JSON object")
    raw = {
        "type": type,
        "project": project or config.get("project"),
        "source": source or config.get("source"),
        "importance": importance,
        "tags": list(tags or []),
        "data": payload,
    }
    if ts is not None:
        raw["ts"] = ts
    if raw["project"] is None:
        raise ComError("field 'project': missing (give -p/--project or set [tool.com] project)")
    return [normalize(raw)]


def from_json_text(file: Path | None, *, project=None, source=None) -> list[dict]:
    """Events from a JSON/JSONL file, or from stdin when file is None."""
    from com.ingest import jsonl

    if file is not None:
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ComError(f"cannot read {file}: {exc}") from None
        origin = str(file)
    else:
        try:
            text = sys.stdin.read()
        except UnicodeDecodeError as exc:
            raise ComError(f"<stdin>: not UTF-8 text ({exc.reason})") from None
        origin = "<stdin>"
    return jsonl.parse(text, defaults={"project": project, "source": source}, origin=origin)


def from_junit(paths: list[str], *, project=None, commit=None, run_id=None, repo=None, branch=None, source=None) -> list[dict]:
    """test_result events from JUnit XML reports (files, folders or globs)."""
    from com import config
    from com.ingest import junit

    return junit.events_from_reports(
        paths, project=project or config.get("project"), commit=commit, run_id=run_id, repo=repo, branch=branch,
        source=source,
    )
