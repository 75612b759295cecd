"""Benchmark of `com rollup` on this machine; prints one JSON object (medians over --repeat), load average beside.

    .venv/bin/python scripts/bench_rollup.py [--model gemma3-270m] [--repeat 3] [--keep DIR]

Measures the real command, `com rollup daily --date D --json`, each time a fresh process as a user runs it
(python start, the memory, the test-results and registry views, the facts, finding the default model without
configuration, loading it, the narrative with its grammar and grounding check, saving the `rollup` event):
- wall time and CPU time (user + sys) of the whole process; target: <= 15 s wall with the 270M model;
- from the command's own JSON (`timing`): the model's load time, generation speed (tokens/s), tokens written,
  the narrative's seconds, and whether the model's text passed the check;
- the same with `--no-llm`, and `com rollup weekly` / `com rollup pattern` once each with the model;
- the facts alone, in-process, on 1,000,000 synthetic results (10,000 tests x 100 runs).
The history is the one of scripts/eval_narrative.py (about two months, 80 tests, with a flaky registry).
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
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))
COM = Path(sys.executable).parent / "com"


def _com(memory: Path, *args) -> tuple[dict, float, float]:
    """(the command's JSON, wall seconds, CPU seconds of the process)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out = subprocess.run([str(COM), "--memory", str(memory), "rollup", *args, "--json"], capture_output=True,
                         text=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode:
        raise SystemExit(f"bench_rollup: com rollup {' '.join(args)} failed:\n{out.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return json.loads(out.stdout), wall, cpu


def synthetic_columns(tests: int = 10_000, runs: int = 100, days: int = 30, seed: int = 1):
    """`tests` x `runs` results over `days` days: 3% flaky tests failing a fifth of the time, a few broken."""
    import numpy as np

    from com.analysis.rollup import DAY_US, to_us
    from com.model.result import ResultColumns

    rng = np.random.default_rng(seed)
    n = tests * runs
    test = np.tile(np.arange(tests, dtype=np.int32), runs)
    run = np.repeat(np.arange(runs, dtype=np.int32), tests)
    start = to_us("2026-01-05")
    ts = start + run.astype(np.int64) * (days * DAY_US // runs) + test.astype(np.int64) * 1000
    flaky = rng.random(tests) < 0.03
    broken = rng.random(tests) < 0.005
    fails = (flaky[test] & (rng.random(n) < 0.2)) | (broken[test] & (run > runs // 2))
    status = np.where(fails, 1, 0).astype(np.int8)
    sig = np.where(fails, test % 40, -1).astype(np.int32)
    return ResultColumns(test=test, tests=[f"tests/test_m{t // 50}.py::test_{t}" for t in range(tests)],
                         ts_us=ts, status=status, attempt=np.ones(n, np.int16),
                         duration_ms=rng.lognormal(3, 1, n), run=run, runs=[f"run-{r}" for r in range(runs)],
                         commit=(run // 2).astype(np.int32), commits=[f"{c:040x}" for c in range(runs // 2 + 1)],
                         signature=sig, signatures=[f"AssertionError: case {k}" for k in range(40)])


def facts_timings(repeat: int) -> dict:
    """In-process seconds of the facts alone on 1,000,000 results (10,000 tests x 100 runs over 30 days)."""
    from com.analysis import rollup

    cols = synthetic_columns()
    out = {}
    for name, call in (("daily", lambda: rollup.daily_facts(cols, "2026-01-20")),
                       ("weekly", lambda: rollup.weekly_facts(cols, "2026-01-19")),
                       ("pattern_test", lambda: rollup.pattern_facts(cols, until="2026-02-03", test=cols.tests[7])),
                       ("pattern_signature", lambda: rollup.pattern_facts(cols, until="2026-02-03",
                                                                          signature="case 3"))):
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            call()
            times.append(time.perf_counter() - t0)
        out[name] = round(statistics.median(times), 3)
    return out


def _median(values):
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 3) if values else None


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="Packaged model name or .gguf (default: found as com finds it)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--keep", type=Path, help="Folder for the history (kept and reused); default a temp dir")
    args = ap.parse_args(argv)

    import eval_narrative

    folder = args.keep or Path(tempfile.mkdtemp(prefix="com-bench-rollup-"))
    data = eval_narrative.build_history(folder)
    memory = data["memory"].root
    days = eval_narrative.days_with_runs(data["cols"], 60)
    day = days[len(days) // 2]
    model = ["--model", args.model] if args.model else []
    report = {"day": day, "results": int(len(data["cols"].test)), "cpu_count": os.cpu_count(),
              "load_average_start": _load()}

    # The first run assembles the packaged model into .com/cache/models/ once: timed apart.
    first, wall, cpu = _com(memory, "daily", "--date", day, *model)
    report["model"] = first["model"]
    report["first_run_wall_seconds"] = round(wall, 2)
    runs = []
    for _ in range(args.repeat):
        out, wall, cpu = _com(memory, "daily", "--date", day, *model)
        runs.append((out, wall, cpu))
    timing = [o["timing"] for o, _, _ in runs]
    report["daily"] = {
        "wall_seconds": _median([w for _, w, _ in runs]),
        "cpu_seconds": _median([c for _, _, c in runs]),
        "model_load_seconds": _median([t["model_load_seconds"] for t in timing]),
        "tokens_per_second": _median([t["tokens_per_second"] for t in timing]),
        "completion_tokens": _median([t["completion_tokens"] for t in timing]),
        "prompt_tokens": _median([t["prompt_tokens"] for t in timing]),
        "narrative_seconds": _median([t["narrative_seconds"] for t in timing]),
        "facts_seconds": _median([t["facts_seconds"] for t in timing]),
        "attempts": [t["attempts"] for t in timing],
        "written_by_model": sum(o["model"] is not None for o, _, _ in runs),
        "runs": len(runs),
        "load_average": _load(),
    }
    report["example"] = runs[0][0]["narrative"]
    no_llm = [_com(memory, "daily", "--date", day, "--no-llm", "--no-save") for _ in range(args.repeat)]
    report["daily_no_llm"] = {"wall_seconds": _median([w for _, w, _ in no_llm]),
                              "cpu_seconds": _median([c for _, _, c in no_llm]), "load_average": _load()}
    year, number, _ = date.fromisoformat(days[min(7, len(days) - 1)]).isocalendar()
    week = f"{year}-W{number:02d}"
    out, wall, cpu = _com(memory, "weekly", "--week", week, "--no-save", *model)
    report["weekly_once"] = {"week": week, "wall_seconds": round(wall, 2), "cpu_seconds": round(cpu, 2),
                             "written_by_model": out["model"] is not None, "timing": out["timing"],
                             "load_average": _load()}
    import numpy as np

    cols = data["cols"]
    failing = (cols.status == 1) | (cols.status == 2)
    test = cols.tests[int(np.bincount(cols.test[failing]).argmax())]
    out, wall, cpu = _com(memory, "pattern", "--test", test, "--days", "60", "--no-save", *model)
    report["pattern_once"] = {"test": test, "wall_seconds": round(wall, 2), "cpu_seconds": round(cpu, 2),
                              "written_by_model": out["model"] is not None, "timing": out["timing"],
                              "load_average": _load()}
    report["facts_seconds_1m_results"] = facts_timings(args.repeat)
    report["load_average_end"] = _load()
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
