#!/usr/bin/env python3
"""Journal benchmarks: one-event ingest latency, bulk JSONL throughput, log and diff on a big journal.

Prints one JSON object. Figures are medians of whole `com` processes (what a shell script pays).
  --big-events N   events in the big journal (default 1,000,000, in --big-batches batches)
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


def wall(args, cwd, stdin=None) -> float:
    t0 = time.perf_counter()
    subprocess.run(args, cwd=cwd, stdin=stdin, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t0


def median_ms(samples) -> float:
    return round(statistics.median(samples) * 1000, 1)


def result_line(n: int, run: int, day: int) -> str:
    status = "failed" if n % 23 == 0 else ("skipped" if n % 41 == 0 else "passed")
    data = {"test_id": f"tests/test_mod{n % 97}.py::test_case_{n}", "status": status, "duration_ms": (n * 37) % 5000,
            "run_id": f"run-{run}", "commit": f"{run:040x}"}
    if status == "failed":
        data["error_message"] = f"AssertionError: expected {n % 7} got {n % 5}"
    return json.dumps({"type": "test_result", "project": "shop", "source": "pytest",
                       "ts": f"2026-{1 + day // 28:02d}-{1 + day % 28:02d}T10:{run % 60:02d}:00Z", "data": data})


def bench_single(work: Path, repeats: int) -> dict:
    subprocess.run([COM, "init"], cwd=work, check=True, stdout=subprocess.DEVNULL)
    samples = [wall([COM, "ingest", "-p", "shop", "-t", "note", "-d", json.dumps({"n": i})], work) for i in range(repeats + 2)]
    help_samples = [wall([COM, "--help"], work) for _ in range(repeats)]
    return {"single_ingest_ms_median": median_ms(samples[2:]), "help_ms_median": median_ms(help_samples), "repeats": repeats}


def bench_bulk(work: Path, n: int, repeats: int) -> dict:
    """Two shapes of one 100,000-event file: a suite of 1,000 tests run 100 times (what CI produces), and
    every event a different test (the catalog's worst case: nothing repeats)."""
    out = {"bulk_events": n}
    for shape, test_of in (("suite", lambda i: i % 1000), ("distinct_tests", lambda i: i)):
        src = work / f"bulk-{shape}.jsonl"
        with src.open("w") as fh:
            for i in range(n):
                fh.write(result_line(test_of(i), i // 1000, (i // 1000) % 300) + "\n")
        times = []
        for _ in range(repeats):
            shutil.rmtree(work / ".com", ignore_errors=True)
            subprocess.run([COM, "init"], cwd=work, check=True, stdout=subprocess.DEVNULL)
            times.append(wall([COM, "ingest", "--file", str(src)], work))
        t = statistics.median(times)
        prefix = "bulk" if shape == "suite" else f"bulk_{shape}"
        out[f"{prefix}_ingest_s_median"] = round(t, 3)
        out[f"{prefix}_events_per_s"] = round(n / t)
    return out


def bench_big(work: Path, events: int, batches: int, repeats: int) -> dict:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from com.memory import Memory
    from com.model.event import validate as normalize

    memory, _ = Memory.init(work / ".com")
    per = events // batches
    t0 = time.perf_counter()
    for b in range(batches):
        # The same 1,000 tests run again in every batch, as CI runs of one suite do.
        batch = [normalize(json.loads(result_line(i + (b * 7919) % 3, b, b % 300))) for i in range(per)]
        memory.record(batch)
        if sys.stderr.isatty() and b % 50 == 0:
            print(f"\rbuilding big journal: {b}/{batches}", end="", file=sys.stderr)
    build = time.perf_counter() - t0
    for args in (["log", "-n", "20"], ["diff", "HEAD~1", "HEAD"], ["events", "--limit", "20"]):
        wall([COM, *args], work)  # once first: the derived stores catch up, as they do for a user once
    log_times = [wall([COM, "log", "-n", "20"], work) for _ in range(repeats)]
    diff_times = [wall([COM, "diff", "HEAD~1", "HEAD"], work) for _ in range(repeats)]
    events_times = [wall([COM, "events", "--limit", "20"], work) for _ in range(repeats)]
    size = subprocess.run(["du", "-sk", str(memory.journal_path)], capture_output=True, text=True).stdout.split()[0]
    return {
        "big_events": per * batches,
        "big_batches": batches,
        "big_build_s": round(build, 1),
        "big_journal_mb": round(int(size) / 1024, 1),
        "log_n20_ms_median": median_ms(log_times),
        "diff_adjacent_ms_median": median_ms(diff_times),
        "events_limit20_ms_median": median_ms(events_times),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--bulk-events", type=int, default=100_000)
    parser.add_argument("--big-events", type=int, default=1_000_000)
    parser.add_argument("--big-batches", type=int, default=1_000)
    args = parser.parse_args()
    os.environ.pop("COM_DIR", None)
    # A user's com writes its bytecode once; with PYTHONDONTWRITEBYTECODE (set on some machines) every process
    # would compile com's modules again, which is not what anyone pays.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    out = {"bench": "journal", "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("single", "bulk", "big"):
            (Path(tmp) / name).mkdir()
        out.update(bench_single(Path(tmp) / "single", args.repeats))
        out.update(bench_bulk(Path(tmp) / "bulk", args.bulk_events, max(3, args.repeats // 2)))
        out.update(bench_big(Path(tmp) / "big", args.big_events, args.big_batches, args.repeats))
    out["targets"] = {"single_ingest_ms": 150, "bulk_events_per_s": 50_000, "log_n20_ms": 300, "diff_adjacent_ms": 300}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
