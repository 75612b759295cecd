"""Run every scripts/bench_*.py and write one JSON document of their figures, so a later change can be
compared figure by figure (same machine facts, same dataset sizes, each script's own JSON and runtime).

    python scripts/bench.py [--out bench-results.json] [--only history] [--timeout 3600]

Each benchmark is a separate process that prints one JSON object on stdout (progress on stderr).
The document goes to stdout and to --out. Exit code 1 when a benchmark failed (its stderr tail is kept).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent
ROOT = SCRIPTS.parent
SCHEMA = 1
# Keys that say how big a benchmark's data set was; collected into "datasets" so runs compare like with like.
SIZE_KEYS = {"tests", "testcases", "cases", "events", "results", "runs", "commits", "reports", "queries",
             "junit_bytes", "report_mb", "documents", "files"}


def machine() -> dict:
    info = {"cpu_count": os.cpu_count(), "platform": platform.platform(), "machine": platform.machine(),
            "python": platform.python_version()}
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                info["memory_gb"] = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    try:
        info["cpu_model"] = next(
            line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        pass
    return info


def code_revision() -> dict:
    def git(*args):
        r = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return r.stdout.strip() if r.returncode == 0 else None

    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": git("rev-parse", "HEAD"), "dirty": bool(status) if status is not None else None}


def dataset_sizes(figures, prefix: str = "") -> dict:
    """Every size-like number in a benchmark's figures, by dotted path (e.g. junit.testcases)."""
    out = {}
    if isinstance(figures, dict):
        if isinstance(figures.get("dataset"), dict):
            out.update({f"{prefix}dataset.{k}": v for k, v in figures["dataset"].items()})
        for key, value in figures.items():
            if key == "dataset":
                continue
            if isinstance(value, dict):
                out.update(dataset_sizes(value, f"{prefix}{key}."))
            elif key in SIZE_KEYS and isinstance(value, (int, float)) and not isinstance(value, bool):
                out[prefix + key] = value
    return out


def parse_figures(stdout: str):
    """The benchmark's JSON object: the whole stdout, else the last line that parses as one."""
    text = stdout.strip()
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    start = text.rfind("\n{")
    while start != -1:
        try:
            return json.loads(text[start + 1:])
        except json.JSONDecodeError:
            start = text.rfind("\n{", 0, start)
    try:
        return json.loads(text[text.index("{"):])
    except (ValueError, json.JSONDecodeError):
        return None


def run_one(script: Path, timeout: float) -> dict:
    print(f"bench: {script.name} …", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    try:
        r = subprocess.run([sys.executable, str(script)], cwd=ROOT, capture_output=True, text=True, timeout=timeout)
        code, stdout, stderr = r.returncode, r.stdout, r.stderr
    except subprocess.TimeoutExpired as exc:
        code, stdout, stderr = None, exc.stdout or "", f"timed out after {timeout:g}s"
        stdout = stdout.decode() if isinstance(stdout, bytes) else stdout
    seconds = round(time.perf_counter() - t0, 3)
    figures = parse_figures(stdout) if stdout else None
    result = {"seconds": seconds, "exit_code": code, "figures": figures}
    if code != 0 or figures is None:
        result["error"] = (stderr or "no JSON on stdout")[-2000:]
    print(f"bench: {script.name} done in {seconds:.1f}s" + ("" if "error" not in result else " (FAILED)"),
          file=sys.stderr, flush=True)
    return result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "bench-results.json", help="Also write the document here")
    ap.add_argument("--only", action="append", default=[], help="Run only benchmarks whose name contains this")
    ap.add_argument("--timeout", type=float, default=3600.0, help="Seconds one benchmark may take")
    args = ap.parse_args(argv)
    scripts = sorted(SCRIPTS.glob("bench_*.py"))
    if args.only:
        scripts = [s for s in scripts if any(o in s.stem for o in args.only)]
    if not scripts:
        print("bench: no scripts/bench_*.py to run", file=sys.stderr)
        return 2
    started = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    benchmarks = {s.stem: run_one(s, args.timeout) for s in scripts}
    doc = {
        "schema": SCHEMA,
        "started": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "total_seconds": round(time.perf_counter() - t0, 3),
        "machine": machine(),
        "code": code_revision(),
        "datasets": {name: dataset_sizes(b["figures"]) for name, b in benchmarks.items() if b["figures"]},
        "benchmarks": benchmarks,
    }
    text = json.dumps(doc, indent=2)
    print(text)
    args.out.write_text(text + "\n")
    print(f"bench: wrote {args.out}", file=sys.stderr)
    return 1 if any("error" in b for b in benchmarks.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
