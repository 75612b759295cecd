"""What a fetch brought in, checked before any local ref moves: every batch of every commit the journal did not
have is checked as fsck checks its own (`batches.check_batch`), so a peer's malformed, altered or oversized
batch never becomes part of a local branch or tag."""

from __future__ import annotations

import pygit2

from com.journal.batches import check_batch

MAX_SHOWN = 3


def _blobs_of(repo, tree, prefix: str = ""):
    for entry in tree:
        path = prefix + entry.name
        if entry.filemode == pygit2.GIT_FILEMODE_TREE:
            yield from _blobs_of(repo, repo[entry.id], path + "/")
        else:
            yield path, entry.id


def _added(repo, commit):
    """(path, blob id) of the files `commit` adds or changes against its first parent (all of them for a root)."""
    if not commit.parents:
        yield from _blobs_of(repo, commit.tree)
        return
    for delta in repo.diff(commit.parents[0].tree, commit.tree).deltas:
        if delta.status in (pygit2.GIT_DELTA_ADDED, pygit2.GIT_DELTA_MODIFIED, pygit2.GIT_DELTA_TYPECHANGE):
            yield delta.new_file.path, delta.new_file.id


def incoming_problems(repo: pygit2.Repository, tips, have) -> list[str]:
    """Problems of the batches in commits reachable from `tips` but not from `have` (commit ids); [] if none."""
    problems: list[str] = []
    checked: set = set()
    try:
        walker = repo.walk(None, pygit2.GIT_SORT_NONE)
        for tip in tips:
            walker.push(tip)
        for known in have:
            walker.hide(known)
        for commit in walker:
            for path, oid in _added(repo, commit):
                if oid in checked:
                    continue
                checked.add(oid)
                blob = repo.get(oid)
                if not isinstance(blob, pygit2.Blob):
                    problems.append(f"{path}: object {str(oid)[:10]} is missing or not a file")
                    continue
                problems.extend(check_batch(path, blob.data).problems)
                if len(problems) >= MAX_SHOWN:
                    return problems
    except (KeyError, ValueError, pygit2.GitError) as exc:
        problems.append(f"the fetched history cannot be read ({exc})")
    return problems
