"""Benchmark the ways test results come in: `com ingest --junit` on a 50,000-testcase report, the
pytest plugin's overhead on a 2,000-test session, and (with --jsonl) one `com ingest --file` of a big JSONL file.
Prints one JSON object (medians) to stdout.

Targets (issue 3): >= 30,000 test cases/s end to end (the whole `com ingest --junit` process, a fresh
memory), and <= 5% added wall time for `pytest --com` on 2,000 trivial tests. Issue 12: one `com ingest --file`
of the 1,000,000 events of `gen_history.py --tests 10000 --commits 50 --runs-per-commit 2` (their stored lines
without ids, as `bench_reads.py` exports them) at >= 50,000 events/s, under 600 MiB (peak RSS of the process).

    .venv/bin/python scripts/bench_ingest.py [--cases 50000] [--tests 2000] [--repeat 3] [--pairs 15] [--skip-pytest]
                                             [--compare OTHER_CHECKOUT]
    .venv/bin/python scripts/bench_ingest.py --jsonl EVENTS.jsonl [--repeat 3] [--compare OTHER_CHECKOUT]

The pytest figure is the median of the com/off ratios of interleaved pairs (whole processes), printed with
the load average over the pairs. With --compare, another checkout's `pytest --com` runs in the same rotation
(its ratios to the same "off" runs under "others").

--compare runs the same file with another checkout's code (PYTHONPATH) interleaved, run for run, and says
whether both memories hold the same tree (the stored bytes must not change).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

BIN = Path(sys.executable).parent
COM = str(BIN / "com")
ROOT_DIR = Path(__file__).resolve().parent.parent


# Byte-code is cached (outside the source tree) as in any installed package, even where the calling
# environment sets PYTHONDONTWRITEBYTECODE: compiling com's modules in every process is not what users pay.
PYCACHE = Path(tempfile.gettempdir()) / "com-bench-pycache"


def _env(extra: dict | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COM_") and k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    env.update({"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
                "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.com"})
    env.update(extra or {})
    return env


def _git_repo(path: Path, env: dict) -> None:
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True, env=env)
    subprocess.run(["git", "-C", str(path), "add", "-A"], check=True, env=env)
    subprocess.run(["git", "-C", str(path), "commit", "-q", "--allow-empty", "-m", "code"], check=True, env=env)


def make_report(path: Path, cases: int, seed: int = 7) -> dict:
    """A Surefire-shaped report: 100 cases per suite, 4% failures, 1% errors, 3% skips, 1% flaky
    (flakyFailure then pass), 0.5% failing with two reruns, 2% with system-out."""
    rng = random.Random(seed)
    counts = {"testcases": 0, "attempts": 0}
    trace = "\n".join(f"\tat com.example.pkg.Module.method{i}(Module.java:{10 + i})" for i in range(15))
    with path.open("w", encoding="utf-8") as out:
        out.write('<?xml version="1.0" encoding="UTF-8"?>\n<testsuites name="bench">\n')
        n = 0
        suite_no = 0
        while n < cases:
            suite_no += 1
            size = min(100, cases - n)
            cls = f"com.example.pkg{suite_no % 37}.Feature{suite_no}Test"
            out.write(f'  <testsuite name="{cls}" tests="{size}" timestamp="2026-11-27T10:{suite_no % 60:02d}:00" time="1.0">\n')
            for i in range(size):
                n += 1
                name = f"case{i}[{rng.randrange(1000)}]"
                t = f"{rng.random() * 2:.3f}"
                roll = rng.random()
                counts["testcases"] += 1
                head = f'    <testcase classname="{cls}" name="{name}" time="{t}"'
                msg = quoteattr(f"expected:<{rng.randrange(100)}> but was:<{rng.randrange(100)}>")
                if roll < 0.04:
                    body = f'<failure message={msg} type="java.lang.AssertionError">{escape(trace)}</failure>'
                    counts["attempts"] += 1
                elif roll < 0.05:
                    body = f'<error message={msg} type="java.lang.NullPointerException">{escape(trace)}</error>'
                    counts["attempts"] += 1
                elif roll < 0.08:
                    body = '<skipped message="not ready"/>'
                    counts["attempts"] += 1
                elif roll < 0.09:
                    body = (f'<flakyFailure message={msg} type="java.lang.AssertionError">'
                            f"<stackTrace>{escape(trace)}</stackTrace></flakyFailure>")
                    counts["attempts"] += 2
                elif roll < 0.095:
                    rerun = (f'<rerunFailure message={msg} type="java.lang.AssertionError">'
                             f"<stackTrace>{escape(trace)}</stackTrace></rerunFailure>")
                    body = f'<failure message={msg} type="java.lang.AssertionError">{escape(trace)}</failure>' + rerun * 2
                    counts["attempts"] += 3
                elif roll < 0.115:
                    body = f"<system-out>{escape('log line ' * 20)}</system-out>"
                    counts["attempts"] += 1
                else:
                    body = ""
                    counts["attempts"] += 1
                out.write(f"{head}>{body}</testcase>\n" if body else f"{head}/>\n")
            out.write("  </testsuite>\n")
        out.write("</testsuites>\n")
    return counts


def bench_junit(cases: int, repeat: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="com-bench-junit-") as tmp:
        tmp = Path(tmp)
        env = _env()
        report = tmp / "TEST-bench.xml"
        counts = make_report(report, cases)
        first, again, first_cpu, added = [], [], [], None
        warm = tmp / "warm"
        warm.mkdir()
        subprocess.run([COM, "init"], cwd=warm, check=True, env=env, capture_output=True)
        fixture = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "junit" / "go-junit.xml"
        subprocess.run([COM, "ingest", "--junit", str(fixture), "-p", "w"], cwd=warm, env=env, capture_output=True)
        for n in range(repeat):
            code = tmp / f"code{n}"
            code.mkdir()
            _git_repo(code, env)
            subprocess.run([COM, "init"], cwd=code, check=True, env=env, capture_output=True)
            args = [COM, "ingest", "--junit", str(report), "-p", "bench", "--json"]
            c0 = _child_cpu()
            t0 = time.perf_counter()
            r = subprocess.run(args, cwd=code, env=env, capture_output=True, text=True)
            first.append(time.perf_counter() - t0)
            first_cpu.append(_child_cpu() - c0)
            if r.returncode != 0:
                raise SystemExit(f"com ingest failed: {r.stderr}")
            added = json.loads(r.stdout)["added"]
            t0 = time.perf_counter()
            r = subprocess.run(args, cwd=code, env=env, capture_output=True, text=True)
            again.append(time.perf_counter() - t0)
            if json.loads(r.stdout)["added"] != 0:
                raise SystemExit("re-ingesting the same report added events")
        # Where the time goes, in-process (same work as the CLI minus interpreter start and imports).
        phases = _phases(tmp, report, env)
        wall = statistics.median(first)
        return {
            "testcases": counts["testcases"],
            "events": added,
            "report_mb": round(report.stat().st_size / 1e6, 2),
            "wall_s_median": round(wall, 3),
            "wall_s_runs": [round(t, 3) for t in first],
            "testcases_per_s": round(counts["testcases"] / wall),
            "cpu_s_median": round(statistics.median(first_cpu), 3),
            "testcases_per_cpu_s": round(counts["testcases"] / statistics.median(first_cpu)),
            "target_testcases_per_s": 30000,
            "reingest_wall_s_median": round(statistics.median(again), 3),
            "phases_cpu_s": phases,
        }


def _phases(tmp: Path, report: Path, env: dict) -> dict:
    # CPU seconds per phase (process_time): on a shared machine they say more than wall time.
    code = f"""
