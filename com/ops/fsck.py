"""`com fsck`: check that the journal is whole and the derived data agrees with it; repair what is safe.

Checks: git's own fsck of the journal; every batch under every branch and tag parses, line by line, as a
stored event whose project and day match its path and whose ids name the batch; no event id stands for
two different events within a snapshot; each derived store is readable and agrees with the journal (the
catalog knows every event of every snapshot, the test-results view holds every result of the current
branch); no lock file or temporary pack left behind by a killed process.

The same event in two batches of one snapshot is harmless (both sides of a merge ingested it; readers
count it once) and is reported as information. The same id with different content is corruption.
Repair touches derived data and leftovers only: a derived store that is damaged or disagrees with the
journal is reset through the view protocol and rebuilt (a healthy one is kept), stale locks and temporary
files are removed; the journal's history is never rewritten.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

import pygit2

from com.journal.batches import batch_name, project_day
from com.journal.gitsafe import UntrustedJournal, journal_git
from com.journal.remotes import sync_lock
from com.journal.repo import Journal
from com.journal.snapshot import Snapshot
from com.memory import Memory
from com.model.errors import ComError, InvalidEvent
from com.model.event import FIELDS, validate
from com.views.base import follow

# A temporary pack or lock file older than this belongs to a process that died, not to one at work.
STALE_SECONDS = 60


@dataclass
class Report:
    problems: list[dict] = field(default_factory=list)
    info: list[str] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)
    counts: dict = field(default_factory=dict)

    def problem(self, check: str, message: str, repairable: bool = False) -> dict:
        item = {"check": check, "message": message, "repairable": repairable, "repaired": False}
        self.problems.append(item)
        return item

    @property
    def ok(self) -> bool:
        return all(p["repaired"] for p in self.problems)

    def to_json(self) -> dict:
        return {"ok": self.ok, "counts": self.counts, "problems": self.problems, "info": self.info,
                "repaired": self.repaired}


def fsck(memory: Memory, repair: bool = False) -> Report:
    """Check the memory's journal and derived data; with repair, fix leftovers and rebuild derived data."""
    report = Report()
    journal = memory.journal
    # No sync or write may start while we look at (and maybe remove) leftovers; same order as a pull takes them.
    with sync_lock(journal), journal.write_lock():
        _check_leftovers(journal, report, repair)
    _check_git(journal, report)
    snapshots = _check_batches(journal, report)
    _check_views(memory, snapshots, report, repair)
    return report


# -- leftovers of killed processes ---------------------------------------------------------------
def _leftovers(git_dir: Path) -> tuple[list[Path], list[Path], list[Path]]:
    """(stale locks, young locks, stale temporary object files) in a git directory."""
    now = time.time()
    locks = [p for p in (git_dir / "refs").rglob("*.lock")]
    locks += [git_dir / name for name in ("packed-refs.lock", "HEAD.lock", "config.lock") if (git_dir / name).exists()]
    temps = list((git_dir / "objects" / "pack").glob("tmp_*")) + list((git_dir / "objects").glob("incoming-*"))
    temps += list((git_dir / "objects").glob("*/tmp_obj_*"))
    stale = lambda p: now - p.stat().st_mtime > STALE_SECONDS  # noqa: E731
    return [p for p in locks if stale(p)], [p for p in locks if not stale(p)], [p for p in temps if stale(p)]


def _check_leftovers(journal: Journal, report: Report, repair: bool) -> None:
    locks, young, temps = _leftovers(journal.path)
    for lock in young:
        report.info.append(f"lock file {lock.relative_to(journal.path)} (a git process may be at work; "
                           f"treated as stale after {STALE_SECONDS} s)")
    for lock in locks:
        rel = lock.relative_to(journal.path)
        item = report.problem("locks", f"stale lock file {rel} (left by a killed git or com process)", True)
        if repair:
            lock.unlink(missing_ok=True)
            item["repaired"] = True
            report.repaired.append(f"removed {rel}")
    if temps:
        size = sum(_size(p) for p in temps)
        report.info.append(f"{len(temps)} temporary object file(s) of interrupted transfers ({size // 1024} KiB)")
        if repair:
            for path in temps:
                shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
            report.repaired.append(f"removed {len(temps)} temporary object file(s)")


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


