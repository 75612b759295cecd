"""Reading the memory's history: log, show, diff between snapshots, and the events of a snapshot."""

from __future__ import annotations

from dataclasses import dataclass, field

import pygit2

from com.journal.repo import about_events, commit_time
from com.journal.snapshot import Snapshot
from com.memory import Memory
from com.model.event import FAILING, format_ts, ts_us
from com.model.filter import EventFilter, TestMatch
from com.ops.result import Result


@dataclass
class CommitInfo(Result):
    sha: str
    message: str
    time: str
    added: int
    parents: list


@dataclass
class LogResult(Result):
    commits: list


@dataclass
class ShowResult(CommitInfo):
    events: list
    about: list


@dataclass
class DiffSummary(Result):
    newly_failing: list  # began failing and are not flaky: regressions
    fixed: list          # stopped failing and are not flaky
    flaky: list = field(default_factory=list)     # flips of flaky tests: [{test_id, now, flake_rate, severity, ...}]
    registry: dict = field(default_factory=dict)  # what the flaky registry says changed (see ops.flaky)


@dataclass
class DiffResult(Result):
    from_: str
    to: str
    added: list
    removed: list
    summary: DiffSummary


@dataclass
class EventsResult(Result):
    events: list


def _commit_info(journal, commit, added: int | None = None) -> CommitInfo:
    if added is None:
        added = sum(journal.blob(b.oid).count(b"\n") for b in journal.added_batches(commit))
    return CommitInfo(str(commit.id), commit.message.strip(), format_ts(commit_time(commit)), added,
                      [str(p) for p in commit.parent_ids])


def log(memory: Memory, rev: str | None = None, limit: int | None = None) -> LogResult:
    """Commits reachable from rev (default: the current branch), newest first."""
    journal = memory.journal
    start = journal.resolve_or_none(rev)
    if start is None:
        return LogResult([])
    out = []
    for commit in journal.repo.walk(start.id, pygit2.GIT_SORT_TIME | pygit2.GIT_SORT_TOPOLOGICAL):
        if limit is not None and len(out) >= limit:
            break
        out.append(_commit_info(journal, commit))
    return LogResult(out)


def show(memory: Memory, rev: str | None) -> ShowResult:
    """One commit: what it says, the events it added, and the events an analysis commit is about."""
    journal = memory.journal
    commit = journal.resolve(rev)
    added = []
    for batch in journal.added_batches(commit):
        added.extend(batch.events(journal))
    added.sort(key=lambda e: ts_us(e["ts"]))
    info = _commit_info(journal, commit, added=len(added))
    return ShowResult(**vars(info), events=added, about=about_events(commit.message))


def _events_of(journal, batches) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for batch in batches:
        for event in batch.events(journal):
            out.setdefault(event["id"], event)
    return out


def diff(memory: Memory, rev_a: str, rev_b: str | None = None) -> DiffResult:
    """Events added and removed between two whole snapshots, and the tests that began or stopped failing: flips
    of flaky tests apart from regressions and fixes, and what the flaky registry says changed."""
    from com.journal.batches import Batch
    from com.ops.flaky import classify_flips

    journal = memory.journal
    a, b = Snapshot(journal, journal.resolve(rev_a)), Snapshot(journal, journal.resolve(rev_b))
    only_b, only_a = [], []
    for delta in journal.repo.diff(a.commit.tree, b.commit.tree).deltas:
        for path, oid, wanted in ((delta.new_file.path, delta.new_file.id, "AM"),
                                  (delta.old_file.path, delta.old_file.id, "DM")):
            parts = path.split("/")
            if len(parts) == 4 and parts[0] == "events" and delta.status_char() in wanted:
                (only_b if wanted == "AM" else only_a).append(Batch(path, oid, parts[2], parts[1]))
    cand_added = _events_of(journal, only_b)
    cand_removed = _events_of(journal, only_a)
    # The same event can sit in two batches (both sides of a merge wrote it): only a real change counts.
    in_a = memory.known_ids(a.commit, cand_added.keys())
    in_b = memory.known_ids(b.commit, cand_removed.keys())
    added = sorted((e for i, e in cand_added.items() if i not in in_a), key=lambda e: ts_us(e["ts"]))
    removed = sorted((e for i, e in cand_removed.items() if i not in in_b), key=lambda e: ts_us(e["ts"]))

    latest_b: dict[str, tuple[int, str]] = {}
    for event in added:
        if event["type"] == "test_result" and event["data"].get("test_id"):
            tid = event["data"]["test_id"]
            when = ts_us(event["ts"])
            if tid not in latest_b or when >= latest_b[tid][0]:
                latest_b[tid] = (when, event["data"]["status"])
    before = latest_status(memory, a, list(latest_b)) if latest_b else {}
    newly_failing, fixed = [], []
    for tid, (_, status_b) in sorted(latest_b.items()):
        status_a = before.get(tid)
        if status_b in FAILING and status_a not in FAILING:
            newly_failing.append(tid)
        elif status_b == "passed" and status_a in FAILING:
            fixed.append(tid)
    flips = classify_flips(memory, a, b, newly_failing, fixed)
    return DiffResult(a.sha, b.sha, added, removed,
                      DiffSummary(flips.newly_failing, flips.fixed, flips.flaky, flips.registry))


def latest_status(memory: Memory, snapshot: Snapshot, test_ids: list[str]) -> dict[str, str]:
    """Each test's newest recorded status in the snapshot (tests never recorded there are left out)."""
    import numpy as np

    from com.model.result import STATUS_CODES

    view = memory.results
    memory.follow(snapshot, [view])
    numbers: dict[int, str] = {}
    for tid in test_ids:
        numbers.update(view.test_numbers(TestMatch(tid, "exact")))
    if not numbers:
        return {}
    sel = view.select(snapshot, None, ("test", "ts", "batch", "seq", "status"))
    keep = np.isin(sel["test"], np.fromiter(numbers, dtype=np.int32))
    test, ts, batch, seq, status = (sel[k][keep] for k in ("test", "ts", "batch", "seq", "status"))
    if not len(test):
        return {}
    order = np.lexsort((seq, batch, ts, test))  # per test, the last row is its newest result
    last = order[np.r_[test[order][1:] != test[order][:-1], True]]
    return {numbers[int(t)]: STATUS_CODES[int(s)] for t, s in zip(test[last], status[last])}


def events(memory: Memory, where: EventFilter | None = None, at: str | None = None,
           limit: int | None = 50) -> EventsResult:
    """Events of the snapshot at `at`, newest first, filtered. Questions about test results only are answered
    from the test-results view; the others read the snapshot's batches, newest day first."""
    where = where or EventFilter()
    snapshot = memory.snapshot(at)
    if not snapshot:
        return EventsResult([])
    if where.results_only:
        memory.follow(snapshot, [memory.results])
        found, _ = memory.results.events(snapshot, where, limit)
        return EventsResult(found)
    return EventsResult(list(snapshot.events(where, limit, newest_first=True)))

