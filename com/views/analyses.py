"""Analysis commits (`com commit -m MSG --event ID`): which journal commits name which events, kept in SQLite
(`.com/cache/analyses.sqlite`) so that a question about a few events does not walk the whole history.

Derived and disposable like every view: it follows the journal through the same walker, reading the message of
each commit it has not seen once (an analysis commit adds no batch, so batches are nothing to it). It holds the
analysis commits of every branch ever followed; whether one is in a snapshot is the caller's question
(is the snapshot's commit a descendant of it?), asked only of the few that name the events at hand.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable

from com.files import sqlite
from com.journal.repo import TRAILER_EVENT, about_events
from com.views.base import SqliteView

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS commits (sha TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS analyses (sha TEXT PRIMARY KEY, time INTEGER NOT NULL, message TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS about (event_id TEXT NOT NULL, sha TEXT NOT NULL, PRIMARY KEY (event_id, sha)) WITHOUT ROWID;
"""


class AnalysesView(SqliteView):
    name = "analyses view"
    FILE = "analyses.sqlite"
    SCHEMA_VERSION = 1
    SCHEMA = _SCHEMA
    TABLES = ("analyses", "about", "commits")
    CACHE_KIB = 2048

    def __init__(self, folder, journal: Callable):
        super().__init__(folder)
        self._journal = journal  # a callable: the memory may reopen its journal

    def has_batch(self, path: str) -> bool:
        return True  # batches hold events, never analyses: the walker need not read any for this view

    @contextmanager
    def taking(self, shas: list[str]):
        db = self.db
        repo = self._journal().repo
        with sqlite.transaction(db):
            yield lambda batch, events: None
            for sha in shas:
                commit = repo[sha]
                ids = about_events(commit.message)
                if ids:
                    said = "\n".join(line for line in commit.message.splitlines()
                                      if not line.startswith(TRAILER_EVENT)).strip()
                    db.execute("INSERT OR REPLACE INTO analyses VALUES (?, ?, ?)", (sha, commit.commit_time, said))
                    db.executemany("INSERT OR IGNORE INTO about VALUES (?, ?)", [(eid, sha) for eid in ids])
            self.mark_seen(shas)

    def about(self, event_ids) -> list[dict]:
        """The analysis commits naming any of `event_ids` (on any branch followed), newest first:
        [{"sha", "time" (seconds since the epoch), "message", "about": [every event id it names]}]."""
        ids = list(dict.fromkeys(event_ids))
        shas: set[str] = set()
        for chunk, marks in sqlite.chunks(ids):
            shas.update(s for (s,) in self.db.execute(f"SELECT sha FROM about WHERE event_id IN ({marks})", chunk))
        out = []
        for chunk, marks in sqlite.chunks(sorted(shas)):
            for sha, time, message in self.db.execute(
                    f"SELECT sha, time, message FROM analyses WHERE sha IN ({marks})", chunk):
                named = [e for (e,) in self.db.execute("SELECT event_id FROM about WHERE sha = ?", (sha,))]
                out.append({"sha": sha, "time": time, "message": message, "about": named})
        out.sort(key=lambda a: (-a["time"], a["sha"]))
        return out
