"""History reads answered by the derived stores: `com log` counts from the catalog and `com diff` counts, tests and
streamed events, checked against the journal read event by event (what they answered before), on a history with
a merge whose two sides ingested some of the same events."""

from __future__ import annotations

import json
import shutil

import pytest

from com.memory import Memory
from com.model.event import FAILING, id_key, ts_us, validate
from com.ops import history

from conftest import git


def result(test_id, status="passed", ts="2026-03-01T10:00:00Z", **data):
    return validate({"type": "test_result", "project": "shop", "ts": ts,
                     "data": {"test_id": test_id, "status": status, **data}})


def note(text, ts="2026-03-01T11:00:00Z", project="shop"):
    return validate({"type": "note", "project": project, "ts": ts, "data": {"text": text}})


# -- the journal read event by event: the reference ----------------------------------------------------
def journal_events(memory, sha) -> dict[str, dict]:
    snapshot = memory.snapshot(sha)
    return {e["id"]: e for e in snapshot.events()}


def reference_diff(memory, rev_a, rev_b) -> dict:
    """`com diff` as it was computed before the derived stores answered it: every event of both snapshots read."""
    journal = memory.journal
    a, b = journal.resolve(rev_a), journal.resolve(rev_b)
    only_b, only_a = history.changed_batches(journal, memory.snapshot(str(a.id)), memory.snapshot(str(b.id)))
    in_a, in_b = journal_events(memory, str(a.id)), journal_events(memory, str(b.id))

    def side(batches, other):
        found = {}
        for batch in batches:
            for event in batch.events(journal):
                found.setdefault(event["id"], event)
        return sorted((e for i, e in found.items() if i not in other), key=lambda e: ts_us(e["ts"]))

    added, removed = side(only_b, in_a), side(only_a, in_b)
    latest_b = {}
    for event in added:
        if event["type"] == "test_result" and event["data"].get("test_id"):
            when = ts_us(event["ts"])
            tid = event["data"]["test_id"]
            if tid not in latest_b or when >= latest_b[tid][0]:
                latest_b[tid] = (when, event["data"]["status"])
    before = {}
    for event in sorted(in_a.values(), key=lambda e: ts_us(e["ts"])):
        if event["type"] == "test_result" and event["data"].get("test_id"):
            before[event["data"]["test_id"]] = event["data"]["status"]
    newly, fixed = [], []
    for tid, (_, status) in sorted(latest_b.items()):
        if status in FAILING and before.get(tid) not in FAILING:
            newly.append(tid)
        elif status == "passed" and before.get(tid) in FAILING:
            fixed.append(tid)
    from com.ops.flaky import classify_flips

    flips = classify_flips(memory, memory.snapshot(str(a.id)), memory.snapshot(str(b.id)), newly, fixed)
    return {"from": str(a.id), "to": str(b.id), "added": added, "removed": removed,
            "summary": {"newly_failing": flips.newly_failing, "fixed": flips.fixed, "flaky": flips.flaky,
                        "registry": flips.registry}}


def stored_lines(memory, commit) -> int:
    return sum(len(b.events(memory.journal)) for b in memory.journal.added_batches(commit))


# -- a history with a merge ------------------------------------------------------------------------
@pytest.fixture
def merged(memory, tmp_path, com, monkeypatch):
    """Here: three ingests; there (a clone): two more, one of them holding events ingested here too; then a
    pull merges them. Returns the memory (re-opened) and its commits newest first."""
    bare = tmp_path / "remote.git"
    git("init", "-q", "--bare", bare)
    monkeypatch.setenv("GIT_COMMITTER_DATE", "2026-03-01T12:00:00Z")
    memory.record([result(f"t::{i}", "passed") for i in range(6)] + [note("deployed")])
    assert com("remote", "add", "origin", bare.as_uri()).exit_code == 0
    assert com("push").exit_code == 0
    other_root = tmp_path / "other" / ".com"
    assert com("clone", bare.as_uri(), other_root).exit_code == 0
    other = Memory(other_root)
    twice = [result("t::1", "failed", ts="2026-03-02T10:00:00Z", error_message="boom"),
             result("t::2", "failed", ts="2026-03-02T10:00:00Z")]
    monkeypatch.setenv("GIT_COMMITTER_DATE", "2026-03-02T12:00:00Z")
    other.record(twice + [result("t::3", "failed", ts="2026-03-02T10:00:00Z"), note("there", "2026-03-02T11:00:00Z")])
    monkeypatch.setenv("GIT_COMMITTER_DATE", "2026-03-03T12:00:00Z")
    other.record([result("t::3", "passed", ts="2026-03-03T10:00:00Z"), result("t::9", "error", ts="2026-03-03T10:00:00Z")])
    assert com("--memory", other_root, "push").exit_code == 0
    monkeypatch.setenv("GIT_COMMITTER_DATE", "2026-03-02T13:00:00Z")
    memory.record(twice + [result("t::4", "skipped", ts="2026-03-02T10:30:00Z")])  # t::1, t::2 on both sides
    monkeypatch.setenv("GIT_COMMITTER_DATE", "2026-03-04T12:00:00Z")
    memory.record([result("t::1", "passed", ts="2026-03-04T10:00:00Z"), result("t::5", "failed", ts="2026-03-04T10:00:00Z")])
    assert com("pull").exit_code == 0
    here = Memory(memory.root)
    shas = git("--git-dir", here.journal_path, "rev-list", "--topo-order", "HEAD").split()
    assert len(here.journal.repo[shas[0]].parents) == 2
    return here, shas


