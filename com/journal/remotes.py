"""The journal's remotes and the git command line that talks to them: remote config, fetch into tracking refs,
push with a porcelain answer. (Pull, push with retry and clone, which combine these with merges, are
`com.ops.sync`.) Every git command line is built by `com.journal.gitsafe`: com's fixed settings, user values after
--end-of-options, and only on a journal that did not come with the code and whose config com wrote.

The network is the git command line's (`git --git-dir .com/journal.git fetch/push`), so credential helpers,
SSH keys, proxies and `insteadOf` rules work as they do for code; objects (merge commits) are written with
pygit2. By default the journal travels under a namespace of its own on the remote, so it can share a
repository with the code without touching its branches:

    local refs/heads/B  <->  remote refs/com/heads/B   (tracked locally as refs/remotes/<remote>/B)
    local refs/tags/T   <->  remote refs/com/tags/T    (tracked locally as refs/com-remote-tags/<remote>/T)

A mirror remote (`com remote add --mirror`) maps refs/heads/* and refs/tags/* one to one instead.
Every write is object-first, ref-last: git writes fetched packs before it moves a tracking ref, and a local
branch only moves by compare-and-swap under the journal's write lock, so a killed sync loses nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pygit2

from com.journal.gitsafe import check_ref_name, check_url, journal_git, redact
from com.journal.repo import Journal, commit_at
from com.model.errors import ComError, NotFound

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
            raise NotFound(f"no remote '{name}' (add one with 'com remote add {name} URL')", param="remote")
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
    return journal.locked("com-sync.lock")


def commit_of(repo, ref: str):
    """The commit `ref` points to, None without such a ref, Damaged when it points to no readable commit."""
    reference = repo.references.get(ref)
    return commit_at(repo, ref, reference.target) if reference is not None else None


def refs_under(repo, prefix: str) -> dict[str, pygit2.Oid]:
    return {ref[len(prefix):]: repo.references[ref].target for ref in repo.references if ref.startswith(prefix)}


# -- fetch -------------------------------------------------------------------------------------
def fetch_refs(journal: Journal, remote: Remote, verb: str = "fetch") -> None:
    proc = journal_git(journal.path, "fetch", ["--quiet", "--prune", "--no-tags", "--no-write-fetch-head"],
                       [remote.name, *remote.fetch_refspecs])
    if proc.returncode != 0:
        reason = condense(proc.stderr, proc.returncode)
        raise RemoteError(redact(f"cannot {verb} from '{remote.name}' ({remote.url}): {reason}", remote.url))


def relation(repo, local, theirs) -> str:
    if local is None:
        return "new"
    if local.id == theirs.id or repo.descendant_of(local.id, theirs.id):
        return "up-to-date" if local.id == theirs.id else "ahead"
    if repo.descendant_of(theirs.id, local.id):
        return "behind"
    return "diverged"


def peeled(repo, oid) -> str:
    return str(repo[oid].peel(pygit2.Commit).id)


# -- push --------------------------------------------------------------------------------------
def parse_porcelain(stdout: str) -> dict[str, tuple[str, str]]:
    """remote ref -> (flag, summary) from `git push --porcelain`."""
    out = {}
    for line in stdout.splitlines():
        parts = line.split("\t")
        if len(parts) == 3 and ":" in parts[1]:
            out[parts[1].split(":", 1)[1]] = (parts[0], parts[2])
    return out


def tags_to_push(repo, remote: Remote) -> tuple[list[str], list[dict]]:
    """Local tags the remote lacks as far as we know (a lease guards against what we don't know)."""
    names, conflicts = [], []
    for name, oid in sorted(refs_under(repo, "refs/tags/").items()):
        known = repo.references.get(remote.tracking_tag(name))
        if known is None:
            names.append(name)
        elif peeled(repo, known.target) != peeled(repo, oid):
            conflicts.append({"name": name, "local": peeled(repo, oid), "remote": peeled(repo, known.target)})
    return names, conflicts


# Another writer got there first (or holds the remote ref's lock right now): fetch, merge, try again.
RETRYABLE = ("non-fast-forward", "fetch first", "lock", "failed to update ref", "incorrect old value")


def pack_options(repo) -> list[str]:
    """git settings for packing the journal, unless the user configured pack.window themselves.

    Batches are zlib-compressed JSONL whose lines differ every few dozen bytes (ids, times, run ids), so
    delta search between them finds nothing worth having: measured on 100,000 events, window 0 packs
    2.07 MB in 0.33 s, git's default window of 10 packs 2.11 MB in 4.1 s."""
    return [] if "pack.window" in repo.config else ["pack.window=0"]




def push_refs(journal: Journal, remote: Remote, refspecs: list[str], new_tags: list[str]):
    """`git push --porcelain` of refspecs; tags in `new_tags` are created on the remote, never moved (an empty
    lease means "must not exist yet"). Returns (remote ref -> (flag, summary), the process)."""
    options = ["--porcelain", "--no-recurse-submodules", *(f"--force-with-lease={remote.tags}{n}:" for n in new_tags)]
    proc = journal_git(journal.path, "push", options, [remote.name, *refspecs], config=pack_options(journal.repo))
    return parse_porcelain(proc.stdout), proc
