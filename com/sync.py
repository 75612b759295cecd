"""Sharing the journal through any git remote: remotes, fetch, pull (fast-forward or union merge), push with retry.

The network is the git command line's (`git --git-dir .com/journal.git fetch/push`), so credential helpers,
SSH keys, proxies and `insteadOf` rules work as they do for code; objects (merge commits) are written with
pygit2. Every git command line is built by com.gitsafe: com's fixed settings, user values after
--end-of-options, and only on a journal that did not come with the code and whose config com wrote. By default the journal travels under a namespace of its own on the remote, so it can share a
repository with the code without touching its branches:

    local refs/heads/B  <->  remote refs/com/heads/B   (tracked locally as refs/remotes/<remote>/B)
    local refs/tags/T   <->  remote refs/com/tags/T    (tracked locally as refs/com-remote-tags/<remote>/T)

A mirror remote (`com remote add --mirror`) maps refs/heads/* and refs/tags/* one to one instead.
Every write is object-first, ref-last: git writes fetched packs before it moves a tracking ref, and a local
branch only moves by compare-and-swap under the journal's write lock, so a killed sync loses nothing.
"""

from __future__ import annotations

import os
import random
import re
import time
from dataclasses import dataclass

import pygit2

from com.errors import CheckFailed, ComError
from com.gitsafe import check_ref_name, check_url, journal_git, redact
from com.locks import flock
from com.journal import Journal, signature
from com.merge import merge_commit

PUSH_TRIES = 8
TRACKING_TAGS = "refs/com-remote-tags"
_MIRROR_KEY = "commirror"


class RemoteError(ComError):
    """The remote could not be reached or refused the operation (exit 2, local journal untouched)."""


@dataclass(frozen=True)
class Remote:
    name: str
    url: str
    mirror: bool = False

    @property
    def heads(self) -> str:
        return "refs/heads/" if self.mirror else "refs/com/heads/"

    @property
    def tags(self) -> str:
        return "refs/tags/" if self.mirror else "refs/com/tags/"

    def tracking(self, branch: str) -> str:
        return f"refs/remotes/{self.name}/{branch}"

    def tracking_tag(self, tag: str) -> str:
        return f"{TRACKING_TAGS}/{self.name}/{tag}"

    @property
    def fetch_refspecs(self) -> list[str]:
        return [f"+{self.heads}*:refs/remotes/{self.name}/*", f"+{self.tags}*:{TRACKING_TAGS}/{self.name}/*"]

    def to_json(self) -> dict:
        return {"name": self.name, "url": redact(self.url), "mirror": self.mirror,
                "branches": self.heads + "*", "tags": self.tags + "*"}


# -- remotes ---------------------------------------------------------------------------------
def list_remotes(journal: Journal) -> list[Remote]:
    out = []
    config = journal.repo.config
    for remote in journal.repo.remotes:
        key = f"remote.{remote.name}.{_MIRROR_KEY}"
        mirror = key in config and config.get_bool(key)
        # The URL as configured: pygit2's remote.url has the user's insteadOf rules applied (CI often keeps a
        # token in one), and the configured URL is the one the user knows.
        url_key = f"remote.{remote.name}.url"
        out.append(Remote(remote.name, (config[url_key] if url_key in config else remote.url) or "", mirror))
    return sorted(out, key=lambda r: r.name)


def get_remote(journal: Journal, name: str | None = None) -> Remote:
    """The named remote; without a name, 'origin' or the only remote there is."""
    remotes = {r.name: r for r in list_remotes(journal)}
    if name is not None:
        check_ref_name(name, "remote")
        if name not in remotes:
            raise ComError(f"no remote '{name}' (add one with 'com remote add {name} URL')")
        return remotes[name]
    if "origin" in remotes:
        return remotes["origin"]
    if len(remotes) == 1:
        # A name written into the config by hand is checked too: it reaches git's command line.
        return remotes[check_ref_name(next(iter(remotes)), "remote")]
    if not remotes:
        raise ComError("no remote configured (add one with 'com remote add origin URL')")
    raise ComError(f"several remotes ({', '.join(sorted(remotes))}): name the one to use")


