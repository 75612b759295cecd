"""The test-results view: rows derived from the journal alone, exact at any revision, and fed by pulls."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from com.memory import Memory
from com.model.event import validate
from com.model.filter import EventFilter
from com.model.result import STATUS_CODES

from conftest import git

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
import gen_history  # noqa: E402


def result(test_id, status="passed", ts="2026-03-01T10:00:00Z", **data):
    return validate({"type": "test_result", "project": "shop", "ts": ts,
                     "data": {"test_id": test_id, "status": status, **data}})


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    generated = gen_history.generate(root / "gen", seed=3, tests=40, commits=8, runs_per_commit=2)
    memory, _ = Memory.init(root / ".com")
    gen_history.ingest(generated, memory, warn=lambda m: None)
    return memory


def journal_results(snapshot, where=None):
    """What the journal itself says, read batch by batch (the reference the view must equal)."""
    where = where or EventFilter()
    return sorted((e for e in snapshot.events(where) if e["type"] == "test_result"), key=lambda e: e["id"])


def view_results(memory, snapshot, where=None):
    memory.follow(snapshot, [memory.results])
    found, total = memory.results.events(snapshot, where)
    assert total == len(found)
    return sorted(found, key=lambda e: e["id"])


def test_the_view_gives_back_every_stored_result_exactly(history):
    snapshot = history.snapshot()
    expected = journal_results(snapshot)
    assert len(expected) == 40 * 8 * 2 + sum(1 for e in expected if e["data"].get("attempt", 1) > 1)
    assert view_results(history, snapshot) == expected
    # Same bytes, not only equal dicts: the JSON of an event read from the view is the stored line.
    stored = {json.loads(line)["id"]: line.decode() for b in snapshot.batches() for line in b.data(history.journal).splitlines()}
    for event in view_results(history, snapshot)[:50]:
        assert json.dumps(event, ensure_ascii=False, separators=(",", ":")) == stored[event["id"]]


def rows(cols):
    """Every row of ResultColumns as plain values, in a stable order."""
    return sorted(zip((cols.tests[t] for t in cols.test), cols.ts_us.tolist(), cols.status.tolist(),
                      cols.attempt.tolist(), np.nan_to_num(cols.duration_ms, nan=-1).tolist(),
                      (cols.runs[r] for r in cols.run), (cols.commits[c] if c >= 0 else "" for c in cols.commit),
                      (cols.signatures[s] if s >= 0 else "" for s in cols.signature)))


def test_rebuilt_from_the_journal_alone_gives_the_same_rows(history):
    snapshot = history.snapshot()
    before = rows(history.results.columns(snapshot))
    events_before = view_results(history, snapshot)
    history.results.reset()
    assert not history.results.path.exists()
    fresh = Memory(history.root)
    assert not fresh.results.seen(snapshot.sha)
    fresh.follow(snapshot, [fresh.results])
    assert rows(fresh.results.columns(snapshot)) == before
    assert view_results(fresh, snapshot) == events_before


def test_columns_agree_with_the_events(history):
    snapshot = history.snapshot()
    cols = history.results.columns(snapshot)
    events = journal_results(snapshot)
    assert len(cols) == len(events)
    counted = {}
    for t, s in zip(cols.test, cols.status):
        key = (cols.tests[t], STATUS_CODES[s])
        counted[key] = counted.get(key, 0) + 1
    expected = {}
    for e in events:
        key = (e["data"]["test_id"], e["data"]["status"])
        expected[key] = expected.get(key, 0) + 1
    assert counted == expected
    failing = [e for e in events if e["data"]["status"] in ("failed", "error")]
    assert (cols.signature >= 0).sum() == sum(1 for e in failing if e["data"].get("error_message") or e["data"].get("error_type"))
    assert set(cols.runs) == {e["data"]["run_id"] for e in events}
    assert set(cols.commits) == {e["data"]["commit"] for e in events}


@pytest.mark.parametrize("back", [0, 1, 5, 15])
def test_at_a_revision_the_view_is_exact(history, back):
    snapshot = history.snapshot(f"HEAD~{back}" if back else None)
    assert view_results(history, snapshot) == journal_results(snapshot)
    test_id = journal_results(snapshot)[0]["data"]["test_id"]
    where = EventFilter.create(test=test_id, statuses=["passed"])
    assert view_results(history, snapshot, where) == journal_results(snapshot, where)


def test_filters_by_prefix_glob_status_time_and_project(history):
    snapshot = history.snapshot()
    some = journal_results(snapshot)[3]["data"]["test_id"]
    file_prefix = some.split("::")[0]
    for where in (EventFilter.create(test=file_prefix), EventFilter.create(test="*discount*"),
                  EventFilter.create(statuses=["failed", "error"]), EventFilter.create(projects=["nosuch"]),
                  EventFilter.create(since="2026-01-01", until=journal_results(snapshot)[0]["ts"]),
                  EventFilter.create(test=file_prefix, statuses=["skipped"]),
                  EventFilter.create(result_statuses=["failed", "error"]),  # a policy's statuses
                  EventFilter.create(test=file_prefix, result_statuses=["passed"], statuses=["passed", "failed"])):
        assert view_results(history, snapshot, where) == journal_results(snapshot, where), where


def test_the_columns_of_one_test_are_its_rows_of_all_columns(history):
    """One test's columns name only its own runs and commits (looked up by number), the same as read whole."""
    snapshot = history.snapshot()
    every = rows(history.results.columns(snapshot))
    some = journal_results(snapshot)[3]["data"]["test_id"]
    mine = history.results.columns(snapshot, EventFilter.create(test=some))
    assert rows(mine) == [r for r in every if r[0] == some]
    assert len(mine.runs) == len(set(mine.run.tolist())) and len(mine.commits) <= len(mine.runs)


