"""Git as com runs it: names checked as git checks them, secrets kept out of messages, and every git command line
on the journal built so that nothing that came with the journal can run.

- `check_ref_name`: branch, tag and remote names by git's check-ref-format rules, plus no leading '-', no 'HEAD'
  and at most 200 bytes; one line naming the rule broken.
- `redact`: the secret part of URLs (`https://user:TOKEN@host` -> `https://user:***@host`) in any text.
- `journal_git`: `git -c <com's fixed settings> --git-dir=J CMD OPTIONS --end-of-options VALUES`, run only after
  `check_journal` found that the journal did not come with the code and that its own config holds nothing com
  did not write. The user's system and global git config (credential helpers, insteadOf, ssh keys) still apply:
  they are the user's; the journal's repository-level config and hooks are what could have come from someone else.

Imports nothing of com except com.errors (it sits under the journal layer)."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from urllib.parse import unquote

from com.model.errors import ComError

MAX_NAME_BYTES = 200

# Settings every git run on the journal gets, whatever any config file says (the command line wins over files).
HARDENING = (
    "core.hooksPath=/dev/null",  # hooks in journal.git/hooks (or anywhere a config points) never run
    "core.fsmonitor=false",
    "gc.auto=0",  # never collect event blobs, and no `gc --auto` (nor its pre-auto-gc hook) after a fetch
    "maintenance.auto=false",
    "fetch.recurseSubmodules=false",
    "push.recurseSubmodules=no",
    "submodule.recurse=false",
)

# The only keys a journal's own config may hold: what com, `git init` and `git remote add/set-url` write, and
# packing knobs docs/sharing.md documents. Anything else (uploadpack, sshCommand, hooksPath, includes, insteadOf,
# credential helpers, protocol.*, ...) could run a program, so git is not run on a journal that has it.
_ALLOWED = re.compile(
    r"core\.(repositoryformatversion|filemode|bare|logallrefupdates|ignorecase|precomposeunicode|symlinks)"
    r"|gc\.auto|pack\.[a-z0-9]+|user\.(name|email)"
    r"|remote\..+\.(url|fetch|tagopt|commirror)|branch\..+\.(remote|merge)",
    re.S,
)

# Variables a git hook exports that would point our git at the code repository instead of the journal.
_REPO_ENV = (
    "GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY", "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR", "GIT_NAMESPACE", "GIT_PREFIX", "GIT_QUARANTINE_PATH",
)


class UntrustedJournal(ComError):
    """The journal came with the code, or its config holds settings com did not write: git is not run on it."""

    def __init__(self, message: str, check: str):
        super().__init__(message)
        self.check = check  # "tracked" or "config", as `com fsck` reports it


# -- names ---------------------------------------------------------------------------------------
def shown(value: str, limit: int = 60) -> str:
    """A user value quoted for a one-line message: control characters escaped, long values clipped."""
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in value)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return f"'{text}'"


def _ref_problem(name: str, what: str) -> str | None:
    if not name:
        return "it is empty"
    if name.startswith("-"):
        return "it begins with '-'"
    if name in ("HEAD", "@"):
        return f"'{name}' is reserved"
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        return "it is not valid UTF-8"
    if size > MAX_NAME_BYTES:
        return f"it is longer than {MAX_NAME_BYTES} bytes"
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return "it holds a control character"
    for bad in (" ", "~", "^", ":", "?", "*", "[", "\\", "..", "@{"):
        if bad in name:
            return f"it holds '{bad}'"
    if what == "remote" and "/" in name:
        return "it holds '/'"
    if name.startswith("/") or name.endswith("/") or "//" in name:
        return "it begins or ends with '/' or holds '//'"
    if name.endswith("."):
        return "it ends with '.'"
    for part in name.split("/"):
        if part.startswith("."):
            return "a part of it begins with '.'"
        if part.endswith(".lock"):
            return "a part of it ends with '.lock'"
    return None


def check_ref_name(name: str, what: str) -> str:
    """`name` if it is a valid branch, tag or remote name (`what`); else one line saying why not (exit 2)."""
    problem = _ref_problem(name, what)
    if problem:
        raise ComError(f"{shown(name)} is not a valid {what} name ({problem})", param=what)
    return name


def check_url(url: str) -> str:
    """A remote URL com will store: not empty, one line, not something git could read as an option."""
    if not url.strip():
        raise ComError("the remote URL is empty")
    if url.startswith("-") or any(ord(c) < 32 or ord(c) == 127 for c in url):
        raise ComError(f"{shown(redact(url))} is not a valid remote URL (it begins with '-' or holds a control "
                       "character)")
    return url


# -- secrets ---------------------------------------------------------------------------------------
# scheme://userinfo@ : the userinfo runs to the last '@' before the host's end (a '/', '?', '#', space or quote).
_USERINFO = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]*://)([^/?#\s'\"<>@]*(?:@[^/?#\s'\"<>@]*)*)@")


def _hidden(scheme: str, userinfo: str) -> str:
    user, colon, _ = userinfo.partition(":")
    if colon:
        return f"{user}:***"
    if "ssh" in scheme.lower():
        return userinfo  # an ssh user name ("git@") is no secret, and ssh URLs carry no passwords
    return "***"  # https://TOKEN@host: the user name is the token


def redact(text: str, *urls: str) -> str:
    """`text` with the secret part of every URL's user-info replaced by ***; also every mention of the
    credentials of `urls` (git can name them without the scheme, e.g. 'unable to look up user:TOKEN@host')."""
    if not text:
        return text
    for url in urls:
        m = _USERINFO.search(url or "")
        if not m:
            continue
        info, hidden = m.group(2), _hidden(m.group(1), m.group(2))
        if hidden == info:
            continue
        text = text.replace(info + "@", hidden + "@")
        secret = info.partition(":")[2] or info
        for form in {secret, unquote(secret)}:
            if len(form) >= 4:  # a very short secret would blot out ordinary words
                text = text.replace(form, "***")
    return _USERINFO.sub(lambda m: m.group(1) + _hidden(m.group(1), m.group(2)) + "@", text)


# -- running git ------------------------------------------------------------------------------------
def git_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in _REPO_ENV}
    if not (sys.stdin and sys.stdin.isatty()):
        # In CI nobody can answer a password prompt: fail with git's message instead of hanging.
        env.setdefault("GIT_TERMINAL_PROMPT", "0")
    return env


def _run(argv: list[str]) -> subprocess.CompletedProcess:
    import subprocess

    try:
        return subprocess.run(argv, capture_output=True, text=True, errors="replace", env=git_env(),
                              stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise ComError("git is not installed (com fetch/pull/push/clone/fsck run the git command line)") from None


def journal_argv(git_dir, command: str, options=(), values=(), config=()) -> list[str]:
    """The git command line: com's fixed settings, then `config` ("key=value"), the journal, the command, its
    options, and every user value (remote names, refspecs) after --end-of-options, never read as an option."""
    argv = ["git"]
    for item in (*HARDENING, *config):
        argv += ["-c", item]
    return [*argv, f"--git-dir={git_dir}", command, *options, "--end-of-options", *values]


def journal_git(git_dir, command: str, options=(), values=(), config=()) -> subprocess.CompletedProcess:
    """Run git on the journal once `check_journal` passed (raises UntrustedJournal otherwise)."""
    check_journal(git_dir)
    return _run(journal_argv(git_dir, command, options, values, config))


def _one_line(stderr: str, returncode: int) -> str:
    text = "; ".join(line.strip() for line in stderr.splitlines() if line.strip())
    return text[:300] or f"git exited with code {returncode}"


# -- dates -------------------------------------------------------------------------------------------
def git_date(text: str) -> int | None:
    """Seconds since the epoch of a date as git reads one (`yesterday`, `2.weeks.ago`, `2026-11-01 10:00`, naive
    times in UTC), through git's careful date parser (the one behind `gc.pruneExpire`); None if git refuses it.
    The value travels in the environment, never on the command line, and git runs outside any repository."""
    import subprocess

    env = {k: v for k, v in git_env().items() if not k.startswith("GIT_CONFIG")}
    env.update({"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "com.date", "GIT_CONFIG_VALUE_0": text, "TZ": "UTC",
                "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_DIR": "/nonexistent"})
    try:
        proc = subprocess.run(["git", "config", "--type=expiry-date", "--get", "com.date"], capture_output=True,
                              text=True, errors="replace", env=env, stdin=subprocess.DEVNULL, cwd="/")
    except FileNotFoundError:
        raise ComError("git is not installed (com reads dates such as 'yesterday' with git's date parser)") from None
    value = proc.stdout.strip()
    if proc.returncode != 0 or not value.isdigit():
        return None
    seconds = int(value)
    # git's parser reads "never" as 0 and "now"/"all" as the end of time: neither is a date here.
    return seconds if 0 < seconds < 2**62 else None


# -- is the journal ours? -----------------------------------------------------------------------------
def tracking_repo(git_dir) -> Path | None:
    """The work tree of the code repository that tracks files of this journal (it came with the code), or None."""
    journal = Path(os.path.abspath(git_dir))
    work = next((d for d in journal.parents if (d / ".git").exists()), None)
    if work is None:
        return None
    rel = journal.relative_to(work).as_posix()
    proc = _run(["git", "-c", "core.fsmonitor=false", "-C", str(work), "--literal-pathspecs", "ls-files", "-z",
                 "--", rel])
    # A code repository git cannot read (e.g. owned by another user) is not taken as tracking the journal; the
    # config check below still stands between the journal and git.
    return work if proc.returncode == 0 and proc.stdout else None


def adopted(git_dir, work: Path) -> bool:
    """Whether the user adopted this tracked journal: `com.trustedJournal` (a path, relative to the code
    repository, or '*') in git's system, global or command-line config, or the code repository's own
    .git/config; never in the journal's config nor in any file that came with the code."""
    proc = _run(["git", "-C", str(work), "config", "--null", "--get-all", "com.trustedjournal"])
    target = Path(os.path.abspath(git_dir)).resolve()
    for value in proc.stdout.split("\0") if proc.returncode == 0 else ():
        value = value.strip()
        if value == "*" or (value and (work / os.path.expanduser(value)).resolve() == target):
            return True
    return False


