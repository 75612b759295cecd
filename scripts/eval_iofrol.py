"""Replay the IOF/ROL CI history through `com ingest` and `com select --tests`, cycle by cycle, and report NAPFD
(prints JSON).

    python scripts/eval_iofrol.py [--csv PATH] [--budgets 1,0.5,0.2,0.1] [--cycles N] [--cli-check 15]

Before each cycle, its tests are ordered by `com select --tests` (history-only prioritisation, from the
memory holding the earlier cycles only); then the cycle's verdicts are recorded as one `com ingest` batch
(one run per cycle; a test executed twice in a cycle is two attempts of that run). The replay calls the same
use-cases the CLI calls (`com.ops.ingest`, `com.ops.select`); `--cli-check N` replays the first N cycles
through real `com` processes too and says whether every order was the same. The selection runs with its
fixed defaults; those of the history-only estimate (`selection.HistoryParams`: decay over a test's own runs,
the new-test prior's weight) were chosen on cycles 1-160 only, so `napfd_halves` reports the calibration
cycles and the held-out cycles 161-320 apart, for com and the reference orders alike.

NAPFD is reported under two definitions, with reference orders (random, most recently failed first,
optimal: failing first, shortest first) measured the same way:

  readme  as the dataset's README states it: NAPFD = p - sum(TF_i)/(n m) + p/(2n) per cycle, TF_i the
          position of the i-th failing execution in the whole order, n executions, m failing ones, p the
          share of failing executions run within the budget; the mean over cycles with a failure.
  retecs  as RETECS computes it (Spieker et al. 2017; scenarios.py VirtualScenario.submit and the mean of
          every cycle's result in retecs.py): the same formula, but TF_i counts only the executions that
          were scheduled (a test that does not fit the time left is skipped and takes no rank), and the
          mean is over every cycle, a cycle without failures scoring 1. RETECS's own default budget is 50 %.

In both, executions are the CSV's rows (a test run twice in a cycle is two test cases), failures are
counted per failing row, and under a budget a test that does not fit the time left is skipped while
later, shorter ones may still run.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_CSV = Path("/work/shared/datasets/iofrol/iofrol.csv")
for _candidate in (ROOT.parent / "shared" / "datasets" / "iofrol" / "iofrol.csv", ROOT.parents[1] / "shared" / "datasets" / "iofrol" / "iofrol.csv"):
    if not DEFAULT_CSV.exists() and _candidate.exists():
        DEFAULT_CSV = _candidate
PUBLISHED = {"retecs": 0.63, "sort_heuristic": 0.63, "random": 0.50, "most_recently_failed_first": 0.70,
             "optimal": 0.84}
BUDGETS = (1.0, 0.5, 0.2, 0.1)
START_US = 1_420_070_400_000_000  # 2015-01-01, one hour per cycle


def load_cycles(path: Path) -> list[list[tuple[str, float, int]]]:
    """[[(test, duration, verdict), ...] per cycle, in cycle order]; each row is one execution."""
    by_cycle: dict[int, list] = defaultdict(list)
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh, delimiter=";"):
            by_cycle[int(row["Cycle"])].append((int(row["Id"]), row["Name"], float(row["Duration"]), int(row["Verdict"])))
    return [[(name, dur, verdict) for _, name, dur, verdict in sorted(by_cycle[c])] for c in sorted(by_cycle)]


def napfd(durations: list[float], verdicts: list[int], budget: float, ranks_scheduled_only: bool) -> float | None:
    """NAPFD of one ordered cycle (None without failures); see the module text for the two definitions."""
    n, m = len(verdicts), sum(1 for v in verdicts if v)
    if m == 0 or n == 0:
        return None
    available = budget * float(sum(durations))
    used, rank, ranks, undetected = 0.0, 0, [], 0
    for i, (d, v) in enumerate(zip(durations, verdicts), 1):
        if used + d <= available + 1e-9:
            used += d
            rank += 1
            if v:
                ranks.append(rank if ranks_scheduled_only else i)
        elif v:
            undetected += 1
    p = len(ranks) / m if undetected else 1.0
    return p - sum(ranks) / (n * m) + p / (2 * n)


def expand(cycle, order_names: list[str]) -> list[int]:
    """Row indices of a cycle in the order of its test names (a name's executions together, in CSV order)."""
    rows: dict[str, list[int]] = defaultdict(list)
    for i, (name, _, _) in enumerate(cycle):
        rows[name].append(i)
    out = [i for name in order_names for i in rows.pop(name, [])]
    return out + [i for left in rows.values() for i in left]  # names the order left out go last


def cycle_events(cycle, c: int) -> str:
    """The cycle as JSONL events, one run, a repeated test's executions as attempts 1, 2, ..."""
    seen: dict[str, int] = defaultdict(int)
    lines = []
    for k, (name, dur, verdict) in enumerate(cycle):
        seen[name] += 1
        ts_us = START_US + c * 3_600_000_000 + k * 1000
        lines.append(json.dumps({
            "type": "test_result", "project": "iofrol", "source": "iofrol",
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts_us // 1_000_000)) + f".{ts_us % 1_000_000:06d}Z",
            "data": {"test_id": name, "status": "failed" if verdict else "passed", "duration_ms": dur,
                     "run_id": f"cycle-{c + 1}", "attempt": seen[name]}}))
    return "\n".join(lines) + "\n"


CALIBRATION_CYCLES = 160  # the history-only defaults were chosen on cycles 1-160; 161-320 are held out


class Scores:
    def __init__(self, budgets):
        self.budgets = budgets
        self.values = {d: {b: [] for b in budgets} for d in ("readme", "retecs")}  # (cycle, NAPFD)

    def add(self, cycle, rows: list[int], budgets=None, c: int = 0) -> None:
        durations = [cycle[i][1] for i in rows]
        verdicts = [cycle[i][2] for i in rows]
        for b in budgets or self.budgets:
            a = napfd(durations, verdicts, b, ranks_scheduled_only=False)
            r = napfd(durations, verdicts, b, ranks_scheduled_only=True)
            if a is not None:
                self.values["readme"][b].append((c, a))
            self.values["retecs"][b].append((c, 1.0 if r is None else r))

    def means(self, first: int = 0, stop: int | None = None) -> dict:
        def mean(pairs):
            v = [x for c, x in pairs if c >= first and (stop is None or c < stop)]
            return round(sum(v) / len(v), 4) if v else None

        return {d: {f"{int(b * 100)}%": mean(v) for b, v in per.items()} for d, per in self.values.items()}

    def halves(self) -> dict:
        """NAPFD (readme) over the calibration cycles and over the held-out ones."""
        return {"calibration": self.means(0, CALIBRATION_CYCLES)["readme"],
                "held_out": self.means(CALIBRATION_CYCLES)["readme"]}


def replay(cycles, budgets=BUDGETS, seed: int = 0, memory_dir: Path | None = None, limit: int | None = None) -> dict:
    """The replay through com's use-cases; the reference orders scored beside it."""
    from com.memory import Memory
    from com.ops import ingest as ops_ingest
    from com.ops import select as ops_select

    cycles = cycles[:limit] if limit else cycles
    tmp = None
    if memory_dir is None:
        tmp = tempfile.mkdtemp(prefix="eval-iofrol-")
        memory_dir = Path(tmp) / ".com"
    memory, _ = Memory.init(memory_dir)
    rng = random.Random(seed)
    com_scores, refs = Scores(budgets), {k: Scores(budgets) for k in ("random", "most_recently_failed_first",
                                                                       "optimal")}
    last_verdict: dict[str, int] = {}
    orders: list[list[str]] = []
    t_select = t_ingest = 0.0
    try:
        for c, cycle in enumerate(cycles):
            names = list(dict.fromkeys(name for name, _, _ in cycle))
            t = time.perf_counter()
            for b in budgets:  # `com select --tests - [--budget B%]`: under a budget it orders by failures per second
                opts = ops_select.SelectOptions(tests=names, budget=None if b >= 1 else f"{b * 100:g}%")
                result = ops_select.select(memory, opts)
                order = result.ids + result.skipped
                if b >= 1 or len(budgets) == 1:
                    orders.append(order)
                com_scores.add(cycle, expand(cycle, order), budgets=(b,), c=c)
            t_select += time.perf_counter() - t
            idx = list(range(len(cycle)))
            rnd = idx[:]
            rng.shuffle(rnd)
            refs["random"].add(cycle, rnd, c=c)
            mrf = sorted(idx, key=lambda i: (-last_verdict.get(cycle[i][0], 1), rng.random()))  # new tests first
            refs["most_recently_failed_first"].add(cycle, mrf, c=c)
            refs["optimal"].add(cycle, sorted(idx, key=lambda i: (-cycle[i][2], cycle[i][1])), c=c)
            t = time.perf_counter()
            events = ops_ingest.from_json_lines(io.StringIO(cycle_events(cycle, c)), f"cycle {c + 1}")
            ops_ingest.record(memory, events, message=f"iofrol cycle {c + 1}")
            t_ingest += time.perf_counter() - t
            for name, _, verdict in cycle:
                last_verdict[name] = verdict
    finally:
        memory.close()
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    return {"cycles": len(cycles), "cycles_with_failures": sum(1 for cy in cycles if any(v for _, _, v in cy)),
            "executions": sum(len(cy) for cy in cycles), "napfd": com_scores.means(),
            "napfd_halves": {"com": com_scores.halves(), **{k: v.halves() for k, v in refs.items()}},
            "reference_measured": {k: v.means() for k, v in refs.items()}, "published": PUBLISHED,
            "seconds": {"select": round(t_select, 2), "ingest": round(t_ingest, 2)}, "_orders": orders}


def cli_check(cycles, orders: list[list[str]], n: int) -> dict:
    """The first n cycles through real `com` processes: `com ingest -` and `com select --tests - --json`."""
    exe = [sys.executable, "-c", "from com.cli import main; main()"]
    same = 0
    with tempfile.TemporaryDirectory(prefix="eval-iofrol-cli-") as tmp:
        mem = Path(tmp) / ".com"
        subprocess.run([*exe, "--memory", mem, "init"], check=True, capture_output=True, cwd=tmp)
        for c, cycle in enumerate(cycles[:n]):
            names = "\n".join(dict.fromkeys(name for name, _, _ in cycle)) + "\n"
            out = subprocess.run([*exe, "--memory", mem, "select", "--tests", "-", "--json"], input=names,
                                 capture_output=True, text=True, check=True, cwd=tmp)
            o = json.loads(out.stdout)
            same += (([t["test_id"] for t in o["selected"]] + o["skipped"]) == orders[c])
            subprocess.run([*exe, "--memory", mem, "ingest", "-"], input=cycle_events(cycle, c), capture_output=True,
                           text=True, check=True, cwd=tmp)
    return {"cycles": n, "same_order": same}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--csv", type=Path, default=DEFAULT_CSV)
    ap.add_argument("--budgets", default="1,0.5,0.2,0.1")
    ap.add_argument("--cycles", type=int, help="Only the first N cycles")
    ap.add_argument("--cli-check", type=int, default=0, metavar="N", help="Also replay N cycles through `com` processes")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    cycles = load_cycles(args.csv)
    out = replay(cycles, tuple(float(b) for b in args.budgets.split(",")), limit=args.cycles)
    orders = out.pop("_orders")
    if args.cli_check:
        out["cli_check"] = cli_check(cycles, orders, min(args.cli_check, len(orders)))
    out["definitions"] = {"readme": "ranks over the whole order; mean over cycles with a failure",
                          "retecs": "ranks over scheduled executions only; mean over every cycle, 1 without failures"}
    out["seconds"]["total"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
