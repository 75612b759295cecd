"""Reading the memory's history: log, show, diff between snapshots, and the events of a snapshot."""

from __future__ import annotations

from dataclasses import dataclass, field

import pygit2

from com.journal.repo import about_events, commit_time, damaged
from com.journal.snapshot import Snapshot
from com.memory import Memory
from com.model.errors import ComError, NotFound
from com.model.event import FAILING, format_ts, is_event_id, ts_us
from com.model.filter import EventFilter, TestMatch
from com.ops.result import Result, Stream

EVENT_PREFIX_MIN = 6  # hex digits of an abbreviated event id (`com show evt_646cf8`)
ADDED_READ_MAX = 2_000  # `com diff` parses up to this many added events rather than find their rows in the view


@dataclass
class CommitInfo(Result):
    commit: str
    message: str
    ts: str
    added: int
    parents: list


@dataclass
class LogResult(Result):
    commits: list


@dataclass
class ShowResult(CommitInfo):
    events: list
    about: list  # event ids an analysis commit names
    about_events: list  # those events, as stored (ids the snapshot lacks are left out)


@dataclass
class EventShown(Result):
    event: dict
    batch: str  # the batch file holding it
    commit: str | None  # the journal commit that added that batch (on the way to the snapshot)


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
    added: Stream
    removed: Stream
    summary: DiffSummary


@dataclass
class EventsResult(Result):
    events: list
    total: int | None = None  # how many match in all, when that is known without reading them all
    more: bool = False  # more match than were given (the limit cut them)


def _commit_info(journal, commit, added: int) -> CommitInfo:
    return CommitInfo(str(commit.id), commit.message.strip(), format_ts(commit_time(commit)), added,
                      [str(p) for p in commit.parent_ids])


def batch_counts(memory: Memory, batches) -> dict[str, int]:
    """How many events each batch holds: from the catalog, reading only the batches it has not taken in yet
    (e.g. just pulled; fsck checks the catalog against the journal)."""
    counts = memory.catalog.counts({b.path for b in batches}) if batches else {}
    for batch in batches:
        if batch.path not in counts:
            data = memory.journal.blob(batch.oid, batch.path)
            counts[batch.path] = sum(1 for line in data.split(b"\n") if line.strip())
    return counts


def log(memory: Memory, rev: str | None = None, limit: int | None = None) -> LogResult:
    """Commits reachable from rev (default: the current branch), newest first, with the events each added;
    `limit` None or 0: all."""
    _check_count(limit, "limit")
    limit = limit or None
    journal = memory.journal
    start = journal.resolve_or_none(rev)
    if start is None:
        return LogResult([])
    commits = []
    try:
        for commit in journal.repo.walk(start.id, pygit2.GIT_SORT_TIME | pygit2.GIT_SORT_TOPOLOGICAL):
            if limit is not None and len(commits) >= limit:
                break
            commits.append((commit, journal.added_batches(commit)))
    except (KeyError, pygit2.GitError) as exc:
        raise damaged(f"the history below {str(start.id)[:10]} cannot be read ({exc})") from None
    counts = batch_counts(memory, [b for _, added in commits for b in added])
    return LogResult([_commit_info(journal, c, sum(counts[b.path] for b in added)) for c, added in commits])


def _check_count(value, param: str) -> None:
    if value is not None and value < 0:
        raise ComError(f"must be 0 or more (0: no limit), got {value}", param=param)


def show(memory: Memory, rev: str | None) -> ShowResult | EventShown:
    """One commit: what it says, the events it added, and the events an analysis commit is about. An event id
    (or an unambiguous prefix of one, `evt_` and at least 6 hex digits) shows that event whole instead."""
    if rev and rev.startswith("evt_") and memory.journal.resolve_or_none(None) is not None:
        try:
            memory.journal.repo.revparse_single(rev)  # a branch or tag that happens to be named evt_…
        except (KeyError, ValueError):
            return show_event(memory, rev)
    journal = memory.journal
    commit = journal.resolve(rev)
    added = []
    for batch in journal.added_batches(commit):
        added.extend(batch.events(journal))
    added.sort(key=lambda e: ts_us(e["ts"]))
    info = _commit_info(journal, commit, added=len(added))
    about = about_events(commit.message)
    return ShowResult(**vars(info), events=added, about=about, about_events=_events_by_id(memory, commit, about))


def _events_by_id(memory: Memory, commit, ids: list[str]) -> list[dict]:
    """The events of the snapshot at `commit` with these ids, in the order given."""
    ids = [i for i in ids if is_event_id(i)]
    if not ids:
        return []
    memory.known_ids(commit, ids)  # brings the catalog up to `commit`
    snapshot = Snapshot(memory.journal, commit)
    found: dict[str, dict] = {}
    for eid, paths in memory.catalog.paths_of(ids).items():
        for path in paths:
            if eid not in found and snapshot.has_path(path):
                found.update((e["id"], e) for e in _batch_events(memory, commit, path) if e["id"] in ids)
    return [found[i] for i in ids if i in found]


