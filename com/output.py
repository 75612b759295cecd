"""The one way commands print: --json gives one stable JSON object; otherwise a compact aligned table.

Data goes to stdout; progress, notes and errors go to stderr, with the secret part of URLs redacted."""

from __future__ import annotations

import json
import sys
from typing import Callable, Iterable

from com.gitsafe import redact


def emit(obj: dict, as_json: bool, human: Callable[[dict], str | None]) -> None:
    if as_json:
        sys.stdout.write(json.dumps(obj, ensure_ascii=False, indent=None) + "\n")
        return
    text = human(obj)
    if text:
        sys.stdout.write(text.rstrip("\n") + "\n")


def note(message: str) -> None:
    # Every note, warning and error line: no URL's credentials ever reach a terminal or a CI log.
    sys.stderr.write(redact(message).rstrip("\n") + "\n")


def table(rows: Iterable[Iterable], headers: list[str] | None = None) -> str:
    rows = [["" if c is None else str(c) for c in row] for row in rows]
    if headers:
        rows.insert(0, list(headers))
    if not rows:
        return ""
    widths = [max(len(r[i]) for r in rows if i < len(r)) for i in range(max(len(r) for r in rows))]
    lines = []
    for row in rows:
        cells = [cell.ljust(widths[i]) if i < len(row) - 1 else cell for i, cell in enumerate(row)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def short(sha: str | None) -> str:
    return sha[:10] if sha else "-"


def clip(text: str, width: int = 60) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 1] + "…"
