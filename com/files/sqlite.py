"""SQLite files of derived data under .com/cache/ (the catalog, the test-results view, the embedding cache):
how they are opened, queried and written, in one place, and what their failures mean in a user's words."""

from __future__ import annotations

import errno
import sqlite3
from contextlib import contextmanager
from pathlib import Path

from com.files.space import disk_full

# SQLite accepts at most 999 parameters per statement on older builds.
CHUNK = 900
# Seconds a write waits for another process's write to end before "database is locked".
BUSY_TIMEOUT = 60.0


def connect(path: Path) -> sqlite3.Connection:
    """Autocommit (transactions are explicit), WAL so readers never wait on a writer, and no fsync per
    commit: the data is derived, so a crash costs a rebuild at worst."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, timeout=BUSY_TIMEOUT, isolation_level=None)
    _wal(db)
    db.execute("PRAGMA synchronous=NORMAL")
    return db


def _wal(db: sqlite3.Connection) -> None:
    """WAL mode, waiting as a write would for another process that holds the file: a process closing its last
    connection checkpoints and removes the WAL under an exclusive lock, and an opener that meets it can be told
    "database is locked" at once, without SQLite's busy wait (seen with eight writers at once)."""
    import time

    deadline = time.monotonic() + BUSY_TIMEOUT
    pause = 0.001
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.05)


def chunks(values: list):
    """`values` in slices small enough for one `IN (?, ...)`, with the matching placeholder list."""
    for start in range(0, len(values), CHUNK):
        chunk = values[start:start + CHUNK]
        yield chunk, ",".join("?" * len(chunk))


@contextmanager
def transaction(db: sqlite3.Connection, immediate: bool = True):
    """One write transaction: committed when the block ends, rolled back if it raises. The error that ended it
    is the one raised (a failed COMMIT, e.g. on a full disk, may already have ended the transaction: SQLite's
    "cannot rollback - no transaction is active" would hide the real cause)."""
    db.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
    try:
        yield db
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            try:
                db.execute("ROLLBACK")
            except sqlite3.Error:
                pass
        raise


def damaged(exc: BaseException) -> bool:
    """Is this SQLite error a damaged file (truncated, overwritten) rather than a busy, full or read-only one?"""
    name = getattr(exc, "sqlite_errorname", "")
    if name:
        # A short read: the file ends before the pages its header counts (truncated).
        return (name in ("SQLITE_CORRUPT", "SQLITE_NOTADB", "SQLITE_IOERR_SHORT_READ")
                or name.startswith(("SQLITE_CORRUPT_", "SQLITE_NOTADB_")))
    text = str(exc)
    return "malformed" in text or "not a database" in text


def cause(exc: BaseException, folder: Path, what: str = "derived data") -> str:
    """The real cause of an SQLite or OS error on `what` (a store in `folder`), in a few words."""
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC or disk_full(folder):
        return f"no space left on device for {what} in {folder}"
    if isinstance(exc, OSError) and exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return f"{exc.filename or folder} cannot be written ({exc.strerror})"
    name = getattr(exc, "sqlite_errorname", "")
    text = str(exc)
    if name.startswith("SQLITE_BUSY") or "locked" in text:
        return f"{what} is locked by another process ({text})"
    if name.startswith("SQLITE_READONLY") or "readonly" in text:
        return f"{what} in {folder} cannot be written ({text})"
    if damaged(exc):
        return f"{what} in {folder} is damaged ({text})"
    return f"{what}: {text}"
