"""`com fsck`: check that the journal is whole and the derived data agrees with it; repair what is safe.

Checks: git's own fsck of the journal; HEAD and every branch and tag can be read; every batch under every
branch and tag passes `batches.check_batch` (each line a stored event whose project and day match its path, the
name matching its bytes); no event id stands for two versions within a snapshot; each derived store is readable
and agrees with the journal (the catalog knows every event of every snapshot, the test-results view holds every
result of the current branch); no lock file or temporary pack left behind by a killed process. Damage is
reported, never a crash.

The same event in two batches of one snapshot is harmless (both sides of a merge ingested it; readers
count it once) and is reported as information. One id with two versions (left by an older com, which merged
without resolving them) is repairable on the current branch: a new commit keeps the version a merge keeps.
Otherwise repair touches derived data and leftovers only: a derived store that is damaged or disagrees with
the journal is reset through the view protocol and rebuilt (a healthy one is kept), stale locks and temporary
files are removed; the journal's history is never rewritten.
"""

from __future__ import annotations

import shutil
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

import pygit2

from com.journal.batches import check_batch
from com.journal.merge import resolve_versions
from com.journal.gitsafe import UntrustedJournal, journal_git
from com.journal.remotes import sync_lock
from com.journal.repo import Journal
from com.journal.snapshot import Snapshot
from com.memory import Memory
from com.model.errors import ComError, Damaged
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
        _check_spools(memory.cache_path, report, repair)
    _check_git(journal, report)
    sizes: dict[str, int] = {}
    twice: set[str] = set()
    snapshots = _check_batches(journal, report, repair, sizes, twice)
    _check_views(memory, snapshots, report, repair, sizes, twice)
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


def _check_spools(cache: Path, report: Report, repair: bool) -> None:
    """Temporary batch files of an ingest killed before it wrote (`.com/cache/ingest-*`)."""
    now = time.time()
    stale = [p for p in cache.glob("ingest-*") if now - p.stat().st_mtime > STALE_SECONDS] if cache.is_dir() else []
    if stale:
        report.info.append(f"{len(stale)} folder(s) of temporary batch files left by killed ingests "
                           f"({sum(_size(p) for p in stale) // 1024} KiB)")
        if repair:
            for path in stale:
                shutil.rmtree(path, ignore_errors=True)
            report.repaired.append(f"removed {len(stale)} folder(s) of temporary batch files")


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


def _read_batch(journal: Journal, path: str, oid, report: Report) -> tuple[dict[str, bytes], int, set] | None:
    """(id -> stored line, how many lines, the ids it holds twice) of a batch, or None (and a problem) if it is
    not a valid batch."""
    try:
        data = journal.repo[oid].data
    except (KeyError, ValueError, AttributeError, pygit2.GitError):
        report.problem("batches", f"{path}: blob {str(oid)[:10]} is missing")
        return None
    checked = check_batch(path, data)
    for message in checked.problems:
        report.problem("batches", message)
    if checked.lines is None:
        return None
    twice: set[str] = set()
    if len(checked.lines) < len(checked.ids):  # an id on two lines of this batch
        seen: set[str] = set()
        for eid in checked.ids:
            (twice if eid in seen else seen).add(eid)
    return checked.lines, len(checked.ids), twice


def _check_batches(journal: Journal, report: Report, repair: bool, sizes: dict | None = None,
                   twice: set | None = None) -> dict[str, dict[str, list[str]]]:
    """Check every batch of every branch and tag; returns, per tip, id -> paths of its snapshot. Fills `sizes`
    (batch path -> lines) and `twice` (ids a batch holds twice), what the catalog must agree with."""
    parsed: dict[str, tuple | None] = {}  # blob id -> (events, lines, ids held twice), each blob read once
    snapshots: dict[str, dict[str, list[str]]] = {}
    seen_commits: dict[str, dict[str, list[str]]] = {}
    versions: dict[str, dict[str, list[str]]] = {}  # ref -> id -> paths, for ids with two versions there
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
        lines: dict[str, set] = {}
        try:
            batches = journal.batches(journal.tree(commit))
        except Damaged as exc:
            report.problem("refs", f"{ref}: {exc.message.removeprefix('the journal is damaged: ')}")
            continue
        for batch in batches:
            path, blob_key = batch.path, str(batch.oid)
            if blob_key not in parsed:
                parsed[blob_key] = _read_batch(journal, path, batch.oid, report)
            if parsed[blob_key] is None:
                continue
            events, n_lines, repeated = parsed[blob_key]
            if sizes is not None:
                sizes[path] = n_lines
            if twice is not None:
                twice |= repeated
            for eid, line in events.items():
                where.setdefault(eid, []).append(path)
                lines.setdefault(eid, set()).add(line)
        versioned = {eid: where[eid] for eid, held in lines.items() if len(held) > 1}
        if versioned:
            versions[ref] = versioned
        snapshots[ref] = seen_commits[key] = where
    try:
        head_ref = f"refs/heads/{journal.branch}"
    except Damaged as exc:
        report.problem("head", exc.message.removeprefix("the journal is damaged: "))
        head_ref = None
    current = snapshots.get(head_ref, {})
    shared_total = sum(1 for paths in current.values() if len(paths) > 1) - len(versions.get(head_ref, ()))
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
    _check_versions(journal, versions, head_ref, report, repair)
    return snapshots


