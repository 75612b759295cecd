"""Merging two journal snapshots: the tree union of their event batches, and the merge commit.

Batch paths are derived from their events' ids and never rewritten, so two sides that wrote different
batches merge without conflicts, and a path present on both sides holds the same bytes on both. A path
whose content differs between the sides cannot happen by construction: it is reported as corruption
and nothing is written.
"""

from __future__ import annotations

from dataclasses import dataclass

import pygit2

from com.model.errors import ComError

_TREE = pygit2.GIT_FILEMODE_TREE


class MergeCorruption(ComError):
    """The two sides hold different content at the same batch path (the journal is damaged)."""


@dataclass
class Conflict:
    path: str
    ours: str
    theirs: str


def union_tree(repo: pygit2.Repository, ours, theirs) -> tuple[pygit2.Oid, list[Conflict]]:
    """The id of a tree holding every entry of both trees; conflicting paths listed, ours kept for them.

    Subtrees with the same id on both sides are taken whole, so the cost follows what differs,
    not the size of the journal."""
    conflicts: list[Conflict] = []

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
            else:
                conflicts.append(Conflict(path, str(mine.id), str(entry.id)))
        return builder.write()

    return merge(ours, theirs, ""), conflicts


def merge_commit(repo: pygit2.Repository, ours, theirs, message: str, signature) -> pygit2.Oid:
    """Write (but do not reference) a commit with parents [ours, theirs] whose tree is the union of both."""
    tree_id, conflicts = union_tree(repo, ours.tree, theirs.tree)
    if conflicts:
        first = conflicts[0]
        more = f" (and {len(conflicts) - 1} more)" if len(conflicts) > 1 else ""
        raise MergeCorruption(
            f"cannot merge {str(theirs.id)[:10]} into {str(ours.id)[:10]}: batch {first.path} differs between "
            f"the sides ({first.ours[:10]} vs {first.theirs[:10]}){more}; nothing written, run 'com fsck'"
        )
    return repo.create_commit(None, signature, signature, message + "\n", tree_id, [ours.id, theirs.id])
