"""Benchmark flaky detection in-process on a generated history (default: the 1,000,000-result one, 10,000 tests
x 50 commits x 2 runs). The result columns are built once (through the temporary adapter, from the JUnit
reports) and only detection is timed: the median of --repeat runs. Also times the incremental path (a state of
every run but the last, updated with the last run, then detection) and manifestations of every flaky test
without an embedding model. Prints one JSON object.

    python scripts/bench_flaky.py [--tests 10000 --commits 50 --runs-per-commit 2] [--repeat 5] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gen_history  # noqa: E402
from result_columns import columns_from_history  # noqa: E402  (temporary adapter)

from com.analysis.flaky import FlakyState, detect_flaky  # noqa: E402
from com.analysis.manifest import manifestations  # noqa: E402


def timed(fn, repeat: int):
    samples, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        samples.append(time.perf_counter() - t0)
    return out, samples


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tests", type=int, default=10_000)
    ap.add_argument("--commits", type=int, default=50)
    ap.add_argument("--runs-per-commit", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--work", type=Path, help="folder to generate into (default: a temp dir, removed after)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=args.work) as tmp:
        t0 = time.perf_counter()
        history = gen_history.generate(Path(tmp) / "history", seed=args.seed, tests=args.tests, commits=args.commits,
                                       runs_per_commit=args.runs_per_commit)
        generated = time.perf_counter() - t0
        print("bench_flaky: generated, building columns", file=sys.stderr)
        t0 = time.perf_counter()
        cols, _ = columns_from_history(history)
        built = time.perf_counter() - t0
    print("bench_flaky: timing detection", file=sys.stderr)
    det, samples = timed(lambda: detect_flaky(cols, min_runs=10), args.repeat)
    windowed, w_samples = timed(lambda: detect_flaky(cols, min_runs=10, window_days=3), args.repeat)
    # The view promises no row order: the same rows shuffled (the sort cannot ride on runs arriving in order).
    shuffled = cols.take(np.random.default_rng(0).permutation(len(cols)))
    _, s_samples = timed(lambda: detect_flaky(shuffled, min_runs=10), args.repeat)
    del shuffled

    # Incremental: a state of every run but the last, then the last run's rows.
    last_run = int(np.argmax([int(cols.ts_us[cols.run == r].min()) if (cols.run == r).any() else -1
                              for r in range(len(cols.runs))]))
    last = cols.run == last_run
    state = FlakyState.from_columns(cols.take(~last))
    tail = cols.take(last)
    u_samples = []
    d_samples = []
    for _ in range(args.repeat):
        s = FlakyState.from_columns(cols.take(~last)) if u_samples else state
        t0 = time.perf_counter()
        s.update(tail)
        u_samples.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        incremental = s.detect(min_runs=10)
        d_samples.append(time.perf_counter() - t0)
    same = ({f.test_id for f in incremental.flaky} == {f.test_id for f in det.flaky}
            and {(b.test_id, b.since_commit) for b in incremental.broken}
            == {(b.test_id, b.since_commit) for b in det.broken})

    flaky_ids = [f.test_id for f in det.flaky]
    _, m_samples = timed(lambda: manifestations(cols, flaky_ids), args.repeat)
    truth = set(history.truth["flaky"])
    found = set(flaky_ids)
    med = lambda xs: round(statistics.median(xs), 4)  # noqa: E731
    print(json.dumps({
        "dataset": {"tests": args.tests, "commits": args.commits, "runs_per_commit": args.runs_per_commit,
                    "results": len(cols), "runs": len(cols.runs), "seed": args.seed},
        "generate_seconds": round(generated, 2), "build_columns_seconds_adapter": round(built, 2),
        "detect_seconds_median": med(samples), "detect_seconds_all": [round(x, 4) for x in samples],
        "detect_rows_shuffled_seconds_median": med(s_samples),
        "detect_window_3_days_seconds_median": med(w_samples),
        "window_3_days_results": int((cols.ts_us > int(cols.ts_us.max()) - 3 * 86_400_000_000).sum()),
        "incremental": {"state_entries": int(state.entries["test"].shape[0]), "update_one_run_seconds_median":
                        med(u_samples), "detect_from_state_seconds_median": med(d_samples),
                        "same_answer_as_full_detection": same},
        "manifestations_all_flaky_no_embedding_seconds_median": med(m_samples),
        "target_detect_seconds": 2.0,
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),
        "found": {"flaky": len(found), "planted_flaky": len(truth), "true_positives": len(found & truth),
                  "broken_episodes": len(det.broken), "flaky_in_3_day_window": len(windowed.flaky)},
    }, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
