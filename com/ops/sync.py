"""Sharing the memory through any git remote: remotes, fetch, pull (fast-forward or union merge), push with retry,
clone. The git command line does the network (`com.journal.remotes`); merges are written with pygit2.

By default the journal travels under a namespace of its own on the remote, so it can share a repository with
the code without touching its branches:

    local refs/heads/B  <->  remote refs/com/heads/B   (tracked locally as refs/remotes/<remote>/B)
    local refs/tags/T   <->  remote refs/com/tags/T    (tracked locally as refs/com-remote-tags/<remote>/T)

Every write is object-first, ref-last: git writes fetched packs before it moves a tracking ref, and a local
branch only moves by compare-and-swap under the journal's write lock, so a killed sync loses nothing.
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass, field

import pygit2

from com.journal.gitsafe import check_ref_name, check_url, redact
from com.journal.merge import merge_commit
from com.journal.remotes import (
    RETRYABLE, TRACKING_TAGS, Remote, RemoteError, add_remote, commit_of, condense, fetch_refs, get_remote,
    list_remotes, peeled, push_refs, refs_under, relation, remove_remote, sync_lock, tags_to_push,
)
from com.journal.repo import signature
from com.memory import Memory, exclude_from_code_repo, remove_created
from com.model.errors import CheckFailed, ComError
from com.ops.result import Result

PUSH_TRIES = 8


@dataclass
class TagSync(Result):
    adopted: list = field(default_factory=list)
    conflicts: list = field(default_factory=list)


@dataclass
class FetchResult(Result):
    remote: str
    url: str
    branches: list
    tags: list


@dataclass
class PullResult(Result):
    remote: str
    url: str
    branch: str
    status: str  # created | fast-forward | merged | up-to-date | no-remote-branch
    from_: str | None
    to: str | None
    merge: str | None
    tags: TagSync


@dataclass
class PushedTags(Result):
    pushed: list
    conflicts: list


@dataclass
class PushResult(Result):
    remote: str
    url: str
    branch: str
    remote_ref: str
    commit: str
    status: str  # pushed | up-to-date
    attempts: int
    merges: list
    tags: PushedTags


@dataclass
class CloneResult(Result):
    memory: str
    remote: str
    url: str
    branch: str
    commit: str | None
    branches: list
    tags: TagSync


@dataclass
class RemoteList(Result):
    remotes: list


# -- remotes -------------------------------------------------------------------------------------
def remote_add(memory: Memory, name: str, url: str, mirror: bool = False) -> Remote:
    return add_remote(memory.journal, name, url, mirror)


def remote_remove(memory: Memory, name: str) -> str:
    remove_remote(memory.journal, name)
    return name


def remotes(memory: Memory) -> RemoteList:
    return RemoteList(list_remotes(memory.journal))


# -- fetch ---------------------------------------------------------------------------------------
def fetch(memory: Memory, remote_name: str | None = None) -> FetchResult:
    """Update the remote's tracking refs; say how each remote branch and tag relates to the local ones."""
    remote = get_remote(memory.journal, remote_name)
    with sync_lock(memory.journal):
        fetch_refs(memory.journal, remote)
    repo = memory.journal.reopen().repo
    branches = []
    for name, oid in sorted(refs_under(repo, f"refs/remotes/{remote.name}/").items()):
        theirs = repo[oid].peel(pygit2.Commit)
        local = commit_of(repo, f"refs/heads/{name}")
        branches.append({"name": name, "commit": str(theirs.id), "local": str(local.id) if local else None,
                         "state": relation(repo, local, theirs)})
    tags = []
    for name, oid in sorted(refs_under(repo, f"{TRACKING_TAGS}/{remote.name}/").items()):
        local = repo.references.get(f"refs/tags/{name}")
        sha = peeled(repo, oid)
        local_sha = peeled(repo, local.target) if local is not None else None
        state = "new" if local_sha is None else ("up-to-date" if local_sha == sha else "conflict")
        tags.append({"name": name, "commit": sha, "local": local_sha, "state": state})
    return FetchResult(remote.name, redact(remote.url), branches, tags)