# -- git's own check ----------------------------------------------------------------------------
def _check_git(journal: Journal, report: Report) -> None:
    # Dangling objects are normal (a write killed before its ref moved), so they are not reported.
    try:
        proc = journal_git(journal.path, "fsck", ["--no-dangling", "--no-progress"])
    except UntrustedJournal as exc:  # came with the code, or configured by someone else: git is not run on it
        report.problem(exc.check, str(exc))
        return
    lines = [line.strip() for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    if proc.returncode != 0:
        shown = "; ".join(lines[:3]) + (f" (and {len(lines) - 3} more lines)" if len(lines) > 3 else "")
        report.problem("git", f"git fsck failed: {shown or f'exit code {proc.returncode}'}")
    elif lines:
        report.info.append("git fsck: " + "; ".join(lines[:3]))


# -- the batches ------------------------------------------------------------------------------
def _tips(journal: Journal) -> dict[str, pygit2.Commit]:
    repo = journal.repo
    tips = {}
    for ref in sorted(repo.references):
        if ref.startswith(("refs/heads/", "refs/tags/")):
            try:
                tips[ref] = repo.revparse_single(ref).peel(pygit2.Commit)
            except (KeyError, ValueError, pygit2.GitError) as exc:
                tips[ref] = exc
    return tips


def _read_batch(journal: Journal, path: str, oid, report: Report) -> dict[str, bytes] | None:
    """id -> stored line of a batch, or None (and a problem) if it is not a valid batch."""
    where = project_day(path)
    if where is None:
        report.problem("batches", f"{path}: not a batch path (events/<project>/<YYYY-MM-DD>/<id>.jsonl)")
        return None
    project, day = where
    try:
        data = journal.repo[oid].data
    except (KeyError, pygit2.GitError):
        report.problem("batches", f"{path}: blob {str(oid)[:10]} is missing")
        return None
    events: dict[str, bytes] = {}
    ids = []
    for n, line in enumerate(data.splitlines(), 1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
            if not isinstance(event, dict):
                raise InvalidEvent(f"expected a JSON object, got {type(event).__name__}")
            missing = [k for k in FIELDS if k not in event]
            if missing:
                raise InvalidEvent(f"missing field '{missing[0]}'")
            validate(event)
            if event["project"] != project or str(event["ts"])[:10] != day:
                raise InvalidEvent(f"event {event['id']} ({event['project']}, {str(event['ts'])[:10]}) is filed "
                                   f"under {project}/{day}")
        except (ValueError, InvalidEvent) as exc:  # json.JSONDecodeError is a ValueError
            message = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
            report.problem("batches", f"{path}: line {n}: {message}")
            return None
        ids.append(event["id"])
        if event["id"] in events and events[event["id"]] != line:
            report.problem("duplicates", f"{path}: event {event['id']} appears twice with different content")
        events[event["id"]] = line
    name = path.rsplit("/", 1)[1][: -len(".jsonl")]
    if ids and name != batch_name(ids):
        report.problem("batches", f"{path}: the batch name does not match its events (altered after writing?)")
    return events


def _check_batches(journal: Journal, report: Report) -> dict[str, dict[str, list[str]]]:
    """Check every batch of every branch and tag; returns, per tip, id -> paths of its snapshot."""
    parsed: dict[str, dict[str, bytes] | None] = {}  # blob id -> events, each blob read once
    snapshots: dict[str, dict[str, list[str]]] = {}
    seen_commits: dict[str, dict[str, list[str]]] = {}
    reported: set[str] = set()  # an id damaged in one batch shows in every tip that holds it: name it once
    tips = _tips(journal)
    for ref, commit in tips.items():
        if isinstance(commit, Exception):
            report.problem("refs", f"{ref}: does not point to a commit ({commit})")
            continue
        key = str(commit.id)
        if key in seen_commits:
            snapshots[ref] = seen_commits[key]
            continue
        where: dict[str, list[str]] = {}
        lines: dict[str, bytes] = {}
        for batch in journal.batches(commit.tree):
            path, blob_key = batch.path, str(batch.oid)
            if blob_key not in parsed:
                parsed[blob_key] = _read_batch(journal, path, batch.oid, report)
            events = parsed[blob_key]
            if events is None:
                continue
            for eid, line in events.items():
                if eid in lines and lines[eid] != line and eid not in reported:
                    reported.add(eid)
                    report.problem("duplicates", f"{ref}: event {eid} has different content in "
                                                 f"{where[eid][0]} and {path}")
                where.setdefault(eid, []).append(path)
                lines.setdefault(eid, line)
        snapshots[ref] = seen_commits[key] = where
    head_ref = f"refs/heads/{journal.branch}"
    current = snapshots.get(head_ref, {})
    shared_total = sum(1 for paths in current.values() if len(paths) > 1)
    report.counts.update({
        "branches": sum(1 for r in tips if r.startswith("refs/heads/")),
        "tags": sum(1 for r in tips if r.startswith("refs/tags/")),
        "batches": len(parsed),
        "events": len(current),
        "shared": shared_total,
    })
    if shared_total:
        report.info.append(f"{shared_total} event(s) of the current branch stored in more than one batch "
                           "(both sides of a merge ingested them; harmless, each is read once)")
    return snapshots


# -- derived data -----------------------------------------------------------------------------
def _check_views(memory: Memory, snapshots, report: Report, repair: bool) -> None:
    if any(p["check"] in ("batches", "git", "refs") for p in report.problems):
        # Derived stores are built from the batches: with damaged ones they can be neither checked nor rebuilt.
        report.info.append("derived data not checked: the journal itself is damaged (see above)")
        return
    checks = [("catalog", memory.catalog, lambda: _catalog_gaps(memory, snapshots)),
              ("test-results", memory.results, lambda: _result_gaps(memory, snapshots)),
              ("registry", memory.registry, None)]
    try:
        index = _index_if_present(memory)
    except ComError as exc:  # e.g. lancedb not installed: nothing here can read it anyway
        report.info.append(f"search index not checked: {exc}")
        index = None
    if index is not None:
        checks.append(("index", index, None))
    for check, view, agrees in checks:
        error = view.health()
        if error is None and agrees is not None:
            try:
                error = agrees()
            except (sqlite3.DatabaseError, KeyError, ValueError) as exc:
                error = f"the {view.name} cannot be read ({exc})"
        item = report.problem(check, error, True) if error else None
        if not repair or item is None:
            continue
        # Reset through the view's own protocol, under the journal's write lock (no ingest writes meanwhile),
        # then rebuilt from the journal; the index is rebuilt by the next command that reads it.
        with memory.journal.write_lock():
            view.reset()
            if agrees is not None:
                for ref in snapshots:
                    follow(memory.journal, memory.journal.repo.revparse_single(ref).peel(pygit2.Commit), [view])
            error = view.health() or (agrees() if agrees is not None else None)
        report.repaired.append(f"rebuilt the {view.name} from the journal" if agrees is not None
                               else f"removed the {view.name} (rebuilt from the journal on next use)")
        item["repaired"] = not error


def _catalog_gaps(memory: Memory, snapshots) -> str | None:
    """How many (event, batch) pairs of the snapshots the catalog does not know, said as a problem."""
    catalog = memory.catalog
    for ref in snapshots:
        follow(memory.journal, memory.journal.repo.revparse_single(ref).peel(pygit2.Commit), [catalog])
    gaps = 0
    checked: set[tuple[str, str]] = set()
    for where in snapshots.values():
        pending = [(eid, paths) for eid, paths in where.items() if (eid, paths[0]) not in checked]
        known = catalog.paths_of([eid for eid, _ in pending])
        for eid, paths in pending:
            have = set(known.get(eid, ()))
            gaps += sum(1 for p in paths if p not in have)
            checked.update((eid, p) for p in paths)
    return f"the catalog misses {gaps} event(s) of the journal" if gaps else None


def _result_gaps(memory: Memory, snapshots) -> str | None:
    """Does the test-results view hold exactly the current branch's test results?"""
    ref = f"refs/heads/{memory.journal.branch}"
    if ref not in snapshots:
        return None
    commit = memory.journal.repo.revparse_single(ref).peel(pygit2.Commit)
    snapshot = Snapshot(memory.journal, commit)
    memory.follow(snapshot, [memory.results])
    expected = sum(1 for e in snapshot.events() if e["type"] == "test_result"
                   and isinstance(e["data"].get("test_id"), str) and e["data"]["test_id"])
    held = len(memory.results.select(snapshot, None, ())["row"])
    if held != expected:
        return f"the test-results view holds {held} result(s) of the current branch, the journal {expected}"
    return None


def _index_if_present(memory: Memory):
    """The search index, only if there is one to check (no lancedb import for a memory that never searched)."""
    folder = Path(memory.index_path)
    if not memory.settings.get("index_uri") and not (folder.is_dir() and any(folder.iterdir())):
        return None
    return memory.index()