def test_diff_equals_the_journal_read_event_by_event(merged, com):
    memory, shas = merged
    for a in shas:
        for b in shas:
            expected = reference_diff(memory, a, b)
            got = history.diff(memory, a, b)
            assert got.to_json() == expected, (a, b)
            assert (len(got.added), len(got.removed)) == (len(expected["added"]), len(expected["removed"]))
            # --json streams the events from their stored text: the same document
            streamed = com("diff", a, b, "--json")
            assert streamed.exit_code == 0, streamed.stderr
            assert json.loads(streamed.stdout) == expected
    # the merge added both sides' batches; the events both sides ingested count once
    first = shas[-1]
    expected = reference_diff(memory, first, "HEAD")
    assert len(expected["added"]) == len({e["id"] for e in expected["added"]}) == 9
    assert (expected["summary"]["newly_failing"], expected["summary"]["fixed"]) == (["t::2", "t::5", "t::9"], [])


def test_the_catalog_knows_which_ids_sit_in_two_batches(merged):
    memory, shas = merged
    snapshot = memory.snapshot()
    memory.follow(snapshot, [memory.catalog])
    paths = [b.path for b in snapshot.batches()]
    shared = memory.catalog.shared_in(paths)
    where: dict[str, list[str]] = {}
    for batch in snapshot.batches():
        for event in batch.events(memory.journal):
            where.setdefault(event["id"], []).append(batch.path)
    expected = {id_key(eid): sorted(p) for eid, p in where.items() if len(p) > 1}
    assert {k: sorted(v) for k, v in shared.items()} == expected
    assert len(expected) == 2


def test_log_counts_from_the_catalog_equal_the_batches(merged, com):
    memory, shas = merged
    memory.follow(memory.snapshot(), [memory.catalog])
    counts = memory.catalog.counts([b.path for b in memory.snapshot().batches()])
    assert counts == {b.path: len(b.events(memory.journal)) for b in memory.snapshot().batches()}
    log = json.loads(com("log", "--json").stdout)["commits"]
    assert sorted(c["commit"] for c in log) == sorted(shas)
    expected = [stored_lines(memory, memory.journal.repo[c["commit"]]) for c in log]
    assert [c["added"] for c in log] == expected and sum(expected) > len(shas)
    # without the catalog (deleted, or behind a pull) the batches are counted instead: the same numbers
    memory.close()
    shutil.rmtree(memory.cache_path)
    assert [c["added"] for c in json.loads(com("log", "--json").stdout)["commits"]] == expected
    assert [c.added for c in history.log(Memory(memory.root)).commits] == expected


def test_diff_human_output_counts_without_reading_a_batch(merged, com, monkeypatch):
    memory, shas = merged
    expected = reference_diff(memory, shas[-1], "HEAD")
    history.diff(memory, shas[-1], "HEAD")  # the derived stores caught up
    from com.journal.repo import Journal

    read = []
    real = Journal.blob
    monkeypatch.setattr(Journal, "blob", lambda self, oid, *more: read.append(oid) or real(self, oid, *more))
    # Past ADDED_READ_MAX added events, the flips come from the view: no added batch is parsed.
    monkeypatch.setattr(history, "ADDED_READ_MAX", 0)
    out = com("diff", shas[-1]).stdout
    assert f"+{len(expected['added'])} -0 events" in out
    assert "newly failing (3):" in out and "  t::9" in out
    # the two events both sides ingested: only the batches holding them are read, to count them once
    snapshot = memory.snapshot()
    shared_batches = {p for ps in memory.catalog.shared_in([b.path for b in snapshot.batches()]).values()
                      for p in ps}
    assert 0 < len(set(read)) <= len(shared_batches)
    # A few added events are parsed (cheaper than finding their rows among a million): the added batches are
    # read then, and nothing outside the range.
    monkeypatch.setattr(history, "ADDED_READ_MAX", 2_000)
    read.clear()
    again = com("diff", shas[-1])
    assert again.stdout == out, again.output
    added = {b.oid for b in history.changed_batches(memory.journal, memory.snapshot(shas[-1]), snapshot)[0]}
    shared_oids = {b.oid for b in snapshot.batches() if b.path in shared_batches}
    assert added <= set(read) <= added | shared_oids


