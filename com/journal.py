"""The journal: a bare git repository of JSONL event batches, written through pygit2's object database.

Each ingest writes new blobs `events/<project>/<YYYY-MM-DD>/<batch-id>.jsonl` (never rewritten, so
branches merge as unions) and one commit on the current branch. Objects are written first and the
branch ref last, under a lock, after checking the ref still points where we started (compare-and-swap):
concurrent writers lose nothing and a killed writer leaves the journal valid.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pygit2

from com import events as ev_mod
from com.catalog import Catalog, parse_lines
from com.errors import ComError
from com.gitsafe import check_ref_name
from com.locks import flock

EVENTS_DIR = "events"
_BLOB = pygit2.GIT_FILEMODE_BLOB
_TREE = pygit2.GIT_FILEMODE_TREE
_TRAILER_EVENT = "Com-Event: "
_BATCH_PATH_RE = re.compile(r"events/([^/]+)/(\d{4}-\d{2}-\d{2})/[^/]+\.jsonl\Z")


@dataclass
class WriteResult:
    commit: str | None
    added: int
    duplicates: int
    ids: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"commit": self.commit, "added": self.added, "duplicates": self.duplicates, "ids": self.ids}


def signature() -> pygit2.Signature:
    name = os.environ.get("GIT_COMMITTER_NAME") or os.environ.get("GIT_AUTHOR_NAME") or "com"
    email = os.environ.get("GIT_COMMITTER_EMAIL") or os.environ.get("GIT_AUTHOR_EMAIL") or "com@localhost"
    date = os.environ.get("GIT_COMMITTER_DATE")
    if date:
        # git's own variable, so tests and imports of old history can set the commit time.
        if date.startswith("@"):
            dt = datetime.fromtimestamp(int(date[1:].split()[0]), timezone.utc)
        else:
            dt = ev_mod.parse_time(date, "GIT_COMMITTER_DATE")
        return pygit2.Signature(name, email, int(dt.timestamp()), 0)
    return pygit2.Signature(name, email)


def commit_time(commit) -> datetime:
    return datetime.fromtimestamp(commit.commit_time, timezone.utc)


class Journal:
    def __init__(self, path: Path, cache_dir: Path | None = None):
        self.path = Path(path)
        try:
            self.repo = pygit2.Repository(str(self.path))
        except pygit2.GitError as exc:
            raise ComError(f"cannot open journal at {self.path}: {exc}") from None
        self._cache_dir = cache_dir
        self._catalog: Catalog | None = None

    @staticmethod
    def init(path: Path, branch: str = "main") -> "Journal":
        path = Path(path)
        if not (path / "HEAD").exists():
            repo = pygit2.init_repository(str(path), bare=True, initial_head=branch)
            # Readers of the journal via the git CLI should never see it try to gc away event blobs.
            repo.config["gc.auto"] = 0
        return Journal(path)

    # -- refs and revisions ----------------------------------------------------------------------
    def reopen(self) -> "Journal":
        """A fresh handle on the same journal (sees packs git wrote behind this one's back)."""
        return Journal(self.path, cache_dir=self._cache_dir)

    def close_catalog(self) -> None:
        if self._catalog is not None:
            self._catalog.close()
            self._catalog = None

    @property
    def catalog(self) -> Catalog:
        if self._catalog is None:
            self._catalog = Catalog(self._cache_dir or (self.path / "com-cache"))
        return self._catalog

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

    def resolve(self, rev: str | None = None):
        """A commit from any revision git understands, or an ISO date/time (last commit at or before it)."""
        if rev is None or rev == "HEAD":
            commit = self.head()
            if commit is None:
                raise ComError(f"the journal branch '{self.branch}' has no commits yet (ingest something first)")
            return commit
        try:
            return self.repo.revparse_single(rev).peel(pygit2.Commit)
        except (KeyError, ValueError, pygit2.GitError, pygit2.InvalidSpecError):
            pass
        if re.match(r"\d{4}-\d{2}-\d{2}", rev):
            try:
                when = ev_mod.parse_time(rev, "--at")
            except ComError:
                raise ComError(f"unknown revision or date '{rev}'") from None
            if len(rev) == 10:  # a bare date means the end of that day
                when = when.replace(hour=23, minute=59, second=59, microsecond=999999)
            head = self.resolve(None)
            stamp = when.timestamp()
            for commit in self.repo.walk(head.id, pygit2.GIT_SORT_TIME):
                if commit.commit_time <= stamp:
                    return commit
            raise ComError(f"no journal commit at or before {rev}")
        raise ComError(f"unknown revision '{rev}'")

    def resolve_or_none(self, rev: str | None):
        """Like resolve, but an empty journal with no rev asked for reads as nothing."""
        if rev is None and self.head() is None:
            return None
        return self.resolve(rev)

    # -- reading blobs -------------------------------------------------------------------------
    def read_blob(self, blob_id) -> list[dict]:
        return parse_lines(self.repo[blob_id].data)

    def added_blobs(self, commit) -> list[tuple[str, object]]:
        """(path, blob id) of event batches in `commit` that its first parent does not have."""
        if commit.parents:
            diff = self.repo.diff(commit.parents[0].tree, commit.tree)
            return [
                (d.new_file.path, d.new_file.id)
                for d in diff.deltas
                if d.status in (pygit2.GIT_DELTA_ADDED, pygit2.GIT_DELTA_MODIFIED)
                and d.new_file.path.startswith(EVENTS_DIR + "/")
            ]
        return [(path, oid) for path, oid, _ in self.batches(commit.tree)]

    def batches(self, tree, project: str | None = None, since: str | None = None, until: str | None = None):
        """(path, blob id, date) of every batch in a snapshot tree, newest date first."""
        out = []
        if EVENTS_DIR not in tree:
            return out
        events_tree = self.repo[tree[EVENTS_DIR].id]
        for proj in events_tree:
            if project is not None and proj.name != project:
                continue
            for day in self.repo[proj.id]:
                if since and day.name < since[:10]:
                    continue
                if until and day.name > until[:10]:
                    continue
                for entry in self.repo[day.id]:
                    out.append((f"{EVENTS_DIR}/{proj.name}/{day.name}/{entry.name}", entry.id, day.name))
        out.sort(key=lambda item: item[2], reverse=True)
        return out

    @staticmethod
    def tree_has(tree, path: str) -> bool:
        try:
            tree[path]
            return True
        except KeyError:
            return False

    # -- writing ---------------------------------------------------------------------------------
    def write_lock(self):
        """Held while reading a branch tip and moving it: writers of one journal take turns."""
        return flock(self.path / "com-write.lock")

    def _build_tree(self, base_tree, files: dict[str, object]):
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

    def write(self, events: list[dict], message: str | None = None, branch: str | None = None) -> WriteResult:
        """Append validated events as one atomic batch: one commit, or none if every event is known."""
        branch = branch or self.branch
        ref = f"refs/heads/{branch}"
        unique: dict[str, dict] = {}
        for event in events:
            unique.setdefault(event["id"], event)
        with self.write_lock():
            tip_ref = self.repo.references.get(ref)
            tip = self.repo[tip_ref.target].peel(pygit2.Commit) if tip_ref is not None else None
            known = self._known_ids(tip, unique.keys())
            fresh = [e for eid, e in unique.items() if eid not in known]
            if not fresh:
                return WriteResult(None, 0, len(events), [])
            groups: dict[tuple[str, str], list[dict]] = {}
            for event in fresh:
                groups.setdefault((event["project"], event["ts"][:10]), []).append(event)
            files, blob_events = {}, {}
            for (project, day), group in groups.items():
                lines = [ev_mod.to_line(e) for e in group]
                path = f"{EVENTS_DIR}/{project}/{day}/{batch_name([e['id'] for e in group])}.jsonl"
                files[path] = self.repo.create_blob(("\n".join(lines) + "\n").encode("utf-8"))
                blob_events[path] = group
            tree_id = self._build_tree(tip.tree if tip is not None else None, files)
            if message is None:
                projects = sorted({p for p, _ in groups})
                noun = "event" if len(fresh) == 1 else "events"
                message = f"ingest {len(fresh)} {noun} into {', '.join(projects)}"
            sig = signature()
            parents = [tip.id] if tip is not None else []
            commit_id = self.repo.create_commit(None, sig, sig, message + "\n", tree_id, parents)
            if not self.move_ref(ref, commit_id, tip.id if tip is not None else None, f"com: {message}"):
                raise ComError(f"journal branch '{branch}' moved during the write; nothing was written")
        self.catalog.record_write(str(tip.id) if tip is not None else None, str(commit_id), blob_events)
        return WriteResult(str(commit_id), len(fresh), len(events) - len(fresh), [e["id"] for e in fresh])

    def _known_ids(self, tip, ids) -> set[str]:
        if tip is None:
            return set()
        self.catalog.ensure(self, tip)
        tree = tip.tree
        known = set()
        has = {}
        for eid, paths in self.catalog.paths_of(ids).items():
            for path in paths:
                if path not in has:
                    has[path] = self.tree_has(tree, path)
                if has[path]:
                    known.add(eid)
                    break
        return known

    def commit_message(self, message: str, event_ids: list[str]) -> str:
        """An analysis commit: a message and the events it is about, no new events."""
        if not message.strip():
            raise ComError("the commit message is empty (use -m MSG)")
        branch = self.branch
        with self.write_lock():
            tip = self.resolve(None)
            if event_ids:
                missing = sorted(set(event_ids) - self._known_ids(tip, event_ids))
                if missing:
                    raise ComError(f"unknown event id '{missing[0]}' (not in {branch})")
            body = message.rstrip() + "\n"
            if event_ids:
                body += "\n" + "".join(f"{_TRAILER_EVENT}{eid}\n" for eid in event_ids)
            sig = signature()
            commit_id = self.repo.create_commit(None, sig, sig, body, tip.tree.id, [tip.id])
            if not self.move_ref(f"refs/heads/{branch}", commit_id, tip.id, f"com commit: {message}"):
                raise ComError(f"journal branch '{branch}' moved during the write; nothing was written")
        self.catalog.record_write(str(tip.id), str(commit_id), {})
        return str(commit_id)

    # -- branches and tags -------------------------------------------------------------------
    def branches(self) -> list[dict]:
        current = self.branch
        out = []
        for name in sorted(self.repo.branches.local):
            commit = self.repo.branches.local[name].peel(pygit2.Commit)
            out.append({"name": name, "sha": str(commit.id), "current": name == current})
        return out

    def create_branch(self, name: str, rev: str | None = None) -> dict:
        check_ref_name(name, "branch")
        if name in self.repo.branches.local:
            raise ComError(f"branch '{name}' already exists")
        commit = self.resolve(rev)
        self.repo.branches.local.create(name, commit)
        return {"name": name, "sha": str(commit.id)}

    def delete_branch(self, name: str) -> None:
        check_ref_name(name, "branch")
        if name not in self.repo.branches.local:
            raise ComError(f"branch '{name}' not found")
        if name == self.branch:
            raise ComError(f"cannot delete the current branch '{name}' (switch to another first)")
        self.repo.branches.local.delete(name)

    def switch(self, name: str, create: bool = False) -> None:
        check_ref_name(name, "branch")
        if create:
            self.create_branch(name, None)
        elif name not in self.repo.branches.local:
            raise ComError(f"branch '{name}' not found (use 'com switch -c {name}' to create it)")
        self.repo.set_head(f"refs/heads/{name}")

    def tags(self) -> list[dict]:
        out = []
        for ref in self.repo.references:
            if not ref.startswith("refs/tags/"):
                continue
            obj = self.repo.revparse_single(ref)
            message = obj.message.strip() if isinstance(obj, pygit2.Tag) else ""
            commit = obj.peel(pygit2.Commit)
            out.append({"name": ref[len("refs/tags/"):], "sha": str(commit.id), "message": message})
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
        return {"name": name, "sha": str(commit.id), "message": message or ""}

    def delete_tag(self, name: str) -> None:
        ref = f"refs/tags/{check_ref_name(name, 'tag')}"
        if ref not in self.repo.references:
            raise ComError(f"tag '{name}' not found")
        self.repo.references.delete(ref)


def unseen_ancestors(commit, seen) -> list:
    """`commit` and its ancestors for which seen(sha) is false, stopping at seen ones.

    Derived stores (the catalog, the search index) mark a commit seen only once all its ancestors are,
    so this is exactly what they have still to take in."""
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


def batch_name(ids: list[str]) -> str:
    """A batch is named after its event ids: the same batch written twice lands at the same path."""
    return hashlib.blake2b("\n".join(ids).encode(), digest_size=8).hexdigest()


def batch_project_day(path: str) -> tuple[str, str] | None:
    m = _BATCH_PATH_RE.match(path)
    return (m.group(1), m.group(2)) if m else None


def about_events(message: str) -> list[str]:
    return [line[len(_TRAILER_EVENT):].strip() for line in message.splitlines() if line.startswith(_TRAILER_EVENT)]