def add_remote(journal: Journal, name: str, url: str, mirror: bool = False) -> Remote:
    check_ref_name(name, "remote")
    check_url(url)
    if any(r.name == name for r in list_remotes(journal)):
        raise ComError(f"remote '{name}' already exists (remove it first with 'com remote remove {name}')")
    remote = Remote(name, url, mirror)
    try:
        journal.repo.remotes.create(name, url, remote.fetch_refspecs[0])
        journal.repo.remotes.add_fetch(name, remote.fetch_refspecs[1])
    except (ValueError, pygit2.GitError) as exc:
        raise ComError(redact(f"cannot add remote '{name}': {exc}", url)) from None
    config = journal.repo.config
    # Tags arrive in tracking refs and are adopted by name on pull, never written straight into refs/tags.
    config[f"remote.{name}.tagOpt"] = "--no-tags"
    config[f"remote.{name}.{_MIRROR_KEY}"] = bool(mirror)
    return remote


def remove_remote(journal: Journal, name: str) -> None:
    remote = get_remote(journal, name)
    prefix = f"{TRACKING_TAGS}/{remote.name}/"
    for ref in list(journal.repo.references):
        if ref.startswith(prefix):
            journal.repo.references.delete(ref)
    journal.repo.remotes.delete(remote.name)  # also deletes refs/remotes/<name>/*


# -- running git -----------------------------------------------------------------------------
_NOISE = ("hint:", "Please make sure you have the correct access rights", "and the repository exists")


def condense(stderr: str, returncode: int) -> str:
    """git's error output as one line: the fatal/error lines, without hints and boilerplate."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    lines = [line for line in lines
             if not line.startswith(_NOISE) and "Could not read from remote repository" not in line]
    text = "; ".join(re.sub(r"^(fatal|error|remote): ", "", line) for line in lines)
    text = text or f"git exited with code {returncode}"
    return text if len(text) <= 400 else text[:399] + "…"


def sync_lock(journal: Journal):
    """One sync at a time per journal (ingest is not blocked: it takes the write lock, not this one)."""
    return flock(journal.path / "com-sync.lock")


def _commit_of(repo, ref: str):
    reference = repo.references.get(ref)
    return repo[reference.target].peel(pygit2.Commit) if reference is not None else None


def _under(repo, prefix: str) -> dict[str, pygit2.Oid]:
    return {ref[len(prefix):]: repo.references[ref].target for ref in repo.references if ref.startswith(prefix)}


# -- fetch -------------------------------------------------------------------------------------
def _fetch(journal: Journal, remote: Remote, verb: str = "fetch") -> None:
    proc = journal_git(journal.path, "fetch", ["--quiet", "--prune", "--no-tags", "--no-write-fetch-head"],
                       [remote.name, *remote.fetch_refspecs])
    if proc.returncode != 0:
        reason = condense(proc.stderr, proc.returncode)
        raise RemoteError(redact(f"cannot {verb} from '{remote.name}' ({remote.url}): {reason}", remote.url))


def _relation(repo, local, theirs) -> str:
    if local is None:
        return "new"
    if local.id == theirs.id or repo.descendant_of(local.id, theirs.id):
        return "up-to-date" if local.id == theirs.id else "ahead"
    if repo.descendant_of(theirs.id, local.id):
        return "behind"
    return "diverged"


def _peeled(repo, oid) -> str:
    return str(repo[oid].peel(pygit2.Commit).id)


def fetch(journal: Journal, remote_name: str | None = None) -> dict:
    """Update the remote's tracking refs; say how each remote branch and tag relates to the local ones."""
    remote = get_remote(journal, remote_name)
    with sync_lock(journal):
        _fetch(journal, remote)
    journal = journal.reopen()
    repo = journal.repo
    branches = []
    for name, oid in sorted(_under(repo, f"refs/remotes/{remote.name}/").items()):
        theirs = repo[oid].peel(pygit2.Commit)
        local = _commit_of(repo, f"refs/heads/{name}")
        branches.append({"name": name, "sha": str(theirs.id), "local": str(local.id) if local else None,
                         "state": _relation(repo, local, theirs)})
    tags = []
    for name, oid in sorted(_under(repo, f"{TRACKING_TAGS}/{remote.name}/").items()):
        local = repo.references.get(f"refs/tags/{name}")
        sha = _peeled(repo, oid)
        local_sha = _peeled(repo, local.target) if local is not None else None
        state = "new" if local_sha is None else ("up-to-date" if local_sha == sha else "conflict")
        tags.append({"name": name, "sha": sha, "local": local_sha, "state": state})
    return {"remote": remote.name, "url": redact(remote.url), "branches": branches, "tags": tags}