def _batch_events(memory: Memory, commit, path: str) -> list[dict]:
    from com.journal.batches import parse_lines

    return parse_lines(memory.journal.blob(commit.tree[path].id))


def show_event(memory: Memory, ref: str, at: str | None = None) -> EventShown:
    """One event of the snapshot at `at` (default HEAD), found through the catalog, with its batch and the
    journal commit that added it."""
    hexpart = ref[4:]
    if not hexpart or len(hexpart) > 24 or any(c not in "0123456789abcdef" for c in hexpart):
        raise ComError(f"'{ref}' is neither a revision nor an event id (evt_ and 24 hex digits)", param="rev")
    if len(hexpart) < EVENT_PREFIX_MIN:
        raise ComError(f"'{ref}' is too short to name an event (give evt_ and at least {EVENT_PREFIX_MIN} hex "
                       "digits)", param="rev")
    snapshot = memory.snapshot(at)
    memory.follow(snapshot, [memory.catalog])
    paths = [p for p in memory.catalog.paths_with_prefix(hexpart) if snapshot.has_path(p)]
    matches: dict[str, tuple[dict, str]] = {}
    for path in sorted(paths):
        for event in _batch_events(memory, snapshot.commit, path):
            if event["id"].startswith(ref) and event["id"] not in matches:
                matches[event["id"]] = (event, path)
    if not matches:
        raise NotFound(f"unknown event id '{ref}' (not in {_where(memory, at)})", param="rev")
    if len(matches) > 1:
        some = ", ".join(sorted(matches)[:3])
        raise ComError(f"'{ref}' is ambiguous: {len(matches)} events start with it ({some}…)", param="rev")
    event, path = next(iter(matches.values()))
    return EventShown(event, path, _commit_adding(memory, snapshot.commit, path))


def _where(memory: Memory, at: str | None) -> str:
    return at if at else f"branch {memory.journal.branch}"


def _commit_adding(memory: Memory, head, path: str) -> str | None:
    """The newest commit reachable from `head` whose first parent lacks `path` (the one that brought it)."""
    for commit in memory.journal.repo.walk(head.id, pygit2.GIT_SORT_TOPOLOGICAL | pygit2.GIT_SORT_TIME):
        if not _has(commit.tree, path):
            continue
        if not commit.parents or not _has(commit.parents[0].tree, path):
            return str(commit.id)
    return None


def _has(tree, path: str) -> bool:
    try:
        tree[path]
        return True
    except KeyError:
        return False


def changed_batches(journal, a: Snapshot, b: Snapshot) -> tuple[list, list]:
    """(the batches only b holds, the batches only a holds), in path order: one diff of the two trees."""
    from com.journal.batches import Batch

    only_b, only_a = [], []
    try:
        deltas = journal.repo.diff(journal.tree(a.commit), journal.tree(b.commit)).deltas
    except (KeyError, pygit2.GitError) as exc:
        raise damaged(f"{a.sha[:10]} and {b.sha[:10]} cannot be compared ({exc})") from None
    for delta in deltas:
        for path, oid, wanted in ((delta.new_file.path, delta.new_file.id, "AM"),
                                  (delta.old_file.path, delta.old_file.id, "DM")):
            parts = path.split("/")
            if len(parts) == 4 and parts[0] == "events" and delta.status_char() in wanted:
                (only_b if wanted == "AM" else only_a).append(Batch(path, oid, parts[2], parts[1]))
    return only_b, only_a


def _one_side(memory: Memory, batches: list, other: Snapshot) -> tuple[Stream, set[tuple[int, int]]]:
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
        given: set[tuple[int, int]] = set()

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
    """Events added and removed between two whole snapshots, and the tests that began or stopped failing: flips
    of flaky tests apart from regressions and fixes, and what the flaky registry says changed.

    The events are streams (read when written out); the counts come from the catalog and the tests from the
    test-results view: a human answer reads no batch but the added ones of a short range (a CI run's worth
    is parsed faster than its rows are found among a million)."""
    journal = memory.journal
    a, b = Snapshot(journal, journal.resolve(rev_a)), Snapshot(journal, journal.resolve(rev_b))
    only_b, only_a = changed_batches(journal, a, b)
    memory.follow(a, [memory.catalog])
    memory.follow(b, [memory.catalog])
    # The same event can sit in two batches (both sides of a merge wrote it): only a real change counts.
    added, in_a = _one_side(memory, only_b, a)
    removed, _ = _one_side(memory, only_a, b)
    newly_failing, fixed = _flips(memory, a, b, only_b, in_a)
    from com.ops.flaky import classify_flips

    flips = classify_flips(memory, a, b, newly_failing, fixed)
    return DiffResult(a.sha, b.sha, added, removed,
                      DiffSummary(flips.newly_failing, flips.fixed, flips.flaky, flips.registry))


