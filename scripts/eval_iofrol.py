"""Replay the IOF/ROL CI history cycle by cycle and report NAPFD of history-only prioritisation (prints JSON).

    python scripts/eval_iofrol.py [--csv PATH] [--budgets 1,0.5,0.2,0.1]

Before each cycle, its tests are ordered from the results of earlier cycles only (com.analysis.selection:
test_stats + history_probability), then the cycle's verdicts join the history. The method's few
parameters (decay half-life, duration power, prior of a new test) are chosen online, per budget, by
"follow the leader": the setting with the best mean NAPFD over the cycles already seen; the first cycles
use the defaults. Nothing is tuned on a cycle before it is ordered. Reference orders are computed with
the same metric code: random, most recently failed first, and optimal (failing tests first, shortest
first). The replay (`replay`) takes any `order(cycle_index, history_columns, tests) -> order` and is
meant to be reused when the history goes through `com ingest` and `com select --tests`.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import random
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from com.analysis import selection as sel  # noqa: E402
from com.analysis.columns import ResultColumns  # noqa: E402

DEFAULT_CSV = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "iofrol" / "iofrol.csv"
for _candidate in (Path("/work/shared/datasets/iofrol/iofrol.csv"),):
    if not DEFAULT_CSV.exists() and _candidate.exists():
        DEFAULT_CSV = _candidate
PUBLISHED = {"retecs": 0.63, "sort_heuristic": 0.63, "random": 0.50, "most_recently_failed_first": 0.70, "optimal": 0.84}
BUDGETS = (1.0, 0.5, 0.2, 0.1)
GRID = {"half_life_runs": (1.0, 3.0, 10.0), "duration_power": (0.0, 0.25, 0.5, 1.0), "new_test_prior": (0.5, 1.0)}


def load_cycles(path: Path) -> list[list[tuple[str, float, int]]]:
    """[[(test, duration, verdict), ...] per cycle, in cycle order]; each row is one execution (a test may
    run more than once in a cycle: each execution is a test case of the cycle, as in RETECS)."""
    by_cycle: dict[int, list] = defaultdict(list)
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh, delimiter=";"):
            by_cycle[int(row["Cycle"])].append((int(row["Id"]), row["Name"], float(row["Duration"]), int(row["Verdict"])))
    return [[(name, dur, verdict) for _, name, dur, verdict in sorted(by_cycle[c])] for c in sorted(by_cycle)]


class History:
    """Result columns growing one cycle (= one run) at a time."""

    def __init__(self):
        self.tests: dict[str, int] = {}
        self.t: list[int] = []
        self.run: list[int] = []
        self.status: list[int] = []
        self.dur: list[float] = []
        self.runs: list[str] = []

    def add_cycle(self, cycle: list[tuple[str, float, int]]) -> None:
        r = len(self.runs)
        self.runs.append(f"cycle-{r + 1}")
        for name, dur, verdict in cycle:
            self.t.append(self.tests.setdefault(name, len(self.tests)))
            self.run.append(r)
            self.status.append(1 if verdict else 0)
            self.dur.append(dur)

    def columns(self) -> ResultColumns:
        n = len(self.t)
        run = np.array(self.run, np.int32)
        return ResultColumns(np.array(self.t, np.int32), list(self.tests), run.astype(np.int64) * 1_000_000,
                             np.array(self.status, np.int8), np.zeros(n, np.int16), np.array(self.dur, np.float64),
                             run, list(self.runs), np.full(n, -1, np.int32), [])


def _order(cycle, stats, params: sel.HistoryParams, rng: random.Random) -> list[int]:
    names = [c[0] for c in cycle]
    p = sel.history_probability(stats, set(names), params)
    keyed = []
    for i, (name, dur, _) in enumerate(cycle):
        value = p[name] / max(dur, sel.DURATION_FLOOR_MS) ** params.duration_power if params.duration_power else p[name]
        keyed.append((-value, dur, rng.random(), i))
    keyed.sort()
    return [k[3] for k in keyed]


def _napfd(cycle, order, budget):
    return sel.napfd([cycle[i][1] for i in order], [cycle[i][2] for i in order], budget)


def replay(cycles, budgets=BUDGETS, grid=GRID, seed: int = 0) -> dict:
    """Online replay: per budget, the parameters with the best mean NAPFD over earlier cycles order the next."""
    settings = [sel.HistoryParams(**dict(zip(grid, values))) for values in itertools.product(*grid.values())]
    default = settings.index(sel.HistoryParams(**{k: getattr(sel.HistoryParams(), k) for k in grid})) \
        if sel.HistoryParams(**{k: getattr(sel.HistoryParams(), k) for k in grid}) in settings else 0
    past = {b: np.zeros(len(settings)) for b in budgets}
    seen = {b: 0 for b in budgets}
    chosen_log = {b: defaultdict(int) for b in budgets}
    scores = {b: [] for b in budgets}
    refs = {name: {b: [] for b in budgets} for name in ("random", "most_recently_failed_first", "optimal")}
    history = History()
    rng = random.Random(seed)
    for cycle in cycles:
        cols = history.columns()
        stats_by_hl = {hl: sel.test_stats(cols, half_life_runs=hl) if len(cols) else {} for hl in grid["half_life_runs"]}
        has_failure = any(v for _, _, v in cycle)
        orders = [_order(cycle, stats_by_hl[s.half_life_runs], s, random.Random(rng.random())) for s in settings]
        for b in budgets:
            pick = int(np.argmax(past[b])) if seen[b] else default
            if has_failure:
                scores[b].append(_napfd(cycle, orders[pick], b))
                chosen_log[b][pick] += 1
                for k, o in enumerate(orders):  # learn after ordering: this cycle is now history
                    past[b][k] += _napfd(cycle, o, b)
                seen[b] += 1
        if has_failure:
            idx = list(range(len(cycle)))
            stats1 = stats_by_hl[1.0]
            rnd = idx[:]
            rng.shuffle(rnd)
            # most recently failed first: its own latest execution failed (new tests first), random ties
            rff = sorted(idx, key=lambda i: (-(1.0 if cycle[i][0] not in stats1
                                               else float(stats1[cycle[i][0]].last_status in sel.FAILED)), rng.random()))
            opt = sorted(idx, key=lambda i: (-cycle[i][2], cycle[i][1]))
            for b in budgets:
                refs["random"][b].append(_napfd(cycle, rnd, b))
                refs["most_recently_failed_first"][b].append(_napfd(cycle, rff, b))
                refs["optimal"][b].append(_napfd(cycle, opt, b))
        history.add_cycle(cycle)
    mean = lambda xs: round(float(np.mean(xs)), 4) if xs else None  # noqa: E731
    out = {"cycles": len(cycles), "cycles_with_failures": len(scores[budgets[0]]),
           "napfd": {f"{int(b * 100)}%": mean(scores[b]) for b in budgets},
           "reference_measured": {name: {f"{int(b * 100)}%": mean(v[b]) for b in budgets} for name, v in refs.items()},
           "published": PUBLISHED,
           "chosen_settings": {f"{int(b * 100)}%": {json.dumps(settings[k].__dict__): n for k, n in
                                                     sorted(chosen_log[b].items(), key=lambda kv: -kv[1])[:3]}
                               for b in budgets}}
    out["normalised_by_optimal"] = {k: round(v / out["reference_measured"]["optimal"][k], 4)
                                    for k, v in out["napfd"].items()}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--csv", type=Path, default=DEFAULT_CSV)
    ap.add_argument("--budgets", default="1,0.5,0.2,0.1")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    cycles = load_cycles(args.csv)
    out = replay(cycles, tuple(float(b) for b in args.budgets.split(",")))
    out["seconds"] = round(time.perf_counter() - t0, 2)
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
