"""Replay generated histories through regression selection and report recall, time share and APFD (prints JSON).

    python scripts/eval_select.py [--seeds 1,2,3,4] [--tests 200,500] [--commits 60] [--budget 30%] [--calibrate]

For every commit that breaks tests (gen_history's ground truth), the selection is made from the history
before it (runs of earlier commits only) and the diff from its parent: change-level recall (all tests the
change broke are selected), the share of suite time selected, and APFD of the order (the broken tests
among every test: of every test failing in the CI run on that commit -- `apfd` -- and of the tests this
change broke -- `apfd_change`). One row per signal set:
  direct-name   graph at name level only (module-level tier off)
  direct        graph: name level, then module-level fallback tier
  +history      direct + co-change, co-failure, recent failures
  all           + criticality, flakiness, efficiency (the full score)
  (+semantic needs the semantic index of changes and tests; not wired here yet, left out.)
Safety rules (never seen, failed in the latest run, global files) are on in every set.

History inputs: TEMPORARY adapter (until the test-results view exists) -- the generated JUnit reports
are read by com.ingest.junit and turned into result columns by com.analysis.columns.from_events.
Criticality comes from the ground truth's importance (the JUnit `importance` property).
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))
import gen_history  # noqa: E402
from com.analysis import selection as sel  # noqa: E402
from com.analysis.columns import from_events  # noqa: E402
from com.code import diff as code_diff  # noqa: E402
from com.code import graph as code_graph  # noqa: E402
from com.code.discover import function_id, test_file_of  # noqa: E402

SIGNAL_SETS = ("direct-name", "direct", "+history", "all")


def weights_for(name: str, base: sel.Weights) -> sel.Weights:
    if name == "direct-name":
        return sel.Weights(relation=1.0, history=0.0, criticality=0.0, flakiness=0.0, efficiency=0.0,
                           module_level=0.0, min_history=2.0)
    if name == "direct":
        return sel.Weights(relation=1.0, history=0.0, criticality=0.0, flakiness=0.0, efficiency=0.0,
                           module_level=base.module_level, min_history=2.0)
    if name == "+history":
        return replace(base, criticality=0.0, flakiness=0.0, efficiency=0.0)
    return base


class Replay:
    """One generated history prepared for selection at each of its breaking commits."""

    def __init__(self, out: Path, seed: int, tests: int, commits: int, runs_per_commit: int = 2):
        self.history = gen_history.generate(out, seed=seed, tests=tests, commits=commits, runs_per_commit=runs_per_commit)
        truth = self.history.truth
        events = []
        for run in self.history.runs:  # TEMPORARY adapter: JUnit -> events -> result columns
            events += gen_history_events(self.history, run)
        self.cols_all = from_events(events)
        self.run_commit_index = {r["run_id"]: r["commit_index"] for r in self.history.runs}
        import pygit2

        self.repo = pygit2.Repository(str(self.history.code_repo))
        self.commit_files = {c["sha"]: tuple(c["files"]) for c in truth["commits"]}
        self.criticality = {t: (info["importance"] - 1) / 4.0 for t, info in truth["tests"].items()}
        self.cache = code_graph.SummaryCache()
        self.cases = []
        by_id = {b["id"]: b for b in truth["breakages"]}
        for c in truth["commits"]:
            for bid in c["breaks"]:
                self.cases.append((c["index"], by_id[bid]))
        self.prepared: dict[int, dict] = {}
        self.first_run_failing: dict[int, list] = {}
        for r in self.history.runs:  # what the CI run on that commit showed failing (old breakages, flaky ones too)
            self.first_run_failing.setdefault(r["commit_index"], r["failing"])

    def prepare(self, ci: int) -> dict:
        """Everything that does not depend on the weights, for commit index ci."""
        if ci in self.prepared:
            return self.prepared[ci]
        truth = self.history.truth
        commit = truth["commits"][ci]
        parent = truth["commits"][ci - 1]["sha"]
        cols = self.cols_all
        keep = np.array([self.run_commit_index[cols.runs[r]] < ci for r in range(len(cols.runs))])[cols.run]
        hist = _subset(cols, keep)
        stats = sel.test_stats(hist)
        cs = code_diff.changes(self.repo, f"{parent}..{commit['sha']}")
        graph = code_graph.build_graph(self.repo, commit["sha"], cache=self.cache)
        changed = code_graph.changed_nodes(cs, graph, self.cache)
        impacts = graph.affected(changed.keys)
        earlier = {sha: files for sha, files in self.commit_files.items()
                   if next(c["index"] for c in truth["commits"] if c["sha"] == sha) < ci}
        candidates = sorted(set(hist.tests) | set(graph.tests))
        test_files = {t: test_file_of(t) for t in candidates}
        cochange = sel.cochange(earlier, cs.paths, test_files)
        cofail = sel.cofailure(hist, earlier, cs.paths)
        self.prepared[ci] = dict(stats=stats, impacts=impacts, cochange=cochange, cofail=cofail, candidates=candidates,
                                 paths=sorted(cs.paths), has_history=len(hist) > 0)
        return self.prepared[ci]

    def signals(self, p: dict, w: sel.Weights, use_history: bool) -> dict[str, sel.Signals]:
        out = {}
        for t in p["candidates"]:
            s = p["stats"].get(t)
            imp = p["impacts"].get(function_id(t))
            direct, reason = 0.0, None
            if imp is not None:
                if imp.level == "name":
                    direct = 1.0
                elif w.module_level > 0:
                    direct = w.module_level / (1.0 + 0.25 * max(imp.distance - 1, 0))
                reason = imp.reason()
            sig = sel.Signals(direct=direct, direct_reason=reason, criticality=self.criticality.get(t, 0.0),
                              duration_ms=s.duration_ms if s else None, seen=s is not None and s.runs > 0,
                              failed_latest=bool(s and s.failed_in_latest_run), latest_run=s.latest_run if s else None,
                              flake_rate=s.flake_rate if s else 0.0)
            if use_history:
                cc = p["cochange"].get(t)
                cf = p["cofail"].get(t)
                sig.cochange, sig.cochange_file = cc if cc else (0.0, None)
                sig.cofailure, sig.cofailure_file = cf if cf else (0.0, None)
                if s:
                    sig.recent, sig.last_fail_age = s.density, s.last_fail_age
            out[t] = sig
        return out

    def evaluate(self, set_name: str, base: sel.Weights, budget: sel.Budget) -> list[dict]:
        w = weights_for(set_name, base)
        rows = []
        for ci, br in self.cases:
            p = self.prepare(ci)
            signals = self.signals(p, w, use_history=set_name in ("+history", "all"))
            result = sel.select(signals, budget=budget, weights=w, changed=p["paths"], has_history=p["has_history"])
            chosen = set(result.ids)
            broken = set(br["tests"])
            order = [s.test for s in result.tests]
            failing = set(self.first_run_failing.get(ci, ())) | broken
            rows.append({"commit_index": ci, "breakage": br["id"], "via": br["via"], "broken": len(broken),
                         "caught": len(broken & chosen), "recall": float(broken <= chosen),
                         "time_share": result.selected_ms / result.suite_ms if result.suite_ms else 0.0,
                         "selected": len(chosen), "candidates": len(order), "apfd": sel.apfd(order, failing),
                         "apfd_change": sel.apfd(order, broken)})
        return rows


def gen_history_events(history, run) -> list[dict]:
    from com.ingest import junit as junit_mod

    return junit_mod.events_from_reports([str(history.out_dir / run["junit"])], project="shop",
                                         commit=run["commit"], run_id=run["run_id"], branch="main")


def _subset(cols, keep):
    from com.analysis.columns import ResultColumns

    return ResultColumns(cols.test[keep], cols.tests, cols.ts_us[keep], cols.status[keep], cols.attempt[keep],
                         cols.duration_ms[keep], cols.run[keep], cols.runs, cols.commit[keep], cols.commits)


def summarise(rows: list[dict]) -> dict:
    if not rows:
        return {"changes": 0}
    return {"changes": len(rows), "recall": round(statistics.mean(r["recall"] for r in rows), 4),
            "test_recall": round(sum(r["caught"] for r in rows) / sum(r["broken"] for r in rows), 4),
            "time_share_mean": round(statistics.mean(r["time_share"] for r in rows), 4),
            "time_share_max": round(max(r["time_share"] for r in rows), 4),
            "apfd_mean": round(statistics.mean(r["apfd"] for r in rows), 4),
            "apfd_change_mean": round(statistics.mean(r["apfd_change"] for r in rows), 4)}


def calibrate(replays, budget, grid=None) -> tuple[sel.Weights, list]:
    """Grid search of the weights on calibration histories: best mean APFD among settings with change-level
    recall >= 0.95 and mean time share <= the budget (else best recall)."""
    grid = grid or {"relation": (0.4, 0.5), "history": (0.2, 0.3, 0.4), "criticality": (0.0, 0.05, 0.15),
                    "module_level": (0.3, 0.5, 0.7), "min_history": (0.25, 0.5, 1.01)}
    tried = []
    for values in itertools.product(*grid.values()):
        kw = dict(zip(grid, values))
        rest = 1.0 - kw["relation"] - kw["history"] - kw["criticality"]
        if rest < 0.05:
            continue
        w = sel.Weights(flakiness=round(rest * 2 / 3, 4), efficiency=round(rest / 3, 4), **kw)
        rows = [r for rp in replays for r in rp.evaluate("all", w, budget)]
        s = summarise(rows)
        tried.append((s, w))
    ok = [x for x in tried if x[0]["recall"] >= 0.95]
    pool = ok or tried
    best = max(pool, key=lambda x: (x[0]["apfd_mean"], x[0]["recall"]) if ok else (x[0]["recall"], x[0]["apfd_mean"]))
    return best[1], [{"weights": w.to_json(), **s} for s, w in sorted(tried, key=lambda x: -x[0]["apfd_mean"])[:5]]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", default="1,2,3,4")
    ap.add_argument("--tests", default="200,500")
    ap.add_argument("--commits", type=int, default=60)
    ap.add_argument("--budget", default="30%")
    ap.add_argument("--calibrate", action="store_true", help="Calibrate the weights on seeds 101-103 first")
    ap.add_argument("--calibration-seeds", default="101,102,103")
    args = ap.parse_args(argv)
    budget = sel.parse_budget(args.budget)
    t0 = time.perf_counter()
    out: dict = {"budget": args.budget, "signal_sets": {}, "semantic": "left out: needs the semantic index"}
    with tempfile.TemporaryDirectory(prefix="eval-select-") as tmp:
        base = sel.CALIBRATED
        if args.calibrate:
            cal = [Replay(Path(tmp) / f"cal-{s}-{n}", s, n, args.commits)
                   for s in map(int, args.calibration_seeds.split(",")) for n in map(int, args.tests.split(","))]
            base, top = calibrate(cal, budget)
            out["calibration"] = {"seeds": args.calibration_seeds, "chosen": base.to_json(), "top": top}
        replays = [Replay(Path(tmp) / f"h-{s}-{n}", s, n, args.commits)
                   for s in map(int, args.seeds.split(",")) for n in map(int, args.tests.split(","))]
        out["histories"] = [{"seed": rp.history.truth["generator"]["seed"], "tests": rp.history.truth["generator"]["tests"],
                             "commits": args.commits, "breaking_changes": len(rp.cases)} for rp in replays]
        for name in SIGNAL_SETS:
            rows = [r for rp in replays for r in rp.evaluate(name, base, budget)]
            out["signal_sets"][name] = summarise(rows)
            out["signal_sets"][name]["by_via"] = {v: summarise([r for r in rows if r["via"] == v])
                                                  for v in sorted({r["via"] for r in rows})}
        seed_rows = [r for rp in replays for r in rp.evaluate("all", sel.SEED_WEIGHTS, budget)]
        out["seed_weights_all"] = summarise(seed_rows)
        out["weights"] = base.to_json()
    out["seconds"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
