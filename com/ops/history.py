"""Reading the memory's history: log, show, diff between snapshots, and the events of a snapshot."""

from __future__ import annotations

from dataclasses import dataclass

import pygit2

from com.journal.repo import about_events, commit_time
from com.journal.snapshot import Snapshot
from com.memory import Memory
from com.model.event import FAILING, format_ts, ts_us
from com.model.filter import EventFilter, TestMatch
from com.ops.result import Result, Stream


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
    newly_failing: list
    fixed: list


@dataclass
class DiffResult(Result):
    from_: str
    to: str
    added: Stream
    removed: Stream
    summary: DiffSummary


@dataclass
class EventsResult(Result):
    events: list


def _commit_info(journal, commit, added: int) -> CommitInfo:
    return CommitInfo(str(commit.id), commit.message.strip(), format_ts(commit_time(commit)), added,
                      [str(p) for p in commit.parent_ids])


def batch_counts(memory: Memory, batches) -> dict[str, int]:
    """How many events each batch holds: from the catalog, reading only the batches it has not taken in yet
    (e.g. just pulled; fsck checks the catalog against the journal)."""
    counts = memory.catalog.counts({b.path for b in batches}) if batches else {}
    for batch in batches:
        if batch.path not in counts:
            counts[batch.path] = sum(1 for line in memory.journal.blob(batch.oid).split(b"\n") if line.strip())
    return counts


def log(memory: Memory, rev: str | None = None, limit: int | None = None) -> LogResult:
    """Commits reachable from rev (default: the current branch), newest first, with the events each added."""
    journal = memory.journal
    start = journal.resolve_or_none(rev)
    if start is None:
        return LogResult([])
    commits = []
    for commit in journal.repo.walk(start.id, pygit2.GIT_SORT_TIME | pygit2.GIT_SORT_TOPOLOGICAL):
        if limit is not None and len(commits) >= limit:
            break
        commits.append((commit, journal.added_batches(commit)))
    counts = batch_counts(memory, [b for _, added in commits for b in added])
    return LogResult([_commit_info(journal, c, sum(counts[b.path] for b in added)) for c, added in commits])


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


def changed_batches(journal, a: Snapshot, b: Snapshot) -> tuple[list, list]:
    """(the batches only b holds, the batches only a holds), in path order: one diff of the two trees."""
    from com.journal.batches import Batch

    only_b, only_a = [], []
    for delta in journal.repo.diff(a.commit.tree, b.commit.tree).deltas:
        for path, oid, wanted in ((delta.new_file.path, delta.new_file.id, "AM"),
                                  (delta.old_file.path, delta.old_file.id, "DM")):
            parts = path.split("/")
            if len(parts) == 4 and parts[0] == "events" and delta.status_char() in wanted:
                (only_b if wanted == "AM" else only_a).append(Batch(path, oid, parts[2], parts[1]))
    return only_b, only_a


def _one_side(memory: Memory, batches: list, other: Snapshot) -> tuple[Stream, set[int]]:
    """The events of `batches` that `other` lacks, each once, oldest first, as a stream that reads the batches
    only when it is written out; and the keys of the events left out because `other` holds them too.

    An event is in a snapshot exactly when one of its batches is, and these batches are not in `other`: so only
    an event the catalog knows in more than one batch (both sides of a merge ingested it) needs a look, and
    the count needs no batch read at all when there is none."""
    from com.journal.batches import line_key, lines_in_time_order

    journal, catalog = memory.journal, memory.catalog
    paths = [batch.path for batch in batches]
    total = sum(batch_counts(memory, batches).values())
    shared = catalog.shared_in(paths)
    if not shared:
        return Stream(total, lambda: lines_in_time_order(journal, batches)), set()
    held = {key for key, where in catalog.paths_of_keys(shared).items() if any(other.has_path(p) for p in where)}
    holding = {p for where in shared.values() for p in where}
    lines = sum(1 for batch in batches if batch.path in holding
                for line in journal.blob(batch.oid).split(b"\n") if line.strip() and line_key(line) in shared)
    total += len(shared.keys() - held) - lines

    def chunks():
        given: set[int] = set()

        def keep(line: bytes) -> bool:
            key = line_key(line)
            if key not in shared:
                return True
            if key in held or key in given:
                return False
            given.add(key)
            return True

        return lines_in_time_order(journal, batches, keep)

    return Stream(total, chunks), held


def diff(memory: Memory, rev_a: str, rev_b: str | None = None) -> DiffResult:
    """Events added and removed between two whole snapshots, and the tests that began or stopped failing.

    The events are streams (read when written out); the counts come from the catalog and the tests from the
    test-results view, so a human answer reads no batch."""
    journal = memory.journal
    a, b = Snapshot(journal, journal.resolve(rev_a)), Snapshot(journal, journal.resolve(rev_b))
    only_b, only_a = changed_batches(journal, a, b)
    memory.follow(a, [memory.catalog])
    memory.follow(b, [memory.catalog])
    # The same event can sit in two batches (both sides of a merge wrote it): only a real change counts.
    added, in_a = _one_side(memory, only_b, a)
    removed, _ = _one_side(memory, only_a, b)
    return DiffResult(a.sha, b.sha, added, removed, _summary(memory, a, b, only_b, in_a))


def _summary(memory: Memory, a: Snapshot, b: Snapshot, only_b: list, in_a: set[int]) -> DiffSummary:
    """Tests whose newest added result fails while their newest result in a did not (newly failing), and tests
    whose newest added result passes while a's failed (fixed): one grouped query per side."""
    import numpy as np

    from com.model.result import STATUS_CODE

    if not only_b:
        return DiffSummary([], [])
    view = memory.results
    memory.follow(b, [view])
    memory.follow(a, [view])
    tests_b, status_b = view.latest(paths=[batch.path for batch in only_b], without_keys=in_a)
    if not len(tests_b):
        return DiffSummary([], [])
    tests_a, status_a = view.latest(a, tests=tests_b)
    before = np.full(len(tests_b), -1, dtype=np.int16)  # -1: never recorded in a
    before[np.searchsorted(tests_b, tests_a)] = status_a
    failing = np.asarray([STATUS_CODE[s] for s in FAILING])
    was_failing, fails = np.isin(before, failing), np.isin(status_b, failing)
    newly = tests_b[fails & ~was_failing]
    fixed = tests_b[(status_b == STATUS_CODE["passed"]) & was_failing]
    names = view.test_names(np.concatenate([newly, fixed]))
    return DiffSummary(sorted(names[int(t)] for t in newly), sorted(names[int(t)] for t in fixed))


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
    tests, statuses = view.latest(snapshot, tests=np.fromiter(numbers, dtype=np.int32))
    return {numbers[int(t)]: STATUS_CODES[int(s)] for t, s in zip(tests, statuses)}


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