def test_streamed_json_of_a_long_range_is_the_list(memory, com):
    """Several days of several batches: the stream writes day by day, oldest first, equal times in path order."""
    for day in range(1, 6):
        for run in range(3):
            memory.record([result(f"t::{i}", "failed" if (i + run + day) % 7 == 0 else "passed",
                                  ts=f"2026-03-{day:02d}T{10 + run % 2}:00:00Z", run_id=f"r{day}{run}")
                           for i in range(20)] + [note(f"n{day}{run}", f"2026-03-{day:02d}T09:00:00Z", "web")])
    expected = reference_diff(memory, "HEAD~14", "HEAD")
    assert len(expected["added"]) == 14 * 21
    got = json.loads(com("diff", "HEAD~14", "--json").stdout)
    assert got == expected
    assert [e["id"] for e in got["added"]] == [e["id"] for e in expected["added"]]
    backwards = json.loads(com("diff", "HEAD", "HEAD~14", "--json").stdout)
    assert backwards["removed"] == expected["added"] and backwards["added"] == []


@pytest.mark.parametrize("seed, in_order", [(5, False), (6, False), (7, True), (8, True)])
def test_latest_results_per_test_in_sorted_and_unsorted_segments(memory, seed, in_order):
    """The grouped query behind diff: each test's newest result, ties on time broken by the order of the batches
    asked about, then by line; the same whether the view's segments are sorted by test or not, for one batch
    (answered from test_runs when its tests' last rows are its own) and for every older snapshot (test_runs'
    previous rows, then a walk)."""
    import random

    rng = random.Random(seed)
    statuses = ["passed", "failed", "error", "skipped"]
    for run in range(12):  # times in the order of the runs (CI), or repeating and going back
        day = 1 + run if in_order else 1 + run % 3
        memory.record([result(f"t::{i}", rng.choice(statuses), ts=f"2026-03-{day:02d}T10:00:0{rng.randint(0, 1)}Z",
                              run_id=f"r{run}") for i in range(rng.randint(3, 9))])
    snapshot = memory.snapshot()
    journal = memory.journal
    view = memory.results
    memory.follow(snapshot, [view])

    def reference(batches, tests=None):
        newest = {}
        for rank, batch in enumerate(batches):
            for line_no, event in enumerate(batch.events(journal)):
                tid = event["data"]["test_id"]
                key = (ts_us(event["ts"]), rank, line_no)
                if (tests is None or tid in tests) and (tid not in newest or key > newest[tid][0]):
                    newest[tid] = (key, event["data"]["status"])
        return {tid: status for tid, (_, status) in newest.items()}

    def latest(**kwargs):
        from com.model.result import STATUS_CODES

        numbers, codes = view.latest(**kwargs)
        names = view.test_names(numbers)
        return {names[int(n)]: STATUS_CODES[int(c)] for n, c in zip(numbers, codes)}

    batches = snapshot.batches()
    for state in ("as taken", "sorted"):
        if state == "sorted":
            view._compact()
            assert all(done for _, _, done in view._segments())
        for _ in range(6):
            chosen = rng.sample(batches, rng.randint(1, len(batches)))
            assert latest(paths=[b.path for b in chosen]) == reference(chosen), state
        for batch in batches:
            assert latest(paths=[batch.path]) == reference([batch]), state
        by_number = sorted(batches, key=lambda b: view.batch_numbers([b.path])[0][0])
        assert latest(snapshot=snapshot) == reference(by_number), state
        some = {"t::1", "t::4"}
        numbers = [n for n, name in view.test_names(range(1, 100)).items() if name in some]
        assert latest(snapshot=snapshot, tests=numbers) == reference(by_number, some), state
        for back in range(1, 12):  # older snapshots: tests' last rows sit in batches they lack (walked back)
            older = memory.snapshot(f"HEAD~{back}")
            held = [b for b in by_number if older.has_path(b.path)]
            assert latest(snapshot=older) == reference(held), (state, back)
            assert latest(snapshot=older, tests=numbers) == reference(held, some), (state, back)


def test_fsck_checks_the_counts_and_shared_ids_reads_rely_on(merged, com):
    import sqlite3

    memory, shas = merged
    assert json.loads(com("fsck", "--json").stdout)["ok"]
    memory.follow(memory.snapshot(), [memory.catalog])
    memory.close()
    db = sqlite3.connect(memory.cache_path / "catalog.sqlite")
    db.execute("UPDATE blobs SET events = events + 1 WHERE n = (SELECT MIN(n) FROM blobs)")
    db.execute("DELETE FROM shared")
    db.commit()
    db.close()
    report = json.loads(com("fsck", "--json").stdout)
    assert not report["ok"]
    message = next(p["message"] for p in report["problems"] if p["check"] == "catalog")
    assert "counts the events of 1 batch(es) wrong" in message and "2 event(s) held by more than one batch" in message
    repaired = json.loads(com("fsck", "--repair", "--json").stdout)
    assert repaired["ok"] and json.loads(com("fsck", "--json").stdout)["ok"]
