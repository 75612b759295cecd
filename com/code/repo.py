"""The code repository the tests ran against: which commit and branch a test result belongs to.

Resolution order, for both the commit and the branch: the explicit flag, then the CI system's variables,
then the code repository (HEAD of the git repository at --repo, default the working directory).
pygit2 is imported only when the repository is actually read, so the pytest plugin stays light.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from com.model.errors import ComError

# CI variables holding the commit under test, in the order they are consulted.
COMMIT_VARS = (
    "GITHUB_SHA",  # GitHub Actions
    "CI_COMMIT_SHA",  # GitLab CI, Woodpecker
    "BUILDKITE_COMMIT",  # Buildkite
    "CIRCLE_SHA1",  # CircleCI
    "GIT_COMMIT",  # Jenkins (git plugin)
    "TRAVIS_COMMIT",  # Travis CI
    "BITBUCKET_COMMIT",  # Bitbucket Pipelines
    "DRONE_COMMIT_SHA",  # Drone
    "BUILD_SOURCEVERSION",  # Azure Pipelines
    "SEMAPHORE_GIT_SHA",  # Semaphore
    "APPVEYOR_REPO_COMMIT",  # AppVeyor
)

# CI variables holding the branch under test. GITHUB_HEAD_REF comes first: on a pull request
# GITHUB_REF_NAME is "123/merge", while GITHUB_HEAD_REF is the branch the author pushed.
BRANCH_VARS = (
    "GITHUB_HEAD_REF",
    "GITHUB_REF_NAME",
    "CI_COMMIT_BRANCH",
    "CI_COMMIT_REF_NAME",
    "BUILDKITE_BRANCH",
    "CIRCLE_BRANCH",
    "GIT_BRANCH",  # Jenkins writes "origin/main"
    "TRAVIS_BRANCH",
    "BITBUCKET_BRANCH",
    "DRONE_BRANCH",
    "BUILD_SOURCEBRANCHNAME",
    "SEMAPHORE_GIT_BRANCH",
    "APPVEYOR_REPO_BRANCH",
)

_FULL_SHA = re.compile(r"(?:[0-9a-f]{40}|[0-9a-f]{64})\Z")
_HEX = re.compile(r"[0-9a-f]{7,64}\Z")
_PROJECT_BAD = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Revision:
    commit: str | None  # full sha, or None when nothing says which code the tests ran against
    branch: str | None
    commit_source: str | None  # "flag", the variable's name, or "repo"
    repo: Path | None  # work tree of the code repository, if one was found
    # The commit is HEAD of a work tree whose tracked files differ from it: the tests ran against code that is
    # no commit (results of such runs never count as "the same commit passed and failed").
    dirty: bool = False


def _env_first(names) -> tuple[str | None, str | None]:
    for name in names:
        value = os.environ.get(name, "").strip()
        if value:
            return value, name
    return None, None


def find_repo(start: str | os.PathLike | None = None):
    """(pygit2.Repository, work tree) of the code repository containing `start` (default cwd), or (None, None)."""
    import pygit2

    start = Path(start) if start is not None else Path.cwd()
    try:
        git_dir = pygit2.discover_repository(str(start))
    except pygit2.GitError:
        git_dir = None
    if git_dir is None:
        return None, None
    try:
        repo = pygit2.Repository(git_dir)
    except pygit2.GitError:
        return None, None
    work = Path(repo.workdir).resolve() if repo.workdir else Path(repo.path).resolve()
    return repo, work


def _head(repo) -> tuple[str | None, str | None]:
    """(sha, branch) of HEAD; (None, None) in a repository without commits; branch None when detached."""
    try:
        if repo.head_is_unborn:
            return None, None
        head = repo.head
    except Exception:  # a broken HEAD should not stop test results from being recorded
        return None, None
    branch = None if repo.head_is_detached else head.shorthand
    return str(head.target), branch


def _resolve_in(repo, rev: str) -> str | None:
    import pygit2

    try:
        return str(repo.revparse_single(rev).peel(pygit2.Commit).id)
    except (KeyError, ValueError, pygit2.GitError, pygit2.InvalidSpecError):
        return None


def resolve(
    commit: str | None = None, branch: str | None = None, repo: str | os.PathLike | None = None
) -> Revision:
    """The commit and branch test results ran against (see the module docstring for the order).

    A --commit that is not a full sha (HEAD~1, a tag, a short sha) is resolved in the code repository;
    a hex string that cannot be resolved is kept as given. A branch is taken from the code repository
    only when its HEAD is the commit the results belong to, so a --commit for another revision never
    picks up the local branch by accident."""
    if repo is not None and not Path(repo).is_dir():
        raise ComError(f"{repo}: no such folder", param="repo")
    source = None
    if commit is not None:
        commit = commit.strip()
        if not commit:
            raise ComError("empty revision", param="commit")
        source = "flag"
    else:
        commit, source = _env_first(COMMIT_VARS)
    if branch is None:
        branch, _ = _env_first(BRANCH_VARS)
        if branch and branch.startswith("origin/"):
            branch = branch[len("origin/"):]
    need_repo = commit is None or not _FULL_SHA.match(commit.lower()) or branch is None
    git_repo, work = find_repo(repo) if need_repo or repo is not None else (None, None)
    if commit is not None and not _FULL_SHA.match(commit.lower()):
        resolved = _resolve_in(git_repo, commit) if git_repo is not None else None
        if resolved is None and not _HEX.match(commit.lower()):
            where = f"the code repository {work}" if work else "any code repository (name one)"
            raise ComError(f"unknown revision '{commit}' in {where}", param="commit")
        commit = resolved or commit
    if commit is not None:
        commit = commit.lower() if _HEX.match(commit.lower()) else commit
    head_sha, head_branch = _head(git_repo) if git_repo is not None else (None, None)
    if commit is None and head_sha is not None:
        commit, source = head_sha, "repo"
    if branch is None and head_branch is not None and head_sha is not None and head_sha == commit:
        branch = head_branch
    dirty = source == "repo" and _dirty(git_repo)
    return Revision(commit, branch or None, source, work, dirty)


def _dirty(repo) -> bool:
    """Do the work tree's tracked files differ from HEAD (staged or not)? Untracked files are not looked at."""
    try:
        return any(repo.status(untracked_files="no").values())
    except Exception:  # noqa: BLE001 - an unreadable index must not stop results from being recorded
        return False


def default_project(repo: str | os.PathLike | None = None, work_tree: Path | None = None) -> str:
    """The code repository's folder name (else the folder's own name), made a valid project name.

    `work_tree` is the repository already found by resolve() (Revision.repo), to skip a second search."""
    start = Path(repo) if repo is not None else Path.cwd()
    work = work_tree or find_repo(start)[1]
    name = (work or start.resolve()).name
    name = _PROJECT_BAD.sub("-", name).strip("-._") or "default"
    return name[:100]
