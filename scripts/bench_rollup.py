"""Benchmark of the roll-up narrative on this machine; prints one JSON object (medians over --repeat).

    .venv/bin/python scripts/bench_rollup.py [--model gemma3-270m] [--repeat 3] [--keep DIR]

Measures, with the real model through llama-cpp-python (2 threads):
- model load time in a fresh process (the GGUF already assembled in the cache folder);
- generation speed: tokens/s of a 96-token completion, free and under the narrative grammar, and the prompt
  evaluation speed of a daily prompt;
- the wall time of one daily roll-up in a fresh process, as `com rollup daily` will run it until that
  command is wired: python start, find the default model without configuration, read the memory's results
  (through the temporary adapter scripts/rollup_columns.py), compute the facts, write the narrative (model,
  grammar, grounding check). Target: <= 15 s with the 270M model. The same with --no-llm for comparison;
- the facts alone, in-process, on 1,000,000 synthetic results (10,000 tests x 100 runs).
The history is the one of scripts/eval_narrative.py (about two months, 80 tests).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

# One daily roll-up, whole process: what `com rollup daily` will do.
ROLLUP = r"""
import json, sys, time
t0 = time.perf_counter()
sys.path.insert(0, {scripts!r})
from pathlib import Path
from com.memory import Memory
from com.analysis import rollup, narrative
from com.models import text
from rollup_columns import columns_from_memory
memory = Memory(Path({memory!r}))
model, why = (None, "--no-llm") if {no_llm!r} else text.find_model({model!r}, memory.cache_path / "models")
t1 = time.perf_counter()
cols, tags, healing, registry = columns_from_memory(memory)
t2 = time.perf_counter()
facts = rollup.daily_facts(cols, {day!r}, registry_changes=registry, healing_attempts=healing)
t3 = time.perf_counter()
n = narrative.write(facts, model, no_model_reason=why)
t4 = time.perf_counter()
print(json.dumps({{"model": n.model, "grounded": n.model is not None, "attempts": len(n.attempts),
                  "imports_and_discovery": t1 - t0, "columns": t2 - t1, "facts": t3 - t2, "narrative": t4 - t3,
                  "load": getattr(model, "load_seconds", None), "narrative_text": n.text}}))
"""

LOAD = r"""
import json, time
from com.models import text
m = text.LlamaCppModel({path!r})
t0 = time.perf_counter(); m.llama; print(json.dumps({{"load": time.perf_counter() - t0}}))
"""


def _run(code: str) -> tuple[dict, float]:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - t0
    if out.returncode:
        raise SystemExit(f"bench_rollup: a measured process failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1]), wall


def synthetic_columns(tests: int = 10_000, runs: int = 100, days: int = 30, seed: int = 1):
    """`tests` x `runs` results over `days` days: 3% flaky tests failing a fifth of the time, a few broken."""
    import numpy as np

    from com.analysis.rollup import DAY_US, ResultColumns, to_us

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
    """In-process time of the facts alone on 1,000,000 results (10,000 tests x 100 runs over 30 days)."""
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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="Packaged model name or .gguf (default: the packaged default)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--keep", type=Path, help="Folder for the history (kept and reused); default a temp dir")
    args = ap.parse_args(argv)

    import eval_narrative
    from com.analysis import narrative
    from com.models import text

    folder = args.keep or Path(tempfile.mkdtemp(prefix="com-bench-rollup-"))
    data = eval_narrative.build_history(folder)
    memory = data["memory"]
    cache = memory.cache_path / "models"
    model, why = text.find_model(args.model, cache)
    if model is None:
        raise SystemExit(f"bench_rollup: {why}")
    days = eval_narrative.days_with_runs(data["cols"], 60)
    day = days[len(days) // 2]
    report = {"model": model.name, "day": day, "load_average_1min_start": round(os.getloadavg()[0], 2),
              "cpu_count": os.cpu_count(), "threads": text.N_THREADS}

    loads = [_run(LOAD.format(path=str(model.path)))[0]["load"] for _ in range(args.repeat)]
    report["load_seconds"] = _median(loads)

    facts = eval_narrative.daily(data, day)
    s = narrative.slots(facts)
    prompt = narrative.prompt(facts, s)
    gbnf = narrative.grammar(s, words=narrative.vocabulary(facts, s))
    free, constrained, prompt_rate = [], [], []
    model.llama  # loaded once here
    for _ in range(args.repeat):
        model.llama.reset()  # no cached prefix: the prompt is evaluated in full
        model.complete(prompt, max_tokens=1)
        prompt_rate.append(model.last.prompt_tokens / model.last.prompt_seconds)
        model.complete("Once upon a time, in a village by the sea, there lived", max_tokens=96)
        free.append(model.last.tokens_per_second)
        model.llama.reset()
        model.complete(prompt, max_tokens=96, grammar=gbnf)
        constrained.append(model.last.tokens_per_second)
    report["prompt_tokens"] = model.last.prompt_tokens
    report["prompt_eval_tokens_per_second"] = _median(prompt_rate)
    report["tokens_per_second"] = _median(free)
    report["tokens_per_second_with_grammar"] = _median(constrained)

    walls, parts = [], []
    for _ in range(args.repeat):
        out, wall = _run(ROLLUP.format(scripts=str(ROOT / "scripts"), memory=str(memory.root), no_llm=False,
                                       model=args.model, day=day))
        walls.append(wall)
        parts.append(out)
    report["daily_rollup_wall_seconds"] = _median(walls)
    report["daily_rollup_parts"] = {k: _median([p[k] for p in parts])
                                    for k in ("imports_and_discovery", "columns", "facts", "load", "narrative")}
    report["daily_rollup_grounded"] = sum(p["grounded"] for p in parts)
    report["daily_rollup_runs"] = len(parts)
    report["example"] = parts[0]["narrative_text"]
    no_llm = [_run(ROLLUP.format(scripts=str(ROOT / "scripts"), memory=str(memory.root), no_llm=True,
                                 model=None, day=day))[1] for _ in range(args.repeat)]
    report["daily_rollup_no_llm_wall_seconds"] = _median(no_llm)
    report["facts_seconds_1m_results"] = facts_timings(args.repeat)
    report["load_average_1min_end"] = round(os.getloadavg()[0], 2)
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