# -- integrating a fetched branch -------------------------------------------------------------
def integrate(journal: Journal, remote: Remote, branch: str, tries: int = 20) -> dict:
    """Bring refs/remotes/<remote>/<branch> into the local branch: create, fast-forward, or merge.

    The merge commit is built outside the write lock (ingest keeps going) and the branch moves by
    compare-and-swap under it; if a local ingest moved the branch meanwhile, build again on the new tip."""
    repo = journal.repo
    theirs = _commit_of(repo, remote.tracking(branch))
    ref = f"refs/heads/{branch}"
    if theirs is None:
        ours = _commit_of(repo, ref)
        return {"status": "no-remote-branch", "from": str(ours.id) if ours else None,
                "to": str(ours.id) if ours else None, "merge": None}
    for _ in range(tries):
        ours = _commit_of(repo, ref)
        merge = None
        if ours is None:
            status, new = "created", theirs.id
        elif ours.id == theirs.id or repo.descendant_of(ours.id, theirs.id):
            return {"status": "up-to-date", "from": str(ours.id), "to": str(ours.id), "merge": None}
        elif repo.descendant_of(theirs.id, ours.id):
            status, new = "fast-forward", theirs.id
        else:
            status = "merged"
            message = f"merge {remote.name}/{branch} into {branch}"
            new = merge = merge_commit(repo, ours, theirs, message, signature())
        with journal.write_lock():
            if journal.move_ref(ref, new, ours.id if ours else None, f"com pull {remote.name}: {status}"):
                return {"status": status, "from": str(ours.id) if ours else None, "to": str(new),
                        "merge": str(merge) if merge else None}
    raise ComError(f"journal branch '{branch}' kept moving during the pull; nothing lost, run it again")


def adopt_tags(journal: Journal, remote: Remote) -> dict:
    """Create local tags the remote has and we lack; a same-named tag on another commit is reported, kept."""
    repo = journal.repo
    adopted, conflicts = [], []
    for name, oid in sorted(_under(repo, f"{TRACKING_TAGS}/{remote.name}/").items()):
        ref = f"refs/tags/{name}"
        local = repo.references.get(ref)
        if local is None:
            try:
                repo.references.create(ref, oid)
                adopted.append(name)
                continue
            except (ValueError, pygit2.AlreadyExistsError):  # created meanwhile: compare below
                local = repo.references.get(ref)
            except (OSError, pygit2.GitError) as exc:
                raise ComError(f"cannot create tag '{name}': {exc}") from None
        if local is not None and _peeled(repo, local.target) != _peeled(repo, oid):
            conflicts.append({"name": name, "local": _peeled(repo, local.target), "remote": _peeled(repo, oid)})
    return {"adopted": adopted, "conflicts": conflicts}


