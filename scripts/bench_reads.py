"""Reads (and writes) at history scale: whole `com` processes on a generated CI history (`gen_history.py`: T tests,
100 journal commits of T results each), timed as medians of interleaved runs, with CPU time (user+sys), peak RSS and
the load average beside each figure, so a busy machine can be told from a slow command.

    python scripts/bench_reads.py                          # the 1,000,000-result history (10,000 tests)
    python scripts/bench_reads.py --scales 100,1000,10000  # the growth table 10k -> 100k -> 1M
    python scripts/bench_reads.py --history DIR            # reuse a history made with gen_history.py --ingest

A history is generated once per shape into --cache (default $COM_BENCH_CACHE, else <tmp>/com-bench-cache) and
reused; every run works on a copy (`cp -a`), never on the cached one. Figures per scale:
  reads: `log -n 20`, `diff HEAD~1`, `diff HEAD~20`, `diff HEAD~99` (human and --json), `events --test T --limit 0`
  first_read: the first `events --test` after the test-results view lost the last CI run (one run to take in), and
      after it was deleted (the whole history to take in), as a reader after a big import pays it.
  writes: one `com ingest --file` of the whole history's events (their stored lines without ids, into a fresh
      memory), and a one-event `com ingest` side by side with `python -c 'import pygit2'` (interleaved pairs).
Child processes may write bytecode (PYTHONDONTWRITEBYTECODE is dropped, and each command runs once first), as
an installed com does: compiling com's modules at every start would be measured otherwise.
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
    "ingest_file": {"events_per_s": 50_000, "rss_mib": 600}, "one_event_ingest": {"over_import_pygit2": 1.3},
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


def child_env(extra: dict) -> dict:
    env = {**os.environ, **extra}
    for name in ("COM_DEBUG", "PYTHONDONTWRITEBYTECODE"):
        env.pop(name, None)
    return env


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


def bench_scale(history: Path, work: Path, reps: int, parts: set[str], only: set[str]) -> dict:
    copy = work / history.name
    if copy.exists():
        shutil.rmtree(copy)
    subprocess.run(["cp", "-a", str(history), str(copy)], check=True)
    memory = copy / ".com"
    env = child_env({"COM_DIR": str(memory)})
    test = a_test(copy)
    commits = int(subprocess.run(["git", "--git-dir", str(memory / "journal.git"), "rev-list", "--count", "HEAD"],
                                 capture_output=True, text=True, check=True).stdout)
    far = min(99, commits - 1)
    results = int(json.loads((copy / "ground_truth.json").read_text())["totals"]["results"])
    out: dict = {"dataset": {"results": results, "commits": commits, "tests": int(
        json.loads((copy / "ground_truth.json").read_text())["totals"]["tests"])}, "test": test}

    run([COM, "diff", "HEAD~1"], env)  # derived stores of an older com are rebuilt here, not timed below
    if "writes" in parts:
        out["writes"] = bench_writes(memory, work, env, reps)
    if "first" in parts:
        out["first_read"] = bench_first_reads(memory, work, env, test, results, commits, reps)
    if "reads" in parts:
        out.update(bench_reads(memory, work, env, test, far, reps, only))
    shutil.rmtree(copy)
    return out


def bench_first_reads(memory: Path, work: Path, env: dict, test: str, results: int, commits: int, reps: int) -> dict:
    """The first `events --test` after a write the test-results view did not take (it is left to the next reader)."""
    view = memory / "cache" / "results.sqlite"
    first: dict = {}
    say(f"{memory.parent.name}: first reads")
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
    saved.unlink()
    return first


def bench_reads(memory: Path, work: Path, env: dict, test: str, far: int, reps: int, only: set[str]) -> dict:
    out: dict = {}
    commands = {
        "log_n20": ["log", "-n", "20"],
        "diff_1": ["diff", "HEAD~1"],
        "diff_20": ["diff", f"HEAD~{min(20, far)}"],
        f"diff_{far}": ["diff", f"HEAD~{far}"],
        f"diff_{far}_json": ["diff", f"HEAD~{far}", "--json"],
        "events_test": ["events", "--test", test, "--limit", "0"],
        "events_test_json": ["events", "--test", test, "--limit", "0", "--json"],
    }
    if only:
        commands = {name: args for name, args in commands.items() if name in only}
    for args in commands.values():  # warm: every derived store caught up, files in the page cache
        run([COM, *args], env)
    samples = {name: [] for name in commands}
    sink = work / "stdout"
    say(f"{memory.parent.name}: {reps} interleaved rounds of {len(commands)} commands")
    load_before = load()
    for _ in range(reps):
        for name, args in commands.items():
            with sink.open("wb") as fh:
                sample = run([COM, *args], env, stdout=fh)
            sample["out_bytes"] = sink.stat().st_size
            samples[name].append(sample)
    out["reads"] = {name: summary(s) for name, s in samples.items()}
    out["load_before"], out["load_after"] = load_before, load()
    return out


def bench_writes(memory: Path, work: Path, env: dict, reps: int) -> dict:
    """`com ingest --file` of every event of the history into a fresh memory, and one-event ingests beside
    `python -c 'import pygit2'`."""
    out: dict = {}
    source = work / "history.jsonl"
    say(f"{memory.parent.name}: exporting the history's events")
    git = ["git", "--git-dir", str(memory / "journal.git")]
    tree = subprocess.run([*git, "ls-tree", "-r", "HEAD"], capture_output=True, text=True, check=True).stdout
    blobs = "".join(line.split()[2] + "\n" for line in tree.splitlines())
    events = 0
    with source.open("wb") as fh, subprocess.Popen([*git, "cat-file", "--batch"], stdin=subprocess.PIPE,
                                                  stdout=subprocess.PIPE) as cat:
        cat.stdin.write(blobs.encode())
        cat.stdin.close()
        for line in cat.stdout:
            if line.startswith(b'{"id":"evt_'):  # without its id, as a producer writes it: the id is computed
                fh.write(b"{" + line[37:])
                events += 1
    samples = []
    for _ in range(max(1, reps // 3)):
        fresh = work / "fresh"
        shutil.rmtree(fresh, ignore_errors=True)
        fenv = {**env, "COM_DIR": str(fresh / ".com")}
        run([COM, "init"], fenv)
        samples.append(run([COM, "ingest", "--file", str(source)], fenv))
        shutil.rmtree(fresh)
    source.unlink()
    figures = summary(samples)
    figures["events"] = events
    figures["events_per_s"] = round(events / figures["wall_s"])
    figures["events_per_cpu_s"] = round(events / figures["cpu_s"])
    figures["load"] = load()
    out["ingest_file"] = figures

    say(f"{memory.parent.name}: one-event ingests beside import pygit2")
    python = str(Path(sys.executable))
    pairs = max(15, reps * 3)
    small = work / "small"
    shutil.rmtree(small, ignore_errors=True)
    senv = {**env, "COM_DIR": str(small / ".com")}
    run([COM, "init"], senv)
    run([COM, "ingest", "-p", "shop", "-t", "note", "-d", "{}"], senv)  # bytecode written
    pygit2_runs, ingest_runs = [], []
    for n in range(pairs):
        pygit2_runs.append(run([python, "-c", "import pygit2"], senv))
        ingest_runs.append(run([COM, "ingest", "-p", "shop", "-t", "note", "-d", json.dumps({"n": n})], senv))
    a, b = summary(pygit2_runs), summary(ingest_runs)
    out["one_event_ingest"] = {"ingest": b, "import_pygit2": a, "over_import_pygit2_wall": round(b["wall_s"] / a["wall_s"], 2),
                               "over_import_pygit2_cpu": round(b["cpu_s"] / a["cpu_s"], 2), "pairs": pairs, "load": load()}
    shutil.rmtree(small)
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
    ap.add_argument("--parts", default="reads,first,writes", help="Which parts: reads, first, writes")
    ap.add_argument("--only", default="", help="Comma-separated read names to time (default: all)")
    ap.add_argument("--cache", type=Path,
                    default=Path(os.environ.get("COM_BENCH_CACHE") or Path(tempfile.gettempdir()) / "com-bench-cache"))
    args = ap.parse_args()
    os.environ.pop("COM_DIR", None)
    histories = list(args.history) or [history_dir(args.cache, args.seed, int(t), args.commits, args.runs_per_commit)
                                       for t in args.scales.split(",")]
    out = {"bench": "reads", "cpus": os.cpu_count(), "load_start": load(), "scales": {}}
    with tempfile.TemporaryDirectory(prefix="com-bench-reads-") as tmp:
        for history in histories:
            figures = bench_scale(history, Path(tmp), args.reps, set(args.parts.split(",")),
                                  {name for name in args.only.split(",") if name})
            out["scales"][str(figures["dataset"]["results"])] = figures
    sizes = sorted(out["scales"], key=int)
    if len(sizes) > 1:  # growth between consecutive scales, against the growth of the data
        growth = {}
        for small, big in zip(sizes, sizes[1:]):
            a, b = out["scales"][small], out["scales"][big]
            row = {"data": round(int(big) / int(small), 1)}
            for name in b.get("reads", {}):
                if name in a.get("reads", {}):
                    row[name] = round(b["reads"][name]["wall_s"] / a["reads"][name]["wall_s"], 2)
            for name in b.get("first_read", {}):
                row[f"first_read_{name}"] = round(b["first_read"][name]["wall_s"] / a["first_read"][name]["wall_s"], 2)
            if "writes" in a and "writes" in b:
                row["ingest_file"] = round(b["writes"]["ingest_file"]["wall_s"] / a["writes"]["ingest_file"]["wall_s"], 2)
            growth[f"{small}->{big}"] = row
        out["growth_wall"] = growth
    out["targets_at_1m"] = TARGETS
    out["load_end"] = load()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
