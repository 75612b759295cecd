"""Sync fuzz: three memories and one bare remote, random interleavings of ingest (with and without ts, the same
and different content, ids given to two contents), pull, push and fsck. No command ever exits 3 nor wedges; after
a final round of syncs every memory holds the same events (the same versions), fsck is clean everywhere, and no
batch path holds two different blobs in any journal.

Programs: COM_SYNC_FUZZ_EXAMPLES (default 4, for `make test`) of up to COM_SYNC_FUZZ_STEPS steps (default 14);
COM_SYNC_FUZZ_REPORT=path writes what ran as JSON."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import tempfile
from collections import Counter
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

EXAMPLES = int(os.environ.get("COM_SYNC_FUZZ_EXAMPLES", "4"))
STEPS = int(os.environ.get("COM_SYNC_FUZZ_STEPS", "14"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))

STATS: Counter = Counter()


def _report() -> None:
    path = os.environ.get("COM_SYNC_FUZZ_REPORT")
    if path and STATS:
        with open(path, "w") as fh:
            json.dump({"programs": EXAMPLES, "max_steps": STEPS, "counts": dict(STATS)}, fh, indent=1, sort_keys=True)


atexit.register(_report)
_runner = CliRunner()

MEMORIES = ("a", "b", "c")
# Events several memories may ingest: the same content everywhere (with ts: one event; without ts: one event
# recorded at several moments), and ids given by hand to two different contents.
SHARED = [
    {"type": "test_result", "project": "shop", "ts": "2026-03-01T10:00:00Z", "data": {"test_id": "t1", "status": "failed"}},
    {"type": "note", "project": "shop", "data": {"text": "deployed 1.4"}},
    {"type": "test_result", "project": "web", "data": {"test_id": "w1", "status": "passed", "run_id": "r1"}},
]
GIVEN_ID = "evt_" + "e" * 24


def com(*args, input=None) -> tuple[int, str, str]:
    from com.cli.app import app

    r = _runner.invoke(app, [str(a) for a in args], input=input, catch_exceptions=True)
    code = 3 if r.exception is not None and not isinstance(r.exception, SystemExit) else r.exit_code
    STATS[f"exit {code}"] += 1
    assert code != 3, f"exit 3 for com {args}: {r.exception!r}"
    assert "differs between the sides" not in r.stderr, r.stderr  # the old wedge
    return code, r.stdout, r.stderr


def _event(kind: str, n: int, mem: str) -> dict:
    if kind == "shared":
        return dict(SHARED[n % len(SHARED)])
    if kind == "own-ts":
        return {"type": "note", "project": "shop", "ts": f"2026-03-0{1 + n % 3}T10:00:{n % 60:02d}Z",
                "data": {"by": mem, "n": n}}
    if kind == "own-no-ts":
        return {"type": "note", "project": "web", "data": {"by": mem, "n": n}}
    # the same id, content depending on the memory: a conflict between memories
    return {"id": GIVEN_ID, "type": "note", "project": "shop", "ts": "2026-03-02T00:00:00Z", "data": {"by": mem}}


_step = st.tuples(st.sampled_from(["ingest", "ingest", "ingest", "pull", "push", "fsck"]), st.sampled_from(MEMORIES),
                  st.sampled_from(["shared", "own-ts", "own-no-ts", "given-id"]), st.integers(0, 50))


def _events(mem: Path) -> list[dict]:
    code, out, err = com("--memory", mem, "events", "--limit", "0", "--json")
    assert code == 0, err
    return sorted(json.loads(out)["events"], key=lambda e: e["id"])


def _blobs(mem: Path) -> dict[str, set]:
    git_dir = mem / "journal.git"
    out: dict[str, set] = {}
    revs = subprocess.run(["git", "--git-dir", git_dir, "rev-list", "--all"], capture_output=True,
                          text=True).stdout.split()
    for rev in revs:
        listing = subprocess.run(["git", "--git-dir", git_dir, "ls-tree", "-r", rev], capture_output=True,
                                 text=True).stdout
        for line in listing.splitlines():
            meta, path = line.split("\t")
            out.setdefault(path, set()).add(meta.split()[2])
    return out


@FUZZ
@given(st.lists(_step, min_size=max(3, STEPS // 2), max_size=STEPS))
def test_random_interleavings_converge(program):
    work = Path(tempfile.mkdtemp(prefix="com-fuzz-"))
    try:
        bare = work / "remote.git"
        subprocess.run(["git", "init", "-q", "--bare", bare], check=True)
        mems = {name: work / name / ".com" for name in MEMORIES}
        for mem in mems.values():
            assert com("--memory", mem, "init")[0] == 0
            assert com("--memory", mem, "remote", "add", "origin", bare.as_uri())[0] == 0
        for op, name, kind, n in program:
            mem = mems[name]
            STATS[op] += 1
            if op == "ingest":
                STATS[f"ingest {kind}"] += 1
                code, out, err = com("--memory", mem, "ingest", "-", "--json", input=json.dumps(_event(kind, n, name)))
                # A given id already recorded here with other content is refused (exit 2); nothing else is.
                assert code == 0 or (code == 2 and kind == "given-id" and "other content" in err), err
            elif op == "pull":
                code, out, err = com("--memory", mem, "pull")
                assert code == 0, err
            elif op == "push":
                code, out, err = com("--memory", mem, "push")
                assert code == 0 or "has no commits to push" in err, err
            else:
                code, out, err = com("--memory", mem, "fsck", "--json")
                assert code == 0, out + err
        # The final round: everyone pushes what they have, then everyone pulls.
        for mem in mems.values():
            code, _, err = com("--memory", mem, "push")
            assert code == 0 or "has no commits to push" in err, err
        for mem in mems.values():
            code, _, err = com("--memory", mem, "pull")
            assert code == 0, err
        events = {name: _events(mem) for name, mem in mems.items()}
        assert events["a"] == events["b"] == events["c"], "memories disagree after the final pull"
        ids = [e["id"] for e in events["a"]]
        assert len(ids) == len(set(ids))
        STATS["events at the end"] += len(ids)
        for mem in mems.values():
            code, out, err = com("--memory", mem, "fsck", "--json")
            assert code == 0 and json.loads(out)["ok"], out + err
        seen: dict[str, set] = {}
        for mem in mems.values():
            for path, oids in _blobs(mem).items():
                seen.setdefault(path, set()).update(oids)
        assert all(len(oids) == 1 for oids in seen.values()), "a batch path with two different blobs"
        STATS["programs"] += 1
    finally:
        shutil.rmtree(work, ignore_errors=True)