def _flips(memory: Memory, a: Snapshot, b: Snapshot, only_b: list, in_a: set[tuple[int, int]]) -> tuple[list, list]:
    """Tests whose newest added result fails while their newest result in a did not (newly failing), and tests
    whose newest added result passes while a's failed (fixed): with the standard library for a few added
    results, else one grouped numpy query per side; the answers are the same (tests/test_test_results.py)."""
    from com.model.result import STATUS_CODE

    if not only_b:
        return [], []
    view = memory.results
    memory.follow(b, [view])
    memory.follow(a, [view])
    paths = [batch.path for batch in only_b]
    # A few added results (a small suite's run) are parsed from their batches and compared without numpy,
    # whose import would be most of the cost; more (a CI run of thousands) in numpy, faster per row.
    now = before = None
    if sum(batch_counts(memory, only_b).values()) <= ADDED_READ_MAX:
        now = view.newest_in_batches([batch.events(memory.journal) for batch in only_b], in_a)
        before = view.newest(a, tests=now)
    if before is None:
        now, before = _newest_with_numpy(view, a, paths, in_a)
    failing = {STATUS_CODE[s] for s in FAILING}
    passed = STATUS_CODE["passed"]
    newly = [t for t, code in now.items() if code in failing and before.get(t) not in failing]
    fixed = [t for t, code in now.items() if code == passed and before.get(t) in failing]
    names = view.test_names(newly + fixed)
    return sorted(names[t] for t in newly), sorted(names[t] for t in fixed)


def _newest_with_numpy(view, a: Snapshot, paths: list[str], in_a) -> tuple[dict[int, int], dict[int, int]]:
    tests_b, status_b = view.latest(paths=paths, without_keys=in_a)
    if not len(tests_b):
        return {}, {}
    tests_a, status_a = view.latest(a, tests=tests_b)
    return dict(zip(tests_b.tolist(), status_b.tolist())), dict(zip(tests_a.tolist(), status_a.tolist()))


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
    """Events of the snapshot at `at`, newest first, filtered; `limit` None or 0: all. Questions about test
    results only are answered from the test-results view; the others read the snapshot's batches, newest day
    first. `total` is how many match in all when that costs nothing more (the view counts; with no filter but
    projects, the catalog knows each batch's size); else `more` says whether the limit cut some.

    A `--test` that names no recorded test is an error (NotFound), not an empty answer."""
    _check_count(limit, "limit")
    limit = limit or None
    where = where or EventFilter()
    snapshot = memory.snapshot(at)
    if not snapshot:
        return EventsResult([], 0)
    if where.results_only:
        memory.follow(snapshot, [memory.results])
        found, total = memory.results.events(snapshot, where, limit)
        if not found and where.test is not None and not memory.results.test_numbers(where.test):
            raise NotFound(f"no recorded test matches '{where.test.pattern}'{_close_tests(memory, where.test)}",
                           param="test")
        return EventsResult(found, total, total > len(found))
    if where.but(projects=()).empty:
        found = list(snapshot.events(where, limit, newest_first=True))
        if limit is None or len(found) < limit:
            return EventsResult(found, len(found), False)
        memory.follow(snapshot, [memory.catalog])
        batches = [b.path for b in snapshot.batches() if not where.projects or b.project in where.projects]
        total = max(sum(memory.catalog.counts(batches).values()), len(found))  # two batches' copies: counted twice
        return EventsResult(found, total, total > len(found))
    found = list(snapshot.events(where, limit + 1 if limit else None, newest_first=True))
    more = limit is not None and len(found) > limit
    return EventsResult(found[:limit] if limit else found, None if more else len(found), more)


def _close_tests(memory: Memory, match: TestMatch) -> str:
    """' (did you mean ...?)' naming a recorded test like what was typed: one whose id ends with it (a bare
    function name), else one spelled closely."""
    import difflib

    names = memory.results.test_ids()
    tail = [n for n in names if n.endswith("::" + match.pattern) or n.endswith("/" + match.pattern)]
    if len(tail) == 1:
        return f" (did you mean '{tail[0]}'?)"
    if tail:
        return f" ({len(tail)} tests end with it, e.g. '{tail[0]}'; a glob takes them all: '*{match.pattern}')"
    close = difflib.get_close_matches(match.pattern, names[:20000], n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""

