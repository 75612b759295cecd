"""SQLite files of derived data under .com/cache/ (the catalog, the test-results view, the embedding cache):
how they are opened, queried and written, in one place."""

from __future__ import annotations

import sqlite3
from contextlib import contextmanager
from pathlib import Path

# SQLite accepts at most 999 parameters per statement on older builds.
CHUNK = 900


def connect(path: Path) -> sqlite3.Connection:
    """Autocommit (transactions are explicit), WAL so readers never wait on a writer, and no fsync per
    commit: the data is derived, so a crash costs a rebuild at worst."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, timeout=60, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    return db


def chunks(values: list):
    """`values` in slices small enough for one `IN (?, ...)`, with the matching placeholder list."""
    for start in range(0, len(values), CHUNK):
        chunk = values[start:start + CHUNK]
        yield chunk, ",".join("?" * len(chunk))


@contextmanager
def transaction(db: sqlite3.Connection, immediate: bool = True):
    """One write transaction: committed when the block ends, rolled back if it raises."""
    db.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
