#!/usr/bin/env python3
"""Sync benchmarks: push and pull of a 100,000-event journal between two local clones through a bare
remote (file://), an incremental push/pull of one more batch, and the merge of two diverged branches of
10,000 events each; and `com fsck` of the pulled 100,000-event journal.

Prints one JSON object. Whole-command figures are medians of real `com` processes (what a CI step pays);
`merge_tree_ms` times the union of the two trees alone, in process.
  --events N   events in the big journal (default 100,000, in batches of --per)
  --repeats R  runs per figure (default 3)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COM = str(Path(sys.executable).parent / "com")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def wall(*args: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([COM, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=True, text=True)
    return time.perf_counter() - t0


def median_s(samples) -> float:
    return round(statistics.median(samples), 3)


def fill(mem: Path, batches: int, per: int, tag: str) -> None:
    """Write `batches` batches of `per` test results straight through the journal (fast set-up)."""
    from com.memory import Memory
    from com.model.event import validate as normalize

    memory = Memory(mem)
    for b in range(batches):
        memory.record([
            normalize({
                "type": "test_result", "project": "shop", "source": "pytest",
                "ts": f"2026-{1 + b // 28 % 12:02d}-{1 + b % 28:02d}T10:{i // 60 % 60:02d}:{i % 60:02d}Z",
                "data": {"test_id": f"tests/test_{tag}{b % 50}.py::test_{i}", "duration_ms": (i * 37) % 5000,
                         "status": "failed" if i % 23 == 0 else "passed", "run_id": f"{tag}-run-{b}"},
            })
            for i in range(per)
        ])


def new_memory(root: Path, name: str, url: str | None) -> Path:
    mem = root / name / ".com"
    subprocess.run([COM, "--memory", str(mem), "init"], check=True, stdout=subprocess.DEVNULL)
    if url:
        subprocess.run([COM, "--memory", str(mem), "remote", "add", "origin", url], check=True, stdout=subprocess.DEVNULL)
    return mem


def bare(root: Path, name: str) -> str:
    path = root / name
    subprocess.run(["git", "init", "-q", "--bare", str(path)], check=True)
    return path.as_uri()


def count(mem: Path) -> int:
    out = subprocess.run([COM, "--memory", str(mem), "events", "--limit", "0", "--json"], capture_output=True,
                         text=True, check=True).stdout
    return len(json.loads(out)["events"])


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--per", type=int, default=1000)
    parser.add_argument("--diverged", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("GIT_AUTHOR_NAME", "bench")
    os.environ.setdefault("GIT_AUTHOR_EMAIL", "bench@example.com")
    os.environ.setdefault("GIT_COMMITTER_NAME", "bench")
    os.environ.setdefault("GIT_COMMITTER_EMAIL", "bench@example.com")
    batches = args.events // args.per
    root = Path(tempfile.mkdtemp(prefix="com-bench-sync-"))
    try:
        source = new_memory(root, "source", None)
        t0 = time.perf_counter()
        fill(source, batches, args.per, "base")
        setup_s = time.perf_counter() - t0

        push_s, pull_s, clone_s = [], [], []
        for run in range(args.repeats):
            url = bare(root, f"remote{run}.git")
            subprocess.run([COM, "--memory", str(source), "remote", "add", f"r{run}", url], check=True,
                           stdout=subprocess.DEVNULL)
            push_s.append(wall("--memory", str(source), "push", f"r{run}"))
            other = new_memory(root, f"other{run}", url)
            pull_s.append(wall("--memory", str(other), "pull"))
            clone_s.append(wall("clone", url, str(root / f"clone{run}" / ".com")))
        assert count(root / "other0" / ".com") == args.events
        fsck_s = [wall("--memory", str(root / "other0" / ".com"), "fsck") for _ in range(args.repeats)]

        # One more batch on top: the everyday case.
        a, b = root / "other0" / ".com", root / "clone0" / ".com"
        inc_push, inc_pull = [], []
        for run in range(args.repeats):
            fill(a, 1, args.per, f"inc{run}")
            inc_push.append(wall("--memory", str(a), "push"))
            inc_pull.append(wall("--memory", str(b), "pull"))

        # Two sides diverge by 10,000 events each; one pushes, the other pulls (a merge) and pushes back.
        merge_pull, merge_push, merge_tree = [], [], []
        for run in range(args.repeats):
            fill(a, args.diverged // args.per, args.per, f"a{run}-")
            fill(b, args.diverged // args.per, args.per, f"b{run}-")
            subprocess.run([COM, "--memory", str(a), "push"], check=True, stdout=subprocess.DEVNULL)
            merge_pull.append(wall("--memory", str(b), "pull"))
            merge_tree.append(time_union(b))
            merge_push.append(wall("--memory", str(b), "push"))
            subprocess.run([COM, "--memory", str(a), "pull"], check=True, stdout=subprocess.DEVNULL)
        total = args.events + args.repeats * (args.per + 2 * args.diverged)
        assert count(a) == count(b) == total, (count(a), count(b), total)

        print(json.dumps({
            "events": args.events, "batches": batches, "journal_bytes": du(source / "journal.git"),
            "setup_write_s": round(setup_s, 2),
            "push_full_s_median": median_s(push_s), "pull_full_s_median": median_s(pull_s),
            "clone_full_s_median": median_s(clone_s), "fsck_full_s_median": median_s(fsck_s),
            "push_one_batch_s_median": median_s(inc_push), "pull_one_batch_s_median": median_s(inc_pull),
            "diverged_events_per_side": args.diverged,
            "pull_with_merge_s_median": median_s(merge_pull),
            "merge_tree_ms_median": round(statistics.median(merge_tree) * 1000, 2),
            "push_after_merge_s_median": median_s(merge_push),
            "final_events": total, "runs": args.repeats,
        }, indent=1))
    finally:
        shutil.rmtree(root, ignore_errors=True)


def time_union(mem: Path) -> float:
    """The tree union of the merge just made, recomputed in process (objects exist already: pure work)."""
    import pygit2

    from com.journal.merge import union_tree
    from com.memory import Memory

    repo = Memory(mem).journal.repo
    merge = repo.revparse_single("refs/heads/main").peel(pygit2.Commit)
    ours, theirs = merge.parents
    t0 = time.perf_counter()
    tree, conflicts = union_tree(repo, ours.tree, theirs.tree)
    elapsed = time.perf_counter() - t0
    assert tree == merge.tree.id and not conflicts
    return elapsed


if __name__ == "__main__":
    main()
