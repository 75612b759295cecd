"""Text helpers every renderer shares: aligned tables that fit the terminal, colour, short shas, clipped cells,
times and durations.

How wide and how colourful the output may be is the front end's call (`configure`): by default there is no
width limit and no colour, which is what a pipe, a file or a test gets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable


@dataclass
class Terminal:
    width: int | None = None  # fit tables to this many columns (None: no limit)
    color: bool = False


TERMINAL = Terminal()

_CODES = {"red": "31", "green": "32", "yellow": "33", "blue": "34", "magenta": "35", "cyan": "36", "dim": "2",
          "bold": "1"}
STATUS_COLOURS = {"failed": "red", "error": "red", "passed": "green", "skipped": "yellow"}


def configure(width: int | None = None, color: bool = False) -> None:
    TERMINAL.width = width if width and width > 0 else None
    TERMINAL.color = bool(color)


def paint(text: str, colour: str | None) -> str:
    """`text` in a colour, when the front end allows colour (else unchanged)."""
    if not colour or not TERMINAL.color or not text:
        return text
    return f"\033[{_CODES[colour]}m{text}\033[0m"


def status_colour(status: str) -> str | None:
    return STATUS_COLOURS.get(status)


def table(rows: Iterable[Iterable], headers: list[str] | None = None, *, flex: int = -1,
          colours: dict[int, Callable[[str], str | None]] | None = None, optional: Iterable[int] = ()) -> str:
    """Rows as aligned columns. Over the terminal width, `optional` columns whose cells are all alike are left
    out first (in the order given), then the `flex` column (default: the last) is clipped to what is left,
    never below 12 characters. `colours` paints a column's cells: index -> cell -> colour."""
    rows = [["" if c is None else str(c) for c in row] for row in rows]
    if not rows:
        return ""
    ncols = max(len(r) for r in rows)
    rows = [r + [""] * (ncols - len(r)) for r in rows]
    headers = list(headers) if headers else None
    flex = flex % ncols
    colours = dict(colours or {})
    limit = TERMINAL.width

    def width_of(rs, hs) -> int:
        cols = len(rs[0])
        widths = [max(len(r[i]) for r in rs + ([hs] if hs else [])) for i in range(cols)]
        return sum(widths) + 2 * (cols - 1)

    if limit is not None:
        optional = list(optional)
        while optional and width_of(rows, headers) > limit and len(rows[0]) > 2:
            col = optional.pop(0)
            if len({r[col] for r in rows}) > 1:
                continue
            keep = [i for i in range(len(rows[0])) if i != col]
            rows = [[r[i] for i in keep] for r in rows]
            headers = [headers[i] for i in keep] if headers else None
            colours = {keep.index(i): f for i, f in colours.items() if i in keep}
            flex = keep.index(flex) if flex in keep else len(keep) - 1
            optional = [o - 1 if o > col else o for o in optional]
    if headers:
        rows.insert(0, headers)
    ncols = len(rows[0])
    widths = [max(len(r[i]) for r in rows) for i in range(ncols)]
    if limit is not None and sum(widths) + 2 * (ncols - 1) > limit:
        room = max(12, limit - (sum(widths) - widths[flex]) - 2 * (ncols - 1))
        if room < widths[flex]:
            widths[flex] = room
            rows = [[clip(c, room) if i == flex else c for i, c in enumerate(r)] for r in rows]
    lines = []
    for n, row in enumerate(rows):
        cells = []
        for i, cell in enumerate(row):
            padded = cell.ljust(widths[i]) if i < len(row) - 1 else cell
            colour = colours.get(i) if n > 0 or not headers else None
            cells.append(paint(padded, colour(cell)) if colour else padded)
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def short(sha: str | None) -> str:
    return sha[:10] if sha else "-"


def clip(text: str, width: int = 60) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 1] + "…"


def first_line(text) -> str:
    """The first non-empty line of a message."""
    for line in str(text or "").splitlines():
        if line.strip():
            return line.strip()
    return ""


def when(ts: str) -> str:
    """A stored time as a table shows it."""
    return ts[:19].replace("T", " ")


def duration(ms) -> str:
    """Milliseconds as a reader wants them: 850ms, 4.2s, 3m05s."""
    if ms is None or ms == "":
        return ""
    try:
        ms = float(ms)
    except (TypeError, ValueError):
        return ""
    if ms < 1000:
        return f"{ms:.0f}ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f}s"
    minutes, seconds = divmod(int(round(ms / 1000)), 60)
    return f"{minutes}m{seconds:02d}s"


def count(n: int) -> str:
    return f"{n:,}"
