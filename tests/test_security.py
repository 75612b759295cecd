"""Security of the shared memory (issue 10): names that reach git, a journal that came with the code, secrets in
URLs, and clone/init that only ever remove what they created.

Everything runs against real git repositories and the real `git` command line. A test that proves code does NOT
run plants a payload that would create a marker file, and asserts the file does not exist."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import ROOT, git, run_com

COM = str(Path(sys.executable).parent / "com")


# -- helpers -----------------------------------------------------------------------------------
def event(test_id: str, status: str = "passed", ts: str = "2026-03-01T10:00:00Z") -> dict:
    return {"type": "test_result", "project": "shop", "ts": ts, "data": {"test_id": test_id, "status": status}}


def ok(r):
    assert r.exit_code == 0, r.stderr
    return json.loads(r.stdout) if r.stdout.startswith("{") else r


def ingest(com, mem, *tests: str) -> dict:
    return ok(com("--memory", mem, "ingest", "-", "--json", input="\n".join(json.dumps(event(t)) for t in tests)))


def one_error_line(r, code: int = 2) -> str:
    """The command failed with `code`, printed nothing on stdout and exactly one `com: error:` line."""
    assert r.exit_code == code, (r.exit_code, r.stdout, r.stderr)
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("com: error: "), r.stderr
    return lines[0]


def tree_state(root: Path) -> dict[str, bytes | None]:
    """Every file (content) and folder (None) under root, except the flock files com takes and leaves."""
    out = {}
    for path in sorted(root.rglob("*")):
        if path.name in ("com-write.lock", "com-sync.lock"):
            continue
        out[path.relative_to(root).as_posix()] = None if path.is_dir() else path.read_bytes()
    return out


@pytest.fixture
def shared(com, tmp_path):
    """A bare remote (file://) holding a journal with one event on main and a tag, pushed by another memory."""
    bare = tmp_path / "remote.git"
    git("init", "-q", "--bare", bare)
    peer = tmp_path / "peer" / ".com"
    ok(com("--memory", peer, "init"))
    ok(com("--memory", peer, "remote", "add", "origin", bare.as_uri()))
    ingest(com, peer, "t1")
    ok(com("--memory", peer, "tag", "v1"))
    ok(com("--memory", peer, "push"))
    return bare


def new_memory(com, tmp_path, name: str, url: str | None = None) -> Path:
    mem = tmp_path / name / ".com"
    ok(com("--memory", mem, "init"))
    if url:
        ok(com("--memory", mem, "remote", "add", "origin", url))
    return mem


def plant_hooks(git_dir: Path, marker: Path, names=("reference-transaction", "pre-push", "post-update",
                                                     "pre-auto-gc", "post-checkout", "pre-commit")) -> None:
    hooks = git_dir / "hooks"
    hooks.mkdir(parents=True, exist_ok=True)
    for name in names:
        hook = hooks / name
        hook.write_text(f"#!/bin/sh\ntouch '{marker}'\n")
        hook.chmod(0o755)


# -- 1. names validated as git does; no user value is ever read as an option ------------------
BAD_NAMES = [
    "-x", "--upload-pack=touch${IFS}pwned;", "a\nb", "a" * 300, "HEAD", "a..b", "a b", "x.lock", "@", "a@{1}",
    ".hidden", "a/", "a//b", "~x", "a:b", "a\\b", "a*b", "a?b", "a[b", "a^b", "end.", "a\x7fb", "a\tb",
]


def _name_commands(url: str, target: Path):
    """(what, argv builder) for every command that takes a remote, branch or tag name."""
    return {
        "remote add": lambda n: ["remote", "add", "--", n, url],
        "branch": lambda n: ["branch", "--", n],
        "branch -d": lambda n: ["branch", "-d", "--", n],
        "switch -c": lambda n: ["switch", "-c", "--", n],
        "switch": lambda n: ["switch", "--", n],
        "tag": lambda n: ["tag", "--", n],
        "tag -d": lambda n: ["tag", "-d", "--", n],
        "clone --branch": lambda n: ["clone", f"--branch={n}", url, target],
        "pull BRANCH": lambda n: ["pull", "--", "origin", n],
        "push BRANCH": lambda n: ["push", "--", "origin", n],
        "pull REMOTE": lambda n: ["pull", "--", n],
        "push REMOTE": lambda n: ["push", "--", n],
        "fetch REMOTE": lambda n: ["fetch", "--", n],
        "remote remove": lambda n: ["remote", "remove", "--", n],
    }


@pytest.mark.parametrize("what", list(_name_commands("", Path())))
def test_bad_names_are_one_line_exit_2_and_nothing_written(com, tmp_path, shared, what):
    mem = new_memory(com, tmp_path, "a", shared.as_uri())
    ingest(com, mem, "t2")
    ok(com("--memory", mem, "tag", "v0"))
    target = tmp_path / "clone" / ".com"
    build = _name_commands(shared.as_uri(), target)[what]
    before = tree_state(mem)
    for name in BAD_NAMES:
        r = com("--memory", mem, *build(name))
        line = one_error_line(r)
        assert "\n" not in line and len(line) < 300, line
        assert "not a valid" in line, (name, line)
        assert tree_state(mem) == before, name
        assert not target.exists() and not target.parent.exists(), name
        assert not (Path.cwd() / "pwned").exists()


def test_git_refuses_what_com_refuses_and_com_accepts_what_git_accepts(tmp_path):
    """The validation is git's own check-ref-format, plus no leading '-', no HEAD and at most 200 bytes."""
    from com.journal.gitsafe import check_ref_name
    from com.model.errors import ComError

    good = ["main", "feature/x", "v1.0", "release-2026.03", "a.b", "ü-umlaut", "x@y", "a{b}", "a$b"]
    for name in good:
        assert check_ref_name(name, "branch") == name
        assert subprocess.run(["git", "check-ref-format", "--branch", name], capture_output=True).returncode == 0
    for name in BAD_NAMES:
        with pytest.raises(ComError):
            check_ref_name(name, "branch")
    for name in ["a/b", "x/"]:
        with pytest.raises(ComError):
            check_ref_name(name, "remote")
    assert check_ref_name("a/b", "tag") == "a/b"


def test_a_remote_named_like_an_option_never_reaches_git_as_one(com, tmp_path, shared):
    """`com remote add -- --upload-pack=… URL` is refused; a remote of that name written into the config by hand
    is refused too, and git sees every user value after --end-of-options."""
    mem = new_memory(com, tmp_path, "a")
    evil = "--upload-pack=touch${IFS}pwned;"
    one_error_line(com("--memory", mem, "remote", "add", "--", evil, shared.as_uri()))
    git("--git-dir", mem / "journal.git", "config", f"remote.{evil}.url", shared.as_uri())
    git("--git-dir", mem / "journal.git", "config", f"remote.{evil}.fetch", f"+refs/com/heads/*:refs/remotes/{evil}/*")
    for verb in ("fetch", "pull", "push"):
        r = com("--memory", mem, verb)  # the only remote: chosen by default
        assert "not a valid remote name" in one_error_line(r)
        r = com("--memory", mem, verb, "--", evil)
        assert "not a valid remote name" in one_error_line(r)
    assert not (Path.cwd() / "pwned").exists()


def test_every_git_command_line_puts_user_values_after_end_of_options(com, tmp_path, shared, monkeypatch):
    seen = []
    real = subprocess.run

    def spy(argv, *a, **kw):
        seen.append(list(argv))
        return real(argv, *a, **kw)

    monkeypatch.setattr(subprocess, "run", spy)  # gitsafe imports subprocess when it first runs git
    mem = new_memory(com, tmp_path, "a", shared.as_uri())
    ok(com("--memory", mem, "pull"))
    ingest(com, mem, "t9")
    ok(com("--memory", mem, "tag", "v9"))
    ok(com("--memory", mem, "push"))
    ok(com("--memory", mem, "fetch"))
    ok(com("--memory", mem, "fsck"))
    runs = [argv for argv in seen if argv[0] == "git"]
    verbs = {next(a for a in argv[1:] if not a.startswith("-") and "=" not in a) for argv in runs}
    assert {"fetch", "push", "fsck"} <= verbs, verbs
    for argv in runs:
        if "fetch" in argv or "push" in argv:
            eoo = argv.index("--end-of-options")
            assert argv.index("origin") > eoo, argv
            assert all(not a.startswith("-") for a in argv[eoo + 1:]), argv
    # No other module runs git itself: every git command line is built by com.gitsafe.
    for path in (ROOT / "com").rglob("*.py"):
        if path.name != "gitsafe.py":
            text = path.read_text()
            assert '["git"' not in text and "['git'" not in text, path


# -- 2. a journal that came with the code runs no configuration it did not write ---------------
def _commit_journal_into_code(com, tmp_path, shared, marker: Path) -> Path:
    """An author commits .com/ (with a hostile config and hooks) into a code repository; returns a fresh clone."""
    author = tmp_path / "author"
    git("init", "-q", "-b", "main", author)
    (author / "app.py").write_text("print('hi')\n")
    mem = author / ".com"
    ok(com("--memory", mem, "init"))
    ok(com("--memory", mem, "remote", "add", "origin", shared.as_uri()))
    ingest(com, mem, "t0")  # a journal with refs and objects: git checks out no empty folder
    jgit = mem / "journal.git"
    git("--git-dir", jgit, "config", "remote.origin.uploadpack", f"touch '{marker}'; git-upload-pack")
    git("--git-dir", jgit, "config", "remote.origin.receivepack", f"touch '{marker}'; git-receive-pack")
    plant_hooks(jgit, marker)
    git("-C", author, "add", "app.py")
    git("-C", author, "add", "-f", ".com")
    git("-C", author, "commit", "-q", "-m", "code, and a journal")
    victim = tmp_path / "victim"
    git("clone", "-q", author, victim)
    assert (victim / ".com" / "journal.git" / "hooks" / "reference-transaction").exists()
    return victim


def test_a_journal_tracked_by_the_code_repository_is_refused(com, tmp_path, shared, monkeypatch):
    marker = tmp_path / "PWNED"
    victim = _commit_journal_into_code(com, tmp_path, shared, marker)
    monkeypatch.chdir(victim)
    for verb in ("pull", "fetch", "push"):
        line = one_error_line(com(verb))
        assert "tracked by the code repository" in line and "com.trustedJournal" in line, line
    r = com("fsck", "--json")
    assert r.exit_code == 1
    report = json.loads(r.stdout)
    assert any("tracked by the code repository" in p["message"] for p in report["problems"]), report
    r = com("clone", shared.as_uri(), victim / ".com")
    assert r.exit_code == 2
    assert not marker.exists()


def test_an_adopted_tracked_journal_still_runs_only_coms_settings(com, tmp_path, shared, monkeypatch):
    marker = tmp_path / "PWNED"
    victim = _commit_journal_into_code(com, tmp_path, shared, marker)
    monkeypatch.chdir(victim)
    # Adopted deliberately, in the code repository's own .git/config (never cloned, so never the author's).
    git("-C", victim, "config", "--add", "com.trustedJournal", ".com/journal.git")
    line = one_error_line(com("pull"))
    assert "remote.origin.uploadpack" in line and "remote.origin.receivepack" in line, line
    jgit = victim / ".com" / "journal.git"
    git("--git-dir", jgit, "config", "--unset", "remote.origin.uploadpack")
    git("--git-dir", jgit, "config", "--unset", "remote.origin.receivepack")
    assert ok(com("pull", "--json"))["status"] == "merged"
    ingest(com, victim / ".com", "t3")
    assert ok(com("push", "--json"))["status"] == "pushed"
    assert ok(com("fsck", "--json"))["ok"] is True
    assert not marker.exists()


def test_adoption_is_never_read_from_the_journal_or_the_code(com, tmp_path, shared, monkeypatch):
    marker = tmp_path / "PWNED"
    victim = _commit_journal_into_code(com, tmp_path, shared, marker)
    monkeypatch.chdir(victim)
    git("--git-dir", victim / ".com" / "journal.git", "config", "com.trustedJournal", "*")
    (victim / "pyproject.toml").write_text('[tool.com]\ntrustedJournal = "*"\ntrusted_journal = "*"\n')
    r = com("pull")
    *warnings, error = r.stderr.splitlines()
    assert r.exit_code == 2 and error.startswith("com: error: ") and "tracked by the code repository" in error
    # Not settings at all: said as unknown keys, and ignored.
    assert len(warnings) == 2 and all(w.startswith("com: warning: unknown setting 'trusted") for w in warnings)
    assert not marker.exists()


PAYLOADS = {
    # key -> (value, the remote URL to use, the verb that would run it)
    "uploadpack": ({"remote.origin.uploadpack": "touch '{m}'; git-upload-pack"}, "file", "pull"),
    "receivepack": ({"remote.origin.receivepack": "touch '{m}'; git-receive-pack"}, "file", "push"),
    "sshCommand": ({"core.sshCommand": "touch '{m}'; false"}, "ssh://127.0.0.1/j.git", "fetch"),
    "hooksPath": ({"core.hooksPath": "{hooks}"}, "file", "pull"),
    "include": ({"include.path": "{inc}"}, "file", "pull"),
    "insteadOf": ({"url.ext::sh -c touch% {m}.insteadOf": "{url}", "protocol.ext.allow": "always"}, "file", "fetch"),
    "credential": ({"credential.helper": "!touch '{m}'; echo"}, "file", "pull"),
}


@pytest.mark.parametrize("kind", list(PAYLOADS))
def test_a_journal_config_com_did_not_write_is_refused_and_never_run(com, tmp_path, shared, kind):
    settings, url, verb = PAYLOADS[kind]
    marker = tmp_path / "PWNED"
    url = shared.as_uri() if url == "file" else url
    mem = new_memory(com, tmp_path, "a", url)
    ingest(com, mem, "t2")
    plant_hooks(tmp_path / "evil", marker)
    hooks = tmp_path / "evil" / "hooks"
    inc = tmp_path / "evil.inc"
    inc.write_text(f"[remote \"origin\"]\n\tuploadpack = touch '{marker}'; git-upload-pack\n")
    for key, value in settings.items():
        value = value.format(m=marker, hooks=hooks, inc=inc, url=shared.as_uri())
        key = key.format(m=marker)
        git("--git-dir", mem / "journal.git", "config", key, value)
    line = one_error_line(com("--memory", mem, verb))
    assert "com did not write" in line, line
    first_key = next(iter(settings)).format(m=marker).split(".")[0]
    assert first_key.lower() in line.lower(), line
    r = com("--memory", mem, "fsck", "--json")
    assert r.exit_code == 1 and any(p["check"] == "config" for p in json.loads(r.stdout)["problems"]), r.stdout
    assert not marker.exists()


def test_hooks_inside_the_journal_never_run(com, tmp_path, shared):
    marker = tmp_path / "PWNED"
    mem = new_memory(com, tmp_path, "a", shared.as_uri())
    plant_hooks(mem / "journal.git", marker)
    assert ok(com("--memory", mem, "pull", "--json"))["status"] == "created"
    ingest(com, mem, "t2")
    ok(com("--memory", mem, "tag", "v2"))
    assert ok(com("--memory", mem, "push", "--json"))["status"] == "pushed"
    ok(com("--memory", mem, "fetch"))
    ok(com("--memory", mem, "fsck"))
    clone = tmp_path / "c" / ".com"
    ok(com("clone", shared.as_uri(), clone))
    assert not marker.exists()


def test_the_users_own_global_config_keeps_working(com, tmp_path, shared):
    """insteadOf (and credential helpers, ssh keys…) in the user's global config are the user's: they still apply."""
    git("config", "--global", f"url.{shared.as_uri()}.insteadOf", "team:journal")
    mem = new_memory(com, tmp_path, "a", "team:journal")
    git("--git-dir", mem / "journal.git", "config", "pack.window", "0")  # a setting docs/sharing.md documents
    assert ok(com("--memory", mem, "pull", "--json"))["status"] == "created"
    ingest(com, mem, "t2")
    assert ok(com("--memory", mem, "push", "--json"))["status"] == "pushed"


def test_pygit2_reading_a_hostile_journal_runs_nothing(com, tmp_path, shared):
    """Reads and writes that go through libgit2 (ingest, events, log, branch, tag…) never run the journal's config
    or hooks: libgit2 has no hooks, no external filters, no credential helpers, and com never uses its network."""
    marker = tmp_path / "PWNED"
    mem = new_memory(com, tmp_path, "a", shared.as_uri())
    jgit = mem / "journal.git"
    plant_hooks(jgit, marker, names=("pre-commit", "post-commit", "reference-transaction", "post-checkout",
                                     "pre-receive", "update", "post-update", "post-rewrite"))
    cmd = f"touch '{marker}'"
    for key, value in [("core.fsmonitor", cmd), ("core.sshCommand", cmd), ("core.askPass", cmd),
                       ("credential.helper", f"!{cmd}"), ("filter.evil.clean", cmd), ("filter.evil.smudge", cmd),
                       ("diff.external", cmd), ("core.pager", cmd), ("core.editor", cmd),
                       ("remote.origin.uploadpack", cmd), ("core.alternateRefsCommand", cmd),
                       ("gpg.program", cmd), ("include.path", str(tmp_path / "missing.inc"))]:
        git("--git-dir", jgit, "config", key, value)
    (jgit / "info").mkdir(exist_ok=True)
    (jgit / "info" / "attributes").write_text("* filter=evil diff=evil\n")
    for args in (["ingest", "-p", "shop", "-t", "note", "-d", '{"text": "x"}'], ["events"], ["log"], ["show"],
                 ["branch", "b1"], ["switch", "b1"], ["switch", "main"], ["tag", "v1", "-m", "m"], ["diff", "HEAD"],
                 ["commit", "-m", "analysis"], ["remote", "list"], ["config"]):
        ok(com("--memory", mem, *args))
    assert not marker.exists()


# -- 3. secrets in URLs are redacted from every message and every JSON output ----------------
def test_redact_hides_the_secret_part_of_urls():
    from com.journal.gitsafe import redact

    cases = {
        "https://user:TOKEN123@host/x.git": "https://user:***@host/x.git",
        "fatal: unable to access 'https://ci:TOKEN123@git.example.com:8443/a/b.git/': 403": (
            "fatal: unable to access 'https://ci:***@git.example.com:8443/a/b.git/': 403"),
        "https://ghp_TOKEN123@github.com/team/x.git": "https://***@github.com/team/x.git",
        "http://x-access-token:TOKEN123@github.com/o/r": "http://x-access-token:***@github.com/o/r",
        "ssh://git@host/x.git": "ssh://git@host/x.git",
        "ssh://git:TOKEN123@host/x.git": "ssh://git:***@host/x.git",
        "git@github.com:team/x.git": "git@github.com:team/x.git",
        "https://host/x.git": "https://host/x.git",
        "see https://a:b%40TOKEN123@h/x and https://c:TOKEN123@h2/y": "see https://a:***@h/x and https://c:***@h2/y",
        "https://user:p@ss:TOKEN123@host/x": "https://user:***@host/x",
        "mail me at someone@example.com": "mail me at someone@example.com",
    }
    for text, expected in cases.items():
        assert redact(text) == expected, text
    # git's own text can name the credentials without the scheme: the known URL's secret goes too.
    url = "git://user:TOKEN123@127.0.0.1:9/j.git"
    assert "TOKEN123" not in redact("fatal: unable to look up user:TOKEN123@127.0.0.1:9 (port 9418)", url)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("scheme", ["https", "git"])
def test_credentials_never_reach_messages_or_json(com, tmp_path, scheme):
    secret = "s3cr3tTOKEN"
    url = f"{scheme}://user:{secret}@127.0.0.1:{_closed_port()}/j.git"
    mem = new_memory(com, tmp_path, "a")
    outputs = []
    r = com("--memory", mem, "remote", "add", "origin", url)
    outputs.append(ok(r).stdout)
    r = com("--memory", mem, "remote", "add", "backup", url, "--json")
    outputs.append(r.stdout)
    assert json.loads(r.stdout)["url"] == url.replace(secret, "***")
    for args in (["remote", "list"], ["remote", "list", "--json"]):
        r = com("--memory", mem, *args)
        ok(r)
        outputs.append(r.stdout)
    ingest(com, mem, "t1")
    for verb in ("fetch", "pull", "push"):
        r = run_com("--memory", mem, verb, "origin")
        assert r.returncode == 2, r.stderr
        assert "user:***@" in r.stderr, r.stderr
        outputs += [r.stdout, r.stderr]
    r = run_com("clone", url, tmp_path / "c" / ".com")
    assert r.returncode == 2
    outputs += [r.stdout, r.stderr]
    for text in outputs:
        assert secret not in text, text


def test_credentials_are_redacted_from_successful_json(com, tmp_path, shared):
    """A reachable remote whose URL holds a token (rewritten to the file:// remote by the user's insteadOf)."""
    secret = "s3cr3tTOKEN"
    url = f"https://user:{secret}@journal.example/team/j.git"
    git("config", "--global", f"url.{shared.as_uri()}.insteadOf", url)
    outputs = []
    clone = tmp_path / "c" / ".com"
    r = com("clone", url, clone, "--json")
    outputs.append(ok(r) and r.stdout)
    assert json.loads(r.stdout)["url"] == "https://user:***@journal.example/team/j.git"
    r = com("clone", url, tmp_path / "d" / ".com")
    outputs.append(ok(r).stdout)
    ingest(com, clone, "t2")
    for verb in ("fetch", "pull", "push"):
        for fmt in ([], ["--json"]):
            r = com("--memory", clone, verb, *fmt)
            outputs += [ok(r) and r.stdout, r.stderr]
            if fmt:
                assert json.loads(r.stdout)["url"] == "https://user:***@journal.example/team/j.git"
    # The real URL stays in the journal's config: git still authenticates with it.
    assert secret in git("--git-dir", clone / "journal.git", "config", "remote.origin.url")
    for text in outputs:
        assert secret not in text, text


# -- 4. a failed clone or init removes only what it created -----------------------------------
def _silent_server():
    """A TCP listener that accepts and never answers: a git:// fetch against it hangs until interrupted."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(5)
    accepted = threading.Event()
    conns = []

    def serve():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            conns.append(conn)
            accepted.set()

    threading.Thread(target=serve, daemon=True).start()
    return server, accepted, conns


def _existing_target(tmp_path) -> tuple[Path, dict]:
    target = tmp_path / "mine"
    (target / "notes").mkdir(parents=True)
    (target / "notes" / "todo.txt").write_text("keep me\n")
    (target / "README").write_text("mine\n")
    return target, tree_state(target)


@pytest.mark.parametrize("failure", ["bad-url", "bad-branch"])
def test_a_failed_clone_into_an_existing_folder_keeps_everything_that_was_there(com, tmp_path, shared, failure):
    target, before = _existing_target(tmp_path)
    url = (tmp_path / "nowhere.git").as_uri() if failure == "bad-url" else shared.as_uri()
    args = ["clone", url, target] + (["--branch", "nope"] if failure == "bad-branch" else [])
    one_error_line(com(*args))
    assert tree_state(target) == before


@pytest.mark.parametrize("failure", ["bad-url", "bad-branch"])
def test_a_failed_clone_removes_the_folders_it_created(com, tmp_path, shared, failure):
    target = tmp_path / "new" / "deep" / ".com"
    url = (tmp_path / "nowhere.git").as_uri() if failure == "bad-url" else shared.as_uri()
    args = ["clone", url, target] + (["--branch", "nope"] if failure == "bad-branch" else [])
    one_error_line(com(*args))
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("existing", [True, False])
def test_ctrl_c_during_clone_removes_only_what_it_created(tmp_path, existing):
    server, accepted, conns = _silent_server()
    try:
        if existing:
            target, before = _existing_target(tmp_path)
        else:
            target, before = tmp_path / "new" / ".com", None
        url = f"git://127.0.0.1:{server.getsockname()[1]}/j.git"
        proc = subprocess.Popen([COM, "clone", url, str(target)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, start_new_session=True)
        assert accepted.wait(60), "git never connected"
        time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole foreground group
        out, err = proc.communicate(timeout=60)
        assert proc.returncode != 0, (out, err)
        assert "Traceback" not in err, err
        if existing:
            assert tree_state(target) == before
        else:
            assert not (tmp_path / "new").exists(), tree_state(tmp_path / "new")
    finally:
        server.close()
        for conn in conns:
            conn.close()


def test_clone_into_an_empty_journal_that_fails_keeps_the_journal(com, tmp_path):
    mem = new_memory(com, tmp_path, "a")
    before = tree_state(mem)
    one_error_line(com("clone", (tmp_path / "nowhere.git").as_uri(), mem))
    assert tree_state(mem) == before


def test_a_failed_init_removes_only_what_it_created(com, tmp_path):
    root = tmp_path / "mine"
    root.mkdir()
    (root / "README").write_text("mine\n")
    (root / "index").write_text("not a folder\n")  # where com wants its index folder
    before = tree_state(root)
    line = one_error_line(com("--memory", root, "init"))
    assert "index" in line, line
    assert tree_state(root) == before
    fresh = tmp_path / "a" / "b" / ".com"
    fresh.parent.parent.mkdir()
    (fresh.parent).write_text("a file where a folder should be\n")
    one_error_line(com("--memory", fresh, "init"))
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["b"] and (tmp_path / "a" / "b").is_file()


def test_ctrl_c_during_init_removes_only_what_it_created(com, tmp_path, monkeypatch):
    import com.memory as memory_mod

    target, before = _existing_target(tmp_path)

    def interrupted(*a, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(memory_mod, "exclude_from_code_repo", interrupted)
    with pytest.raises(KeyboardInterrupt):
        memory_mod.Memory.init(target)
    assert tree_state(target) == before


# -- property: com never accepts a name git refuses, and refuses a name git accepts only by its own stated rules --
def test_ref_names_agree_with_git_check_ref_format(tmp_path):
    from hypothesis import HealthCheck, given, settings, strategies as st

    from com.journal.gitsafe import _ref_problem

    pieces = st.sampled_from(["a", "b", "Z", "0", "/", ".", "-", "@", "{", "}", "~", "^", ":", "?", "*", "[", "\\",
                              " ", "\t", "\n", "\x7f", "ü", "é", ".lock", "..", "@{", "HEAD", "$", "%", "#"])
    names = st.lists(pieces, max_size=8).map("".join)

    def git_accepts(*args) -> bool:
        return subprocess.run(["git", "check-ref-format", *args], cwd=tmp_path, capture_output=True).returncode == 0

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(names)
    def check(name):
        branch_ok = _ref_problem(name, "branch") is None
        git_branch_ok = git_accepts("--branch", name)
        assert not branch_ok or git_branch_ok, name  # never accept what git refuses
        if git_branch_ok and not branch_ok:  # refuse what git accepts only by com's own stated rules
            assert name in ("HEAD", "@") or len(name.encode()) > 200, name
        assert (_ref_problem(name, "tag") is None) == branch_ok
        remote_ok = _ref_problem(name, "remote") is None
        assert not remote_ok or git_accepts(f"refs/remotes/{name}/x"), name

    check()
