"""Sharing the journal through real git remotes: a bare repository over file:// and over git daemon on loopback."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import git, run_com

COM = str(Path(sys.executable).parent / "com")


# -- remotes ---------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def git_daemon(tmp_path):
    """A real git daemon on loopback serving tmp/served/ (push enabled); yields the base URL."""
    exec_path = Path(git("--exec-path").strip())
    assert (exec_path / "git-daemon").exists(), "git daemon is missing (Debian/Ubuntu: it ships in the git package)"
    served = tmp_path / "served"
    served.mkdir()
    port = _free_port()
    proc = subprocess.Popen(
        ["git", "daemon", "--reuseaddr", "--export-all", "--enable=receive-pack", f"--base-path={served}",
         "--listen=127.0.0.1", f"--port={port}", str(served)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
    )
    deadline = time.time() + 15
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                pytest.fail(f"git daemon did not start: {proc.stderr.read().decode()}")
            time.sleep(0.05)
    yield served, f"git://127.0.0.1:{port}"
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=10)


@pytest.fixture(params=["file", "git-daemon"])
def remote(request, tmp_path):
    """(bare repository path, URL) of an empty remote, over file:// or the git protocol on loopback."""
    if request.param == "file":
        bare = tmp_path / "remote.git"
        git("init", "-q", "--bare", bare)
        return bare, bare.as_uri()
    served, base = request.getfixturevalue("git_daemon")
    bare = served / "journal.git"
    git("init", "-q", "--bare", bare)
    return bare, f"{base}/journal.git"


# -- helpers -----------------------------------------------------------------------------------
def new_memory(com, tmp_path, name: str, url: str | None = None) -> Path:
    mem = tmp_path / name / ".com"
    r = com("--memory", mem, "init")
    assert r.exit_code == 0, r.stderr
    if url:
        r = com("--memory", mem, "remote", "add", "origin", url)
        assert r.exit_code == 0, r.stderr
    return mem


def event(test_id: str, status: str = "passed", ts: str = "2026-03-01T10:00:00Z", project: str = "shop") -> dict:
    return {"type": "test_result", "project": project, "ts": ts, "data": {"test_id": test_id, "status": status}}


def ingest(com, mem, events) -> dict:
    r = com("--memory", mem, "ingest", "-", "--json", input="\n".join(json.dumps(e) for e in events))
    assert r.exit_code == 0, r.stderr
    return json.loads(r.stdout)


def snapshot_ids(com, mem, at: str | None = None) -> list[str]:
    args = ["--memory", mem, "events", "--limit", "0", "--json"] + (["--at", at] if at else [])
    r = com(*args)
    assert r.exit_code == 0, r.stderr
    return [e["id"] for e in json.loads(r.stdout)["events"]]


def refs(git_dir) -> dict[str, str]:
    out = git("--git-dir", git_dir, "for-each-ref", "--format=%(refname) %(objectname)")
    return dict(line.split(" ") for line in out.splitlines())


def head_sha(mem) -> str:
    return git("--git-dir", Path(mem) / "journal.git", "rev-parse", "refs/heads/main").strip()


def ok(r):
    assert r.exit_code == 0, r.stderr
    return json.loads(r.stdout) if r.stdout.startswith("{") else r


# -- remotes -----------------------------------------------------------------------------------
def test_remote_add_list_remove_are_git_remotes(com, tmp_path):
    mem = new_memory(com, tmp_path, "a")
    ok(com("--memory", mem, "remote", "add", "origin", "https://example.com/team/code.git"))
    ok(com("--memory", mem, "remote", "add", "backup", "/srv/backup.git", "--mirror"))
    listed = ok(com("--memory", mem, "remote", "list", "--json"))["remotes"]
    assert [(r["name"], r["mirror"], r["branches"]) for r in listed] == [
        ("backup", True, "refs/heads/*"), ("origin", False, "refs/com/heads/*")]
    # Plain git remotes: the git command line sees them, with the namespace in their fetch refspecs.
    journal = mem / "journal.git"
    assert "origin\thttps://example.com/team/code.git (fetch)" in git("--git-dir", journal, "remote", "-v")
    assert "+refs/com/heads/*:refs/remotes/origin/*" in git("--git-dir", journal, "config", "--get-all",
                                                             "remote.origin.fetch")
    r = com("--memory", mem, "remote", "add", "origin", "/elsewhere.git")
    assert r.exit_code == 2 and "already exists" in r.stderr
    ok(com("--memory", mem, "remote", "remove", "backup"))
    assert [r["name"] for r in ok(com("--memory", mem, "remote", "list", "--json"))["remotes"]] == ["origin"]
    r = com("--memory", mem, "remote", "remove", "nope")
    assert r.exit_code == 2 and "no remote 'nope'" in r.stderr
    r = com("--memory", mem, "push")
    assert r.exit_code == 2 and "no commits to push" in r.stderr


