"""What changed between two revisions of a code repository: files (with renames) and their changed line ranges.

`changes(repo, "A")` is A..HEAD, `changes(repo, "A..B")` is A to B, `changes(repo, "A...B")` is from the
merge base of A and B to B (as git diff reads it), and `worktree=True` compares A with the working tree:
staged, unstaged and untracked (not ignored) files alike. Hunks are read with no context lines, so each
hunk is exactly the lines that changed on each side.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from com.model.errors import ComError

STATUS = {
    "A": "added", "D": "deleted", "M": "modified", "R": "renamed", "C": "copied", "T": "typechange",
    "?": "added", "U": "modified", "I": "ignored", "X": "unreadable", " ": "unmodified",
}
_ZERO = "0" * 40


class RevisionNotFound(ComError):
    """A revision the code repository does not have (a typo, or a shallow clone that lacks it)."""

    def __init__(self, rev: str, repo: str | os.PathLike):
        self.rev = rev
        self.repo = str(repo)
        super().__init__(f"unknown revision '{rev}' in the code repository {repo} "
                         "(a shallow clone may lack it: fetch more history, e.g. git fetch --deepen=50)")


@dataclass(frozen=True)
class Hunk:
    """One changed block: `old_lines` lines from `old_start` became `new_lines` lines from `new_start` (1-based).

    A pure insertion has old_lines 0 (old_start is the line it follows); a pure deletion has new_lines 0."""

    old_start: int
    old_lines: int
    new_start: int
    new_lines: int

    @property
    def old_range(self) -> range:
        return range(self.old_start, self.old_start + self.old_lines)

    @property
    def new_range(self) -> range:
        return range(self.new_start, self.new_start + self.new_lines)


@dataclass(frozen=True)
class FileChange:
    path: str  # the path after the change (the old path for a deletion)
    status: str  # added | deleted | modified | renamed | copied | typechange
    old_path: str | None  # None for an added file
    old_id: str | None  # blob ids (hex); None where that side does not exist
    new_id: str | None
    hunks: tuple[Hunk, ...] = ()
    binary: bool = False
    similarity: int | None = None  # percent, for renames and copies

    @property
    def paths(self) -> tuple[str, ...]:
        return (self.path,) if self.old_path in (None, self.path) else (self.old_path, self.path)

    def old_lines(self) -> set[int]:
        return {n for h in self.hunks for n in h.old_range}

    def new_lines(self) -> set[int]:
        return {n for h in self.hunks for n in h.new_range}

    def to_json(self) -> dict:
        return {"path": self.path, "status": self.status, "old_path": self.old_path, "old_id": self.old_id,
                "new_id": self.new_id, "binary": self.binary, "similarity": self.similarity,
                "hunks": [[h.old_start, h.old_lines, h.new_start, h.new_lines] for h in self.hunks]}


@dataclass
class ChangeSet:
    """The change between `base` and `head` (head None: the working tree) of the repository at `root`."""

    root: Path
    base: str  # full sha
    head: str | None  # full sha, None for the working tree
    files: list[FileChange] = field(default_factory=list)
    _repo: object = field(default=None, repr=False, compare=False)

    @property
    def paths(self) -> set[str]:
        """Every path the change touched, old and new names of renames alike."""
        return {p for f in self.files for p in f.paths}

    def old_text(self, change: FileChange) -> bytes | None:
        """The file's content before the change, or None when it did not exist."""
        if change.old_id is None:
            return None
        return self._repo[change.old_id].data

    def new_text(self, change: FileChange) -> bytes | None:
        """The file's content after the change (read from disk for the working tree), or None when deleted."""
        if change.new_id is None:
            return None
        if self.head is None:
            try:
                return (self.root / change.path).read_bytes()
            except OSError:
                return None
        return self._repo[change.new_id].data

    def to_json(self) -> dict:
        return {"base": self.base, "head": self.head, "files": [f.to_json() for f in self.files]}


def open_repo(path: str | os.PathLike | None = None):
    """The pygit2 repository containing `path` (default: the working directory)."""
    import pygit2

    start = str(Path(path) if path is not None else Path.cwd())
    try:
        git_dir = pygit2.discover_repository(start)
    except pygit2.GitError:
        git_dir = None
    if git_dir is None:
        raise ComError(f"{start}: not inside a git repository (use --repo PATH)")
    return pygit2.Repository(git_dir)


def resolve_commit(repo, rev: str):
    """The commit object `rev` names (sha, branch, tag, HEAD~2, ...); RevisionNotFound when it has none."""
    import pygit2

    try:
        return repo.revparse_single(rev).peel(pygit2.Commit)
    except (KeyError, ValueError, pygit2.GitError, pygit2.InvalidSpecError):
        raise RevisionNotFound(rev, repo.workdir or repo.path) from None


