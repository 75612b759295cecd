"""Reads at history scale: whole `com` processes on a generated CI history (`gen_history.py`: T tests, 100 journal
commits of T results each), timed as medians of interleaved runs, with CPU time (user+sys), peak RSS and the load
average beside each figure, so a busy machine can be told from a slow command.

    python scripts/bench_reads.py                          # the 1,000,000-result history (10,000 tests)
    python scripts/bench_reads.py --scales 100,1000,10000  # the growth table 10k -> 100k -> 1M
    python scripts/bench_reads.py --history DIR            # reuse a history made with gen_history.py --ingest

A history is generated once per shape into --cache (default $COM_BENCH_CACHE, else <tmp>/com-bench-cache) and
reused; every run works on a copy (`cp -a`), never on the cached one. Figures per scale:
  reads: `log -n 20`, `diff HEAD~1`, `diff HEAD~20`, `diff HEAD~99` (human and --json), `events --test T --limit 0`
  first_read: the first `events --test` after the test-results view lost the last CI run (one run to take in), and
      after it was deleted (the whole history to take in), as a reader after a big import pays it.
Prints one JSON object on stdout; progress on stderr.
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

SCRIPTS = Path(__file__).resolve().parent
ROOT = SCRIPTS.parent
COM = str(Path(sys.executable).parent / "com")
TARGETS = {  # issue 12, at 1,000,000 results: seconds and MiB
    "log_n20": {"wall_s": 0.3}, "diff_1": {"wall_s": 0.3}, "diff_20": {"wall_s": 1.0, "rss_mib": 150},
    "diff_99": {"wall_s": 3.0, "rss_mib": 300}, "events_test": {"wall_s": 0.3},
}


def say(text: str) -> None:
    print(f"bench_reads: {text}", file=sys.stderr, flush=True)


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def run(args: list[str], env: dict, stdout=subprocess.DEVNULL, stdin=None) -> dict:
    """One whole process: wall seconds, CPU seconds (user+sys of that process alone) and its peak RSS."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(args, env=env, stdout=stdout, stderr=subprocess.PIPE, stdin=stdin)
    # wait4 gives this child's own rusage (RUSAGE_CHILDREN would mix every child so far).
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    err = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"bench_reads: {' '.join(args)} exited {code}: {err.strip()[-800:]}")
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "rss_mib": usage.ru_maxrss / 1024}


def summary(samples: list[dict]) -> dict:
    out = {key: round(statistics.median(s[key] for s in samples), 3) for key in ("wall_s", "cpu_s", "rss_mib")}
    out["wall_s_min"] = round(min(s["wall_s"] for s in samples), 3)
    out["runs"] = len(samples)
    for key in ("out_bytes",):
        if key in samples[0]:
            out[key] = samples[0][key]
    return out


def history_dir(cache: Path, seed: int, tests: int, commits: int, runs: int) -> Path:
    """The cached history of this shape, generated (and ingested) the first time it is asked for."""
    out = cache / f"history-s{seed}-t{tests}-c{commits}-r{runs}"
    if (out / ".com" / "journal.git").is_dir() and (out / "ground_truth.json").is_file():
        return out
    if out.exists():
        shutil.rmtree(out)
    cache.mkdir(parents=True, exist_ok=True)
    say(f"generating {out.name} (once; reused from {cache})")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, str(SCRIPTS / "gen_history.py"), str(out), "--seed", str(seed), "--tests",
                    str(tests), "--commits", str(commits), "--runs-per-commit", str(runs), "--ingest"],
                   env=env, check=True, stdout=subprocess.DEVNULL)
    return out


def a_test(history: Path) -> str:
    """A flaky test of the history (it has failures and passes), else any test."""
    truth = json.loads((history / "ground_truth.json").read_text())
    return next(iter(truth["flaky"]), None) or next(iter(truth["tests"]))