def test_push_and_clone_through_the_remote(com, tmp_path, remote):
    bare, url = remote
    a = new_memory(com, tmp_path, "a", url)
    ingest(com, a, [event("t1", "failed"), event("t2")])
    ok(com("--memory", a, "tag", "v1", "-m", "first release"))
    pushed = ok(com("--memory", a, "push", "--json"))
    assert pushed["status"] == "pushed" and pushed["remote_ref"] == "refs/com/heads/main"
    assert pushed["tags"] == {"pushed": ["v1"], "conflicts": []}
    # The journal lives under refs/com/ on the remote, read back with git itself.
    on_remote = refs(bare)
    assert set(on_remote) == {"refs/com/heads/main", "refs/com/tags/v1"}
    assert on_remote["refs/com/heads/main"] == head_sha(a)
    assert ok(com("--memory", a, "push", "--json"))["status"] == "up-to-date"

    # A fresh machine: one command.
    b = tmp_path / "b" / ".com"
    cloned = ok(com("clone", url, b, "--json"))
    assert cloned["branch"] == "main" and cloned["commit"] == head_sha(a)
    assert sorted(snapshot_ids(com, b)) == sorted(snapshot_ids(com, a))
    assert git("--git-dir", b / "journal.git", "tag", "-l").split() == ["v1"]
    assert sorted(snapshot_ids(com, b, at="v1")) == sorted(snapshot_ids(com, a))

    # Or the long way: init, remote add, pull.
    c = new_memory(com, tmp_path, "c", url)
    pulled = ok(com("--memory", c, "pull", "--json"))
    assert pulled["status"] == "created" and pulled["to"] == head_sha(a)
    assert pulled["tags"]["adopted"] == ["v1"]
    assert sorted(snapshot_ids(com, c)) == sorted(snapshot_ids(com, a))


def test_clone_refuses_an_existing_journal_and_a_failed_clone_leaves_nothing(com, tmp_path, remote):
    _, url = remote
    a = new_memory(com, tmp_path, "a", url)
    ingest(com, a, [event("t1")])
    r = com("clone", url, a)
    assert r.exit_code == 2 and "already holds a journal" in r.stderr
    target = tmp_path / "fresh" / ".com"
    r = com("clone", str(tmp_path / "no-such-remote.git"), target)
    assert r.exit_code == 2 and r.stderr.startswith("com: error: cannot clone from 'origin'")
    assert not target.exists()


def test_the_journal_shares_the_code_remote_without_touching_code_branches(com, tmp_path):
    code = tmp_path / "code"
    git("init", "-q", "-b", "main", code)
    (code / "app.py").write_text("print('hi')\n")
    git("-C", code, "add", "app.py")
    git("-C", code, "commit", "-q", "-m", "code")
    bare = tmp_path / "code-remote.git"
    git("clone", "-q", "--bare", code, bare)
    code_refs = refs(bare)
    a = new_memory(com, tmp_path, "a", bare.as_uri())
    ingest(com, a, [event("t1")])
    ok(com("--memory", a, "tag", "v1"))
    ok(com("--memory", a, "push"))
    after = refs(bare)
    assert {k: v for k, v in after.items() if not k.startswith("refs/com/")} == code_refs
    assert after["refs/com/heads/main"] == head_sha(a) and "refs/com/tags/v1" in after
    # Cloning the code still gets only the code.
    assert git("clone", "-q", bare, tmp_path / "code2") == ""
    assert "refs/com" not in git("-C", tmp_path / "code2", "for-each-ref")


