"""The journal: a bare git repository of JSONL event batches, written through pygit2's object database.

Each write adds new blobs `events/<project>/<YYYY-MM-DD>/<batch-id>.jsonl` (never rewritten, so branches
merge as unions) and one commit on the current branch. Objects are written first and the branch ref last,
under a lock, after checking the ref still points where the write started (compare-and-swap): concurrent
writers lose nothing and a killed writer leaves the journal valid. Git only: nothing here knows any derived
store.
"""

from __future__ import annotations

import errno
import os
import re
from contextlib import ExitStack, contextmanager
from datetime import datetime, timezone
from pathlib import Path

import pygit2

from com.files.locks import flock
from com.files.space import disk_full
from com.journal.batches import EVENTS_DIR, Batch
from com.journal.dates import instant_us
from com.journal.gitsafe import check_ref_name, shown
from com.journal.merge import apply_changes
from com.model.errors import ComError, Damaged, NotFound

_BLOB = pygit2.GIT_FILEMODE_BLOB
_TREE = pygit2.GIT_FILEMODE_TREE
TRAILER_EVENT = "Com-Event: "


def signature() -> pygit2.Signature:
    name = os.environ.get("GIT_COMMITTER_NAME") or os.environ.get("GIT_AUTHOR_NAME") or "com"
    email = os.environ.get("GIT_COMMITTER_EMAIL") or os.environ.get("GIT_AUTHOR_EMAIL") or "com@localhost"
    date = os.environ.get("GIT_COMMITTER_DATE")
    if date:
        # git's own variable, so tests and imports of old history can set the commit time.
        return pygit2.Signature(name, email, *commit_date(date))
    return pygit2.Signature(name, email)


_RAW_DATE = re.compile(r"@?(\d{1,12})(?:\s+([+-])(\d\d)(\d\d))?")


def commit_date(text: str) -> tuple[int, int]:
    """(seconds since the epoch, zone offset in minutes) of GIT_COMMITTER_DATE: git's raw form (`@1700000000
    +0200`), ISO-8601, or anything git's date parser reads; one line naming the variable otherwise."""
    m = _RAW_DATE.fullmatch(text.strip())
    if m is None and text.strip().startswith("@"):
        raise ComError(f"GIT_COMMITTER_DATE: {shown(text)} is not a date (git's raw form is '@<seconds> +HHMM')")
    if m is not None:
        offset = 0
        if m.group(2):
            hours, minutes = int(m.group(3)), int(m.group(4))
            if hours > 14 or minutes > 59:
                raise ComError(f"GIT_COMMITTER_DATE: {shown(text)} has no valid time zone offset (e.g. +0200)")
            offset = (hours * 60 + minutes) * (1 if m.group(2) == "+" else -1)
        return int(m.group(1)), offset
    try:
        return instant_us(text) // 1_000_000, 0
    except ComError:
        raise ComError(f"GIT_COMMITTER_DATE: {shown(text)} is not a date (e.g. '@1700000000 +0000' or "
                       "2026-11-01T10:00:00Z)") from None


def commit_time(commit) -> datetime:
    return datetime.fromtimestamp(commit.commit_time, timezone.utc)


def check_message(message: str) -> str:
    """A commit or tag message git can store: UTF-8 text (a command line can carry other bytes), not empty."""
    if not message.strip():
        raise ComError("the message is empty", param="message")
    try:
        message.encode("utf-8")
    except UnicodeEncodeError:
        raise ComError(f"the message {ascii(message)[:80]} is not UTF-8 text", param="message") from None
    return message


def write_error(path: Path, exc: BaseException) -> ComError:
    """A failed write to the journal, with its real cause; nothing was written."""
    if disk_full(path) or getattr(exc, "errno", None) == errno.ENOSPC:
        return ComError(f"cannot write to the journal at {path}: no space left on device; nothing was written")
    return ComError(f"cannot write to the journal at {path}: {getattr(exc, 'strerror', None) or exc}; nothing was "
                    "written")


def commit_at(repo, ref: str, target):
    """The commit `ref` points to (at `target`), or Damaged: a ref to a missing object is the journal's damage,
    said as such, never a KeyError."""
    try:
        return repo[target].peel(pygit2.Commit)
    except (KeyError, ValueError, pygit2.GitError):
        raise damaged(f"{ref} points to {str(target)[:10]}, which is not a readable commit") from None


