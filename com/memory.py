"""Where the memory lives: discovery (--memory, $COM_DIR, nearest .com/ upwards) and `com init`."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from com.errors import ComError

MEMORY_DIRNAME = ".com"


@dataclass(frozen=True)
class Memory:
    root: Path  # the .com folder

    @property
    def journal_path(self) -> Path:
        return self.root / "journal.git"

    @property
    def index_path(self) -> Path:
        return self.root / "index"

    @property
    def cache_path(self) -> Path:
        return self.root / "cache"

    def journal(self):
        from com.journal import Journal

        return Journal(self.journal_path, cache_dir=self.cache_path)


def find_memory(explicit: str | os.PathLike | None = None, cwd: Path | None = None) -> Memory:
    """The memory the user means, or a one-line error suggesting `com init`."""
    if explicit:
        root = Path(explicit)
        if not (root / "journal.git").is_dir():
            raise ComError(f"no com memory at {root} (run 'com init' there first)")
        return Memory(root.resolve())
    env = os.environ.get("COM_DIR")
    if env:
        root = Path(env)
        if not (root / "journal.git").is_dir():
            raise ComError(f"no com memory at $COM_DIR={env} (run 'com init' to create it)")
        return Memory(root.resolve())
    here = (cwd or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / MEMORY_DIRNAME
        if (candidate / "journal.git").is_dir():
            return Memory(candidate)
    raise ComError("no com memory here or in any parent folder (run 'com init' to create one)")


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


def init_memory(path: str | os.PathLike | None = None) -> tuple[Memory, bool]:
    """Create the memory (journal + index dir + cache); returns (memory, created). Idempotent.

    A failed or interrupted init removes what it created, and only that."""
    memory, created, _ = create_memory(path)
    return memory, created


def create_memory(path: str | os.PathLike | None = None, exclude: bool = True) -> tuple[Memory, bool, list]:
    """init_memory, also returning what it created, for `remove_created` should a later step (a clone) fail.
    With exclude=False the code repository's exclude file is left to the caller."""
    import pygit2

    from com.journal import Journal

    if path:
        root = Path(path)
    elif os.environ.get("COM_DIR"):
        root = Path(os.environ["COM_DIR"])
    else:
        root = Path.cwd() / MEMORY_DIRNAME
    root = root.resolve()
    memory = Memory(root)
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
            Journal.init(memory.journal_path)
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


def remove_created(made: list) -> None:
    """Undo create_memory: remove what it made, innermost first, and nothing that was there before.

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
