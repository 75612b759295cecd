"""The memory: a `.com/` folder holding the journal and the derived stores that follow it, with its settings
loaded once. Where it is (`--memory`, `$COM_DIR`, the nearest `.com/` upwards), how it is created, and how
events are recorded: deduplicated against the snapshot, written as one commit, then taken in by the views.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from com.journal import batches as batch_files
from com.journal.repo import Journal
from com.journal.snapshot import Snapshot
from com.model.errors import ComError, NotFound
from com.settings import Settings
from com.settings import load as load_settings
from com.views.base import follow
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

    def to_json(self) -> dict:
        return {"commit": self.commit, "added": self.added, "duplicates": self.duplicates, "ids": self.ids}


class Memory:
    """One memory: journal, derived stores and models, each opened on first use."""

    def __init__(self, root: Path, settings: Settings | None = None):
        self.root = Path(root)
        self.settings = settings if settings is not None else load_settings()
        self._journal: Journal | None = None
        self._catalog: Catalog | None = None
        self._results: TestResultsView | None = None
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
        return self.root / "cache"

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
        return self._results

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
        for view in (self._catalog, self._results, self._registry):
            if view is not None:
                view.close()

    # -- reading ----------------------------------------------------------------------------------
    def snapshot(self, rev: str | None = None) -> Snapshot:
        return Snapshot.at(self.journal, rev)

    def follow(self, snapshot: Snapshot, views=None) -> None:
        """Bring views (default: the eager ones) up to a snapshot before reading them."""
        if snapshot.commit is not None:
            follow(self.journal, snapshot.commit, views if views is not None else self.eager_views())

    def known_ids(self, commit, ids) -> set[str]:
        """Which of `ids` the snapshot at `commit` holds (through the catalog: no batch is read)."""
        if commit is None:
            return set()
        follow(self.journal, commit, [self.catalog])
        return Snapshot(self.journal, commit).holding(self.catalog.paths_of(ids))

    # -- writing ----------------------------------------------------------------------------------
    def record(self, events: list[dict], message: str | None = None, branch: str | None = None) -> WriteResult:
        """Write validated events as one atomic batch: one commit, or none if the snapshot holds them all."""
        unique: dict[str, dict] = {}
        for event in events:
            unique.setdefault(event["id"], event)
        with self.journal.writing(branch) as tx:
            known = self.known_ids(tx.tip, unique.keys())
            fresh = [e for eid, e in unique.items() if eid not in known]
            if not fresh:
                return WriteResult(None, 0, len(events), [])
            prepared = batch_files.prepare(fresh)
            if message is None:
                projects = sorted({e["project"] for e in fresh})
                noun = "event" if len(fresh) == 1 else "events"
                message = f"ingest {len(fresh)} {noun} into {', '.join(projects)}"
            sha = tx.commit(message, {path: data for path, (data, _) in prepared.items()})
        warnings = []
        try:
            commit = self.journal.repo[sha]
            follow(self.journal, commit, self.eager_views(len(fresh)),
                   written={p: evs for p, (_, evs) in prepared.items()})
        except (sqlite3.Error, OSError) as exc:  # the data is saved; the views catch up on next use
            warnings.append(f"derived data not updated ({exc}); it catches up on next use")
        return WriteResult(sha, len(fresh), len(events) - len(fresh), [e["id"] for e in fresh], warnings)

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
        import pygit2

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
