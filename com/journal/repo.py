"""The journal: a bare git repository of JSONL event batches, written through pygit2's object database.

Each write adds new blobs `events/<project>/<YYYY-MM-DD>/<batch-id>.jsonl` (never rewritten, so branches
merge as unions) and one commit on the current branch. Objects are written first and the branch ref last,
under a lock, after checking the ref still points where the write started (compare-and-swap): concurrent
writers lose nothing and a killed writer leaves the journal valid. Git only: nothing here knows any derived
store.
"""

from __future__ import annotations

import os
import re
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import pygit2

from com.files.locks import flock
from com.journal.batches import EVENTS_DIR, Batch
from com.journal.gitsafe import check_ref_name
from com.model.errors import ComError, NotFound
from com.model.event import parse_time

_BLOB = pygit2.GIT_FILEMODE_BLOB
_TREE = pygit2.GIT_FILEMODE_TREE
TRAILER_EVENT = "Com-Event: "


def signature() -> pygit2.Signature:
    name = os.environ.get("GIT_COMMITTER_NAME") or os.environ.get("GIT_AUTHOR_NAME") or "com"
    email = os.environ.get("GIT_COMMITTER_EMAIL") or os.environ.get("GIT_AUTHOR_EMAIL") or "com@localhost"
    date = os.environ.get("GIT_COMMITTER_DATE")
    if date:
        # git's own variable, so tests and imports of old history can set the commit time.
        if date.startswith("@"):
            dt = datetime.fromtimestamp(int(date[1:].split()[0]), timezone.utc)
        else:
            dt = parse_time(date, "GIT_COMMITTER_DATE")
        return pygit2.Signature(name, email, int(dt.timestamp()), 0)
    return pygit2.Signature(name, email)


def commit_time(commit) -> datetime:
    return datetime.fromtimestamp(commit.commit_time, timezone.utc)