# -- integrating a fetched branch -------------------------------------------------------------
def integrate(journal, remote: Remote, branch: str, tries: int = 20) -> dict:
    """Bring refs/remotes/<remote>/<branch> into the local branch: create, fast-forward, or merge.

    The merge commit is built outside the write lock (ingest keeps going) and the branch moves by
    compare-and-swap under it; if a local ingest moved the branch meanwhile, build again on the new tip."""
    repo = journal.repo
    theirs = commit_of(repo, remote.tracking(branch))
    ref = f"refs/heads/{branch}"
    if theirs is None:
        ours = commit_of(repo, ref)
        sha = str(ours.id) if ours else None
        return {"status": "no-remote-branch", "from_": sha, "to": sha, "merge": None}
    for _ in range(tries):
        ours = commit_of(repo, ref)
        merge = None
        if ours is None:
            status, new = "created", theirs.id
        elif ours.id == theirs.id or repo.descendant_of(ours.id, theirs.id):
            return {"status": "up-to-date", "from_": str(ours.id), "to": str(ours.id), "merge": None}
        elif repo.descendant_of(theirs.id, ours.id):
            status, new = "fast-forward", theirs.id
        else:
            status = "merged"
            message = f"merge {remote.name}/{branch} into {branch}"
            new = merge = merge_commit(repo, ours, theirs, message, signature())
        with journal.write_lock():
            if journal.move_ref(ref, new, ours.id if ours else None, f"com pull {remote.name}: {status}"):
                return {"status": status, "from_": str(ours.id) if ours else None, "to": str(new),
                        "merge": str(merge) if merge else None}
    raise ComError(f"journal branch '{branch}' kept moving during the pull; nothing lost, run it again")


def adopt_tags(journal, remote: Remote) -> TagSync:
    """Create local tags the remote has and we lack; a same-named tag on another commit is reported, kept."""
    repo = journal.repo
    out = TagSync()
    for name, oid in sorted(refs_under(repo, f"{TRACKING_TAGS}/{remote.name}/").items()):
        ref = f"refs/tags/{name}"
        local = repo.references.get(ref)
        if local is None:
            try:
                repo.references.create(ref, oid)
                out.adopted.append(name)
                continue
            except (ValueError, pygit2.AlreadyExistsError):  # created meanwhile: compare below
                local = repo.references.get(ref)
            except (OSError, pygit2.GitError) as exc:
                raise ComError(f"cannot create tag '{name}': {exc}") from None
        if local is not None and peeled(repo, local.target) != peeled(repo, oid):
            out.conflicts.append({"name": name, "local": peeled(repo, local.target), "remote": peeled(repo, oid)})
    return out


def pull(memory: Memory, remote_name: str | None = None, branch: str | None = None) -> PullResult:
    """Fetch, then fast-forward or merge the remote branch into the local one, and adopt new tags."""
    journal = memory.journal
    remote = get_remote(journal, remote_name)
    branch = check_ref_name(branch or journal.branch, "branch")
    with sync_lock(journal):
        fetch_refs(journal, remote, "pull")
        memory.reopen_journal()
        outcome = integrate(memory.journal, remote, branch)
        tags = adopt_tags(memory.journal, remote)
    return PullResult(remote.name, redact(remote.url), branch, tags=tags, **outcome)


# -- push --------------------------------------------------------------------------------------
def _backoff(attempt: int) -> None:
    # Full jitter: writers that collided do not collide again in step.
    time.sleep(random.uniform(0, min(1.0, 0.05 * 2 ** (attempt - 1))))


