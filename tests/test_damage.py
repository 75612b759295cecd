"""A damaged journal is reported as damage by every command (exit 2, one line naming what is wrong and pointing at
`com fsck`), never read as an empty journal; `com fsck` reports every kind of damage and never crashes."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from conftest import git


def _ingest(com):
    lines = [{"type": "test_result", "project": "shop", "ts": "2026-03-01T10:00:00Z",
              "data": {"test_id": "t1", "status": "failed"}},
             {"type": "note", "project": "web", "ts": "2026-03-02T10:00:00Z", "data": {"text": "x"}}]
    r = com("ingest", "-", input="\n".join(json.dumps(e) for e in lines))
    assert r.exit_code == 0, r.stderr
    r = com("ingest", "-p", "shop", "-t", "note", "-d", '{"text": "second"}')
    assert r.exit_code == 0, r.stderr


def _loose(journal_path, sha: str):
    return journal_path / "objects" / sha[:2] / sha[2:]


def _remove_object(journal_path, sha: str) -> None:
    path = _loose(journal_path, sha)
    assert path.exists(), sha
    path.chmod(0o644)
    path.unlink()


def damage_branch_to_missing_object(j):
    (j / "refs" / "heads" / "main").write_text("1234567890123456789012345678901234567890\n")


def damage_garbage_head(j):
    (j / "HEAD").write_text("garbage\n")


def damage_garbage_branch_ref(j):
    (j / "refs" / "heads" / "main").write_text("not a sha\n")


def damage_missing_commit(j):
    _remove_object(j, (j / "refs" / "heads" / "main").read_text().strip())


def damage_missing_parent(j):
    _remove_object(j, git("--git-dir", j, "rev-parse", "main~1").strip())


def damage_missing_batch(j):
    blob = git("--git-dir", j, "rev-parse", "main~1:events/shop").strip()
    # the shop folder of the first commit: remove one of its batch blobs
    line = git("--git-dir", j, "ls-tree", "-r", "main~1", "events/shop").splitlines()[0]
    assert blob
    _remove_object(j, line.split()[2])


def damage_missing_tree(j):
    _remove_object(j, git("--git-dir", j, "rev-parse", "main:events/web").strip())


def damage_file_where_a_folder_belongs(j):
    import pygit2

    repo = pygit2.Repository(str(j))
    tip = repo.revparse_single("main")
    builder = repo.TreeBuilder(repo[tip.tree["events"].id])
    builder.insert("web", repo.create_blob(b"not a folder\n"), pygit2.GIT_FILEMODE_BLOB)
    events = builder.write()
    root = repo.TreeBuilder(tip.tree)
    root.insert("events", events, pygit2.GIT_FILEMODE_TREE)
    sig = pygit2.Signature("t", "t@example.com")
    repo.create_commit("refs/heads/main", sig, sig, "bad\n", root.write(), [tip.id])


DAMAGE = [damage_branch_to_missing_object, damage_garbage_head, damage_garbage_branch_ref, damage_missing_commit,
          damage_missing_parent, damage_missing_batch, damage_missing_tree, damage_file_where_a_folder_belongs]

READS = [("events", "--limit", "0"), ("events", "--test", "t1"), ("events", "--project", "web"), ("log",),
         ("show", "HEAD"), ("diff", "HEAD~1"), ("branch",), ("tag",), ("events", "--at", "HEAD~1")]
WRITES = [("ingest", "-p", "shop", "-t", "note", "-d", '{"n": 1}'), ("commit", "-m", "why"), ("tag", "v9"),
          ("branch", "b2")]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """One healthy memory, copied for each case (ingesting it again for 8 x 13 cases would be slow)."""
    from typer.testing import CliRunner

    from com.cli.app import app

    root = tmp_path_factory.mktemp("pristine")
    runner = CliRunner()
    saved = os.getcwd()
    os.chdir(root)
    try:
        com = lambda *a, input=None: runner.invoke(app, [str(x) for x in a], input=input)  # noqa: E731
        assert com("init").exit_code == 0
        _ingest(com)
    finally:
        os.chdir(saved)
    return root / ".com"


@pytest.mark.parametrize("damage", DAMAGE, ids=lambda d: d.__name__[len("damage_"):])
@pytest.mark.parametrize("args", READS + WRITES, ids=lambda a: " ".join(a))
def test_every_command_reports_damage_never_emptiness(com, isolated, pristine, damage, args):
    shutil.copytree(pristine, isolated / ".com")
    journal = isolated / ".com" / "journal.git"
    damage(journal)
    before = git("--git-dir", journal, "for-each-ref", check=False)
    r = com(*args)
    if r.exit_code == 0:
        # Damage this command does not touch is fine to read past, but never as an empty answer (the journal has
        # no tags: an empty tag list is the truth).
        assert r.stdout.strip() or args == ("tag",), f"{args} read a damaged journal as empty"
        assert args == ("tag",) or damage in (damage_missing_parent, damage_missing_batch, damage_missing_tree,
                                                damage_file_where_a_folder_belongs), (args, r.stdout)
        return
    assert r.exit_code == 2, (r.exit_code, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("com: error: "), r.stderr
    assert "damaged" in lines[0] and "com fsck" in lines[0], lines[0]
    assert git("--git-dir", journal, "for-each-ref", check=False) == before


@pytest.mark.parametrize("damage", DAMAGE, ids=lambda d: d.__name__[len("damage_"):])
def test_fsck_reports_every_damage_and_never_crashes(com, isolated, pristine, damage):
    shutil.copytree(pristine, isolated / ".com")
    damage(isolated / ".com" / "journal.git")
    for args in ((), ("--repair",)):
        r = com("fsck", "--json", *args)
        assert r.exit_code == 1, (r.exit_code, r.stderr)
        report = json.loads(r.stdout)
        assert not report["ok"] and report["problems"], report


def test_a_remote_ref_to_a_missing_commit_is_damage_not_an_internal_error(tmp_path):
    """Sync reads remote-tracking and branch refs through `remotes.commit_of`: a ref naming an object the journal
    lacks is the journal's damage (exit 2, pointing at fsck), as it is for the current branch."""
    from com.journal.remotes import commit_of
    from com.journal.repo import Journal
    from com.model.errors import Damaged

    journal = Journal.init(tmp_path / "journal.git")
    (tmp_path / "journal.git" / "refs" / "heads" / "ghost").write_text("1" * 40 + "\n")
    assert commit_of(journal.repo, "refs/heads/nosuch") is None
    with pytest.raises(Damaged, match="refs/heads/ghost points to 1111111111, which is not a readable commit"):
        commit_of(journal.repo, "refs/heads/ghost")