def test_odd_values_survive_the_round_trip(memory):
    odd = [
        result("t::a", "failed", attempt="2", duration_ms="slow", error_message="boom 1234ms"),
        result("t::b", "skipped", duration_ms=1.25, attempt=40000, tags=None),
        validate({"type": "test_result", "project": "shop", "ts": "2026-03-01T10:00:00.5Z", "importance": 4.5,
                  "tags": ["ui", "nightly"], "source": "jest",
                  "data": {"test_id": "täst::ü", "status": "error", "duration_ms": 12, "nested": {"b": 1, "a": [1, 2]},
                           "commit": None, "run_id": 7}}),
        result("t::c", "passed", duration_ms=float(2 ** 60)),
    ]
    memory.record(odd)
    snapshot = memory.snapshot()
    assert view_results(memory, snapshot) == journal_results(snapshot)


def test_a_write_whose_views_catch_up_later_is_read_whole_before_and_after(memory):
    """record(views_later=True) (the pytest writer answers before its view catch-up): the events are in the
    journal at once; a reader that comes first takes them in itself, and the late catch-up adds no row."""
    memory.record([result("t::old")])
    written = memory.record([result(f"t::{i}", "failed" if i == 2 else "passed") for i in range(5)],
                            views_later=True)
    assert written.added == 5 and written.warnings == []
    assert not memory.results.seen(written.commit) and not memory.catalog.seen(written.commit)
    reader = Memory(memory.root)
    snapshot = reader.snapshot()
    assert str(snapshot.commit.id) == written.commit
    assert len(view_results(reader, snapshot)) == 6
    reader.close()
    assert written.catch_up() == []  # after the reader: nothing left to take, nothing taken twice
    assert memory.results.seen(written.commit) and memory.catalog.seen(written.commit)
    assert view_results(memory, snapshot) == journal_results(snapshot)
    assert len(memory.results.columns(snapshot)) == 6


def test_the_same_event_in_two_batches_is_one_row(memory, tmp_path, com):
    bare = tmp_path / "remote.git"
    git("init", "-q", "--bare", bare)
    shared = [result(f"t::{i}", "failed" if i % 3 == 0 else "passed") for i in range(6)]
    memory.record(shared[:4])
    assert com("remote", "add", "origin", bare.as_uri()).exit_code == 0
    assert com("push").exit_code == 0
    other_root = tmp_path / "other" / ".com"
    assert com("clone", bare.as_uri(), other_root).exit_code == 0
    Memory(other_root).record(shared[4:])  # a batch of t::4 and t::5 there
    memory.record(shared[4:5])  # a batch of t::4 alone here: after the merge t::4 sits in two batches
    assert com("--memory", other_root, "push").exit_code == 0
    assert com("pull").exit_code == 0
    here = Memory(memory.root)
    snapshot = here.snapshot()
    assert sum(len(b.events(here.journal)) for b in snapshot.batches()) == 7
    assert view_results(here, snapshot) == journal_results(snapshot)
    assert len(here.results.columns(snapshot)) == 6


def test_a_pull_brings_its_rows_in(memory, tmp_path, com):
    bare = tmp_path / "remote.git"
    git("init", "-q", "--bare", bare)
    assert com("remote", "add", "origin", bare.as_uri()).exit_code == 0
    memory.record([result("tests/test_a.py::test_x", "failed", error_message="Timeout 30000ms")])
    assert com("push").exit_code == 0
    other_root = tmp_path / "other" / ".com"
    assert com("clone", bare.as_uri(), other_root).exit_code == 0
    other = Memory(other_root)
    other.record([result("tests/test_a.py::test_x", "passed", ts="2026-03-02T10:00:00Z")])
    assert com("--memory", other_root, "push").exit_code == 0

    assert com("pull").exit_code == 0
    # The pull moved the branch; the first reader of the view takes the pulled batches in.
    here = Memory(memory.root)
    assert not here.results.seen(str(here.journal.head().id))
    here.follow(here.snapshot(), [here.results])
    cols = here.results.columns(here.snapshot())
    assert sorted(STATUS_CODES[s] for s in cols.status) == ["failed", "passed"]
    out = json.loads(com("events", "--test", "tests/test_a.py", "--json").stdout)["events"]
    assert [e["data"]["status"] for e in out] == ["passed", "failed"]