def bench_scale(history: Path, work: Path, reps: int) -> dict:
    copy = work / history.name
    if copy.exists():
        shutil.rmtree(copy)
    subprocess.run(["cp", "-a", str(history), str(copy)], check=True)
    memory = copy / ".com"
    env = {**os.environ, "COM_DIR": str(memory)}
    env.pop("COM_DEBUG", None)
    test = a_test(copy)
    commits = int(subprocess.run(["git", "--git-dir", str(memory / "journal.git"), "rev-list", "--count", "HEAD"],
                                 capture_output=True, text=True, check=True).stdout)
    far = min(99, commits - 1)
    results = int(json.loads((copy / "ground_truth.json").read_text())["totals"]["results"])
    out: dict = {"dataset": {"results": results, "commits": commits, "tests": int(
        json.loads((copy / "ground_truth.json").read_text())["totals"]["tests"])}, "test": test}

    # First reads: the test-results view takes in what it has not seen (bulk writes leave it to the next reader).
    view = memory / "cache" / "results.sqlite"
    first: dict = {}
    say(f"{history.name}: first reads")
    for suffix in ("", "-wal", "-shm"):
        Path(str(view) + suffix).unlink(missing_ok=True)
    run([COM, "events", "--test", test, "--limit", "0", "--at", "HEAD~1", "--json"], env)  # the view up to HEAD~1
    saved = work / "results-at-head-1.sqlite"
    shutil.copyfile(view, saved)
    samples = []
    for _ in range(max(3, reps // 2)):
        shutil.copyfile(saved, view)
        samples.append(run([COM, "events", "--test", test, "--limit", "0", "--json"], env))
    first["one_run"] = {**summary(samples), "results_taken": results // commits, "load": load()}
    samples = []
    for _ in range(2):
        for suffix in ("", "-wal", "-shm"):
            Path(str(view) + suffix).unlink(missing_ok=True)
        samples.append(run([COM, "events", "--test", test, "--limit", "0", "--json"], env))
    first["whole_history"] = {**summary(samples), "results_taken": results, "load": load()}
    out["first_read"] = first
    saved.unlink()

    commands = {
        "log_n20": ["log", "-n", "20"],
        "diff_1": ["diff", "HEAD~1"],
        "diff_20": ["diff", f"HEAD~{min(20, far)}"],
        f"diff_{far}": ["diff", f"HEAD~{far}"],
        f"diff_{far}_json": ["diff", f"HEAD~{far}", "--json"],
        "events_test": ["events", "--test", test, "--limit", "0"],
        "events_test_json": ["events", "--test", test, "--limit", "0", "--json"],
    }
    for args in commands.values():  # warm: every derived store caught up, files in the page cache
        run([COM, *args], env)
    samples = {name: [] for name in commands}
    sink = work / "stdout"
    say(f"{history.name}: {reps} interleaved rounds of {len(commands)} commands")
    load_before = load()
    for _ in range(reps):
        for name, args in commands.items():
            with sink.open("wb") as fh:
                sample = run([COM, *args], env, stdout=fh)
            sample["out_bytes"] = sink.stat().st_size
            samples[name].append(sample)
    out["reads"] = {name: summary(s) for name, s in samples.items()}
    out["load_before"], out["load_after"] = load_before, load()
    shutil.rmtree(copy)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--history", type=Path, action="append", default=[],
                    help="A gen_history.py --ingest folder to reuse (copied, never written); repeatable")
    ap.add_argument("--scales", default="10000", help="Comma-separated test counts, one history each")
    ap.add_argument("--commits", type=int, default=50)
    ap.add_argument("--runs-per-commit", type=int, default=2)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--cache", type=Path,
                    default=Path(os.environ.get("COM_BENCH_CACHE") or Path(tempfile.gettempdir()) / "com-bench-cache"))
    args = ap.parse_args()
    os.environ.pop("COM_DIR", None)
    histories = list(args.history) or [history_dir(args.cache, args.seed, int(t), args.commits, args.runs_per_commit)
                                       for t in args.scales.split(",")]
    out = {"bench": "reads", "cpus": os.cpu_count(), "load_start": load(), "scales": {}}
    with tempfile.TemporaryDirectory(prefix="com-bench-reads-") as tmp:
        for history in histories:
            figures = bench_scale(history, Path(tmp), args.reps)
            out["scales"][str(figures["dataset"]["results"])] = figures
    sizes = sorted(out["scales"], key=int)
    if len(sizes) > 1:  # growth between consecutive scales, against the growth of the data
        growth = {}
        for small, big in zip(sizes, sizes[1:]):
            a, b = out["scales"][small], out["scales"][big]
            row = {"data": round(int(big) / int(small), 1)}
            for name in b["reads"]:
                if name in a["reads"]:
                    row[name] = round(b["reads"][name]["wall_s"] / a["reads"][name]["wall_s"], 2)
            for name in b["first_read"]:
                row[f"first_read_{name}"] = round(b["first_read"][name]["wall_s"] / a["first_read"][name]["wall_s"], 2)
            growth[f"{small}->{big}"] = row
        out["growth_wall"] = growth
    out["targets_at_1m"] = TARGETS
    out["load_end"] = load()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