def pull(journal: Journal, remote_name: str | None = None, branch: str | None = None) -> dict:
    """Fetch, then fast-forward or merge the remote branch into the local one, and adopt new tags."""
    remote = get_remote(journal, remote_name)
    branch = check_ref_name(branch or journal.branch, "branch")
    with sync_lock(journal):
        _fetch(journal, remote, "pull")
        journal = journal.reopen()
        outcome = integrate(journal, remote, branch)
        tags = adopt_tags(journal, remote)
    return {"remote": remote.name, "url": redact(remote.url), "branch": branch, **outcome, "tags": tags}


# -- push --------------------------------------------------------------------------------------
def _parse_porcelain(stdout: str) -> dict[str, tuple[str, str]]:
    """remote ref -> (flag, summary) from `git push --porcelain`."""
    out = {}
    for line in stdout.splitlines():
        parts = line.split("\t")
        if len(parts) == 3 and ":" in parts[1]:
            out[parts[1].split(":", 1)[1]] = (parts[0], parts[2])
    return out


def _tags_to_push(repo, remote: Remote) -> tuple[list[str], list[dict]]:
    """Local tags the remote lacks as far as we know (a lease guards against what we don't know)."""
    names, conflicts = [], []
    for name, oid in sorted(_under(repo, "refs/tags/").items()):
        known = repo.references.get(remote.tracking_tag(name))
        if known is None:
            names.append(name)
        elif _peeled(repo, known.target) != _peeled(repo, oid):
            conflicts.append({"name": name, "local": _peeled(repo, oid), "remote": _peeled(repo, known.target)})
    return names, conflicts


# Another writer got there first (or holds the remote ref's lock right now): fetch, merge, try again.
_RETRYABLE = ("non-fast-forward", "fetch first", "lock", "failed to update ref", "incorrect old value")


def _pack_options(repo) -> list[str]:
    """git settings for packing the journal, unless the user configured pack.window themselves.

    Batches are zlib-compressed JSONL whose lines differ every few dozen bytes (ids, times, run ids), so
    delta search between them finds nothing worth having: measured on 100,000 events, window 0 packs
    2.07 MB in 0.33 s, git's default window of 10 packs 2.11 MB in 4.1 s."""
    return [] if "pack.window" in repo.config else ["pack.window=0"]


def _backoff(attempt: int) -> None:
    # Full jitter: writers that collided do not collide again in step.
    time.sleep(random.uniform(0, min(1.0, 0.05 * 2 ** (attempt - 1))))


def push(journal: Journal, remote_name: str | None = None, branch: str | None = None, tries: int | None = None) -> dict:
    """Push the branch (and tags the remote lacks). Rejected because others pushed: fetch, merge, retry."""
    if tries is None:
        from com import config

        try:
            tries = max(1, int(config.get("push_tries") or PUSH_TRIES))
        except ValueError:
            raise ComError(f"push_tries: expected a whole number, got {config.get('push_tries')!r}") from None
    remote = get_remote(journal, remote_name)
    branch = check_ref_name(branch or journal.branch, "branch")
    ref = f"refs/heads/{branch}"
    if _commit_of(journal.repo, ref) is None:
        raise ComError(f"journal branch '{branch}' has no commits to push")
    dest = remote.heads + branch
    merges: list[str] = []
    with sync_lock(journal):
        for attempt in range(1, tries + 1):
            repo = journal.repo
            tip = _commit_of(repo, ref)
            tag_names, conflicts = _tags_to_push(repo, remote)
            # An empty lease means "must not exist yet": a tag is created on the remote, never moved.
            options = ["--porcelain", "--no-recurse-submodules",
                       *(f"--force-with-lease={remote.tags}{name}:" for name in tag_names)]
            values = [remote.name, f"{ref}:{dest}", *(f"refs/tags/{name}:{remote.tags}{name}" for name in tag_names)]
            proc = journal_git(journal.path, "push", options, values, config=_pack_options(repo))
            status = _parse_porcelain(proc.stdout)
            if dest not in status:
                reason = condense(proc.stderr, proc.returncode)
                raise RemoteError(redact(f"cannot push to '{remote.name}' ({remote.url}): {reason}", remote.url))
            flag, summary = status[dest]
            pushed_tags = [n for n in tag_names if status.get(remote.tags + n, ("!",))[0] == "*"]
            rejected_tags = [n for n in tag_names if status.get(remote.tags + n, ("!",))[0] == "!"]
            if flag != "!":
                if rejected_tags:
                    _fetch(journal, remote)
                    journal = journal.reopen()
                    conflicts += [c for c in _tags_to_push(journal.repo, remote)[1] if c["name"] in rejected_tags]
                return {
                    "remote": remote.name, "url": redact(remote.url), "branch": branch, "remote_ref": dest,
                    "commit": str(tip.id), "status": "up-to-date" if flag == "=" else "pushed",
                    "attempts": attempt, "merges": merges,
                    "tags": {"pushed": pushed_tags, "conflicts": conflicts},
                }
            if not any(reason in summary for reason in _RETRYABLE):
                reason = summary.strip() + (f": {condense(proc.stderr, 0)}" if proc.stderr.strip() else "")
                raise RemoteError(redact(f"push to '{remote.name}' refused: {reason}", remote.url))
            # Someone else pushed first: wait a jittered moment (before fetching, so the window between
            # fetch and push stays short), take their batches in and go again.
            _backoff(attempt)
            _fetch(journal, remote)
            journal = journal.reopen()
            outcome = integrate(journal, remote, branch)
            if outcome["merge"]:
                merges.append(outcome["merge"])
    raise CheckFailed(
        f"push to '{remote.name}' was rejected {tries} time(s) as others kept pushing first; nothing is lost "
        "and their batches are merged in here: run 'com push' again (or raise push_tries)"
    )