def test_mirror_remote_uses_plain_refs(com, tmp_path):
    bare = tmp_path / "mirror.git"
    git("init", "-q", "--bare", bare)
    a = new_memory(com, tmp_path, "a")
    ok(com("--memory", a, "remote", "add", "origin", bare, "--mirror"))
    ingest(com, a, [event("t1")])
    ok(com("--memory", a, "tag", "v1"))
    ok(com("--memory", a, "push"))
    assert set(refs(bare)) == {"refs/heads/main", "refs/tags/v1"}
    # A plain `git clone` of the mirror is a copy of the journal.
    git("clone", "-q", "--bare", bare, tmp_path / "plain.git")
    assert git("--git-dir", tmp_path / "plain.git", "rev-parse", "main").strip() == head_sha(a)
    b = tmp_path / "b" / ".com"
    ok(com("clone", bare, b, "--mirror"))
    assert head_sha(b) == head_sha(a)


def test_fetch_reports_how_each_remote_branch_relates_and_changes_nothing_local(com, tmp_path):
    bare = tmp_path / "remote.git"
    git("init", "-q", "--bare", bare)
    a = new_memory(com, tmp_path, "a", bare.as_uri())
    ingest(com, a, [event("t1")])
    ok(com("--memory", a, "branch", "nightly"))
    ok(com("--memory", a, "tag", "v1"))
    ok(com("--memory", a, "push"))
    ok(com("--memory", a, "push", "origin", "nightly"))  # any branch, not only the current one
    b = tmp_path / "b" / ".com"
    ok(com("clone", bare.as_uri(), b))
    ingest(com, a, [event("t2")])
    ok(com("--memory", a, "push"))
    ingest(com, b, [event("t3")])
    before = refs(b / "journal.git")
    fetched = ok(com("--memory", b, "fetch", "--json"))
    assert {x["name"]: x["state"] for x in fetched["branches"]} == {"main": "diverged", "nightly": "new"}
    assert fetched["tags"] == [{"name": "v1", "commit": before["refs/tags/v1"], "local": before["refs/tags/v1"],
                                "state": "up-to-date"}]
    after = refs(b / "journal.git")
    assert {k: v for k, v in after.items() if k.startswith(("refs/heads/", "refs/tags/"))} == \
        {k: v for k, v in before.items() if k.startswith(("refs/heads/", "refs/tags/"))}
    assert after["refs/remotes/origin/main"] == refs(bare)["refs/com/heads/main"]
    # Pull a named branch that only the remote has: it is created locally.
    pulled = ok(com("--memory", b, "pull", "origin", "nightly", "--json"))
    assert pulled["status"] == "created"
    assert git("--git-dir", b / "journal.git", "rev-parse", "nightly").strip() == refs(bare)["refs/com/heads/nightly"]
    ok(com("--memory", b, "pull"))
    assert {x["name"]: x["state"] for x in ok(com("--memory", b, "fetch", "--json"))["branches"]} == {
        "main": "ahead", "nightly": "up-to-date"}


# -- merging -----------------------------------------------------------------------------------
def test_pull_merges_diverged_sides_and_the_same_event_counts_once(com, tmp_path, remote):
    bare, url = remote
    a = new_memory(com, tmp_path, "a", url)
    ingest(com, a, [event("base")])
    ok(com("--memory", a, "push"))
    b = tmp_path / "b" / ".com"
    ok(com("clone", url, b))
    # Both sides record the identical event (same content, ts given), in different batches, plus their own.
    shared = event("shared", "failed", ts="2026-03-02T09:00:00Z")
    ingest(com, a, [shared, event("only-a", ts="2026-03-02T09:01:00Z")])
    ingest(com, b, [shared, event("only-b", ts="2026-03-02T09:02:00Z")])
    ok(com("--memory", b, "push"))
    a_before = head_sha(a)
    pulled = ok(com("--memory", a, "pull", "--json"))
    assert pulled["status"] == "merged" and pulled["from"] == a_before
    merge = pulled["merge"]
    assert head_sha(a) == merge
    parents = git("--git-dir", a / "journal.git", "rev-list", "--parents", "-1", merge).split()[1:]
    assert parents == [a_before, refs(bare)["refs/com/heads/main"]]
    # Two batch files hold the shared event; readers count it once.
    files = git("--git-dir", a / "journal.git", "ls-tree", "-r", "--name-only", merge).split()
    holding = [f for f in files if "shared" in git("--git-dir", a / "journal.git", "show", f"{merge}:{f}")]
    assert len(holding) == 2
    ids = snapshot_ids(com, a)
    assert len(ids) == len(set(ids)) == 4
    events = {e["data"]["test_id"] for e in ok(com("--memory", a, "events", "--limit", "0", "--json"))["events"]}
    assert events == {"base", "shared", "only-a", "only-b"}
    # The merge commit shows what it brought in, and git's own tools read it.
    assert ok(com("--memory", a, "log", "-n", "1", "--json"))["commits"][0]["message"] == "merge origin/main into main"
    git("--git-dir", a / "journal.git", "fsck", "--strict")
    # Re-ingesting the shared event on the merged side adds nothing.
    assert ingest(com, a, [shared])["added"] == 0
    # Back the other way: a fast-forward, identical journals.
    ok(com("--memory", a, "push"))
    pulled = ok(com("--memory", b, "pull", "--json"))
    assert pulled["status"] == "fast-forward" and head_sha(b) == head_sha(a)
    assert ok(com("--memory", b, "pull", "--json"))["status"] == "up-to-date"