import json, time, sys
t0 = time.process_time()
from com.memory import Memory
from com.ingest import junit
t1 = time.process_time()
import com.ingest.junit as jm
real, spent = jm.validate, [0.0]
def timed(*a, **k):
    t = time.process_time(); r = real(*a, **k); spent[0] += time.process_time() - t; return r
jm.validate = timed
events = junit.events_from_reports([{str(report)!r}], project="bench", warn=lambda m: None)
t2 = time.process_time()
jm.validate = real
res = Memory.find().record(events)
t3 = time.process_time()
print(json.dumps({{"imports": round(t1 - t0, 3), "parse_and_normalize": round(t2 - t1, 3),
                  "of_which_events_normalize": round(spent[0], 3), "journal_write": round(t3 - t2, 3)}}))
"""
    work = tmp / "phases"
    work.mkdir()
    _git_repo(work, env)
    subprocess.run([COM, "init"], cwd=work, check=True, env=env, capture_output=True)
    c0 = _child_cpu()
    out = subprocess.run([sys.executable, "-c", code], cwd=work, env=env, capture_output=True, text=True, check=True)
    phases = json.loads(out.stdout)
    phases["process_total"] = round(_child_cpu() - c0, 3)
    return phases


def _child_cpu() -> float:
    """User + system CPU seconds of finished child processes: steadier than wall time on a busy machine."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def make_pytest_project(root: Path, tests: int) -> None:
    files = max(1, tests // 100)
    per = tests // files
    (root / "tests").mkdir(parents=True)
    for f in range(files):
        body = ["import pytest", ""]
        for i in range(per):
            body.append(f"def test_{i}():\n    assert {i} + 1 == {i + 1}\n")
        (root / "tests" / f"test_m{f}.py").write_text("\n".join(body))
    (root / "pytest.ini").write_text("[pytest]\naddopts = -p no:cacheprovider\n")


def _become_subreaper() -> bool:
    """Orphaned descendants (the plugin's writer, finishing its view catch-up after pytest returned) become
    this process's children, so they can be waited for and their CPU time counted (Linux)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        return False


def _reap_orphans() -> None:
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return


def time_pairs(commands: dict[str, list], cwd: Path, env: dict, pairs: int, check=None, timeout: float = 3600) -> dict:
    """Interleaved pairs of whole processes: `commands` is {"off": [...], "com": [...]}; each pair runs both,
    the order alternating from pair to pair (drift and a warm-up effect hit both sides alike). Wall time is
    until the command returns (what the user waits for); CPU time (user + system) includes every process
    it left behind, which is waited for before the next run so it competes with neither. Returns the median
    of the pairs' com/off ratios (the figure the target is about), the medians, and the load average."""
    subreaper = _become_subreaper()
    names = list(commands)
    wall: dict[str, list[float]] = {k: [] for k in names}
    cpu: dict[str, list[float]] = {k: [] for k in names}
    tail: list[float] = []
    load = [os.getloadavg()[0]]
    for i in range(pairs):
        for mode in names if i % 2 == 0 else names[::-1]:
            c0 = _child_cpu()
            t0 = time.perf_counter()
            r = subprocess.run(commands[mode], cwd=cwd, env=env, capture_output=True, text=True, errors="replace",
                               timeout=timeout)
            t1 = time.perf_counter()
            _reap_orphans()
            if mode == "com":
                tail.append(time.perf_counter() - t1)
            wall[mode].append(t1 - t0)
            cpu[mode].append(_child_cpu() - c0)
            if check is not None:
                check(mode, r)
        load.append(os.getloadavg()[0])
    ratio = [c / o for c, o in zip(wall["com"], wall["off"])]
    cpu_ratio = [c / o for c, o in zip(cpu["com"], cpu["off"])]
    med = {k: statistics.median(v) for k, v in wall.items()}
    # Any other command (another checkout's --com, say): its own ratios to "off", from the same pairs.
    others = {name: {"median_pair_ratio": round(statistics.median(c / o for c, o in zip(wall[name], wall["off"])), 4),
                     "cpu_median_pair_ratio": round(statistics.median(c / o for c, o in zip(cpu[name], cpu["off"])), 4)}
              for name in names if name not in ("off", "com")}
    return {
        "pairs": pairs,
        "median_pair_ratio": round(statistics.median(ratio), 4),
        "pair_ratios": [round(x, 3) for x in ratio],
        "ratio_of_medians": round(med["com"] / med["off"], 4),
        "cpu_median_pair_ratio": round(statistics.median(cpu_ratio), 4),
        "wall_s_median": {k: round(v, 3) for k, v in med.items()},
        "cpu_s_median": {k: round(statistics.median(v), 3) for k, v in cpu.items()},
        "wall_s_runs": {k: [round(t, 3) for t in v] for k, v in wall.items()},
        # What the writer still did after pytest returned (taking the session into com's views).
        "writer_after_return_s_median": round(statistics.median(tail), 3) if subreaper and tail else None,
        "loadavg_1min": {"min": round(min(load), 2), "median": round(statistics.median(load), 2),
                         "max": round(max(load), 2)},
        **({"others": others} if others else {}),
    }


def bench_pytest(tests: int, pairs: int, compare: str | None = None) -> dict:
    with tempfile.TemporaryDirectory(prefix="com-bench-pytest-") as tmp:
        root = Path(tmp) / "proj"
        root.mkdir()
        env = _env()
        make_pytest_project(root, tests)
        _git_repo(root, env)
        subprocess.run([COM, "init"], cwd=root, check=True, env=env, capture_output=True)
        base = [sys.executable, "-m", "pytest", "-q", "tests"]
        commands = {"off": base, "com": base + ["--com"]}
        if compare:  # the same session recorded by another checkout's plugin, in the same rotation
            this = env.get("PYTHONPATH", str(ROOT_DIR))
            commands = {name: ["env", f"PYTHONPATH={this}", *cmd] for name, cmd in commands.items()}
            commands["compare"] = ["env", f"PYTHONPATH={compare}", *base, "--com"]
        for cmd in commands.values():  # warm the file cache and .pyc files
            subprocess.run(cmd, cwd=root, env=env, capture_output=True)

        def check(mode, r):
            if r.returncode != 0:
                raise SystemExit(f"pytest {mode} failed:\n{r.stdout[-2000:]}{r.stderr[-2000:]}")
            if mode != "off" and "com: recorded" not in r.stdout:
                raise SystemExit(f"pytest --com did not record:\n{r.stdout[-2000:]}")

        out = {"tests": tests, **time_pairs(commands, root, env, pairs, check)}
        if compare:
            out["compare"] = compare
        out["target_ratio_max"] = 1.05
        return out


def bench_jsonl(source: Path, repeat: int, compare: str | None) -> dict:
    """`com ingest --file` of `source` into a fresh memory, `repeat` times (interleaved with the --compare
    checkout's runs): wall, CPU (user+sys) and peak RSS of the process, medians, the load average beside each."""
    events = sum(1 for line in source.open("rb") if line.strip())
    trees = {"this": ROOT_DIR, **({"compare": compare} if compare else {})}
    runs: dict[str, list[dict]] = {name: [] for name in trees}
    with tempfile.TemporaryDirectory(prefix="com-bench-jsonl-") as tmp:
        for n in range(repeat):
            for name, tree in trees.items():
                memory = Path(tmp) / f"{name}{n}"
                env = _env({"COM_DIR": str(memory), "PYTHONPATH": str(tree)})
                subprocess.run([COM, "init"], check=True, env=env, capture_output=True)
                load = os.getloadavg()[0]
                wall, cpu, rss, out = _measured([COM, "ingest", "--file", str(source), "--json"], env)
                added = json.loads(out)["added"]
                if added != events:
                    raise SystemExit(f"{name}: added {added} of {events} events")
                tree_id = subprocess.run(["git", "--git-dir", str(memory / "journal.git"), "rev-parse", "HEAD^{tree}"],
                                         capture_output=True, text=True, check=True).stdout.strip()
                runs[name].append({"wall_s": wall, "cpu_s": cpu, "rss_mib": rss, "load1": load, "tree": tree_id})
                shutil.rmtree(memory)
    out = {"events": events, "file_mb": round(source.stat().st_size / 1e6, 1)}
    for name, rows in runs.items():
        wall = statistics.median(r["wall_s"] for r in rows)
        cpu = statistics.median(r["cpu_s"] for r in rows)
        out[name] = {
            "code": str(trees[name]),
            "wall_s_median": round(wall, 2), "cpu_s_median": round(cpu, 2),
            "events_per_s": round(events / wall), "events_per_cpu_s": round(events / cpu),
            "rss_mib_median": round(statistics.median(r["rss_mib"] for r in rows)),
            "runs": [{k: round(v, 2) if isinstance(v, float) else v for k, v in r.items() if k != "tree"} for r in rows],
            "journal_tree": sorted({r["tree"] for r in rows}),
        }
    if compare:
        out["same_journal_tree"] = out["this"]["journal_tree"] == out["compare"]["journal_tree"]
    out["target_events_per_s"], out["target_rss_mib"] = 50_000, 600
    return out


def _measured(args: list[str], env: dict) -> tuple[float, float, float, str]:
    """Wall seconds, CPU seconds (user+sys) and peak RSS (MiB) of one process (its own rusage, from wait4), and
    its stdout."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(args[:3])} failed: {err.read().decode()[-2000:]}")
        return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, out.read().decode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=50_000)
    parser.add_argument("--tests", type=int, default=2_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each JUnit ingest (median)")
    parser.add_argument("--pairs", type=int, default=15, help="interleaved pytest pairs, with and without --com")
    parser.add_argument("--skip-pytest", action="store_true")
    parser.add_argument("--skip-junit", action="store_true")
    parser.add_argument("--small-tests", type=int, default=7, help="the small session's size (0: not run)")
    parser.add_argument("--jsonl", type=Path, help="only: `com ingest --file` of this JSONL file")
    parser.add_argument("--compare", help="another checkout to run interleaved (its PYTHONPATH): with --jsonl its "
                        "`com ingest --file`, else its `pytest --com` beside this one's")
    args = parser.parse_args()
    if args.jsonl:
        out = {"cpus": os.cpu_count(), "loadavg_before": [round(x, 2) for x in os.getloadavg()]}
        out["jsonl"] = bench_jsonl(args.jsonl, args.repeat, args.compare)
        out["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
        print(json.dumps(out, indent=2))
        return
    # Other work on the machine inflates wall times: the load average before and after says how much.
    out = {"cpus": os.cpu_count(), "loadavg_before": [round(x, 2) for x in os.getloadavg()],
           "pycache": "PYTHONPYCACHEPREFIX=" + str(PYCACHE)}
    if not args.skip_junit:
        out["junit"] = bench_junit(args.cases, args.repeat)
    if not args.skip_pytest:
        out["pytest_plugin"] = bench_pytest(args.tests, args.pairs, args.compare)
        if args.small_tests:
            out["pytest_plugin_small"] = bench_pytest(args.small_tests, args.pairs, args.compare)
    out["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