class Journal:
    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            self.repo = pygit2.Repository(str(self.path))
        except pygit2.GitError as exc:
            raise ComError(f"cannot open journal at {self.path}: {exc}") from None

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
        target = self.repo.references["HEAD"].target
        return target[len("refs/heads/"):] if isinstance(target, str) else str(target)

    def head(self):
        """The commit HEAD points to, or None in an empty journal."""
        try:
            return self.repo.head.peel(pygit2.Commit)
        except (pygit2.GitError, KeyError):
            return None

    def tip(self, branch: str):
        """The commit refs/heads/<branch> points to, or None."""
        ref = self.repo.references.get(f"refs/heads/{branch}")
        return self.repo[ref.target].peel(pygit2.Commit) if ref is not None else None

    def resolve(self, rev: str | None = None):
        """A commit from any revision git understands, or an ISO date/time (last commit at or before it)."""
        if rev is None or rev == "HEAD":
            commit = self.head()
            if commit is None:
                raise NotFound(f"the journal branch '{self.branch}' has no commits yet (ingest something first)",
                               param="at")
            return commit
        try:
            return self.repo.revparse_single(rev).peel(pygit2.Commit)
        except (KeyError, ValueError, pygit2.GitError, pygit2.InvalidSpecError):
            pass
        if re.match(r"\d{4}-\d{2}-\d{2}", rev):
            try:
                when = parse_time(rev, "at")
            except ComError:
                raise NotFound(f"unknown revision or date '{rev}'", param="at") from None
            if len(rev) == 10:  # a bare date means the end of that day
                when = when.replace(hour=23, minute=59, second=59, microsecond=999999)
            head = self.resolve(None)
            stamp = when.timestamp()
            for commit in self.repo.walk(head.id, pygit2.GIT_SORT_TIME):
                if commit.commit_time <= stamp:
                    return commit
            raise NotFound(f"no journal commit at or before {rev}", param="at")
        raise NotFound(f"unknown revision '{rev}'", param="at")

    def resolve_or_none(self, rev: str | None):
        """Like resolve, but an empty journal with no rev asked for reads as nothing."""
        if rev is None and self.head() is None:
            return None
        return self.resolve(rev)

    # -- reading ---------------------------------------------------------------------------------
    def blob(self, oid) -> bytes:
        """A blob's bytes, read once from the object database (no object lookup before it)."""
        return self.repo.odb.read(oid)[1]

    def added_batches(self, commit) -> list[Batch]:
        """The event batches in `commit` that its first parent does not have."""
        if not commit.parents:
            return self.batches(commit.tree)
        out = []
        for d in self.repo.diff(commit.parents[0].tree, commit.tree).deltas:
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
        repo = self.repo
        for proj in repo[tree[EVENTS_DIR].id]:
            if project is not None and proj.name != project:
                continue
            for day in repo[proj.id]:
                if since_day and day.name < since_day:
                    continue
                if until_day and day.name > until_day:
                    continue
                for entry in repo[day.id]:
                    out.append(Batch(f"{EVENTS_DIR}/{proj.name}/{day.name}/{entry.name}", entry.id, day.name, proj.name))
        out.sort(key=lambda b: b.day, reverse=True)
        return out

    # -- writing ---------------------------------------------------------------------------------
    def write_lock(self):
        """Held while reading a branch tip and moving it: writers of one journal take turns."""
        return flock(self.path / "com-write.lock")

    @contextmanager
    def writing(self, branch: str | None = None):
        """A write transaction on a branch: the lock is held, `tx.tip` is the commit to build on, and
        `tx.commit(...)` moves the branch by compare-and-swap."""
        with self.write_lock():
            yield _Write(self, branch or self.branch)

    def build_tree(self, base_tree, files: dict[str, object]):
        """Insert blobs at paths into base_tree in one pass over the nested folders (no index, no work tree)."""
        nested: dict = {}
        for path, blob_id in files.items():
            node = nested
            parts = path.split("/")
            for part in parts[:-1]:
                node = node.setdefault(part, {})
            node[parts[-1]] = blob_id

        def write(tree, node):
            builder = self.repo.TreeBuilder(tree) if tree is not None else self.repo.TreeBuilder()
            for name, child in node.items():
                if isinstance(child, dict):
                    sub = None
                    if tree is not None and name in tree:
                        sub = self.repo[tree[name].id]
                    builder.insert(name, write(sub, child), _TREE)
                else:
                    builder.insert(name, child, _BLOB)
            return builder.write()

        return write(base_tree, nested)

    def move_ref(self, ref: str, new_id, expected, message: str) -> bool:
        """Move `ref` to new_id if it still points at `expected` (None: must not exist). Caller holds the lock."""
        current = self.repo.references.get(ref)
        current_id = current.target if current is not None else None
        if (current_id is None) != (expected is None) or (expected is not None and current_id != expected):
            return False
        try:
            self.repo.create_reference_direct(ref, new_id, True, message=message)
        except (pygit2.GitError, OSError) as exc:  # e.g. a stale <ref>.lock left by a killed git process
            raise ComError(f"cannot move {ref}: {exc} (run 'com fsck --repair' to clear stale locks)") from None
        return True

    # -- branches and tags -------------------------------------------------------------------
    def branches(self) -> list[dict]:
        current = self.branch
        out = []
        for name in sorted(self.repo.branches.local):
            commit = self.repo.branches.local[name].peel(pygit2.Commit)
            out.append({"name": name, "commit": str(commit.id), "current": name == current})
        return out

    def create_branch(self, name: str, rev: str | None = None) -> dict:
        check_ref_name(name, "branch")
        if name in self.repo.branches.local:
            raise ComError(f"branch '{name}' already exists")
        commit = self.resolve(rev)
        self.repo.branches.local.create(name, commit)
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
            obj = self.repo.revparse_single(ref)
            message = obj.message.strip() if isinstance(obj, pygit2.Tag) else ""
            commit = obj.peel(pygit2.Commit)
            out.append({"name": ref[len("refs/tags/"):], "commit": str(commit.id), "message": message})
        return sorted(out, key=lambda t: t["name"])

    def create_tag(self, name: str, rev: str | None = None, message: str | None = None) -> dict:
        ref = f"refs/tags/{check_ref_name(name, 'tag')}"
        if ref in self.repo.references:
            raise ComError(f"tag '{name}' already exists")
        commit = self.resolve(rev)
        if message:
            self.repo.create_tag(name, commit.id, pygit2.GIT_OBJECT_COMMIT, signature(), message.rstrip() + "\n")
        else:
            self.repo.references.create(ref, commit.id)
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

    def commit(self, message: str, blobs: dict[str, bytes] | None = None, tree=None) -> str:
        """Write blobs (path -> bytes) onto the tip's tree, or reuse `tree`, as one commit; move the branch."""
        repo = self.journal.repo
        base = self.tip.tree if self.tip is not None else None
        if tree is None:
            files = {path: repo.create_blob(data) for path, data in (blobs or {}).items()}
            tree = self.journal.build_tree(base, files) if files or base is None else base.id
        sig = signature()
        parents = [self.tip.id] if self.tip is not None else []
        commit_id = repo.create_commit(None, sig, sig, message.rstrip("\n") + "\n", tree, parents)
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
        stack.extend(c.parents)
    return pending