def test_values_equal_in_python_but_not_in_json_stay_apart(memory):
    """1, 1.0 and true are equal as Python values (and hash alike) but are different stored text: the take's
    caches of shapes and run contexts must not give one back for another."""
    events = [result("t::same", "passed", ts=f"2026-03-01T10:00:0{n}Z", line=value, run_id=value, retries=[value])
              for n, value in enumerate((1, 1.0, True, 0, False, 0.0, -0.0))]
    memory.record(events)
    snapshot = memory.snapshot()
    stored = {json.loads(line)["id"]: line.decode() for b in snapshot.batches()
              for line in b.data(memory.journal).splitlines()}
    for taken in ("at once", "rebuilt"):
        if taken == "rebuilt":
            memory.results.reset()
        got = view_results(memory, snapshot)
        assert len(got) == 7
        for event in got:
            assert json.dumps(event, ensure_ascii=False, separators=(",", ":")) == stored[event["id"]], taken


def _as_dict(pair):
    tests, statuses = pair
    return dict(zip(tests.tolist(), statuses.tolist()))


def _shuffled_history(memory, seed):
    """Runs whose times repeat and go back (an old report ingested late), some results twice in a batch."""
    import random

    rng = random.Random(seed)
    for run in range(12):
        minute = rng.choice((0, 0, 5, 9, run))  # equal times across batches, and times older than the last
        events = []
        for n in rng.sample(range(30), 18):
            status = rng.choice(("passed", "passed", "failed", "error", "skipped"))
            events.append(result(f"t.py::test_{n}", status, ts=f"2026-03-01T10:{minute:02d}:00Z", run_id=f"r{run}",
                                 attempt=rng.choice((1, 2))))
        memory.record(events)


@pytest.mark.parametrize("seed, per_read", [(1, 1000), (2, 1000), (3, 1), (4, 1)])
def test_the_standard_library_answers_equal_numpys(tmp_path, monkeypatch, seed, per_read):
    """`com diff` asks each test's newest status without numpy when it can (`newest`, `newest_in_batches`): the
    answers must be `latest`'s, for every snapshot and every range of added batches, in sorted and unsorted
    segments alike, with ties on time and times that go back; reading whole columns or cell by cell (per_read 1).
    """
    from com.views import test_results

    monkeypatch.setattr(test_results, "WALKS_PER_COLUMN_READ", per_read)
    memory, _ = Memory.init(tmp_path / ".com")
    _shuffled_history(memory, seed)
    view = memory.results
    commits = [memory.snapshot(f"HEAD~{back}") for back in range(11, -1, -1)]
    for compacted in (False, True):
        if compacted:
            memory.follow(commits[-1], [view])
            view._compact()  # one sorted segment: the walk over test_runs' last rows
        for i, a in enumerate(commits):
            memory.follow(a, [view])
            assert view.newest(a) == _as_dict(view.latest(a))
            for b in commits[i + 1:i + 4]:
                added = sorted(set(b.batch_paths()) - set(a.batch_paths()))
                batches = [batch for batch in b.batches() if batch.path in added]
                batches.sort(key=lambda batch: added.index(batch.path))
                want = _as_dict(view.latest(paths=added))
                assert view.newest_in_batches([batch.events(memory.journal) for batch in batches]) == want
                # Events left out by key (the diff's events both sides hold): the numpy walk compares ids too.
                from com.model.event import id_key

                left_out = {id_key(e["id"]) for e in batches[0].events(memory.journal)[::3]}
                want = _as_dict(view.latest(paths=added, without_keys=left_out))
                assert view.newest_in_batches([batch.events(memory.journal) for batch in batches], left_out) == want
                tests = list(want)[::2]
                assert view.newest(a, tests=tests) == _as_dict(view.latest(a, tests=tests))


def test_newest_gives_way_to_numpy_past_its_budget(history):
    older = history.snapshot("HEAD~1")  # the newest rows of its tests are in batches it lacks: walked
    history.follow(history.snapshot(), [history.results])
    assert history.results.newest(older, budget=0) is None
    assert history.results.newest(older) == _as_dict(history.results.latest(older))


def test_distinct_is_numpys_unique():
    from com.model.result import distinct

    rng = np.random.default_rng(7)
    for size in (0, 1, 2, 50, 1000):
        for values in (rng.integers(-5, 20, size), rng.integers(0, 2**40, size, dtype=np.int64)):
            assert np.array_equal(distinct(values), np.unique(values))
            assert distinct(values).dtype == np.unique(values).dtype
