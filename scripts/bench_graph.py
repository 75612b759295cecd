"""Dependency-graph build and query times, and how much narrower name level is than module level (prints JSON).

    python scripts/bench_graph.py [--tests 10000] [--commits 12] [--repo PATH ...] [--repeat 3]

On a generated repository (gen_history, --tests tests): the graph build with an empty summary cache
(every file parsed), with a warm in-process cache, and with the cache loaded from its file (what a
pre-push hook pays), then per commit: diff + changed nodes + affected tests. For every commit of the
generated repository and of any --repo given (a real project's history), the mean number of tests
selected at name level versus module level (the test file's import closure contains a changed file).
Medians of --repeat runs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from com.code import diff as code_diff  # noqa: E402
from com.code import graph as code_graph  # noqa: E402


def _median(fn, repeat):
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return round(statistics.median(times), 4), out


def narrowing(repo_path: Path, max_commits: int = 50) -> dict:
    """Per commit (against its parent): tests selected by name level vs module level, and their share."""
    import pygit2

    repo = pygit2.Repository(str(repo_path))
    cache = code_graph.SummaryCache()
    walker = list(repo.walk(repo.head.target, pygit2.enums.SortMode.TOPOLOGICAL))[:max_commits]
    rows = []
    for c in walker:
        if not c.parents:
            continue
        cs = code_diff.changes(repo, f"{c.parents[0].id}..{c.id}")
        g = code_graph.build_graph(repo, str(c.id), cache=cache)
        if not g.tests:
            continue
        ch = code_graph.changed_nodes(cs, g, cache)
        imp = g.affected(ch.keys, module_level=False)
        name = {t for t, i in imp.items() if i.level == "name"}
        module = set(g.module_level(cs.paths)) | set(imp)
        rows.append({"commit": str(c.id)[:10], "files": len(cs.files), "tests": len(g.tests), "name": len(name),
                     "module": len(module)})
    if not rows:
        return {"commits": 0}
    touched = [r for r in rows if r["module"]]
    return {"commits": len(rows), "tests": rows[0]["tests"],
            "mean_name_level": round(statistics.mean(r["name"] for r in rows), 2),
            "mean_module_level": round(statistics.mean(r["module"] for r in rows), 2),
            "mean_share_name": round(statistics.mean(r["name"] / r["tests"] for r in rows), 4),
            "mean_share_module": round(statistics.mean(r["module"] / r["tests"] for r in rows), 4),
            "name_over_module_where_module_selects": round(statistics.mean(r["name"] / r["module"] for r in touched), 4)
            if touched else None}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tests", type=int, default=10_000)
    ap.add_argument("--commits", type=int, default=12)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--repo", action="append", default=[], help="A real repository to measure narrowing on")
    ap.add_argument("--generated", type=Path, help="Reuse a generated history folder")
    args = ap.parse_args(argv)
    import pygit2

    import gen_history

    out: dict = {}
    with tempfile.TemporaryDirectory(prefix="bench-graph-") as tmp:
        if args.generated:
            gen_dir = args.generated
        else:
            gen_dir = Path(tmp) / "gen"
            gen_history.generate(gen_dir, seed=5, tests=args.tests, commits=args.commits, runs_per_commit=1)
        repo = pygit2.Repository(str(gen_dir / "code"))
        files = code_diff.files_at(repo, "HEAD")
        cold, g = _median(lambda: code_graph.build_graph(repo, "HEAD", cache=code_graph.SummaryCache()), args.repeat)
        warm_cache = code_graph.SummaryCache()
        code_graph.build_graph(repo, "HEAD", cache=warm_cache)
        warm, _ = _median(lambda: code_graph.build_graph(repo, "HEAD", cache=warm_cache), args.repeat)
        cache_file = Path(tmp) / "summaries.bin"
        warm_cache.dirty = True
        warm_cache.path = cache_file
        save, _ = _median(lambda: (setattr(warm_cache, "dirty", True), warm_cache.save()), args.repeat)

        def from_file():
            c = code_graph.SummaryCache(cache_file)
            return code_graph.build_graph(repo, "HEAD", cache=c), c

        loaded, (_, c2) = _median(from_file, args.repeat)
        head = repo.head.peel(pygit2.Commit)
        parent = head.parents[0]

        def query():
            cs = code_diff.changes(repo, f"{parent.id}..{head.id}")
            ch = code_graph.changed_nodes(cs, g, warm_cache)
            return g.affected(ch.keys)

        q, imp = _median(query, args.repeat)
        out["generated"] = {
            "tests": len(g.tests), "files": len(files), "python_files": sum(p.endswith(".py") for p in files),
            "nodes": len(g.keys), "edges": sum(len(e) for e in g.edges),
            "build_cold_s": cold, "build_warm_in_process_s": warm, "build_cache_from_file_s": loaded,
            "cache_misses_from_file": c2.misses, "cache_save_s": save, "cache_file_bytes": cache_file.stat().st_size,
            "diff_changed_affected_s": q, "affected_tests_last_commit": len(imp),
        }
        out["narrowing"] = {"generated": narrowing(gen_dir / "code")}
    for r in args.repo:
        out["narrowing"][Path(r).name] = narrowing(Path(r))
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