def test_rejected_push_fetches_merges_and_retries(com, tmp_path, remote):
    bare, url = remote
    a = new_memory(com, tmp_path, "a", url)
    b = new_memory(com, tmp_path, "b", url)
    # Unrelated histories (two CI runners that never synced) merge too.
    ingest(com, a, [event("a1"), event("a2")])
    ingest(com, b, [event("b1")])
    ok(com("--memory", a, "push"))
    pushed = ok(com("--memory", b, "push", "--json"))
    assert pushed["status"] == "pushed" and pushed["attempts"] == 2 and len(pushed["merges"]) == 1
    assert refs(bare)["refs/com/heads/main"] == head_sha(b) == pushed["merges"][0]
    assert len(snapshot_ids(com, b)) == 3
    ok(com("--memory", a, "pull"))
    assert head_sha(a) == head_sha(b)


def test_push_gives_up_after_push_tries_with_everything_merged_locally(com, tmp_path, monkeypatch):
    bare = tmp_path / "remote.git"
    git("init", "-q", "--bare", bare)
    a = new_memory(com, tmp_path, "a", bare.as_uri())
    b = new_memory(com, tmp_path, "b", bare.as_uri())
    ingest(com, a, [event("a1")])
    ingest(com, b, [event("b1")])
    ok(com("--memory", a, "push"))
    monkeypatch.setenv("COM_PUSH_TRIES", "1")
    r = com("--memory", b, "push")
    assert r.exit_code == 1 and "rejected 1 time(s)" in r.stderr
    assert refs(bare)["refs/com/heads/main"] == head_sha(a)
    assert len(snapshot_ids(com, b)) == 2  # merged in already
    assert ok(com("--memory", b, "push", "--json"))["attempts"] == 1
    assert refs(bare)["refs/com/heads/main"] == head_sha(b)


