"""Merging two journal snapshots: the tree union of their event batches, one version of each event, the commit.

Batch paths are named after their bytes and never rewritten, so two sides that wrote different batches merge
without conflicts, and a path present on both sides holds the same bytes on both. What a union alone would get
wrong, and how it is resolved, the same way whichever side merges:

- One event id with two versions on the two sides: an event without `ts` recorded by two memories at two
  moments (its `ts` is its recording time), or an id given by hand to two contents. The version with the
  earliest `ts` is kept (then the smaller stored line); every batch of the two sides that holds another
  version is replaced by a batch without that line (named after its new bytes), or dropped if nothing is left.
- One path with two blobs: only journals written before batch names came from their bytes (they were named
  after their ids) can have it. Ours stays at the path (a local path never changes content), theirs is filed
  under its own content name, and the versions of its events are resolved as above.

The same resolution repairs a snapshot (`resolve_versions`), which is what `com fsck --repair` does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pygit2

from com.journal.batches import content_name, line_id
from com.model.errors import ComError
from com.model.event import ts_us

_TREE = pygit2.GIT_FILEMODE_TREE
_BLOB = pygit2.GIT_FILEMODE_BLOB


class MergeCorruption(ComError):
    """The two sides disagree in a way no resolution covers (a folder on one side, a file on the other)."""


@dataclass
class Resolution:
    """One event id found with several versions, and which was kept."""

    id: str
    kept: dict  # {"batch": path, "ts": ts}
    dropped: list  # [{"batch": path, "ts": ts}]
    ts_only: bool  # the versions differ in their ts only (recorded at two moments): expected, not a conflict

    def to_json(self) -> dict:
        return {"id": self.id, "kept": self.kept, "dropped": self.dropped}


@dataclass
class MergeOutcome:
    tree: pygit2.Oid
    resolutions: list[Resolution] = field(default_factory=list)

    @property
    def conflicts(self) -> list[Resolution]:
        return [r for r in self.resolutions if not r.ts_only]


def union_tree(repo: pygit2.Repository, ours, theirs) -> tuple[pygit2.Oid, dict[str, pygit2.Oid]]:
    """A tree holding every entry of both trees, and {path: blob} of theirs' batches filed under their content
    name because ours holds another blob at that path (old, id-named batches only).

    Subtrees with the same id on both sides are taken whole, so the cost follows what differs,
    not the size of the journal."""
    moved: dict[str, pygit2.Oid] = {}

    def merge(a, b, prefix: str) -> pygit2.Oid:
        if a.id == b.id:
            return a.id
        builder = repo.TreeBuilder(a)
        for entry in b:
            name = entry.name
            if name not in a:
                builder.insert(name, entry.id, entry.filemode)
                continue
            mine = a[name]
            if mine.id == entry.id:
                continue
            path = prefix + name
            if mine.filemode == _TREE and entry.filemode == _TREE:
                builder.insert(name, merge(repo[mine.id], repo[entry.id], path + "/"), _TREE)
            elif mine.filemode != _TREE and entry.filemode != _TREE and path.endswith(".jsonl"):
                renamed = content_name(repo[entry.id].data) + ".jsonl"
                if renamed not in a or a[renamed].id != entry.id:
                    builder.insert(renamed, entry.id, _BLOB)
                moved[prefix + renamed] = entry.id
            else:
                raise MergeCorruption(f"{path} is a folder on one side and a file on the other; nothing written, "
                                      "run 'com fsck'")
        return builder.write()

    return merge(ours, theirs, ""), moved


def _batch_blobs(repo, tree, paths) -> dict[str, pygit2.Oid]:
    out = {}
    for path in paths:
        try:
            out[path] = tree[path].id
        except KeyError:
            pass
    return out


def resolve_versions(repo: pygit2.Repository, tree_id, paths) -> MergeOutcome:
    """Make the snapshot `tree_id` hold one version of each event found in the batches at `paths`: the version
    with the earliest ts (then the smaller stored line) is kept; a batch holding another version is replaced by
    one without that line, named after its new bytes, or dropped when nothing is left."""
    tree = repo[tree_id]
    blobs = _batch_blobs(repo, tree, sorted(set(paths)))
    lines_of: dict[str, list[bytes]] = {}
    versions: dict[str, dict[bytes, list[str]]] = {}  # id -> line -> paths holding it
    for path, oid in blobs.items():
        lines = [line for line in repo[oid].data.split(b"\n") if line.strip()]
        lines_of[path] = lines
        for line in lines:
            versions.setdefault(line_id(line), {}).setdefault(line, []).append(path)
    resolutions = []
    losing: dict[str, set[bytes]] = {}  # path -> lines to drop
    for eid in sorted(versions):
        held = versions[eid]
        if len(held) < 2:
            continue
        try:
            parsed = {line: json.loads(line) for line in held}
            when = {line: ts_us(parsed[line]["ts"]) for line in held}
        except (ValueError, KeyError, TypeError, ComError):
            raise MergeCorruption(f"event {eid} has a version that is not a stored event (in "
                                  f"{', '.join(sorted({p for w in held.values() for p in w}))}); nothing written, "
                                  "run 'com fsck'") from None
        winner = min(held, key=lambda line: (when[line], line))
        dropped = []
        for line, where in sorted(held.items()):
            if line == winner:
                continue
            for path in where:
                losing.setdefault(path, set()).add(line)
                dropped.append({"batch": path, "ts": parsed[line]["ts"]})
        bare = {json.dumps({k: v for k, v in parsed[line].items() if k != "ts"}, sort_keys=True) for line in held}
        resolutions.append(Resolution(eid, {"batch": min(held[winner]), "ts": parsed[winner]["ts"]}, dropped,
                                      ts_only=len(bare) == 1))
    if not losing:
        return MergeOutcome(tree_id, resolutions)
    changes: dict[str, pygit2.Oid | None] = {}
    for path, lose in losing.items():
        kept = [line for line in lines_of[path] if line not in lose]
        changes[path] = None
        if kept:
            data = b"\n".join(kept) + b"\n"
            folder = path.rsplit("/", 1)[0]
            changes[f"{folder}/{content_name(data)}.jsonl"] = repo.create_blob(data)
    return MergeOutcome(apply_changes(repo, tree, changes), resolutions)


def apply_changes(repo: pygit2.Repository, tree, changes: dict[str, pygit2.Oid | None]) -> pygit2.Oid:
    """`tree` with blobs put at paths (None: removed), empty folders left out; one pass over the folders."""
    nested: dict = {}
    for path, oid in changes.items():
        node = nested
        parts = path.split("/")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = oid

    def write(base, node) -> pygit2.Oid | None:
        builder = repo.TreeBuilder(base) if base is not None else repo.TreeBuilder()
        for name, child in node.items():
            if isinstance(child, dict):
                sub = repo[base[name].id] if base is not None and name in base else None
                new = write(sub, child)
                if new is None:
                    if base is not None and name in base:
                        builder.remove(name)
                else:
                    builder.insert(name, new, _TREE)
            elif child is None:
                if builder.get(name) is not None:
                    builder.remove(name)
            else:
                builder.insert(name, child, _BLOB)
        if len(builder) == 0:
            return None
        return builder.write()

    new = write(tree, nested)
    return new if new is not None else repo.TreeBuilder().write()


def diverged_paths(repo: pygit2.Repository, ours, theirs) -> list[str]:
    """Batch paths of either tree that the other does not hold with the same blob."""
    out = []
    for delta in repo.diff(ours, theirs).deltas:
        for path in {delta.old_file.path, delta.new_file.path}:
            if path.endswith(".jsonl"):
                out.append(path)
    return out


def merge_trees(repo: pygit2.Repository, ours, theirs) -> MergeOutcome:
    """The union of two snapshot trees with one version of each event (see the module's docstring)."""
    union, moved = union_tree(repo, ours, theirs)
    paths = diverged_paths(repo, ours, theirs) + list(moved)
    return resolve_versions(repo, union, paths)


def merge_commit(repo: pygit2.Repository, ours, theirs, message: str, signature) -> tuple[pygit2.Oid, MergeOutcome]:
    """Write (but do not reference) a commit with parents [ours, theirs] whose tree is the merge of both."""
    outcome = merge_trees(repo, ours.tree, theirs.tree)
    commit = repo.create_commit(None, signature, signature, message + "\n", outcome.tree, [ours.id, theirs.id])
    return commit, outcome