def damaged(what: str) -> Damaged:
    """The error every reader raises on damage: what is wrong, and where to look."""
    return Damaged(f"the journal is damaged: {what} (run 'com fsck')")


class Journal:
    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            self.repo = pygit2.Repository(str(self.path))
        except pygit2.GitError as exc:
            raise ComError(f"cannot open journal at {self.path}: {exc}") from None

    def object(self, oid, what: str):
        """The object `oid`, or Damaged naming `what` it was meant to be."""
        try:
            return self.repo[oid]
        except (KeyError, ValueError, pygit2.GitError):
            raise damaged(f"{what} ({str(oid)[:10]}) is missing") from None

    def commit_at(self, ref: str, target):
        """The commit a ref points to, or Damaged."""
        return commit_at(self.repo, ref, target)

    @staticmethod
    def init(path: Path, branch: str = "main") -> "Journal":
        path = Path(path)
        if not (path / "HEAD").exists():
            repo = pygit2.init_repository(str(path), bare=True, initial_head=branch)
            # Readers of the journal via the git CLI should never see it try to gc away event blobs.
            repo.config["gc.auto"] = 0
        return Journal(path)

    def reopen(self) -> "Journal":
        """A fresh handle on the same journal (sees packs git wrote behind this one's back)."""
        return Journal(self.path)

    # -- refs and revisions ----------------------------------------------------------------------
    @property
    def branch(self) -> str:
        try:
            target = self.repo.references["HEAD"].target
        except (KeyError, pygit2.GitError) as exc:
            raise damaged(f"HEAD cannot be read ({exc})") from None
        if not isinstance(target, str) or not target.startswith("refs/heads/"):
            raise damaged(f"HEAD names {str(target)[:40]}, not a branch")
        return target[len("refs/heads/"):]

    def ref_target(self, ref: str):
        """The object id a ref names, None if there is no such ref, Damaged if it cannot be read."""
        try:
            reference = self.repo.references.get(ref)
        except (pygit2.GitError, ValueError) as exc:
            raise damaged(f"{ref} cannot be read ({exc})") from None
        if reference is None:
            return None
        try:
            return reference.resolve().target
        except (KeyError, pygit2.GitError) as exc:
            raise damaged(f"{ref} cannot be read ({exc})") from None

    def _check_clash(self, ref: str, what: str) -> None:
        """A ref cannot be both a name and a folder of names (`a` and `a/b`), as git refuses too."""
        for other in self.repo.references:
            if other.startswith(ref + "/") or ref.startswith(other + "/"):
                kind = "branch" if other.startswith("refs/heads/") else "tag"
                short = other.split("/", 2)[2]
                raise ComError(f"'{ref.split('/', 2)[2]}' clashes with the {kind} '{short}' (a name cannot also be a "
                               "folder of names)", param=what)

    def _has_ref(self, ref: str) -> bool:
        try:
            return ref in self.repo.references
        except (ValueError, pygit2.GitError):  # not a valid ref name: not a ref
            return False

    def head(self):
        """The commit HEAD points to, or None in an empty journal (a branch with no commit yet)."""
        return self.tip(self.branch)

    def tip(self, branch: str):
        """The commit refs/heads/<branch> points to, or None."""
        ref = f"refs/heads/{branch}"
        target = self.ref_target(ref)
        return self.commit_at(ref, target) if target is not None else None

    def resolve(self, rev: str | None = None):
        """A commit from any revision git understands, or a date (see `journal.dates`): the last commit at or
        before it on the current branch's first-parent history."""
        if rev is None or rev == "HEAD":
            commit = self.head()
            if commit is None:
                raise NotFound(f"the journal branch '{self.branch}' has no commits yet (ingest something first)",
                               param="at")
            return commit
        for ref in (rev, f"refs/tags/{rev}", f"refs/heads/{rev}"):  # git's order for a name
            if ref.startswith("refs/") and self._has_ref(ref):
                return self.commit_at(ref, self.ref_target(ref))
        try:
            return self.repo.revparse_single(rev).peel(pygit2.Commit)
        except (KeyError, ValueError, pygit2.GitError, pygit2.InvalidSpecError):
            pass
        relative = self._relative(rev)
        if relative is not None:
            return relative
        if re.search(r"[~^]", rev):
            raise NotFound(f"unknown revision {shown(rev)}", param="at")
        try:
            stamp = instant_us(rev, end_of_day=True) / 1_000_000
        except ComError:
            raise NotFound(f"unknown revision or date {shown(rev)}", param="at") from None
        # Along the branch's own first-parent history: what this memory held then. (By commit time over all
        # ancestors, a merged-in side's commit could stand for a moment this memory had not yet pulled it.)
        commit = self.resolve(None)
        while commit.commit_time > stamp:
            parents = self.parents(commit)
            if not parents:
                raise NotFound(f"no journal commit at or before {rev}", param="at")
            commit = parents[0]
        return commit

    def _relative(self, rev: str):
        """`NAME~N` / `NAME^N` that git could not resolve: Damaged if a commit on the way is missing (git only
        says "unknown revision"), else None (really unknown, e.g. more ancestors than there are)."""
        m = re.fullmatch(r"([^~^:@]*)((?:[~^]\d*)+)", rev)
        if m is None:
            return None
        base = m.group(1) or "HEAD"
        if base == "HEAD":
            commit = self.head()
        else:
            ref = next((r for r in (base, f"refs/tags/{base}", f"refs/heads/{base}")
                        if r.startswith("refs/") and self._has_ref(r)), None)
            if ref is None:
                return None
            commit = self.commit_at(ref, self.ref_target(ref))
        if commit is None:
            return None
        for op, count in re.findall(r"([~^])(\d*)", m.group(2)):
            n = int(count) if count else 1
            steps = [(0, 1)] * n if op == "~" else ([(n - 1, 1)] if n else [])
            for index, _ in steps:
                parents = self.parents(commit)
                if index >= len(parents):
                    return None
                commit = parents[index]
        return commit

    def resolve_or_none(self, rev: str | None):
        """Like resolve, but an empty journal with no rev asked for reads as nothing."""
        if rev is None and self.head() is None:
            return None
        return self.resolve(rev)

    # -- reading ---------------------------------------------------------------------------------
    def blob(self, oid, path: str | None = None) -> bytes:
        """A blob's bytes, read once from the object database (no object lookup before it)."""
        try:
            return self.repo.odb.read(oid)[1]
        except (KeyError, ValueError, pygit2.GitError):
            raise damaged(f"batch {path or ''} (blob {str(oid)[:10]}) is missing".replace("batch  ", "batch ")) from None

    def parents(self, commit) -> list:
        try:
            return commit.parents
        except (KeyError, pygit2.GitError):
            raise damaged(f"a parent of commit {str(commit.id)[:10]} is missing") from None

    def tree(self, commit):
        try:
            return commit.tree
        except (KeyError, pygit2.GitError):
            raise damaged(f"the tree of commit {str(commit.id)[:10]} is missing") from None

    def added_batches(self, commit) -> list[Batch]:
        """The event batches in `commit` that its first parent does not have."""
        parents = self.parents(commit)
        if not parents:
            return self.batches(self.tree(commit))
        out = []
        try:
            deltas = self.repo.diff(self.tree(parents[0]), self.tree(commit)).deltas
        except (KeyError, pygit2.GitError) as exc:
            raise damaged(f"commit {str(commit.id)[:10]} cannot be compared with its parent ({exc})") from None
        for d in deltas:
            if d.status in (pygit2.GIT_DELTA_ADDED, pygit2.GIT_DELTA_MODIFIED):
                path = d.new_file.path
                parts = path.split("/")
                if len(parts) == 4 and parts[0] == EVENTS_DIR:
                    out.append(Batch(path, d.new_file.id, parts[2], parts[1]))
        return out

    def batches(self, tree, project: str | None = None, since_day: str | None = None,
                until_day: str | None = None) -> list[Batch]:
        """Every batch in a snapshot tree, newest day first."""
        out = []
        if EVENTS_DIR not in tree:
            return out
        for proj in self._folder(tree[EVENTS_DIR], EVENTS_DIR):
            if project is not None and proj.name != project:
                continue
            for day in self._folder(proj, f"{EVENTS_DIR}/{proj.name}"):
                if since_day and day.name < since_day:
                    continue
                if until_day and day.name > until_day:
                    continue
                for entry in self._folder(day, f"{EVENTS_DIR}/{proj.name}/{day.name}"):
                    out.append(Batch(f"{EVENTS_DIR}/{proj.name}/{day.name}/{entry.name}", entry.id, day.name, proj.name))
        out.sort(key=lambda b: b.day, reverse=True)
        return out

    def _folder(self, entry, path: str):
        if entry.filemode != _TREE:
            raise damaged(f"{path} is a file where a folder belongs")
        return self.object(entry.id, f"the folder {path}")

    # -- writing ---------------------------------------------------------------------------------
    @contextmanager
    def write_lock(self):
        """Held while reading a branch tip and moving it: writers of one journal take turns."""
        with self.locked("com-write.lock"):
            yield

    @contextmanager
    def locked(self, name: str):
        """An flock on a file of the journal; a journal com cannot write to (read-only) is one line."""
        with ExitStack() as stack:
            try:
                stack.enter_context(flock(self.path / name))
            except OSError as exc:
                raise ComError(f"cannot write to the journal at {self.path}: {exc.strerror or exc}") from None
            yield

    @contextmanager
    def writing(self, branch: str | None = None):
        """A write transaction on a branch: the lock is held, `tx.tip` is the commit to build on, and
        `tx.commit(...)` moves the branch by compare-and-swap."""
        with self.write_lock():
            yield _Write(self, branch or self.branch)

    def build_tree(self, base_tree, files: dict[str, object]):
        """Insert blobs at paths into base_tree in one pass over the nested folders (no index, no work tree)."""
        return apply_changes(self.repo, base_tree, files)

    def move_ref(self, ref: str, new_id, expected, message: str) -> bool:
        """Move `ref` to new_id if it still points at `expected` (None: must not exist). Caller holds the lock."""
        current = self.repo.references.get(ref)
        current_id = current.target if current is not None else None
        if (current_id is None) != (expected is None) or (expected is not None and current_id != expected):
            return False
        try:
            self.repo.create_reference_direct(ref, new_id, True, message=message)
        except (pygit2.GitError, OSError) as exc:  # e.g. a stale <ref>.lock left by a killed git process
            if disk_full(self.path):
                raise write_error(self.path, exc) from None
            raise ComError(f"cannot move {ref}: {exc} (run 'com fsck --repair' to clear stale locks)") from None
        return True

    # -- branches and tags -------------------------------------------------------------------
    def branches(self) -> list[dict]:
        current = self.branch
        self.head()  # a current branch that cannot be read is damage, not a missing line in the list
        out = []
        for ref in sorted(r for r in self.repo.references if r.startswith("refs/heads/")):
            commit = self.commit_at(ref, self.ref_target(ref))
            name = ref[len("refs/heads/"):]
            out.append({"name": name, "commit": str(commit.id), "current": name == current})
        return out

    def create_branch(self, name: str, rev: str | None = None) -> dict:
        check_ref_name(name, "branch")
        if name in self.repo.branches.local:
            raise ComError(f"branch '{name}' already exists")
        if f"refs/tags/{name}" in self.repo.references:
            raise ComError(f"'{name}' is a tag: a branch of that name would be hidden by it (git reads the tag "
                           "first)", param="branch")
        self._check_clash(f"refs/heads/{name}", "branch")
        commit = self.resolve(rev)
        try:
            self.repo.branches.local.create(name, commit)
        except (pygit2.GitError, OSError) as exc:
            raise ComError(f"cannot create branch '{name}': {exc}", param="branch") from None
        return {"name": name, "commit": str(commit.id)}

    def delete_branch(self, name: str) -> None:
        check_ref_name(name, "branch")
        if name not in self.repo.branches.local:
            raise NotFound(f"branch '{name}' not found", param="branch")
        if name == self.branch:
            raise ComError(f"cannot delete the current branch '{name}' (switch to another first)")
        self.repo.branches.local.delete(name)

    def switch(self, name: str, create: bool = False) -> None:
        check_ref_name(name, "branch")
        if create:
            self.create_branch(name, None)
        elif name not in self.repo.branches.local:
            raise NotFound(f"branch '{name}' not found (use 'com switch -c {name}' to create it)", param="branch")
        self.repo.set_head(f"refs/heads/{name}")

    def tags(self) -> list[dict]:
        out = []
        for ref in self.repo.references:
            if not ref.startswith("refs/tags/"):
                continue
            target = self.ref_target(ref)
            obj = self.object(target, ref)
            message = obj.message.strip() if isinstance(obj, pygit2.Tag) else ""
            commit = self.commit_at(ref, target)
            out.append({"name": ref[len("refs/tags/"):], "commit": str(commit.id), "message": message})
        return sorted(out, key=lambda t: t["name"])

    def create_tag(self, name: str, rev: str | None = None, message: str | None = None) -> dict:
        ref = f"refs/tags/{check_ref_name(name, 'tag')}"
        if ref in self.repo.references:
            raise ComError(f"tag '{name}' already exists")
        if f"refs/heads/{name}" in self.repo.references:
            # git reads a name as the tag before the branch: `--at NAME` would stop following the branch.
            raise ComError(f"'{name}' is a branch: a tag of that name would hide it from --at {name}", param="tag")
        self._check_clash(ref, "tag")
        commit = self.resolve(rev)
        try:
            if message:
                check_message(message)
                self.repo.create_tag(name, commit.id, pygit2.GIT_OBJECT_COMMIT, signature(), message.rstrip() + "\n")
            else:
                self.repo.references.create(ref, commit.id)
        except (pygit2.GitError, OSError) as exc:
            raise ComError(f"cannot create tag '{name}': {exc}", param="tag") from None
        return {"name": name, "commit": str(commit.id), "message": message or ""}

    def delete_tag(self, name: str) -> None:
        ref = f"refs/tags/{check_ref_name(name, 'tag')}"
        if ref not in self.repo.references:
            raise NotFound(f"tag '{name}' not found", param="tag")
        self.repo.references.delete(ref)