def _check_versions(journal: Journal, versions: dict, head_ref: str | None, report: Report, repair: bool) -> None:
    """An id with two versions in one snapshot: only a journal written by an older com (or by hand) has it; a
    merge now keeps one. On the current branch it is repairable with a commit keeping the version a merge keeps
    (the earliest recorded); elsewhere (tags, other branches) it is information: history is never rewritten."""
    for ref, twice in sorted(versions.items()):
        example = sorted(twice)[0]
        text = (f"{ref}: {len(twice)} event id(s) with two versions, e.g. {example} in "
                f"{' and '.join(sorted(set(twice[example]))[:2])}")
        if ref != head_ref:
            report.info.append(text + " (readers take one; the branch it came from resolves it)")
            continue
        item = report.problem("versions", text + " (--repair keeps the earliest recorded, as a merge does)", True)
        if not repair:
            continue
        with journal.writing() as tx:
            if tx.tip is None:
                continue
            paths = sorted({p for paths in twice.values() for p in paths})
            outcome = resolve_versions(journal.repo, journal.tree(tx.tip).id, paths)
            tx.commit(f"fsck: keep one version of {len(outcome.resolutions)} event(s)", tree=outcome.tree)
        item["repaired"] = True
        report.repaired.append(f"kept one version of {len(outcome.resolutions)} event(s) on {ref} (a new commit)")


# -- derived data -----------------------------------------------------------------------------
def _check_views(memory: Memory, snapshots, report: Report, repair: bool, sizes=None, twice=None) -> None:
    if any(p["check"] in ("batches", "git", "refs", "head") for p in report.problems):
        # Derived stores are built from the batches: with damaged ones they can be neither checked nor rebuilt.
        report.info.append("derived data not checked: the journal itself is damaged (see above)")
        return
    checks = [("catalog", memory.catalog, lambda: _catalog_gaps(memory, snapshots, sizes or {}, twice or set())),
              ("test-results", memory.results, lambda: _result_gaps(memory, snapshots)),
              ("registry", memory.registry, None),
              ("analyses", memory.analyses, None)]
    try:
        index = _index_if_present(memory)
    except ComError as exc:  # e.g. lancedb not installed: nothing here can read it anyway
        report.info.append(f"search index not checked: {exc}")
        index = None
    if index is not None:
        checks.append(("index", index, None))
    for check, view, agrees in checks:
        error = view.health()
        if getattr(view, "recovered", None):  # found damaged on opening, and started over: rebuilt below
            item = report.problem(check, view.recovered, True)
            item["repaired"] = True
            report.repaired.append(f"rebuilt the {view.name} from the journal (it was damaged)")
            view.recovered = None
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


def _catalog_gaps(memory: Memory, snapshots, sizes: dict[str, int], twice: set[str]) -> str | None:
    """How many (event, batch) pairs of the snapshots the catalog does not know, batches whose size it has
    wrong (`com log` and `com diff` count with them) and ids held more than once it does not know as shared
    (`com diff` looks only at those), said as a problem."""
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
    wrong = []
    if gaps:
        wrong.append(f"the catalog misses {gaps} event(s) of the journal")
    counts = catalog.counts(sizes)
    miscounted = sum(1 for path, n in sizes.items() if counts.get(path) != n)
    if miscounted:
        wrong.append(f"the catalog counts the events of {miscounted} batch(es) wrong")
    from com.model.event import id_key

    expected = {id_key(eid) for where in snapshots.values() for eid, paths in where.items() if len(paths) > 1}
    expected |= {id_key(eid) for eid in twice}
    unknown = expected - set(catalog.shared_in(sizes)) if expected else set()
    if unknown:
        wrong.append(f"the catalog does not know {len(unknown)} event(s) held by more than one batch")
    return "; ".join(wrong) or None


def _result_gaps(memory: Memory, snapshots) -> str | None:
    """Does the test-results view hold exactly the current branch's test results, and do the shortcuts its reads
    take (where each test's runs and newest rows are, each batch's segment) agree with its rows?"""
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
    return memory.results.shortcuts_wrong()


def _index_if_present(memory: Memory):
    """The search index, only if there is one to check (no lancedb import for a memory that never searched)."""
    folder = Path(memory.index_path)
    if not memory.settings.get("index_uri") and not (folder.is_dir() and any(folder.iterdir())):
        return None
    return memory.index()
