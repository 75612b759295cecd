"""Benchmark a whole generated history: time to generate it, time to record it (one journal commit per
CI run, through the ingest API), the memory's size on disk against the raw JUnit XML, and how fast a few
reads answer on it. Prints one JSON object (medians over --repeat fresh generations).

    .venv/bin/python scripts/bench_history.py                       # 1,000 tests x 20 commits x 2 runs
    .venv/bin/python scripts/bench_history.py --tests 10000 --commits 50 --runs-per-commit 2 --repeat 1
                                                                    # the 1,000,000-result history
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gen_history  # noqa: E402

COM = str(Path(sys.executable).parent / "com")


def disk_usage(path: Path) -> dict:
    """Bytes as `du` counts them (allocated blocks) and as the files' lengths add up."""
    used = apparent = 0
    for folder, _, files in os.walk(path):
        for name in files:
            st = os.lstat(os.path.join(folder, name))
            used += st.st_blocks * 512
            apparent += st.st_size
    return {"du_bytes": used, "apparent_bytes": apparent}


def read_timings(memory: Path, history: gen_history.History, repeat: int) -> dict:
    """Wall time of whole `com` processes on the recorded history (what a shell user pays)."""
    env = {**os.environ, "COM_DIR": str(memory)}
    flaky = next(iter(history.truth["flaky"]), next(iter(history.truth["tests"])))
    broke = next((b for b in history.truth["breakages"]), None)
    runs = history.runs
    commands = {
        "log_n5": ["log", "-n", "5", "--json"],
        "events_one_test_all": ["events", "--test", flaky, "--limit", "0", "--json"],
        "events_latest_50": ["events", "--limit", "50", "--json"],
        "diff_last_two_runs": ["diff", "HEAD~1", "HEAD", "--json"],
    }
    if broke is not None:
        # The journal commit of the first run after the breaking commit, against the run before it.
        first = next(n for n, r in enumerate(runs) if r["commit"] == broke["commit"])
        if first > 0:
            back = len(runs) - first
            commands["diff_breaking_run"] = ["diff", f"HEAD~{back}", f"HEAD~{back - 1}", "--json"]
    out = {}
    for name, args in commands.items():
        samples = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            r = subprocess.run([COM, *args], env=env, capture_output=True, text=True)
            samples.append(time.perf_counter() - t0)
            if r.returncode != 0:
                raise SystemExit(f"com {' '.join(args)} failed: {r.stderr.strip()}")
        out[name] = round(statistics.median(samples), 3)
    return out


def one(tmp: Path, args, n: int) -> dict:
    from com.memory import Memory

    out = tmp / f"h{n}"
    t0 = time.perf_counter()
    history = gen_history.generate(out, seed=args.seed, tests=args.tests, commits=args.commits,
                                   runs_per_commit=args.runs_per_commit)
    generated = time.perf_counter() - t0
    memory, _ = Memory.init(out / ".com")
    t1 = time.perf_counter()
    step = max(1, len(history.runs) // 10)

    def progress(done, total):
        if done % step == 0 or done == total:
            print(f"bench_history: ingested {done}/{total} runs", file=sys.stderr, flush=True)

    gen_history.ingest(history, memory, progress=progress)
    ingested = time.perf_counter() - t1
    return {"history": history, "memory": memory.root, "generate_s": generated, "ingest_s": ingested}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tests", type=int, default=1000)
    ap.add_argument("--commits", type=int, default=20)
    ap.add_argument("--runs-per-commit", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--keep", type=Path, help="Generate into this folder and keep it (one repeat)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="com-bench-history-") as tmp:
        base = args.keep or Path(tmp)
        repeat = 1 if args.keep else args.repeat
        samples = [one(base, args, n) for n in range(repeat)]
        last = samples[-1]
        history, memory = last["history"], last["memory"]
        totals = history.truth["totals"]
        junit = disk_usage(history.junit_dir)
        journal = disk_usage(memory / "journal.git")
        cache = disk_usage(memory / "cache")
        whole = disk_usage(memory)
        gen_s = statistics.median(s["generate_s"] for s in samples)
        ingest_s = statistics.median(s["ingest_s"] for s in samples)
        figures = {
            "dataset": {"tests": totals["tests"], "commits": args.commits, "runs": totals["runs"],
                        "results": totals["results"], "junit_bytes": junit["apparent_bytes"]},
            "generate_s_median": round(gen_s, 3),
            "ingest_s_median": round(ingest_s, 3),
            "generate_and_ingest_s": round(gen_s + ingest_s, 3),
            "ingest_results_per_s": round(totals["results"] / ingest_s),
            "generate_s_runs": [round(s["generate_s"], 3) for s in samples],
            "ingest_s_runs": [round(s["ingest_s"], 3) for s in samples],
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "disk": {
                "junit_xml_du_bytes": junit["du_bytes"],
                "memory_du_bytes": whole["du_bytes"],  # `du -s .com`
                "journal_du_bytes": journal["du_bytes"],  # the source of truth (loose git objects)
                "catalog_du_bytes": cache["du_bytes"],  # derived SQLite catalog, rebuildable
                "junit_over_journal": round(junit["du_bytes"] / journal["du_bytes"], 2),
                "junit_over_memory": round(junit["du_bytes"] / whole["du_bytes"], 2),
            },
            "read_s_median": read_timings(memory, history, 3),
        }
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
