"""Text helpers every renderer shares: aligned tables, short shas, clipped cells."""

from __future__ import annotations

from typing import Iterable


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


def when(ts: str) -> str:
    """A stored time as a table shows it."""
    return ts[:19].replace("T", " ")