def test_pull_is_safe_while_the_same_memory_ingests(com, tmp_path):
    bare = tmp_path / "remote.git"
    git("init", "-q", "--bare", bare)
    a = new_memory(com, tmp_path, "a", bare.as_uri())
    b = new_memory(com, tmp_path, "b", bare.as_uri())
    ingest(com, a, [event(f"a{i}", ts=f"2026-03-01T10:{i // 60:02d}:{i % 60:02d}Z") for i in range(2000)])
    ok(com("--memory", a, "push"))
    ingest(com, b, [event("b-first")])
    puller = subprocess.Popen([COM, "--memory", str(b), "pull"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    local = [event(f"b-during-{i}") for i in range(15)]
    for e in local:  # each a batch of its own, racing the pull's compare-and-swap
        ingest(com, b, [e])
    out, err = puller.communicate(timeout=120)
    assert puller.returncode == 0, err
    ok(com("--memory", b, "pull"))
    assert len(snapshot_ids(com, b)) == 2000 + 1 + 15


def test_tag_pointing_elsewhere_is_reported_and_never_moved(com, tmp_path, remote):
    bare, url = remote
    a = new_memory(com, tmp_path, "a", url)
    ingest(com, a, [event("t1")])
    ok(com("--memory", a, "push"))
    b = tmp_path / "b" / ".com"
    ok(com("clone", url, b))
    ingest(com, a, [event("t2")])
    ingest(com, b, [event("t3")])
    ok(com("--memory", a, "tag", "release"))
    ok(com("--memory", b, "tag", "release"))
    ok(com("--memory", a, "tag", "only-a"))
    ok(com("--memory", a, "push"))
    a_tag = refs(bare)["refs/com/tags/release"]
    b_tag = git("--git-dir", b / "journal.git", "rev-parse", "release").strip()
    assert a_tag != b_tag

    r = com("--memory", b, "push", "--json")
    assert r.exit_code == 1
    out = json.loads(r.stdout)
    assert out["status"] == "pushed"  # the events travel; the tag does not
    assert out["tags"]["conflicts"] == [{"name": "release", "local": b_tag, "remote": a_tag}]
    assert "tag 'release'" in r.stderr and "kept" in r.stderr
    assert refs(bare)["refs/com/tags/release"] == a_tag

    r = com("--memory", b, "pull", "--json")
    assert r.exit_code == 1
    out = json.loads(r.stdout)
    assert out["tags"]["adopted"] == ["only-a"]
    assert [c["name"] for c in out["tags"]["conflicts"]] == ["release"]
    assert git("--git-dir", b / "journal.git", "rev-parse", "release").strip() == b_tag
    # The same tag on the same commit on both sides is no conflict.
    r = com("--memory", a, "pull", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["tags"]["conflicts"] == []


# -- faults ------------------------------------------------------------------------------------
@pytest.mark.parametrize("where", ["missing-path", "closed-port"])
def test_unreachable_remote_is_one_clear_line_and_the_journal_is_intact(com, tmp_path, where):
    url = (tmp_path / "gone.git").as_uri() if where == "missing-path" else f"git://127.0.0.1:{_free_port()}/j.git"
    a = new_memory(com, tmp_path, "a", url)
    ingest(com, a, [event("t1"), event("t2")])
    ok(com("--memory", a, "tag", "v1"))
    before = refs(a / "journal.git")
    for verb in ("push", "pull", "fetch"):
        r = run_com("--memory", a, verb)
        assert r.returncode == 2, (verb, r.stderr)
        assert r.stdout == ""
        lines = r.stderr.splitlines()
        assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
        assert lines[0].startswith(f"com: error: cannot {verb} ") and "'origin'" in lines[0] and url in lines[0]
        assert ("does not appear to be a git repository" if where == "missing-path" else "refused") in lines[0]
    assert refs(a / "journal.git") == before
    assert len(snapshot_ids(com, a)) == 2
    git("--git-dir", a / "journal.git", "fsck", "--strict")
    assert ok(com("--memory", a, "fsck", "--json"))["ok"] is True


def test_a_remote_that_refuses_the_push_is_one_line(com, tmp_path):
    bare = tmp_path / "remote.git"
    git("init", "-q", "--bare", bare)
    hook = bare / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'journal is read-only today' >&2\nexit 1\n")
    hook.chmod(0o755)
    a = new_memory(com, tmp_path, "a", bare.as_uri())
    ingest(com, a, [event("t1")])
    r = run_com("--memory", a, "push")
    assert r.returncode == 2 and len(r.stderr.splitlines()) == 1, r.stderr
    assert r.stderr.startswith("com: error: push to 'origin' refused: [remote rejected] (pre-receive hook declined)")
    assert "journal is read-only today" in r.stderr
    assert refs(bare) == {}


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _kill_while_git_runs(args: list[str], delay: float) -> bool:
    """Start `com ARGS`, SIGKILL its whole process group `delay` s after its git child appears.

    True if the kill landed while the command was still at work (not after it finished)."""
    proc = subprocess.Popen([COM, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 60
    while not _children(proc.pid) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.002)
    time.sleep(delay)
    midway = proc.poll() is None
    if midway:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return midway


def _big_journal(mem: Path, batches: int, per: int, tag: str) -> None:
    from com.memory import Memory
    from com.model.event import validate as normalize

    memory = Memory(mem)
    for b in range(batches):
        memory.record([
            normalize(event(f"tests/test_{tag}{b}.py::test_{i}", "failed" if i % 9 == 0 else "passed",
                            ts=f"2026-02-{1 + b % 28:02d}T10:{i // 60 % 60:02d}:{i % 60:02d}Z"))
            for i in range(per)
        ])


def test_killed_push_and_pull_lose_nothing_after_the_next_sync(com, tmp_path):
    bare = tmp_path / "remote.git"
    git("init", "-q", "--bare", bare)
    # Keep pushed objects loose on the remote, so serving a fetch takes long enough to be killed midway.
    git("--git-dir", bare, "config", "receive.unpackLimit", "1000000")
    a = new_memory(com, tmp_path, "a", bare.as_uri())
    # git's default delta search (com turns it off unless configured): a push slow enough to be killed midway.
    git("--git-dir", a / "journal.git", "config", "pack.window", "10")
    _big_journal(a, 30, 1000, "a")
    assert _kill_while_git_runs(["--memory", str(a), "push"], 0.3), "push finished before the kill"
    assert "refs/com/heads/main" not in refs(bare)  # killed mid-transfer: the remote never saw a half push
    git("--git-dir", bare, "fsck")
    pushed = ok(com("--memory", a, "push", "--json"))
    assert pushed["status"] == "pushed"
    assert refs(bare)["refs/com/heads/main"] == head_sha(a)
    git("--git-dir", bare, "fsck")

    b = new_memory(com, tmp_path, "b", bare.as_uri())
    ingest(com, b, [event("b-local")])
    assert _kill_while_git_runs(["--memory", str(b), "pull"], 0.2), "pull finished before the kill"
    # Killed mid-fetch: no tracking ref yet, and the local journal still reads and holds its own event.
    assert "refs/remotes/origin/main" not in refs(b / "journal.git")
    assert len(snapshot_ids(com, b)) == 1
    git("--git-dir", b / "journal.git", "fsck")
    # A second kill, later (after the transfer, during the merge or after it): still whole.
    _kill_while_git_runs(["--memory", str(b), "pull"], 1.5)
    assert len(snapshot_ids(com, b)) in (1, 30_001)
    ok(com("--memory", b, "pull"))
    assert len(snapshot_ids(com, b)) == 30_001
    git("--git-dir", b / "journal.git", "fsck")
    assert ok(com("--memory", b, "fsck", "--json"))["ok"] is True
    ok(com("--memory", b, "push"))
    ok(com("--memory", a, "pull"))
    assert head_sha(a) == head_sha(b) == refs(bare)["refs/com/heads/main"]


# -- many writers --------------------------------------------------------------------------------
def test_four_clones_ingesting_concurrently_converge_on_every_event(com, tmp_path, remote):
    """Four CI runners each record 1,000 results in 10 batches and push or pull in random order."""
    bare, url = remote
    mems = []
    for k in range(4):
        if k < 2:
            mems.append(new_memory(com, tmp_path, f"runner{k}", url))
        else:  # the others start from `com clone` of the (still empty) shared remote
            mem = tmp_path / f"runner{k}" / ".com"
            ok(com("clone", url, mem))
            mems.append(mem)
    errors: list[str] = []

    def runner(k: int) -> None:
        rng = random.Random(k)
        for b in range(10):
            lines = "\n".join(
                json.dumps(event(f"runner{k}/batch{b}/test_{i}", rng.choice(["passed", "failed"]),
                                 ts=f"2026-03-01T{k:02d}:{b:02d}:{i % 60:02d}.{i:06d}Z"))
                for i in range(100)
            )
            r = run_com("--memory", mems[k], "ingest", "-", input=lines)
            if r.returncode != 0:
                errors.append(f"runner{k} ingest: {r.stderr}")
            op = rng.choice(["push", "push", "pull", "none"])
            if op != "none":
                r = run_com("--memory", mems[k], op)
                if r.returncode != 0:
                    errors.append(f"runner{k} {op}: {r.stderr}")
            time.sleep(rng.uniform(0, 0.3))

    threads = [threading.Thread(target=runner, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for mem in mems:  # everyone publishes, then everyone catches up
        ok(com("--memory", mem, "push"))
    for mem in mems:
        ok(com("--memory", mem, "pull"))
    tip = refs(bare)["refs/com/heads/main"]
    expected = {f"runner{k}/batch{b}/test_{i}" for k in range(4) for b in range(10) for i in range(100)}
    for mem in mems:
        assert head_sha(mem) == tip
        events = ok(com("--memory", mem, "events", "--limit", "0", "--json"))["events"]
        assert len(events) == 4000 and {e["data"]["test_id"] for e in events} == expected
        git("--git-dir", mem / "journal.git", "fsck")
    files = git("--git-dir", bare, "ls-tree", "-r", "--name-only", tip).split()
    assert len(files) == 40  # one batch per ingest, none lost, none doubled
    git("--git-dir", bare, "fsck")