# -- clone -------------------------------------------------------------------------------------
def clone(url: str, path: str | os.PathLike | None = None, mirror: bool = False, branch: str | None = None) -> dict:
    """A new memory whose journal comes from URL: init, add 'origin', fetch, check out a branch, adopt tags.

    A clone that fails (or is interrupted) removes exactly what it created: the folders it made, or, in a
    journal that was there already (empty), the remote it added; never a file or folder that was there before."""
    from com.memory import create_memory, exclude_from_code_repo, remove_created

    check_url(url)
    if branch is not None:
        check_ref_name(branch, "branch")
    memory, _, made = create_memory(path, exclude=False)
    kept = {}  # a journal that was there before: its config and HEAD as they were, put back on failure
    remote = None
    try:
        journal = memory.journal()
        if list(journal.repo.branches.local) or any(True for _ in journal.repo.remotes):
            raise ComError(f"{memory.root} already holds a journal (use 'com remote add' and 'com pull' there)")
        if memory.journal_path not in made:
            kept = {name: (memory.journal_path / name).read_bytes() for name in ("config", "HEAD")}
        remote = add_remote(journal, "origin", url, mirror)
        with sync_lock(journal):
            _fetch(journal, remote, "clone")
            journal = journal.reopen()
            remote_branches = sorted(_under(journal.repo, f"refs/remotes/{remote.name}/"))
            if branch is not None and branch not in remote_branches:
                have = ", ".join(remote_branches) or "none"
                raise ComError(f"the remote has no journal branch '{branch}' (it has: {have})")
            chosen = branch or ("main" if "main" in remote_branches or not remote_branches else remote_branches[0])
            journal.repo.set_head(f"refs/heads/{chosen}")
            outcome = integrate(journal, remote, chosen)
            tags = adopt_tags(journal, remote)
    except BaseException:
        if kept and remote is not None:
            try:
                remove_remote(memory.journal(), remote.name)
            except Exception:  # noqa: BLE001 - putting the config back below is what matters
                pass
            for name, data in kept.items():
                (memory.journal_path / name).write_bytes(data)
        remove_created(made)
        raise
    exclude_from_code_repo(memory.root)
    return {"memory": str(memory.root), "remote": remote.name, "url": redact(url), "branch": chosen,
            "commit": outcome["to"], "branches": remote_branches, "tags": tags}