def parse_spec(spec: str) -> tuple[str, str | None, bool]:
    """(A, B or None, symmetric) of "A", "A..B" or "A...B"; an empty side means HEAD, as in git."""
    spec = spec.strip()
    if not spec:
        raise ComError("empty revision")
    if "..." in spec:
        a, b = spec.split("...", 1)
        return a or "HEAD", b or "HEAD", True
    if ".." in spec:
        a, b = spec.split("..", 1)
        return a or "HEAD", b or "HEAD", False
    return spec, None, False


def changes(repo_or_path, spec: str = "HEAD", *, worktree: bool = False, find_renames: bool = True) -> ChangeSet:
    """The files and hunks changed from the spec's first revision to its second (HEAD, or the working tree)."""
    import pygit2
    from pygit2.enums import DiffFind, DiffOption

    repo = repo_or_path if isinstance(repo_or_path, pygit2.Repository) else open_repo(repo_or_path)
    root = Path(repo.workdir).resolve() if repo.workdir else Path(repo.path).resolve()
    a, b, symmetric = parse_spec(spec)
    if worktree and b is not None:
        raise ComError(f"'{spec}': a range has no working tree side; give one revision with the working tree")
    base = resolve_commit(repo, a)
    head = None
    if b is not None or not worktree:
        head = resolve_commit(repo, b or "HEAD")
    if symmetric:
        merge_base = repo.merge_base(base.id, head.id)
        if merge_base is None:
            raise ComError(f"'{spec}': the two revisions have no common ancestor")
        base = repo[merge_base]
    find_flags = DiffFind.FIND_RENAMES
    if head is None:
        if repo.is_bare:
            raise ComError("a bare repository has no working tree")
        flags = DiffOption.INCLUDE_UNTRACKED | DiffOption.RECURSE_UNTRACKED_DIRS | DiffOption.SHOW_UNTRACKED_CONTENT
        diff = base.tree.diff_to_workdir(flags, 0, 0)
        find_flags |= DiffFind.FIND_FOR_UNTRACKED
    else:
        diff = repo.diff(base.tree, head.tree, context_lines=0, interhunk_lines=0)
    if find_renames:
        diff.find_similar(find_flags)
    files = []
    for patch in diff:
        delta = patch.delta
        code = delta.status_char()
        status = STATUS.get(code, "modified")
        if status in ("unmodified", "ignored"):
            continue
        old_path = delta.old_file.path if status not in ("added",) else None
        new_path = delta.new_file.path
        old_id = str(delta.old_file.id) if old_path is not None else None
        new_id = None
        if status != "deleted":
            new_id = str(delta.new_file.id)
            if new_id == _ZERO and head is None:  # libgit2 leaves untracked/modified workdir ids unhashed
                try:
                    new_id = str(pygit2.hashfile(str(root / new_path)))
                except (OSError, pygit2.GitError):
                    new_id = _ZERO
        if old_id == _ZERO:
            old_id = None
        binary = bool(delta.is_binary)
        hunks = () if binary else tuple(Hunk(h.old_start, h.old_lines, h.new_start, h.new_lines) for h in patch.hunks)
        path = old_path if status == "deleted" else new_path
        sim = delta.similarity if status in ("renamed", "copied") else None
        files.append(FileChange(path, status, old_path, old_id, new_id, hunks, binary, sim))
    files.sort(key=lambda f: f.path)
    return ChangeSet(root, str(base.id), str(head.id) if head is not None else None, files, repo)


def files_at(repo, rev: str = "HEAD") -> dict[str, str]:
    """{path: blob id} of every file in the tree of `rev` (submodules and symlinks left out)."""
    from pygit2.enums import FileMode

    commit = resolve_commit(repo, rev)
    out: dict[str, str] = {}
    stack = [("", commit.tree)]
    while stack:
        prefix, tree = stack.pop()
        for entry in tree:
            name = prefix + entry.name
            if entry.filemode == FileMode.TREE:
                stack.append((name + "/", repo[entry.id]))
            elif entry.filemode in (FileMode.BLOB, FileMode.BLOB_EXECUTABLE):
                out[name] = str(entry.id)
    return out


def changed_files_by_commit(repo, rev: str = "HEAD", limit: int | None = None) -> dict[str, tuple[str, ...]]:
    """{commit sha: paths it changed against its first parent}, walking back from `rev` (newest first).

    Feeds co-change and co-failure statistics; a root commit lists every file it added."""
    import pygit2

    head = resolve_commit(repo, rev)
    out: dict[str, tuple[str, ...]] = {}
    walker = repo.walk(head.id, pygit2.enums.SortMode.TOPOLOGICAL | pygit2.enums.SortMode.TIME)
    walker.simplify_first_parent()
    for n, commit in enumerate(walker):
        if limit is not None and n >= limit:
            break
        if commit.parents:
            diff = repo.diff(commit.parents[0].tree, commit.tree, context_lines=0)
            diff.find_similar()
            paths = set()
            for delta in diff.deltas:
                paths.add(delta.new_file.path)
                paths.add(delta.old_file.path)
        else:
            paths = set(files_at(repo, str(commit.id)))
        out[str(commit.id)] = tuple(sorted(paths))
    return out
