"""`com hook install` and the pre-push hook it installs: select the tests a push can break, run them with the
pytest plugin recording them, and block the push when one fails.

The hook is a two-line shell script in the code repository's hooks folder that runs `com hook run pre-push`
with the interpreter com is installed in. An existing pre-push hook is kept, renamed `pre-push.com-chained`,
and runs first with the same arguments and input; if it fails, the push stops there. When `core.hooksPath`
points somewhere else, git never runs hooks from `.git/hooks`, so install refuses and says so.

No git command is run here: the repository is read through pygit2, and the user's values (remote names,
URLs, refs) only ever reach the chained hook as its own arguments and input, exactly as git gave them.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from com.memory import Memory
from com.model.errors import CheckFailed, ComError
from com.ops.result import Result

MARK = "# com pre-push hook"
CHAINED = "pre-push.com-chained"
ZERO = "0" * 40
DEFAULT_RUNNER = "pytest -q"
MAX_ARGV_BYTES = 100_000  # more ids than this go through an argument file (@file, pytest 8.2+)


@dataclass
class InstallResult(Result):
    hook: str
    chained: str | None  # the earlier hook, kept and run first
    runner: str
    memory: str
    updated: bool  # an earlier com hook was rewritten


def _repo(path: str | None):
    import pygit2

    start = str(Path(path) if path else Path.cwd())
    try:
        git_dir = pygit2.discover_repository(start)
    except pygit2.GitError:
        git_dir = None
    if git_dir is None:
        raise ComError(f"{start}: not inside a git repository (hooks belong to a code repository)", param="repo")
    return pygit2.Repository(git_dir)


def hooks_dir(repo) -> Path:
    """Where git runs this repository's hooks from; ComError when core.hooksPath points anywhere but there."""
    common = Path(repo.path).resolve()  # .git, or a worktree's own git dir
    if (common / "commondir").is_file():
        common = (common / (common / "commondir").read_text().strip()).resolve()
    default = common / "hooks"
    try:
        configured = repo.config["core.hooksPath"]
    except KeyError:
        configured = None
    if configured:
        base = Path(repo.workdir) if repo.workdir else common
        where = Path(os.path.expanduser(configured))
        where = (where if where.is_absolute() else base / where).resolve()
        if where != default.resolve():
            raise ComError(
                f"core.hooksPath is set to {configured}, so git runs hooks from {where}, not from {default}: a hook "
                f"installed there would never run. Add `com hook run pre-push \"$@\"` to the pre-push hook of {where} "
                "(with its input), or unset core.hooksPath (git config --unset core.hooksPath) and install again",
                param="repo")
    return default


def script(runner: str, memory: Path, python: str | None = None) -> str:
    """The hook file: every value single-quoted for the shell, so no path or runner text is ever code."""
    python = python or sys.executable
    call = ["exec", shlex.quote(python), "-c", shlex.quote("from com.cli import main; main()"),
            "--memory", shlex.quote(str(memory)), "hook", "run", "pre-push", "--runner", shlex.quote(runner),
            "--", '"$@"']
    return ("#!/bin/sh\n"
            f"{MARK}: runs the tests this push can break and blocks the push if one fails.\n"
            f"# Installed by `com hook install`; an earlier pre-push hook is kept as {CHAINED} and runs first.\n"
            + " ".join(call) + "\n")


def install(memory: Memory, repo_path: str | None = None, runner: str = DEFAULT_RUNNER) -> InstallResult:
    """Write the pre-push hook (keeping an existing one as the chained hook)."""
    if not runner.strip():
        raise ComError("the runner is empty", param="runner")
    try:
        shlex.split(runner)
    except ValueError as exc:
        raise ComError(f"cannot read the runner command: {exc}", param="runner") from None
    repo = _repo(repo_path)
    if repo.is_bare:
        raise ComError("a bare repository has no working tree to run tests in", param="repo")
    folder = hooks_dir(repo)
    folder.mkdir(parents=True, exist_ok=True)
    hook = folder / "pre-push"
    chained = folder / CHAINED
    updated = False
    if hook.exists() or hook.is_symlink():
        text = hook.read_text(errors="replace") if hook.is_file() else ""
        if MARK in text:
            updated = True
        else:
            if chained.exists():
                raise ComError(f"{hook} is not com's, and {chained} exists already: move one of them away first",
                               param="repo")
            os.replace(hook, chained)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".pre-push-")
    with os.fdopen(fd, "w") as fh:
        fh.write(script(runner, memory.root))
    os.chmod(tmp, 0o755)
    os.replace(tmp, hook)
    return InstallResult(str(hook), str(chained) if chained.exists() else None, runner, str(memory.root), updated)


