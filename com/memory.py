"""The memory: a `.com/` folder holding the journal and the derived stores that follow it, with its settings
loaded once. Where it is (`--memory`, `$COM_DIR`, the nearest `.com/` upwards), how it is created, and how
events are recorded: deduplicated against the snapshot, written as one commit, then taken in by the views.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import pygit2

from com.journal import batches as batch_files
from com.journal.repo import Journal, write_error
from com.journal.snapshot import Snapshot
from com.model.errors import ComError, NotFound
from com.model.event import difference, same_event
from com.settings import Settings
from com.settings import load as load_settings
from com.files import sqlite as sqlite_files
from com.views.analyses import AnalysesView
from com.views.base import SqliteView, follow
from com.views.catalog import Catalog
from com.views.registry import RegistryView
from com.views.test_results import TestResultsView

MEMORY_DIRNAME = ".com"
EAGER_RESULTS = 5_000  # a write of at most this many events is taken in by the test-results view at once


@dataclass
class WriteResult:
    commit: str | None
    added: int
    duplicates: int
    ids: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # derived stores that could not catch up (data is saved)
    # With record(views_later=True): brings the views up to this commit when called (returns warnings as above).
    catch_up: Callable[[], list[str]] | None = field(default=None, repr=False, compare=False)

    def to_json(self) -> dict:
        return {"commit": self.commit, "added": self.added, "duplicates": self.duplicates, "ids": self.ids}


class Memory:
    """One memory: journal, derived stores and models, each opened on first use."""

    def __init__(self, root: Path, settings: Settings | None = None):
        self.root = Path(root)
        self.settings = settings if settings is not None else load_settings()
        self.notes: list[str] = []  # what a front end should say as warnings (derived data rebuilt, ...)
        self._cache_path: Path | None = None
        self._journal: Journal | None = None
        self._catalog: Catalog | None = None
        self._results: TestResultsView | None = None
        self._analyses: AnalysesView | None = None
        self._registry: RegistryView | None = None
        self._embedder = None
        self._index = None

    @property
    def journal_path(self) -> Path:
        return self.root / "journal.git"

    @property
    def index_path(self) -> Path:
        return self.root / "index"

    @property
    def cache_path(self) -> Path:
        """`.com/cache`, or, when it cannot be written (a read-only memory), a private copy of it for this process:
        reads keep working, and derived stores behind the journal catch up in the copy."""
        if self._cache_path is None:
            real = self.root / "cache"
            self._cache_path = real if writable(real) else scratch_copy(real)
        return self._cache_path

    def warnings(self) -> list[str]:
        """Notes for the user gathered while working: derived stores found damaged and rebuilt, and so on."""
        out = list(self.notes)
        for view in (self._catalog, self._results, self._analyses, self._registry):
            if view is not None and view.recovered:
                out.append(view.recovered)
                view.recovered = None
        self.notes.clear()
        return out

    # -- the parts ---------------------------------------------------------------------------------
    @property
    def journal(self) -> Journal:
        if self._journal is None:
            self._journal = Journal(self.journal_path)
        return self._journal

    def reopen_journal(self) -> Journal:
        """A fresh journal handle (sees packs git wrote behind the old one's back, e.g. after a fetch)."""
        self._journal = Journal(self.journal_path)
        return self._journal

    @property
    def catalog(self) -> Catalog:
        if self._catalog is None:
            self._catalog = Catalog(self.cache_path)
        return self._catalog

    @property
    def results(self) -> TestResultsView:
        if self._results is None:
            self._results = TestResultsView(self.cache_path)
            self._results.ids_may_repeat = self._ids_may_repeat
        return self._results

    def _ids_may_repeat(self, snapshot: Snapshot) -> bool:
        """Whether an event may sit in two of the snapshot's batches (both sides of a merge wrote it). The catalog
        keeps every id held by more than one batch, so the test-results view pays for removing second copies
        (a sort of every row's id) only in a memory that has some."""
        if snapshot.commit is None:
            return False
        self._follow(snapshot.commit, [self.catalog])
        return self.catalog.any_shared()

    @property
    def analyses(self) -> AnalysesView:
        """Which journal commits are analyses naming which events (lazy: followed by the commands that read it)."""
        if self._analyses is None:
            self._analyses = AnalysesView(self.cache_path, lambda: self.journal)
        return self._analyses

    @property
    def registry(self) -> RegistryView:
        """The flaky registry's events (status changes, healing attempts, committed detections)."""
        if self._registry is None:
            self._registry = RegistryView(self.cache_path)
        return self._registry

    def eager_views(self, events: int = 0) -> list:
        """The views a write of `events` events brings up to date at once. The catalog always (ingest dedupes
        through it); the test-results view for small writes only (about 15 us per result: a bulk import or a
        CI run of thousands is taken in by the next command that reads it, so ingest keeps the journal's
        speed); the registry view always (it only looks at each event's type); the index when it is read
        (embedding costs seconds)."""
        if events <= EAGER_RESULTS:
            return [self.catalog, self.results, self.registry]
        return [self.catalog, self.registry]

    def embedder(self):
        if self._embedder is None:
            from com.models.embedding import Embedder

            self._embedder = Embedder.for_name(str(self.settings.get("embedding_model")), self.cache_path,
                                               self.settings.get("embedding_dim"))
        return self._embedder

    def index(self, progress=None):
        """The semantic index (lancedb is imported here, only by the commands that search)."""
        if self._index is None:
            from com.views.index import Index, index_uri

            self._index = Index(index_uri(self.settings, self.root), self.cache_path, self.embedder(), progress)
        self._index.progress = progress
        return self._index

    def close(self) -> None:
        for view in (self._catalog, self._results, self._analyses, self._registry):
            if view is not None:
                view.close()

    # -- reading ----------------------------------------------------------------------------------
    def snapshot(self, rev: str | None = None) -> Snapshot:
        return Snapshot.at(self.journal, rev)

    def follow(self, snapshot: Snapshot, views=None) -> None:
        """Bring views (default: the eager ones) up to a snapshot before reading them."""
        if snapshot.commit is not None:
            self._follow(snapshot.commit, views if views is not None else self.eager_views())

    def _follow(self, commit, views, written=None) -> None:
        """`views.base.follow`, and once more after starting over a store found damaged on the way (derived
        data: rebuilt from the journal)."""
        try:
            follow(self.journal, commit, views, written=written)
        except sqlite3.DatabaseError as exc:
            if not sqlite_files.damaged(exc):
                raise
            stores = [v for v in views if isinstance(v, SqliteView)]
            broken = [v for v in stores if v.health() is not None] or stores
            for view in broken:
                view.recover(exc)
            follow(self.journal, commit, views, written=written)

    def known_ids(self, commit, ids) -> set[str]:
        """Which of `ids` the snapshot at `commit` holds (through the catalog: no batch is read)."""
        if commit is None:
            return set()
        self._follow(commit, [self.catalog])
        return Snapshot(self.journal, commit).holding(self.catalog.paths_of(ids))

    def stored(self, commit, ids) -> dict[str, tuple[str, dict]]:
        """id -> (batch path, stored event) of those `ids` the snapshot at `commit` holds (reads their batches)."""
        if commit is None or not ids:
            return {}
        self._follow(commit, [self.catalog])
        snapshot = Snapshot(self.journal, commit)
        wanted: dict[str, list[str]] = {}
        for eid, paths in self.catalog.paths_of(ids).items():
            held = [p for p in paths if snapshot.has_path(p)]
            if held:
                wanted.setdefault(min(held), []).append(eid)
        out = {}
        tree = self.journal.tree(commit)
        for path, eids in wanted.items():
            data = self.journal.blob(tree[path].id, path)
            if len(eids) > 20:  # many ids of one batch (a re-import): index its lines once
                lines = {batch_files.line_id(line): line for line in data.split(b"\n") if line.strip()}
                found = {eid: lines[eid] for eid in eids if eid in lines}
            else:
                found = {}
                for eid in eids:
                    start = data.find(f'"id":"{eid}"'.encode())
                    if start != -1:
                        begin = data.rfind(b"\n", 0, start) + 1
                        end = data.find(b"\n", start)
                        found[eid] = data[begin:end if end != -1 else len(data)]
            for eid, line in found.items():
                out[eid] = (path, json.loads(line))
        return out

    # -- writing ----------------------------------------------------------------------------------
    def record(self, events: Iterable[dict], message: str | None = None, branch: str | None = None,
               views_later: bool = False) -> WriteResult:
        """Write validated events as one atomic batch: one commit, or none if the snapshot holds them all.

        `events` may be a stream (e.g. a file read line by line): they are gathered as stored lines in a spool
        (temporary files past a few tens of MB), so memory holds the ids of a big write, not its events. An id
        that comes again with other content (in the input, or already recorded) is refused: a changed event
        needs a new id.

        The eager views take the write in before this returns, unless `views_later`: then the result's
        `catch_up` does it when called (the events are durable once this returns; a view that has not caught up
        yet is caught up by the next reader, as after a pull), so a caller can answer first.

        The same as `recording()` given the events at once (one code path)."""
        with self.recording() as recording:
            recording.extend(events)
            return recording.commit(message, branch=branch, views_later=views_later)

    def recording(self) -> "Recording":
        """A write gathered while its events arrive (e.g. one per finished test), committed later as `record`
        commits: see `Recording`. Use it as a context manager (its spool's temporary files are removed)."""
        return Recording(self)

    def _catch_up(self, sha: str, count: int, written: dict) -> Callable[[], list[str]]:
        """What brings the eager views up to a write just committed: returns its warnings."""

        def catch_up() -> list[str]:
            try:
                self._follow(self.journal.repo[sha], self.eager_views(count), written=written)
            except (sqlite3.Error, OSError, ComError) as exc:  # the data is saved; the views catch up on next use
                why = sqlite_files.cause(exc, self.cache_path) if not isinstance(exc, ComError) else str(exc)
                return [f"the events are saved, but the derived data was not updated ({why}); it catches up on "
                        "next use"]
            return []

        return catch_up

    # -- where memories are -------------------------------------------------------------------------
    @classmethod
    def find(cls, explicit: str | os.PathLike | None = None, cwd: Path | None = None,
             settings: Settings | None = None) -> "Memory":
        """The memory the user means, or a one-line error suggesting `com init`."""
        settings = settings if settings is not None else load_settings(cwd)
        if explicit:
            root = Path(explicit)
            if not (root / "journal.git").is_dir():
                raise NotFound(f"no com memory at {root} (run 'com init' there first)", param="memory")
            return cls(root.resolve(), settings)
        env = os.environ.get("COM_DIR")
        if env:
            root = Path(env)
            if not (root / "journal.git").is_dir():
                raise NotFound(f"no com memory at $COM_DIR={env} (run 'com init' to create it)", param="memory")
            return cls(root.resolve(), settings)
        here = (cwd or Path.cwd()).resolve()
        for folder in (here, *here.parents):
            candidate = folder / MEMORY_DIRNAME
            if (candidate / "journal.git").is_dir():
                return cls(candidate, settings)
        raise NotFound("no com memory here or in any parent folder (run 'com init' to create one)", param="memory")

    @classmethod
    def init(cls, path: str | os.PathLike | None = None, settings: Settings | None = None) -> tuple["Memory", bool]:
        """Create the memory (journal + index dir + cache); returns (memory, created). Idempotent.

        A failed or interrupted init removes what it created, and only that."""
        memory, created, _ = cls.create(path, settings)
        return memory, created

    @classmethod
    def create(cls, path: str | os.PathLike | None = None, settings: Settings | None = None,
               exclude: bool = True) -> tuple["Memory", bool, list]:
        """`init`, also returning what it made, for `remove_created` should a later step (a clone) fail.
        With exclude=False the code repository's exclude file is left to the caller."""
        if path:
            root = Path(path)
        elif os.environ.get("COM_DIR"):
            root = Path(os.environ["COM_DIR"])
        else:
            root = default_root()
        root = root.resolve()
        memory = cls(root, settings)
        created = not memory.journal_path.is_dir()
        made: list[tuple[Path, bool]] = []  # (folder, whole): whole ones hold only what com wrote into them
        try:
            missing = []
            folder = root
            while not os.path.lexists(folder):
                missing.append(folder)
                folder = folder.parent
            for folder in reversed(missing):
                folder.mkdir()
                made.append((folder, False))
            for folder in (root, memory.journal_path, memory.index_path, memory.cache_path):
                if os.path.lexists(folder) and not folder.is_dir():
                    raise ComError(f"cannot create the memory: {folder} exists and is not a folder")
            if created:
                made.append((memory.journal_path, True))  # before: an init that fails midway leaves part of it
                Journal.init(memory.journal_path, branch=str(memory.settings.get("branch") or "main"))
            for folder in (memory.index_path, memory.cache_path):
                if not folder.is_dir():
                    folder.mkdir()
                    made.append((folder, True))
            if exclude:
                exclude_from_code_repo(root)
        except BaseException as exc:
            remove_created(made)
            if isinstance(exc, OSError):
                where = f": {exc.filename}" if exc.filename else ""
                raise ComError(f"cannot create the memory at {root}: {exc.strerror or exc}{where}") from None
            if isinstance(exc, pygit2.GitError):
                raise ComError(f"cannot create the journal at {memory.journal_path}: {exc}") from None
            raise
        return memory, created, made


def writable(folder: Path) -> bool:
    """Can com write the files of this folder (a missing folder: can it be made)?"""
    if not folder.exists():
        return True
    if not os.access(folder, os.W_OK):
        return False
    return all(os.access(f, os.W_OK) for f in folder.iterdir() if f.is_file())


def scratch_copy(cache: Path) -> Path:
    """A private copy of a read-only cache folder for this process (removed when it exits): SQLite needs to write
    even to read a WAL database, and a store behind the journal has to catch up somewhere."""
    import atexit
    import tempfile

    copy = Path(tempfile.mkdtemp(prefix="com-cache-"))
    atexit.register(shutil.rmtree, copy, True)
    for f in cache.iterdir():
        if f.is_file() and f.suffix in (".sqlite", ".sqlite-wal"):
            try:
                shutil.copy2(f, copy / f.name)
            except OSError:
                pass  # unreadable too: that store starts over in the copy
    return copy


def default_root(cwd: Path | None = None) -> Path:
    """Where `com init` puts a memory when no path is given: at the top of the code repository the working
    directory is in (as git places .git), so `pytest` and `com` run anywhere in it find the same memory; else
    in the working directory."""
    here = (cwd or Path.cwd()).resolve()
    return (find_code_repo(here) or here) / MEMORY_DIRNAME


def remove_created(made: list) -> None:
    """Undo `Memory.create`: remove what it made, innermost first, and nothing that was there before.

    The journal, index and cache folders it made hold only what com wrote into them and go whole; a folder it
    made on the way (the memory root, its parents) goes only if it is empty again."""
    for folder, whole in reversed(made):
        try:
            if whole:
                shutil.rmtree(folder)
            else:
                folder.rmdir()
        except OSError:
            pass


def find_code_repo(start: Path) -> Path | None:
    """The work tree of the git repository containing `start`, if any."""
    start = start.resolve()
    for folder in (start, *start.parents):
        if (folder / ".git").exists():
            return folder
    return None


def _git_dir(work_tree: Path) -> Path:
    dotgit = work_tree / ".git"
    if dotgit.is_file():  # a worktree or submodule: "gitdir: <path>"
        text = dotgit.read_text().strip()
        if text.startswith("gitdir:"):
            gitdir = Path(text[len("gitdir:"):].strip())
            gitdir = gitdir if gitdir.is_absolute() else (work_tree / gitdir)
            common = gitdir / "commondir"
            if common.is_file():
                gitdir = (gitdir / common.read_text().strip())
            return gitdir.resolve()
    return dotgit


def exclude_from_code_repo(root: Path) -> Path | None:
    """Add the memory folder to the enclosing code repository's .git/info/exclude.

    The memory must never be committed with the code by accident; exclude (not .gitignore) keeps
    the code repository's tracked files untouched."""
    repo = find_code_repo(root.parent)
    if repo is None:
        return None
    try:
        rel = root.resolve().relative_to(repo)
    except ValueError:
        return None
    pattern = "/" + rel.as_posix() + "/"
    exclude = _git_dir(repo) / "info" / "exclude"
    exclude.parent.mkdir(parents=True, exist_ok=True)
    existing = exclude.read_text().splitlines() if exclude.exists() else []
    if pattern not in existing:
        with exclude.open("a") as fh:
            if existing and existing[-1] != "":
                fh.write("\n")
            fh.write(pattern + "\n")
    return exclude


class Recording:
    """One write of `Memory.record`, taken an event at a time: `add`/`extend` check each event against those
    before it (an id that comes again with other content is refused) and spool its stored line at once, so
    what is left for `commit` is only the part that needs the journal's lock: which ids the snapshot holds
    already (and whether they hold the same content), the batches' blobs and the commit. A writer fed while
    tests run (the pytest plugin) thus has only that left after the last one."""

    def __init__(self, memory: Memory):
        self.memory = memory
        self.spool = batch_files.Spool(memory.cache_path, keep_events=EAGER_RESULTS)
        self.committed = False

    def __enter__(self) -> "Recording":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.spool.close()

    @property
    def count(self) -> int:
        """Events taken so far, each id once."""
        return len(self.spool.order)

    def add(self, event: dict) -> None:
        """Take one validated event (see `extend`)."""
        self.extend((event,))

    def extend(self, events: Iterable[dict]) -> None:
        """Take validated events; raises ComError (taking none after it) for an id given before with other
        content."""
        if self.committed:
            raise ComError("this write is committed already: start another")
        for first, event in self.spool.take(events):
            if not same_event(first, event) and not same_event(event, first):
                raise ComError(f"event {event['id']} appears twice in the input with different content "
                               f"({difference(first, event)}); a changed event needs a new id (leave 'id' out)")

    def commit(self, message: str | None = None, branch: str | None = None, views_later: bool = False) -> WriteResult:
        """Write what was taken as one commit (none if the snapshot holds it all), as `Memory.record` says; the
        spool is closed after it (a recording commits once)."""
        if self.committed:
            raise ComError("this write is committed already: start another")
        self.committed = True
        memory, spool = self.memory, self.spool
        try:
            with memory.journal.writing(branch) as tx:
                known = memory.known_ids(tx.tip, spool.ids())
                # An id derived from content names that content; an id the input gave may come with other content.
                named = [eid for eid in known if eid in spool.given]
                if named:
                    given = spool.events_of(named)
                    for eid, (path, old) in memory.stored(tx.tip, named).items():
                        if not same_event(old, given[eid]):
                            raise ComError(f"event {eid} is already recorded with other content "
                                           f"({difference(old, given[eid])}; recorded in {path} vs this input): a "
                                           "changed event needs a new id (leave 'id' out)")
                spool.drop(known)
                fresh = spool.ids()
                if not fresh:
                    return WriteResult(None, 0, spool.total, [])
                if message is None:
                    projects = sorted({project for project, _ in spool.groups})
                    noun = "event" if len(fresh) == 1 else "events"
                    message = f"ingest {len(fresh)} {noun} into {', '.join(projects)}"
                try:
                    blobs = spool.write_blobs(memory.journal.repo)
                except (pygit2.GitError, OSError) as exc:  # e.g. a full disk; the branch has not moved
                    raise write_error(memory.journal.path, exc) from None
                sha = tx.commit(message, blob_ids=blobs)
            catch_up = memory._catch_up(sha, len(fresh), spool.written())
        finally:
            spool.close()
        if views_later:
            return WriteResult(sha, len(fresh), spool.total - len(fresh), fresh, [], catch_up)
        return WriteResult(sha, len(fresh), spool.total - len(fresh), fresh, catch_up())
