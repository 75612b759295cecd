"""Benchmark `com flaky detect` on a recorded history (default: 1,000,000 results, 10,000 tests x 50 commits x 2
runs), through the real memory and its test-results view. Prints one JSON object.

In-process (medians of --repeat, wall and CPU seconds): reading the results as columns from the view, detection
on them, the whole use-case `com.ops.flaky.detect` (what the command runs), detection on the same rows shuffled
and over a 3-day window, the incremental path (a state of every run but the last, updated with the last run),
and manifestations of every flaky test without a model. Whole processes (medians of --processes runs, wall and
user+sys CPU of the child): `com flaky detect --json`, `com flaky quarantine`, `com diff HEAD~1 HEAD`. The load
average is printed beside the figures: the machine is shared.

    python scripts/bench_flaky.py --memory COPY/.com          # a recorded history (its caches are brought up to date)
    python scripts/bench_flaky.py [--tests 10000 --commits 50 --runs-per-commit 2 --seed 7] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gen_history  # noqa: E402

from com.analysis.flaky import FlakyState, detect_flaky  # noqa: E402
from com.analysis.manifest import manifestations  # noqa: E402
from com.memory import Memory  # noqa: E402
from com.ops import flaky as ops  # noqa: E402
from com.settings import load as load_settings  # noqa: E402


def timed(fn, repeat: int):
    """(last result, wall seconds, CPU seconds) of `repeat` calls."""
    walls, cpus, out = [], [], None
    for _ in range(repeat):
        c0, t0 = time.process_time(), time.perf_counter()
        out = fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return out, walls, cpus


def med(xs) -> float:
    return round(statistics.median(xs), 4)


def figure(walls, cpus) -> dict:
    return {"wall_median": med(walls), "cpu_median": med(cpus), "wall_all": [round(x, 4) for x in walls]}


def process_times(args: list[str], env: dict, runs: int) -> dict:
    """Median wall and user+sys CPU seconds of a whole `com` process."""
    exe = str(Path(sys.executable).parent / "com")
    walls, cpus, code = [], [], None
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        done = subprocess.run([exe, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        walls.append(time.perf_counter() - t0)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        code = done.returncode
        if code != 0:
            raise SystemExit(f"bench_flaky: com {' '.join(args)} failed: {done.stderr.strip()}")
    return {"wall_median": med(walls), "cpu_median": med(cpus), "wall_all": [round(x, 3) for x in walls],
            "load_average_1m": round(os.getloadavg()[0], 2)}


def quality(result: dict, truth: dict) -> dict:
    planted = set(truth["flaky"])
    broken = {t for b in truth["breakages"] for t in b["tests"]} - planted
    found = {f["test_id"] for f in result["flaky"]}
    tp = found & planted
    return {"flaky_reported": len(found), "flaky_planted": len(planted), "true_positives": len(tp),
            "precision": round(len(tp) / len(found), 4) if found else None,
            "recall": round(len(tp) / len(planted), 4) if planted else None,
            "broken_reported_as_flaky": len(found & broken), "breakage_episodes": len(result["broken"])}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--memory", type=Path, help="a recorded memory to read (a copy: its caches are updated)")
    ap.add_argument("--tests", type=int, default=10_000)
    ap.add_argument("--commits", type=int, default=50)
    ap.add_argument("--runs-per-commit", type=int, default=2)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--processes", type=int, default=3)
    ap.add_argument("--work", type=Path, help="folder to generate into (default: a temp dir, removed after)")
    args = ap.parse_args(argv)
    load_start = os.getloadavg()
    tmp = None
    out: dict = {}
    if args.memory is None:
        tmp = tempfile.mkdtemp(dir=args.work, prefix="bench-flaky-")
        t0 = time.perf_counter()
        history = gen_history.generate(Path(tmp) / "history", seed=args.seed, tests=args.tests, commits=args.commits,
                                       runs_per_commit=args.runs_per_commit)
        memory, _ = Memory.init(Path(tmp) / "history" / ".com", settings=load_settings(Path(tmp)))
        gen_history.ingest(history, memory, warn=lambda message: None)
        out["generate_and_record_seconds"] = round(time.perf_counter() - t0, 2)
        truth = history.truth
    else:
        memory = Memory(args.memory.resolve(), settings=load_settings(args.memory))
        truth_file = args.memory.resolve().parent / "ground_truth.json"
        truth = json.loads(truth_file.read_text()) if truth_file.exists() else None
    try:
        snapshot = memory.snapshot()
        print("bench_flaky: bringing the views up to date", file=sys.stderr)
        t0 = time.perf_counter()
        memory.follow(snapshot)
        memory.follow(snapshot, [memory.results, memory.registry])
        out["views_catch_up_seconds"] = round(time.perf_counter() - t0, 2)

        print("bench_flaky: in-process timings", file=sys.stderr)
        cols, w, c = timed(lambda: memory.results.columns(snapshot), args.repeat)
        out["dataset"] = {"results": len(cols), "tests": len(cols.tests), "runs": len(cols.runs),
                          "code_commits": len(cols.commits), "signatures": len(cols.signatures)}
        out["read_columns_from_view"] = figure(w, c)
        det, w, c = timed(lambda: detect_flaky(cols, min_runs=5), args.repeat)
        out["detect_on_columns"] = figure(w, c)
        result, w, c = timed(lambda: ops.detect(memory).to_json(), args.repeat)
        out["com_flaky_detect_in_process"] = figure(w, c)
        out["com_flaky_detect_in_process"]["load_average_1m"] = round(os.getloadavg()[0], 2)
        shuffled = cols.take(np.random.default_rng(0).permutation(len(cols)))
        _, w, c = timed(lambda: detect_flaky(shuffled, min_runs=5), args.repeat)
        out["detect_rows_shuffled"] = figure(w, c)
        del shuffled
        windowed, w, c = timed(lambda: detect_flaky(cols, min_runs=5, window_days=3), args.repeat)
        out["detect_window_3_days"] = figure(w, c)

        # Incremental: a state of every run but the newest, then the newest run's rows.
        first_us = np.full(len(cols.runs), np.iinfo(np.int64).max)
        np.minimum.at(first_us, cols.run, cols.ts_us)
        last = cols.run == int(np.argmax(np.where(first_us == np.iinfo(np.int64).max, -1, first_us)))
        base, tail = cols.take(~last), cols.take(last)
        updates, detects = [], []
        for _ in range(args.repeat):
            state = FlakyState.from_columns(base)
            t0 = time.perf_counter()
            state.update(tail)
            updates.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            incremental = state.detect(min_runs=5)
            detects.append(time.perf_counter() - t0)
        out["incremental"] = {
            "state_entries": int(state.entries["test"].shape[0]), "update_one_run_wall_median": med(updates),
            "detect_from_state_wall_median": med(detects),
            "same_answer_as_full_detection": {f.test_id for f in incremental.flaky} == {f.test_id for f in det.flaky}
            and {(b.test_id, b.since_commit) for b in incremental.broken}
            == {(b.test_id, b.since_commit) for b in det.broken}}
        flaky_ids = [f.test_id for f in det.flaky]
        _, w, c = timed(lambda: manifestations(cols, flaky_ids), args.repeat)
        out["manifestations_of_every_flaky_test_no_model"] = figure(w, c)
        del cols, base, tail

        print("bench_flaky: whole processes", file=sys.stderr)
        env = {**os.environ, "COM_DIR": str(memory.root)}
        memory.close()
        out["process"] = {
            "com flaky detect --json": process_times(["flaky", "detect", "--json"], env, args.processes),
            "com flaky quarantine": process_times(["flaky", "quarantine"], env, args.processes),
            "com diff HEAD~1 HEAD": process_times(["diff", "HEAD~1", "HEAD"], env, args.processes),
        }
        out["found"] = {"flaky": len(result["flaky"]), "broken_episodes": len(result["broken"]),
                        "flaky_in_3_day_window": len(windowed.flaky), "excluded_runs": len(result["excluded_runs"])}
        if truth is not None:
            out["quality_vs_ground_truth"] = quality(result, truth)
        out["target_in_process_seconds"] = 2.0
        out["cpus"] = os.cpu_count()
        out["load_average_at_start"] = [round(x, 2) for x in load_start]
        out["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