def push(memory: Memory, remote_name: str | None = None, branch: str | None = None,
         tries: int | None = None) -> PushResult:
    """Push the branch (and tags the remote lacks). Rejected because others pushed: fetch, merge, retry."""
    if tries is None:
        tries = memory.settings.get("push_tries") or PUSH_TRIES
    tries = max(1, int(tries))
    journal = memory.journal
    remote = get_remote(journal, remote_name)
    branch = check_ref_name(branch or journal.branch, "branch")
    ref = f"refs/heads/{branch}"
    if commit_of(journal.repo, ref) is None:
        raise ComError(f"journal branch '{branch}' has no commits to push", param="branch")
    dest = remote.heads + branch
    merges: list[str] = []
    with sync_lock(journal):
        for attempt in range(1, tries + 1):
            journal = memory.journal
            tip = commit_of(journal.repo, ref)
            tag_names, conflicts = tags_to_push(journal.repo, remote)
            refspecs = [f"{ref}:{dest}", *(f"refs/tags/{n}:{remote.tags}{n}" for n in tag_names)]
            status, proc = push_refs(journal, remote, refspecs, tag_names)
            if dest not in status:
                raise RemoteError(redact(f"cannot push to '{remote.name}' ({remote.url}): "
                                         f"{condense(proc.stderr, proc.returncode)}", remote.url))
            flag, summary = status[dest]
            pushed_tags = [n for n in tag_names if status.get(remote.tags + n, ("!",))[0] == "*"]
            rejected_tags = [n for n in tag_names if status.get(remote.tags + n, ("!",))[0] == "!"]
            if flag != "!":
                if rejected_tags:
                    fetch_refs(journal, remote)
                    journal = memory.reopen_journal()
                    conflicts += [c for c in tags_to_push(journal.repo, remote)[1] if c["name"] in rejected_tags]
                return PushResult(remote.name, redact(remote.url), branch, dest, str(tip.id),
                                  "up-to-date" if flag == "=" else "pushed", attempt, merges,
                                  PushedTags(pushed_tags, conflicts))
            if not any(reason in summary for reason in RETRYABLE):
                reason = summary.strip() + (f": {condense(proc.stderr, 0)}" if proc.stderr.strip() else "")
                raise RemoteError(redact(f"push to '{remote.name}' refused: {reason}", remote.url))
            # Someone else pushed first: wait a jittered moment (before fetching, so the window between
            # fetch and push stays short), take their batches in and go again.
            _backoff(attempt)
            fetch_refs(journal, remote)
            outcome = integrate(memory.reopen_journal(), remote, branch)
            if outcome["merge"]:
                merges.append(outcome["merge"])
    raise CheckFailed(
        f"push to '{remote.name}' was rejected {tries} time(s) as others kept pushing first; nothing is lost "
        "and their batches are merged in here: run 'com push' again (or raise push_tries)"
    )


# -- clone -------------------------------------------------------------------------------------
def clone(url: str, path: str | os.PathLike | None = None, mirror: bool = False,
          branch: str | None = None) -> CloneResult:
    """A new memory whose journal comes from URL: init, add 'origin', fetch, check out a branch, adopt tags.

    A clone that fails (or is interrupted) removes exactly what it created: the folders it made, or, in a
    journal that was there already (empty), the remote it added; never a file or folder that was there before."""
    check_url(url)
    if branch is not None:
        check_ref_name(branch, "branch")
    memory, _, made = Memory.create(path, exclude=False)
    kept = {}  # a journal that was there before: its config and HEAD as they were, put back on failure
    remote = None
    try:
        journal = memory.journal
        if list(journal.repo.branches.local) or any(True for _ in journal.repo.remotes):
            raise ComError(f"{memory.root} already holds a journal (use 'com remote add' and 'com pull' there)")
        if memory.journal_path not in [folder for folder, _ in made]:
            kept = {name: (memory.journal_path / name).read_bytes() for name in ("config", "HEAD")}
        remote = add_remote(journal, "origin", url, mirror)
        with sync_lock(journal):
            fetch_refs(journal, remote, "clone")
            journal = memory.reopen_journal()
            remote_branches = sorted(refs_under(journal.repo, f"refs/remotes/{remote.name}/"))
            if branch is not None and branch not in remote_branches:
                have = ", ".join(remote_branches) or "none"
                raise ComError(f"the remote has no journal branch '{branch}' (it has: {have})", param="branch")
            chosen = branch or ("main" if "main" in remote_branches or not remote_branches else remote_branches[0])
            journal.repo.set_head(f"refs/heads/{chosen}")
            outcome = integrate(journal, remote, chosen)
            tags = adopt_tags(journal, remote)
    except BaseException:
        memory.close()
        if kept and remote is not None:
            try:
                remove_remote(memory.reopen_journal(), remote.name)
            except Exception:  # noqa: BLE001 - putting the config back below is what matters
                pass
            for name, data in kept.items():
                (memory.journal_path / name).write_bytes(data)
        remove_created(made)
        raise
    exclude_from_code_repo(memory.root)
    return CloneResult(str(memory.root), remote.name, redact(url), chosen, outcome["to"], remote_branches, tags)
