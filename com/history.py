"""Reading the journal's history: log, show, diff between snapshots, and the events of a snapshot."""

from __future__ import annotations

import json

from com.events import FAILING, SEED_TYPES, format_ts, parse_time
from com.journal import Journal, about_events, commit_time


def _commit_info(journal: Journal, commit, added: int | None = None) -> dict:
    if added is None:
        added = sum(journal.repo[oid].data.count(b"\n") for _, oid in journal.added_blobs(commit))
    return {
        "sha": str(commit.id),
        "message": commit.message.strip(),
        "time": format_ts(commit_time(commit)),
        "added": added,
        "parents": [str(p) for p in commit.parent_ids],
    }


def log(journal: Journal, rev: str | None = None, limit: int | None = None) -> list[dict]:
    """Commits reachable from rev (default: the current branch), newest first."""
    import pygit2

    start = journal.resolve_or_none(rev)
    if start is None:
        return []
    out = []
    for commit in journal.repo.walk(start.id, pygit2.GIT_SORT_TIME | pygit2.GIT_SORT_TOPOLOGICAL):
        if limit is not None and len(out) >= limit:
            break
        out.append(_commit_info(journal, commit))
    return out


def show(journal: Journal, rev: str | None) -> dict:
    """One commit: what it says, the events it added, and the events an analysis commit is about."""
    commit = journal.resolve(rev)
    added = []
    for _, oid in journal.added_blobs(commit):
        added.extend(journal.read_blob(oid))
    added.sort(key=lambda e: e["ts"])
    info = _commit_info(journal, commit, added=len(added))
    info["events"] = added
    info["about"] = about_events(commit.message)
    return info


def _events_of_blobs(journal: Journal, blobs) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for _, oid in blobs:
        for event in journal.read_blob(oid):
            out.setdefault(event["id"], event)
    return out


def _in_snapshot(journal: Journal, commit, ids) -> set[str]:
    """Which of `ids` are in the snapshot `commit`, through the catalog (no full read)."""
    tree = commit.tree
    cache: dict[str, bool] = {}
    present = set()
    for eid, paths in journal.catalog.paths_of(ids).items():
        for path in paths:
            if path not in cache:
                cache[path] = journal.tree_has(tree, path)
            if cache[path]:
                present.add(eid)
                break
    return present


def diff(journal: Journal, rev_a: str, rev_b: str | None = None) -> dict:
    """Events added and removed between two whole snapshots, and the tests that began or stopped failing."""
    a = journal.resolve(rev_a)
    b = journal.resolve(rev_b)
    journal.catalog.ensure(journal, a)
    journal.catalog.ensure(journal, b)
    only_b, only_a = [], []
    for delta in journal.repo.diff(a.tree, b.tree).deltas:
        if not delta.new_file.path.startswith("events/") and not delta.old_file.path.startswith("events/"):
            continue
        if delta.status_char() in "AM":
            only_b.append((delta.new_file.path, delta.new_file.id))
        if delta.status_char() in "DM":
            only_a.append((delta.old_file.path, delta.old_file.id))
    cand_added = _events_of_blobs(journal, only_b)
    cand_removed = _events_of_blobs(journal, only_a)
    # The same event can sit in two batches (both sides of a merge wrote it): only a real change counts.
    in_a = _in_snapshot(journal, a, cand_added.keys())
    in_b = _in_snapshot(journal, b, cand_removed.keys())
    added = sorted((e for i, e in cand_added.items() if i not in in_a), key=lambda e: e["ts"])
    removed = sorted((e for i, e in cand_removed.items() if i not in in_b), key=lambda e: e["ts"])

    latest_b: dict[str, tuple[str, str]] = {}
    for event in added:
        if event["type"] == "test_result" and event["data"].get("test_id"):
            tid = event["data"]["test_id"]
            if tid not in latest_b or event["ts"] >= latest_b[tid][0]:
                latest_b[tid] = (event["ts"], event["data"]["status"])
    tree_a = a.tree
    path_cache: dict[str, bool] = {}

    def in_a_tree(path: str) -> bool:
        if path not in path_cache:
            path_cache[path] = journal.tree_has(tree_a, path)
        return path_cache[path]

    newly_failing, fixed = [], []
    for tid, (_, status_b) in sorted(latest_b.items()):
        before = journal.catalog.latest_status(tid, in_a_tree)
        if status_b in FAILING and before not in FAILING:
            newly_failing.append(tid)
        elif status_b == "passed" and before in FAILING:
            fixed.append(tid)
    return {
        "from": str(a.id),
        "to": str(b.id),
        "added": added,
        "removed": removed,
        "summary": {"newly_failing": newly_failing, "fixed": fixed},
    }


def list_events(
    journal: Journal,
    at: str | None = None,
    type: str | None = None,
    project: str | None = None,
    test: str | None = None,
    status: str | None = None,
    since: str | None = None,
    until: str | None = None,
    limit: int | None = 50,
) -> list[dict]:
    """Events of the snapshot at `at`, newest first, filtered.

    Batches sit in per-day folders named after their events' dates, so reading newest days first
    and stopping once `limit` events are older than the next day keeps this fast on big journals."""
    commit = journal.resolve_or_none(at)
    if commit is None:
        return []
    if type in SEED_TYPES:  # the seed's test_failure etc. are test_result with that status
        status = status or SEED_TYPES[type]
        type = "test_result"
    since_ts = format_ts(parse_time(since, "--since")) if since else None
    until_ts = format_ts(parse_time(until, "--until")) if until else None
    # Batches store text unescaped (ensure_ascii=False): the needle must be encoded the same way.
    needle = json.encoder.encode_basestring(test)[1:-1].encode("utf-8") if test else None
    found: dict[str, dict] = {}
    current_day = None
    for path, oid, day in journal.batches(commit.tree, project=project, since=since_ts, until=until_ts):
        if limit is not None and day != current_day and len(found) >= limit:
            oldest_kept = sorted(e["ts"] for e in found.values())[-limit]
            if oldest_kept[:10] > day:
                break
        current_day = day
        data = journal.repo[oid].data
        for line in _lines_with(data, needle) if needle is not None else data.splitlines():
            event = json.loads(line)
            if event["id"] in found:
                continue
            if type and event["type"] != type:
                continue
            if test and event["data"].get("test_id") != test:
                continue
            if status and event["data"].get("status") != status:
                continue
            if since_ts and event["ts"] < since_ts:
                continue
            if until_ts and event["ts"] > until_ts:
                continue
            found[event["id"]] = event
    events = sorted(found.values(), key=lambda e: (e["ts"], e["id"]), reverse=True)
    return events[:limit] if limit is not None else events


def _lines_with(data: bytes, needle: bytes):
    """The lines of a batch that contain needle, found by searching the bytes rather than every line."""
    start = data.find(needle)
    while start != -1:
        begin = data.rfind(b"\n", 0, start) + 1
        end = data.find(b"\n", start)
        end = len(data) if end == -1 else end
        yield data[begin:end]
        start = data.find(needle, end)


def snapshot_events(journal: Journal, at: str | None = None):
    """Every event of the snapshot at `at`, each once (the whole history, for analyses)."""
    commit = journal.resolve_or_none(at)
    if commit is None:
        return
    seen = set()
    for _, oid, _ in journal.batches(commit.tree):
        for event in journal.read_blob(oid):
            if event["id"] not in seen:
                seen.add(event["id"])
                yield event