# -- the hook at push time ----------------------------------------------------------------------------------
@dataclass
class Push:
    """One line of git's pre-push input."""

    local_ref: str
    local_sha: str
    remote_ref: str
    remote_sha: str


def parse_input(text: str) -> list[Push]:
    """git's pre-push input: `<local ref> <local sha> <remote ref> <remote sha>` per line."""
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 4:
            raise ComError(f"pre-push input line {n}: expected 4 fields, got {len(parts)}", param="input")
        out.append(Push(*parts))
    return out


def pre_commit_input(env) -> str:
    """git's pre-push input rebuilt from what pre-commit gives its pre-push hooks (it keeps git's stdin)."""
    to_ref = env.get("PRE_COMMIT_TO_REF")
    if not to_ref:
        raise ComError("PRE_COMMIT_TO_REF is not set: --from-pre-commit is for hooks run by pre-commit",
                       param="from_pre_commit")
    local = env.get("PRE_COMMIT_LOCAL_BRANCH") or "HEAD"
    remote = env.get("PRE_COMMIT_REMOTE_BRANCH") or local
    return f"{local} {to_ref} {remote} {env.get('PRE_COMMIT_FROM_REF') or ZERO}\n"


def _commit_of(repo, rev: str) -> str | None:
    import pygit2

    try:
        return str(repo.revparse_single(rev).peel(pygit2.Commit).id)
    except (KeyError, ValueError, pygit2.GitError, pygit2.InvalidSpecError):
        return None


def _base(repo, push: Push, remote: str) -> tuple[str | None, str | None]:
    """(base sha, why there is none) of a pushed ref: the remote's sha when this repository has it, else the
    parent of the oldest pushed commit no remote-tracking branch of `remote` holds."""
    import pygit2

    if push.remote_sha != ZERO:
        found = _commit_of(repo, push.remote_sha)  # a sha from git; pre-commit may give `sha^`
        if found is not None:
            return found, None
        return None, (f"the remote's {push.remote_ref} is at {push.remote_sha[:10]}, which this clone does not have "
                      "(fetch first)")
    walker = repo.walk(_commit_of(repo, push.local_sha) or push.local_sha, pygit2.enums.SortMode.TOPOLOGICAL)
    prefix = f"refs/remotes/{remote}/"
    for name in repo.references:
        if name.startswith(prefix) and not name.endswith("/HEAD"):
            try:
                walker.hide(repo.references[name].peel(pygit2.Commit).id)
            except (KeyError, ValueError, pygit2.GitError):
                continue
    new = list(walker)
    if not new:
        return push.local_sha, None  # every commit is on the remote already: an empty change
    oldest = new[-1]
    if not oldest.parents:
        return None, f"{push.local_ref} is a new history (no commit of it is on {remote})"
    return str(oldest.parents[0].id), None


@dataclass
class HookRun(Result):
    exit_code: int
    specs: list  # [{"ref", "spec" or None, "why"}]
    selected: list  # ids run
    candidates: int
    fallback: str | None
    observe: bool
    command: list | None  # the runner's argv (ids elided)
    messages: list = field(default_factory=list)


def _is_pytest(argv: list[str]) -> bool:
    names = [Path(a).name for a in argv[:3]]
    return any(n in ("pytest", "py.test") for n in names) or (len(argv) > 2 and argv[1] == "-m" and argv[2] == "pytest")


def _child_env(memory: Memory, ids_file: str | None) -> dict:
    from com.journal.gitsafe import git_env

    env = git_env()  # no GIT_DIR & co. of this hook: the tests may run git repositories of their own
    env["COM_RECORD"] = "1"
    env["COM_DIR"] = str(memory.root)
    if ids_file:
        env["COM_SELECTED"] = ids_file
    return env


