"""The protocol every derived store follows the journal by, and the one walker that feeds them.

A view is derived and disposable: rebuilt from the journal alone. It remembers which journal commits it has
taken in whole (`seen`), takes a commit's new batches in one transaction (`taking`), and can forget
everything (`reset`). It marks a commit seen only once all its ancestors are, so the walker's "unseen
ancestors" is exactly what a view still has to take in.
"""

from __future__ import annotations

import sqlite3
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Callable, Iterable, Protocol

from com.files import sqlite
from com.journal.batches import Batch
from com.journal.repo import unseen_ancestors


class View(Protocol):
    name: str

    def seen(self, sha: str) -> bool:
        """Has this view taken in the whole snapshot of this journal commit?"""

    def has_batch(self, path: str) -> bool:
        """Has it taken in this batch (reached through another commit)?"""

    def taking(self, shas: list[str]) -> AbstractContextManager[Callable[[Batch, list[dict]], None]]:
        """A transaction: call the yielded function with each new batch and its events; on a clean exit the
        batches are stored and `shas` marked seen together."""

    def reset(self) -> None:
        """Forget everything (the next follow rebuilds from the journal)."""

    def health(self) -> str | None:
        """None when the store is readable, else what is wrong with it (fsck reports it; reset repairs it)."""

    # Optional: `wants(data: bytes) -> bool`, a cheap test on a batch's stored bytes. A view that keeps few
    # events (the flaky registry) is given a batch it does not want with no events, so a catch-up parses
    # nothing for it alone.


def follow(journal, commit, views: Iterable[View], written: dict[str, list[dict]] | None = None,
           progress=None) -> int:
    """Bring each view up to `commit`: walk the commits none of them has seen, read each new batch once and
    give it to the views that lack it. `written` holds the events of batches this process just wrote (path
    -> events), so they are not read back. Returns the number of batches taken."""
    if commit is None:
        return 0
    sha = str(commit.id)
    behind = [v for v in views if not v.seen(sha)]
    if not behind:
        return 0
    pending = unseen_ancestors(commit, lambda s: all(v.seen(s) for v in behind))
    # Oldest first, so batches are numbered in history order (an old snapshot is one range of numbers).
    pending.sort(key=lambda c: (c.commit_time, str(c.id)))
    batches: dict[str, Batch] = {}
    for c in pending:
        for batch in journal.added_batches(c):
            batches.setdefault(batch.path, batch)
    shas = [str(c.id) for c in pending]
    taken = 0
    # One transaction per view, all open together, so each batch is read (and parsed) once for all of them.
    with _all_taking(behind, shas) as adders:
        for n, batch in enumerate(batches.values(), 1):
            wanting = [(view, add) for view, add in adders if not view.has_batch(batch.path)]
            if wanting:
                events = written.get(batch.path) if written else None
                for view, add in wanting:
                    wants = getattr(view, "wants", None)
                    if events is None and wants is not None and not wants(batch.data(journal)):
                        add(batch, [])  # nothing in it for this view: taken without parsing a line
                        continue
                    if events is None:
                        events = batch.events(journal)
                    add(batch, events)
                taken += 1
                batch.forget()
            if progress is not None:
                progress("taking in batches", n, len(batches))
    return taken


class _all_taking:
    """Enter every view's `taking` transaction; leave them all (each commits only if nothing failed)."""

    def __init__(self, views: list[View], shas: list[str]):
        self.views, self.shas, self.entered = views, shas, []

    def __enter__(self):
        try:
            for view in self.views:
                manager = view.taking(self.shas)
                add = manager.__enter__()
                self.entered.append((view, manager, add))
        except BaseException as exc:
            self.__exit__(type(exc), exc, exc.__traceback__)
            raise
        return [(view, add) for view, _, add in self.entered]

    def __exit__(self, kind, exc, tb):
        # Each view commits (or rolls back) on its own: each is consistent by itself whatever the others do.
        first = None
        for _, manager, _ in reversed(self.entered):
            try:
                manager.__exit__(kind, exc, tb)
            except BaseException as failure:
                if failure is not exc and first is None:
                    first = failure
        if first is not None:
            raise first
        return False


class SqliteView:
    """What a view kept in one SQLite file of `.com/cache/` needs besides its own tables: opening it (and
    starting over when its schema version changed), the commits it has seen, closing, resetting, health.
    Subclasses give `name`, `FILE`, `SCHEMA_VERSION`, `SCHEMA` (including a `commits (sha)` and a
    `meta (key, value)` table) and `TABLES` (every table any version had, dropped on a version change)."""

    name = ""
    FILE = ""
    SCHEMA_VERSION = 0
    SCHEMA = ""
    TABLES: tuple[str, ...] = ()
    CACHE_KIB = 65536

    def __init__(self, folder: Path):
        self.path = Path(folder) / self.FILE
        self._db: sqlite3.Connection | None = None

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            self._db = self._open()
        return self._db

    def _open(self) -> sqlite3.Connection:
        db = sqlite.connect(self.path)
        # A big take writes a big WAL; without a limit the file keeps that size after checkpointing.
        db.execute("PRAGMA journal_size_limit=16777216")
        # The default 2 MB page cache spills a 100,000-event transaction to the WAL page by page and reads
        # it back (130,000 pread/pwrite calls measured); a bigger cache, used only as needed, writes it once.
        db.execute(f"PRAGMA cache_size=-{self.CACHE_KIB}")
        version = None
        try:
            row = db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
            version = int(row[0]) if row else None
        except sqlite3.OperationalError:
            pass
        if version != self.SCHEMA_VERSION:
            db.executescript("".join(f"DROP TABLE IF EXISTS {t};" for t in self.TABLES) + self.SCHEMA)
            db.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?)", (str(self.SCHEMA_VERSION),))
        return db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def seen(self, sha: str) -> bool:
        return self.db.execute("SELECT 1 FROM commits WHERE sha=?", (sha,)).fetchone() is not None

    def mark_seen(self, shas: list[str]) -> None:
        self.db.executemany("INSERT OR IGNORE INTO commits VALUES (?)", [(sha,) for sha in shas])

    def reset(self) -> None:
        """Its own file goes (a damaged file may not even open to drop tables); the next follow rebuilds it."""
        self.close()
        for suffix in ("", "-wal", "-shm"):
            Path(str(self.path) + suffix).unlink(missing_ok=True)

    def health(self) -> str | None:
        try:
            self.db.execute("PRAGMA quick_check").fetchone()
            self.db.execute("SELECT COUNT(*) FROM commits").fetchone()
        except sqlite3.DatabaseError as exc:
            return f"the {self.name} cannot be read ({exc})"
        return None
