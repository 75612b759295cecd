"""Turning outside formats (flags, JSON/JSONL, JUnit XML, pytest) into validated events, and recording them."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the pytest plugin imports this package in every pytest run: no pygit2 at import time
    from com.journal import WriteResult


def record(memory, events: list[dict], message: str | None = None) -> WriteResult:
    """Write validated events to the memory's journal as one atomic batch."""
    return memory.journal().write(events, message=message)
