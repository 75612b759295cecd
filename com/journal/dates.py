"""Dates as users type them, for `--at`, `--since` and `--until`: ISO-8601 read by com itself (naive means UTC,
a bare date as an upper bound means the end of that day), anything else (`yesterday`, `2.weeks.ago`,
`noon yesterday`, `2026-11-01 10:00 +0200`) by git's own date parser, so com reads dates as git does."""

from __future__ import annotations

import re
from datetime import datetime

from com.journal.gitsafe import git_date, shown
from com.model.errors import ComError
from com.model.event import iso_instant_us, now_utc, ts_us

_ISO_DAY = re.compile(r"(\d{4}-\d{2}-\d{2})(?:[T ]|\Z)")
HINT = "e.g. 2026-11-01, '2026-11-01 10:00', yesterday, 2.weeks.ago"


def instant_us(text: str, end_of_day: bool = False) -> int:
    """Microseconds since the epoch of a date or time; ComError (one line, no parameter) if it is not one."""
    if not isinstance(text, str) or not text.strip() or len(text) > 200 or "\x00" in text:
        raise ComError(f"not a date or time: {shown(str(text))} ({HINT})")
    text = text.strip()
    if text.lower() == "now":
        return ts_us(now_utc().strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
    day = _ISO_DAY.match(text)
    if day is not None:
        try:
            datetime.strptime(day.group(1), "%Y-%m-%d")  # git would read 2026-13-45 as some other day
        except ValueError:
            raise ComError(f"not a date: {shown(text)} (no such day)") from None
        try:
            return iso_instant_us(text, end_of_day)
        except ComError:
            pass  # e.g. '2026-11-01 10:00 +0200' or '2026-11-01 noon': git reads those
    seconds = git_date(text)
    if seconds is None:
        raise ComError(f"not a date or time: {shown(text)} ({HINT})")
    return seconds * 1_000_000
