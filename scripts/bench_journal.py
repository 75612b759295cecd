#!/usr/bin/env python3
"""Journal benchmarks: one-event ingest latency, bulk JSONL throughput, log and diff on a big journal.

Prints one JSON object. Figures are medians of whole `com` processes (what a shell script pays): wall time
and CPU time (user + system of the process, which a busy machine inflates far less than wall time).
  --big-events N     events in the big journal (default 1,000,000, in --big-batches batches)
  --compare CHECKOUT another checkout of com (e.g. `git worktree add --detach /tmp/before REV`): every figure
                     is taken for both, one process of each in turn, so both see the same load; the output
                     gives both and their ratios (this checkout / the other). The big journal is built once
                     (by this checkout) and each checkout derives its own caches from a copy of it.
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
HERE = Path(__file__).resolve().parent.parent


class Checkout:
    """A tree of com and the environment that runs it (PYTHONPATH first on the path)."""

    def __init__(self, tree: Path):
        self.tree = tree
        # A user's com writes its bytecode once; with PYTHONDONTWRITEBYTECODE (set on some machines) every
        # process would compile com's modules again, which is not what anyone pays.
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("COM_DIR", "PYTHONDONTWRITEBYTECODE") and not k.startswith("COM_")}
        self.env["PYTHONPATH"] = str(tree)

    def run(self, args, cwd, stdin=None) -> tuple[float, float]:
        """(wall seconds, CPU seconds) of one `com` process."""
        t0 = time.perf_counter()
        proc = subprocess.Popen([COM, *args], cwd=cwd, stdin=stdin, env=self.env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - t0
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"com {' '.join(args)} failed in {cwd} ({self.tree})")
        return elapsed, usage.ru_utime + usage.ru_stime


def figures(name: str, samples: dict[str, list[tuple[float, float]]], scale: float = 1000.0, digits: int = 1) -> dict:
    """Medians per checkout ("" is this one, "compare_" the other) and, given both, their ratios."""
    out = {}
    for prefix, runs in samples.items():
        out[f"{prefix}{name}_median"] = round(statistics.median(w for w, _ in runs) * scale, digits)
        out[f"{prefix}{name}_cpu_median"] = round(statistics.median(c for _, c in runs) * scale, digits)
    if "compare_" in samples:
        for kind in ("", "_cpu"):
            ours, theirs = out[f"{name}{kind}_median"], out[f"compare_{name}{kind}_median"]
            out[f"{name}{kind}_ratio"] = round(ours / theirs, 3) if theirs else None
    return out


def timed(checkouts: dict[str, Checkout], repeats: int, each) -> dict[str, list]:
    """`each(prefix, checkout)` -> (wall, cpu), `repeats` times for every checkout, taken in turn."""
    samples: dict[str, list] = {prefix: [] for prefix in checkouts}
    for _ in range(repeats):
        for prefix, checkout in checkouts.items():
            samples[prefix].append(each(prefix, checkout))
    return samples


def result_line(n: int, run: int, day: int) -> str:
    status = "failed" if n % 23 == 0 else ("skipped" if n % 41 == 0 else "passed")
    data = {"test_id": f"tests/test_mod{n % 97}.py::test_case_{n}", "status": status, "duration_ms": (n * 37) % 5000,
            "run_id": f"run-{run}", "commit": f"{run:040x}"}
    if status == "failed":
        data["error_message"] = f"AssertionError: expected {n % 7} got {n % 5}"
    return json.dumps({"type": "test_result", "project": "shop", "source": "pytest",
                       "ts": f"2026-{1 + day // 28:02d}-{1 + day % 28:02d}T10:{run % 60:02d}:00Z", "data": data})


def bench_single(work: Path, checkouts: dict[str, Checkout], repeats: int) -> dict:
    dirs = {}
    for prefix, checkout in checkouts.items():
        dirs[prefix] = work / (prefix or "this")
        dirs[prefix].mkdir()
        checkout.run(["init"], dirs[prefix])
    counter = iter(range(10**9))

    def ingest(prefix, checkout):
        return checkout.run(["ingest", "-p", "shop", "-t", "note", "-d", json.dumps({"n": next(counter)})],
                            dirs[prefix])

    timed(checkouts, 2, ingest)  # the first writes create the caches
    out = figures("single_ingest_ms", timed(checkouts, repeats, ingest))
    out.update(figures("help_ms", timed(checkouts, repeats, lambda p, c: c.run(["--help"], dirs[p]))))
    out["repeats"] = repeats
    return out


def bench_bulk(work: Path, checkouts: dict[str, Checkout], n: int, repeats: int) -> dict:
    """Two shapes of one 100,000-event file: a suite of 1,000 tests run 100 times (what CI produces), and
    every event a different test (the catalog's worst case: nothing repeats)."""
    out = {"bulk_events": n}
    for shape, test_of in (("suite", lambda i: i % 1000), ("distinct_tests", lambda i: i)):
        src = work / f"bulk-{shape}.jsonl"
        with src.open("w") as fh:
            for i in range(n):
                fh.write(result_line(test_of(i), i // 1000, (i // 1000) % 300) + "\n")

        def ingest(prefix, checkout):
            folder = work / f"bulk-{prefix or 'this'}"
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            checkout.run(["init"], folder)
            return checkout.run(["ingest", "--file", str(src)], folder)

        name = "bulk_ingest_s" if shape == "suite" else f"bulk_{shape}_ingest_s"
        found = figures(name, timed(checkouts, repeats, ingest), scale=1.0, digits=3)
        for key in [k for k in found if k.endswith("_median") and "_cpu_" not in k]:
            found[key.replace("ingest_s_median", "events_per_s")] = round(n / found[key])
        out.update(found)
    return out


def bench_big(work: Path, checkouts: dict[str, Checkout], events: int, batches: int, repeats: int) -> dict:
    sys.path.insert(0, str(HERE))
    from com.memory import Memory
    from com.model.event import validate

    built = work / "this"
    memory, _ = Memory.init(built / ".com")
    per = events // batches
    t0 = time.perf_counter()
    for b in range(batches):
        # The same 1,000 tests run again in every batch, as CI runs of one suite do.
        memory.record([validate(json.loads(result_line(i + (b * 7919) % 3, b, b % 300))) for i in range(per)])
        if sys.stderr.isatty() and b % 50 == 0:
            print(f"\rbuilding big journal: {b}/{batches}", end="", file=sys.stderr)
    build = time.perf_counter() - t0
    memory.close()
    dirs = {"": built}
    for prefix in checkouts:
        if prefix:  # the other checkout: the same journal, caches of its own making
            dirs[prefix] = work / prefix
            shutil.copytree(built / ".com" / "journal.git", dirs[prefix] / ".com" / "journal.git")
    # Written just now: flushed before anything is timed (the first checkout's reads would otherwise share
    # the disk with the write-back of its own build; 45 ms of 170 measured on one read).
    os.sync()
    out = {"big_events": per * batches, "big_batches": batches, "big_build_s": round(build, 1)}
    size = subprocess.run(["du", "-sk", str(built / ".com" / "journal.git")], capture_output=True, text=True).stdout
    out["big_journal_mb"] = round(int(size.split()[0]) / 1024, 1)
    for name, args in (("log_n20_ms", ["log", "-n", "20"]), ("diff_adjacent_ms", ["diff", "HEAD~1", "HEAD"]),
                       ("events_limit20_ms", ["events", "--limit", "20"])):
        each = lambda prefix, checkout, args=args: checkout.run(args, dirs[prefix])  # noqa: E731
        timed(checkouts, 1, each)  # once first: the derived stores catch up, as they do for a user once
        out.update(figures(name, timed(checkouts, repeats, each)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--bulk-events", type=int, default=100_000)
    parser.add_argument("--big-events", type=int, default=1_000_000)
    parser.add_argument("--big-batches", type=int, default=1_000)
    parser.add_argument("--compare", type=Path, help="another checkout of com, timed in turn with this one")
    args = parser.parse_args()
    checkouts = {"": Checkout(HERE)}
    if args.compare is not None:
        if not (args.compare / "com" / "__init__.py").is_file():
            parser.error(f"--compare: {args.compare} is not a checkout of com")
        checkouts["compare_"] = Checkout(args.compare.resolve())
    out = {"bench": "journal", "cpus": os.cpu_count(), "load_avg_at_start": os.getloadavg()[0]}
    if args.compare is not None:
        out["compare"] = str(args.compare)
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("single", "bulk", "big"):
            (Path(tmp) / name).mkdir()
        out.update(bench_single(Path(tmp) / "single", checkouts, args.repeats))
        out.update(bench_bulk(Path(tmp) / "bulk", checkouts, args.bulk_events, max(3, args.repeats // 2)))
        out.update(bench_big(Path(tmp) / "big", checkouts, args.big_events, args.big_batches, args.repeats))
    out["load_avg_at_end"] = os.getloadavg()[0]
    out["targets"] = {"single_ingest_ms": 150, "bulk_events_per_s": 50_000, "log_n20_ms": 300, "diff_adjacent_ms": 300}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