def run_pre_push(memory: Memory, remote: str, url: str, input_text: str, runner: str = DEFAULT_RUNNER,
                 repo_path: str | None = None, observe: bool | None = None) -> HookRun:
    """What the installed hook does: chained hook first, then select for every pushed ref, run, report.

    Every test runs (the runner without ids) when a pushed ref has no base com can diff against, when the
    selection falls back to everything, and in observation mode (which records what it would have skipped)."""
    from com.ops.select import SelectOptions, select

    repo = _repo(repo_path)
    messages: list[str] = []
    folder = hooks_dir(repo)
    chained = folder / CHAINED
    if chained.is_file() and os.access(chained, os.X_OK):
        code = _run_chained(chained, remote, url, input_text, Path(repo.workdir))
        if code != 0:
            return HookRun(code, [], [], 0, None, False, None, [f"{CHAINED} failed (exit {code}): push blocked"])
    pushes = [p for p in parse_input(input_text) if p.local_sha != ZERO]  # deletions run no tests
    for p in pushes:
        p.local_sha = _commit_of(repo, p.local_sha) or p.local_sha
    if not pushes:
        return HookRun(0, [], [], 0, None, False, None, ["nothing pushed but deletions: no tests to run"])
    specs, chosen, fallback, candidates, everything = [], {}, None, 0, False
    is_observe = False
    head = None if repo.head_is_unborn else str(repo.head.target)
    for push in pushes:
        base, why = _base(repo, push, remote)
        spec = f"{base}..{push.local_sha}" if base else None
        specs.append({"ref": push.local_ref, "spec": spec, "why": why})
        if head and push.local_sha != head:
            messages.append(f"{push.local_ref} is at {push.local_sha[:10]}; the tests run on the working tree "
                            f"(HEAD {head[:10]})")
        if spec is None:
            fallback, everything = fallback or f"{why}: every test runs", True
            continue
        result = select(memory, SelectOptions(diff=spec, repo=repo.workdir, observe=observe))
        is_observe = is_observe or result.observe
        candidates = max(candidates, result.candidates)
        if result.fallback:
            fallback, everything = fallback or result.fallback, True
        for tid in result.ids:
            chosen.setdefault(tid, None)
    if is_observe:
        everything = True
        messages.append("observation mode: every test runs; what a selection would have skipped is recorded")
    ids = [] if everything else list(chosen)
    if not everything and not ids:
        messages.append("no test selected for this push: nothing in it maps to a test")
        return HookRun(0, specs, [], candidates, fallback, is_observe, None, messages)
    argv = shlex.split(runner)
    args = [f"./{t}" if t.startswith("-") else t for t in ids]
    with tempfile.TemporaryDirectory(prefix="com-hook-") as tmp:
        ids_file = str(Path(tmp) / "selected.txt")
        Path(ids_file).write_text("".join(f"{t}\n" for t in ids), encoding="utf-8")
        if sum(len(a) + 1 for a in args) > MAX_ARGV_BYTES and _is_pytest(argv):
            args = [f"@{ids_file}"]
        try:
            code = subprocess.run(argv + args, cwd=repo.workdir, env=_child_env(memory, ids_file)).returncode
        except FileNotFoundError:
            raise ComError(f"the runner {argv[0]!r} was not found", param="runner") from None
    shown = argv + ([f"<{len(ids)} test ids>"] if ids else [])
    if code != 0:
        messages.append(f"the selected tests failed (exit {code}): push blocked")
    return HookRun(code, specs, ids if ids else ["<every test>"], candidates, fallback, is_observe, shown, messages)


def _run_chained(path: Path, remote: str, url: str, input_text: str, cwd: Path) -> int:
    # The earlier hook gets exactly what git gave this one: its arguments and its input.
    return subprocess.run([str(path), remote, url], input=input_text, text=True, cwd=cwd).returncode


def check_exit(run: HookRun) -> None:
    if run.exit_code != 0:
        raise CheckFailed("; ".join(run.messages) or f"exit {run.exit_code}")
