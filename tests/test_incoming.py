"""Pull and clone check every incoming batch as fsck does before anything moves: a peer's malformed, altered or
oversized batch (on the branch, or behind a tag) is refused with the remote named, and nothing changes here."""

from __future__ import annotations

import json
from pathlib import Path

import pygit2
import pytest

from conftest import git


def ok(r):
    assert r.exit_code == 0, r.stderr
    return r


def refs(git_dir: Path) -> str:
    return git("--git-dir", git_dir, "for-each-ref")


def _commit_raw(bare: Path, ref: str, path: str, data: bytes) -> str:
    """A commit on the remote adding one file as a careless tool would, on top of `ref` (created if absent)."""
    repo = pygit2.Repository(str(bare))
    parent = repo.references.get(ref)
    parents = [parent.target] if parent is not None else []
    base = repo[parent.target].peel(pygit2.Commit).tree if parent is not None else None

    def put(tree, parts):
        builder = repo.TreeBuilder(tree) if tree is not None else repo.TreeBuilder()
        if len(parts) == 1:
            builder.insert(parts[0], repo.create_blob(data), pygit2.GIT_FILEMODE_BLOB)
        else:
            sub = repo[tree[parts[0]].id] if tree is not None and parts[0] in tree else None
            builder.insert(parts[0], put(sub, parts[1:]), pygit2.GIT_FILEMODE_TREE)
        return builder.write()

    tree = put(base, path.split("/"))
    sig = pygit2.Signature("Peer", "peer@example.com")
    return str(repo.create_commit(ref, sig, sig, "peer\n", tree, parents))


def _name(data: bytes) -> str:
    import hashlib

    return hashlib.blake2b(data, digest_size=8).hexdigest()


BAD = {
    "not JSON": b"this is not json\n",
    "nested 980 levels": (b'{"id":"evt_' + b"0" * 24 + b'","type":"note","project":"shop","source":"x",'
                          b'"ts":"2026-03-01T00:00:00Z","importance":1.0,"tags":[],"data":{"v":'
                          + b"[" * 980 + b"]" * 980 + b"}}\n"),
    "a 5,000-digit number": (b'{"id":"evt_' + b"0" * 24 + b'","type":"note","project":"shop","source":"x",'
                             b'"ts":"2026-03-01T00:00:00Z","importance":1.0,"tags":[],"data":{"n":'
                             + b"9" * 5000 + b"}}\n"),
    "filed under another day": (b'{"id":"evt_' + b"0" * 24 + b'","type":"note","project":"shop","source":"x",'
                                b'"ts":"2026-03-09T00:00:00Z","importance":1.0,"tags":[],"data":{}}\n'),
}


@pytest.fixture
def shared(com, tmp_path):
    bare = tmp_path / "remote.git"
    git("init", "-q", "--bare", bare)
    mem = tmp_path / "a" / ".com"
    ok(com("--memory", mem, "init"))
    ok(com("--memory", mem, "remote", "add", "origin", bare.as_uri()))
    ok(com("--memory", mem, "ingest", "-p", "shop", "-t", "note", "--ts", "2026-03-01T00:00:00Z"))
    ok(com("--memory", mem, "push"))
    return bare, mem


@pytest.mark.parametrize("what", list(BAD))
@pytest.mark.parametrize("diverged", [False, True], ids=["fast-forward", "merge"])
def test_pull_refuses_a_bad_batch_and_changes_nothing(com, shared, what, diverged):
    bare, mem = shared
    data = BAD[what]
    _commit_raw(bare, "refs/com/heads/main", f"events/shop/2026-03-01/{_name(data)}.jsonl", data)
    if diverged:
        ok(com("--memory", mem, "ingest", "-p", "shop", "-t", "note", "-d", '{"n": 2}'))
    before = refs(mem / "journal.git")
    r = com("--memory", mem, "pull")
    assert r.exit_code == 2, r.stderr
    [line] = r.stderr.strip().splitlines()
    assert "refused the journal of 'origin'" in line and "nothing changed" in line, line
    assert refs(mem / "journal.git") == before
    # The memory keeps working: reads, ingest, fsck.
    ok(com("--memory", mem, "events"))
    ok(com("--memory", mem, "ingest", "-p", "shop", "-t", "note", "-d", '{"n": 3}'))
    assert com("--memory", mem, "fsck").exit_code == 0


def test_clone_refuses_a_bad_batch_and_leaves_nothing(com, shared, tmp_path):
    bare, _ = shared
    data = BAD["not JSON"]
    _commit_raw(bare, "refs/com/heads/main", f"events/shop/2026-03-01/{_name(data)}.jsonl", data)
    target = tmp_path / "b" / ".com"
    r = com("clone", bare.as_uri(), target)
    assert r.exit_code == 2 and "refused the journal of 'origin'" in r.stderr, r.stderr
    assert not (tmp_path / "b").exists()


def test_a_bad_batch_behind_a_new_tag_is_refused(com, shared):
    bare, mem = shared
    data = BAD["not JSON"]
    sha = _commit_raw(bare, "refs/com/tags/v9", f"events/shop/2026-03-01/{_name(data)}.jsonl", data)
    assert sha
    before = refs(mem / "journal.git")
    r = com("--memory", mem, "pull")
    assert r.exit_code == 2 and "refused the journal of 'origin'" in r.stderr, r.stderr
    assert refs(mem / "journal.git") == before
    listed = com("--memory", mem, "tag", "--json")
    assert listed.exit_code == 0, listed.stderr
    assert "v9" not in [t["name"] for t in json.loads(listed.stdout)["tags"]]


def test_a_file_that_is_not_a_batch_is_refused(com, shared):
    bare, mem = shared
    _commit_raw(bare, "refs/com/heads/main", "README", b"hello\n")
    r = com("--memory", mem, "pull")
    assert r.exit_code == 2 and "not a batch path" in r.stderr, r.stderr
