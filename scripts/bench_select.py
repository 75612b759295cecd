"""`com select` on a large history: in-process and whole-process times (prints JSON).

    python scripts/bench_select.py [--history DIR] [--repeat 5] [--spec HEAD~1] [--semantic]

DIR holds a generated history (gen_history: `code/` and `ground_truth.json`) and its memory in `DIR/.com`
(recorded first if missing). Without --history a history of 10,000 tests x 50 commits x 2 runs (1,000,000
results) is generated into a temp folder and recorded. Measured, as medians of --repeat runs, wall and CPU
(user + system) seconds, with the load average beside them (the machine is shared):
  in_process       ops.select.select(memory, --diff SPEC): the graph loaded from its cache (a repeat push)
  in_process_cold  the same with the code revision's graph built again (file summaries cached): a new commit
  process          `com select --diff SPEC --repo code` as a whole process (interpreter, imports, memory, select)
  process_model_load  a process that loads the embedding model and embeds one new text (what --semantic adds)
  process_semantic with --semantic: the same with the embedding model loaded and the index brought up to date
                   first (its first run embeds the whole history's texts and is reported separately)
Per-stage CPU seconds of the in-process run say where the time goes.
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _median(xs):
    return round(statistics.median(xs), 4)


def prepare_history(path: Path | None, tmp: Path) -> Path:
    import gen_history
    from com.memory import Memory

    if path is None:
        path = tmp / "h"
        gen_history.generate(path, seed=11, tests=10_000, commits=50, runs_per_commit=2)
    if not (path / ".com" / "journal.git").is_dir():
        memory, _ = Memory.init(path / ".com")
        gen_history.ingest(gen_history.load(path), memory, warn=lambda message: None)
        memory.close()
    return path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--history", type=Path, help="A generated history with its memory (default: generate one)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--spec", default="HEAD~1")
    ap.add_argument("--semantic", action="store_true", help="Also time --semantic (builds the index first)")
    args = ap.parse_args(argv)
    from com.memory import Memory
    from com.ops import select as ops_select

    out: dict = {"load_before": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="bench-select-") as tmp:
        history = prepare_history(args.history, Path(tmp))
        code, mem_dir = history / "code", history / ".com"
        memory = Memory(mem_dir)
        snap = memory.snapshot()
        memory.follow(snap, [memory.results])
        opts = ops_select.SelectOptions(diff=args.spec, repo=str(code))
        ops_select.select(memory, opts)  # warm: the view caught up, the graph of HEAD cached
        walls, cpus, stages = [], [], []
        for _ in range(args.repeat):
            t, c = time.perf_counter(), time.process_time()
            result = ops_select.select(memory, opts)
            walls.append(time.perf_counter() - t)
            cpus.append(time.process_time() - c)
            stages.append(result.cpu_seconds)
        out["history"] = {**result.history, "candidates": result.candidates, "selected": len(result.selected),
                          "changed_files": len((result.diff or {}).get("files") or [])}
        out["in_process"] = {"wall": _median(walls), "cpu": _median(cpus),
                             "cpu_by_stage": {k: _median([s.get(k, 0.0) for s in stages]) for k in stages[0]}}
        graphs = mem_dir / "cache" / "code" / "graphs"
        walls, cpus = [], []
        for _ in range(max(1, args.repeat // 2)):
            shutil.rmtree(graphs, ignore_errors=True)
            t, c = time.perf_counter(), time.process_time()
            ops_select.select(memory, opts)
            walls.append(time.perf_counter() - t)
            cpus.append(time.process_time() - c)
        out["in_process_cold_graph"] = {"wall": _median(walls), "cpu": _median(cpus)}
        memory.close()

        exe = [sys.executable, "-c", "from com.cli import main; main()", "--memory", str(mem_dir)]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}

        def process(extra=()):
            walls, cpus = [], []
            for _ in range(args.repeat):
                t, c = time.perf_counter(), _children_cpu()
                r = subprocess.run([*exe, "select", "--diff", args.spec, "--repo", str(code), *extra],
                                   capture_output=True, text=True, env=env, cwd=str(code))
                walls.append(time.perf_counter() - t)
                cpus.append(_children_cpu() - c)
                if r.returncode != 0:
                    raise SystemExit(f"com select failed: {r.stderr}")
            return {"wall": _median(walls), "cpu": _median(cpus)}

        out["process"] = process()
        # what --semantic adds to a process before any index work: loading the embedding model (a new text, so
        # the content-hash cache cannot answer it)
        probe = ("import sys, uuid; from com.memory import Memory; m = Memory(sys.argv[1]); "
                 "m.embedder().embed([uuid.uuid4().hex])")
        walls, cpus = [], []
        for _ in range(max(1, args.repeat // 2)):
            t, c = time.perf_counter(), _children_cpu()
            subprocess.run([sys.executable, "-c", probe, str(mem_dir)], check=True, capture_output=True, env=env)
            walls.append(time.perf_counter() - t)
            cpus.append(_children_cpu() - c)
        out["process_model_load"] = {"wall": _median(walls), "cpu": _median(cpus)}
        if args.semantic:
            t = time.perf_counter()
            subprocess.run([*exe, "index"], capture_output=True, text=True, env=env, cwd=str(code), check=True)
            out["index_first_build_seconds"] = round(time.perf_counter() - t, 1)
            out["process_semantic"] = process(("--semantic",))
    out["load_after"] = os.getloadavg()
    out["cpus"] = os.cpu_count()
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