def foreign_settings(git_dir) -> list[str]:
    """Keys of the journal's own config (and worktree config) that com does not write, as git reads them."""
    proc = _run(["git", f"--git-dir={git_dir}", "config", "--list", "--show-scope", "--no-includes", "--null"])
    if proc.returncode != 0:
        raise UntrustedJournal(f"the journal's git config cannot be read: {_one_line(proc.stderr, proc.returncode)}",
                               "config")
    parts = proc.stdout.split("\0")
    keys = []
    for scope, item in zip(parts[::2], parts[1::2]):
        key = item.split("\n", 1)[0]
        if scope in ("local", "worktree") and not _ALLOWED.fullmatch(key) and key not in keys:
            keys.append(key)
    return keys


def check_journal(git_dir) -> None:
    """Refuse (UntrustedJournal, exit 2) a journal tracked by the enclosing code repository, unless adopted, and
    a journal whose own config holds settings com did not write. Git's own answers to the same danger are
    safe.directory and refusing to discover embedded bare repositories."""
    work = tracking_repo(git_dir)
    if work is not None and not adopted(git_dir, work):
        rel = Path(os.path.abspath(git_dir)).relative_to(work).as_posix()
        raise UntrustedJournal(
            f"{rel} is tracked by the code repository at {work}: its config and hooks came with the code, so com "
            f"runs no git command on it; to adopt it deliberately: git -C {work} config --add com.trustedJournal "
            f"{rel}", "tracked")
    keys = foreign_settings(git_dir)
    if keys:
        more = f" and {len(keys) - 3} more" if len(keys) > 3 else ""
        raise UntrustedJournal(
            f"the journal's git config sets {', '.join(keys[:3])}{more}, which com did not write and will not run "
            f"(remove it: git --git-dir={git_dir} config --unset-all {keys[0]}; settings of your own belong in "
            "your global git config)", "config")
