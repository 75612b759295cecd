"""`make demo`: show what com does on a realistic history, with the real commands and their real output.

When there is no memory yet (no .com/ here and no $COM_DIR), a sample project's life is generated into
./demo/ (a code repository, one JUnit report per CI run, ground_truth.json) and recorded in ./.com/, one
journal commit per CI run. Then every capability the installed `com` has is run on it and printed as a
user would type it. Commands a later version adds (search, flaky, select, retrieve, rollup) are run
when `com --help` lists them and skipped otherwise.

    python scripts/demo.py [--fresh] [--tests 300 --commits 30 --runs-per-commit 2]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent
ROOT = SCRIPTS.parent
sys.path.insert(0, str(SCRIPTS))
import gen_history  # noqa: E402

COM = str(Path(sys.executable).parent / "com")
WIDTH = 100


def say(text: str = "") -> None:
    print(text, flush=True)


def heading(text: str) -> None:
    say()
    say(f"== {text} " + "=" * max(0, WIDTH - len(text) - 4))


def com(*args, show: bool = True, max_lines: int = 40):
    """Run the real `com` as a user would and print the command and its output."""
    r = subprocess.run([COM, *map(str, args)], cwd=ROOT, capture_output=True, text=True)
    if show:
        say(f"$ com {' '.join(_quote(a) for a in args)}")
        lines = (r.stdout or "").rstrip("\n").splitlines()
        for line in lines[:max_lines]:
            say("  " + line[:WIDTH + 40])
        if len(lines) > max_lines:
            say(f"  … ({len(lines) - max_lines} more lines)")
        if r.returncode != 0:
            say(f"  [exit {r.returncode}] {(r.stderr or '').strip().splitlines()[-1] if r.stderr.strip() else ''}")
    return r


def _quote(arg) -> str:
    arg = str(arg)
    return f"'{arg}'" if any(c in arg for c in " ;|&*?[]\"") else arg


def commands_available() -> set[str]:
    r = subprocess.run([COM, "--help"], capture_output=True, text=True)
    names, in_list = set(), False
    for line in r.stdout.splitlines():
        if line.strip() == "Commands:":
            in_list = True
        elif in_list and line.startswith("  ") and line.strip():
            names.add(line.split()[0])
    return names


def memory_exists() -> Path | None:
    env = os.environ.get("COM_DIR")
    if env:
        return Path(env) if (Path(env) / "journal.git").is_dir() else None
    here = ROOT / ".com"
    return here if (here / "journal.git").is_dir() else None


def build(args) -> gen_history.History:
    from com.memory import Memory

    demo = ROOT / "demo"
    if demo.exists():
        shutil.rmtree(demo)
    heading("Generating a sample history")
    t0 = time.perf_counter()
    history = gen_history.generate(demo, seed=args.seed, tests=args.tests, commits=args.commits,
                                   runs_per_commit=args.runs_per_commit, flaky_fraction=0.05)
    gen_s = time.perf_counter() - t0
    totals = history.truth["totals"]
    say(f"{totals['tests']} tests, {len(history.truth['commits'])} code commits, {totals['runs']} CI runs, "
        f"{totals['results']:,} results in {gen_s:.1f}s")
    say(f"  code repository: demo/code ({len(history.truth['modules'])} modules)   reports: demo/junit/"
        f"   ground truth: demo/ground_truth.json")
    memory, _ = Memory.init(os.environ.get("COM_DIR") or ROOT / ".com")
    t1 = time.perf_counter()

    def progress(done, total):
        if done == total or done % max(1, total // 4) == 0:
            print(f"  recorded {done}/{total} CI runs", file=sys.stderr, flush=True)

    gen_history.ingest(history, memory, progress=progress)
    say(f"Recorded every run with `com ingest --junit` (Python API) into {_rel(memory.root)}: "
        f"one journal commit per CI run, in {time.perf_counter() - t1:.1f}s")
    return history


def _rel(path: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def journal_commit_of(runs_log: list[dict], run_id: str) -> str | None:
    for c in runs_log:
        if f"CI run {run_id} " in c["message"]:
            return c["commit"]
    return None


def show_history(history: gen_history.History | None, available: set[str]) -> None:
    truth = history.truth if history else None
    heading("The journal is a git repository: one commit per CI run")
    com("log", "-n", "5")
    say(f"$ git --git-dir {_rel(ROOT / '.com' / 'journal.git')} log --oneline -3")
    journal = (Path(os.environ["COM_DIR"]) if os.environ.get("COM_DIR") else ROOT / ".com") / "journal.git"
    say("  " + "\n  ".join(subprocess.run(["git", "--git-dir", str(journal), "log", "--oneline", "-3"],
                                          capture_output=True, text=True).stdout.strip().splitlines()))

    heading("Events: the latest results, and the failures")
    com("events", "--limit", "5")
    com("events", "--status", "failed", "--limit", "5")

    log_json = json.loads(com("log", "--json", show=False).stdout or '{"commits": []}')["commits"]
    if truth:
        _show_breakage(truth, log_json)
        _show_flaky(truth)
        first = truth["runs"][len(truth["runs"]) // 3]
        heading("Time travel: the journal as it was at a date")
        com("log", "--at", first["end"][:16], "-n", "3")
    else:
        heading("What changed in the last CI run")
        com("diff", "HEAD~1", "HEAD")
        com("show", "HEAD", max_lines=12)

    _show_later_capabilities(truth, available)


def _show_breakage(truth: dict, log_json: list[dict]) -> None:
    runs = truth["runs"]
    fixes = {c["sha"]: c["fixes"] for c in truth["commits"]}
    fixed = [b for b in truth["breakages"] if b["via"] == "import" and b["fixed_by"]]
    if not fixed:
        return
    # The one that broke most tests shows best; a commit that only breaks reads clearer than one that also fixes.
    breakage = max(fixed, key=lambda b: (not fixes[b["commit"]], len(b["tests"])))
    first_run = next(n for n, r in enumerate(runs) if r["commit"] == breakage["commit"])
    if first_run == 0:
        return
    before = journal_commit_of(log_json, runs[first_run - 1]["run_id"])
    broke = journal_commit_of(log_json, runs[first_run]["run_id"])
    commit = next(c for c in truth["commits"] if c["sha"] == breakage["commit"])
    heading(f"A code commit that broke tests: {commit['sha'][:10]} \"{commit['message']}\"")
    say(f"It changed {', '.join(commit['files'])}.")
    say(f"Planted by the generator: {len(breakage['tests'])} test(s) importing {breakage['module']} (directly or "
        f"through other modules) fail from here until the fix; flaky tests add their own noise:")
    for test_id in breakage["tests"]:
        say(f"  {test_id}")
    com("diff", before, broke)
    com("show", broke, max_lines=12)
    fix_run = next(n for n, r in enumerate(runs) if r["commit"] == breakage["fixed_by"])
    fixed = journal_commit_of(log_json, runs[fix_run]["run_id"])
    previous = journal_commit_of(log_json, runs[fix_run - 1]["run_id"])
    heading("The commit that fixed it")
    com("diff", previous, fixed)
    com("events", "--test", breakage["tests"][0], "--status", "failed", "--limit", "3")


def _show_flaky(truth: dict) -> None:
    if not truth["flaky"]:
        return
    heading("A flaky test: passes and fails on the same code commit")
    # The flakiest test whose failure is not a breakage, so its history shows the manifestation.
    test_id, profile = max(truth["flaky"].items(), key=lambda kv: kv[1]["rate"])
    say(f"{test_id}: planted flake rate {profile['rate']:.0%}, manifestation {profile['manifestation']}")
    com("events", "--test", test_id, "--limit", "6")


def _show_later_capabilities(truth: dict | None, available: set[str]) -> None:
    """Commands later versions add: run when installed, with the demo's own data."""
    flaky_id = max(truth["flaky"].items(), key=lambda kv: kv[1]["rate"])[0] if truth and truth["flaky"] else None
    any_test = flaky_id or (next(iter(truth["tests"])) if truth else None)
    planned = [
        ("search", "Search: semantic and keyword, over every event", [["search", "connection reset by peer", "-k", "5"]]),
        ("flaky", "Flaky tests, detected from history (compare with the planted ones above)",
         [["flaky", "detect"], *([["flaky", "show", flaky_id, "--no-similar"]] if flaky_id else []),
          ["flaky", "report", "--top", "5"]]),
        ("select", "Tests to run for a code change",
         [["select", "--diff", "HEAD~1", "--repo", str(ROOT / "demo" / "code"), "--format", "table"]] if truth else []),
        ("policies", "Context policies", [["policies"]]),
        ("retrieve", "A context pack for a root-cause hunt",
         [["retrieve", "--policy", "qa_root_cause", "--test", any_test, "--format", "markdown"]] if any_test else []),
        ("rollup", "What happened: a daily roll-up", [["rollup", "daily", "--no-llm"]]),
    ]
    missing = []
    for name, title, invocations in planned:
        if name not in available:
            missing.append(name)
            continue
        heading(title)
        for args in invocations:
            com(*args)
    if missing:
        heading("Not in this version yet")
        say("skipped (not listed by `com --help`): " + ", ".join(missing))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fresh", action="store_true",
                    help="Regenerate the sample (deletes ./demo and the memory first, if it holds only the demo)")
    # About 18,000 results: generated and recorded in well under a minute on 2 cores.
    ap.add_argument("--tests", type=int, default=300)
    ap.add_argument("--commits", type=int, default=30)
    ap.add_argument("--runs-per-commit", type=int, default=2)
    ap.add_argument("--seed", type=int, default=2026)
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    t0 = time.perf_counter()
    if args.fresh:
        existing = memory_exists()
        if existing is not None and not _is_demo_memory(existing):
            say(f"--fresh: {_rel(existing)} holds more than the demo's CI runs; not deleting it "
                f"(remove it yourself, or set COM_DIR to another folder)")
            return 2
        if existing is not None:
            shutil.rmtree(existing)
        shutil.rmtree(ROOT / "demo", ignore_errors=True)
    existing = memory_exists()
    history = None
    if existing is None:
        history = build(args)
    else:
        say(f"Using the existing memory at {_rel(existing)} (`python scripts/demo.py --fresh` regenerates the sample).")
        if (ROOT / "demo" / "ground_truth.json").is_file():
            history = gen_history.load(ROOT / "demo")
            if not _same_memory(existing, history):
                history = None
    show_history(history, commands_available())
    say()
    say(f"Demo done in {time.perf_counter() - t0:.0f}s. Try it yourself: .venv/bin/com --help")
    return 0


def _is_demo_memory(memory: Path) -> bool:
    """Whether every journal commit is one of the demo's CI runs (so deleting the memory loses nothing)."""
    r = subprocess.run(["git", "--git-dir", str(memory / "journal.git"), "log", "--format=%s"],
                       capture_output=True, text=True)
    return r.returncode != 0 or all(line.startswith("CI run run-") for line in r.stdout.splitlines())


def _same_memory(memory: Path, history: gen_history.History) -> bool:
    """Whether the memory holds this generated history (its last run is in the journal)."""
    r = subprocess.run(["git", "--git-dir", str(memory / "journal.git"), "log", "-1", "--format=%s"],
                       capture_output=True, text=True)
    return f"CI run {history.runs[-1]['run_id']} " in r.stdout


if __name__ == "__main__":
    sys.exit(main())