def about_events(message: str) -> list[str]:
    """The event ids an analysis commit names in its trailers."""
    return [line[len(TRAILER_EVENT):].strip() for line in message.splitlines() if line.startswith(TRAILER_EVENT)]


class _Write:
    """What `Journal.writing` yields: the branch, its tip when the lock was taken, and the commit step."""

    def __init__(self, journal: Journal, branch: str):
        self.journal = journal
        self.branch = branch
        self.ref = f"refs/heads/{branch}"
        self.tip = journal.tip(branch)

    def commit(self, message: str, blobs: dict[str, bytes] | None = None, tree=None, blob_ids=None) -> str:
        """Write blobs (path -> bytes; or path -> id of a blob already written) onto the tip's tree, or reuse
        `tree`, as one commit; move the branch."""
        repo = self.journal.repo
        check_message(message)
        base = self.journal.tree(self.tip) if self.tip is not None else None
        sig = signature()
        try:
            if tree is None:
                files = {path: repo.create_blob(data) for path, data in (blobs or {}).items()}
                files.update(blob_ids or {})
                tree = self.journal.build_tree(base, files) if files or base is None else base.id
            parents = [self.tip.id] if self.tip is not None else []
            commit_id = repo.create_commit(None, sig, sig, message.rstrip("\n") + "\n", tree, parents)
        except (pygit2.GitError, OSError) as exc:
            # libgit2 can report a full disk as "no error": say what it is. Objects written so far are unreferenced
            # (git gc or `com fsck` ignores them); the branch has not moved.
            raise write_error(self.journal.path, exc) from None
        expected = self.tip.id if self.tip is not None else None
        if not self.journal.move_ref(self.ref, commit_id, expected, f"com: {message.splitlines()[0]}"):
            raise ComError(f"journal branch '{self.branch}' moved during the write; nothing was written")
        return str(commit_id)


def unseen_ancestors(commit, seen) -> list:
    """`commit` and its ancestors for which seen(sha) is false, stopping at seen ones.

    Derived stores mark a commit seen only once all its ancestors are, so this is exactly what they have
    still to take in."""
    pending, visited, stack = [], set(), [commit]
    while stack:
        c = stack.pop()
        sha = str(c.id)
        if sha in visited or seen(sha):
            continue
        visited.add(sha)
        pending.append(c)
        try:
            stack.extend(c.parents)
        except (KeyError, pygit2.GitError):
            raise damaged(f"a parent of commit {sha[:10]} is missing") from None
    return pending
