"""Evaluate flaky detection against generated histories with known ground truth; prints one JSON object.

Each history (several seeds and sizes, see CONFIGS) is recorded in a real memory, one journal commit per CI
run, and detection runs as `com flaky detect` does: `com.ops.flaky.detect` over the test-results view. Measured:
precision and recall of the flaky tests with at least 10 runs, how many broken (not flaky) tests were called
flaky, how many breakages were found at their commit, severity bands against the planted rates, and how well
manifestations group each test's failures (with the packaged MiniLM model). Scenario "reruns" records every
failure once more as attempt 2, the way pytest-rerunfailures does: a flaky failure passes on the rerun with
probability 1 - rate, a broken test fails again.

    python scripts/eval_flaky.py [--quick] [--no-embed] [--work DIR] [--config NAME ...]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gen_history  # noqa: E402

from com.analysis.flaky import flake_rate, severity  # noqa: E402
from com.analysis.manifest import manifestations  # noqa: E402
from com.memory import Memory  # noqa: E402
from com.model.event import validate  # noqa: E402
from com.model.result import ResultColumns  # noqa: E402
from com.ops import flaky as ops  # noqa: E402
from com.settings import load as load_settings  # noqa: E402

# name: generator arguments. rpc = runs per commit (1: no same-commit evidence, only the window's).
CONFIGS = {
    "s1_300x30x2": dict(seed=1, tests=300, commits=30, runs_per_commit=2),
    "s2_300x30x2": dict(seed=2, tests=300, commits=30, runs_per_commit=2),
    "s3_1000x50x2": dict(seed=3, tests=1000, commits=50, runs_per_commit=2),
    "s4_500x40x3": dict(seed=4, tests=500, commits=40, runs_per_commit=3),
    "s5_400x40x2_breaky": dict(seed=5, tests=400, commits=40, runs_per_commit=2, break_rate=0.6, flaky_fraction=0.08),
    "s6_400x40x2_reruns": dict(seed=6, tests=400, commits=40, runs_per_commit=2, reruns=True),
    "s7_500x80x1_window_only": dict(seed=7, tests=500, commits=80, runs_per_commit=1),
    "s8_500x80x1_window_only_breaky": dict(seed=8, tests=500, commits=80, runs_per_commit=1, break_rate=0.6),
}
QUICK = ("s1_300x30x2", "s6_400x40x2_reruns", "s7_500x80x1_window_only")
EXPECTED_CATEGORY = {"timeout": "timeout", "selector": "element_not_found", "connection_reset": "network",
                     "timing": "timing_order"}
MIN_RUNS = 10


def record(history, memory: Memory, reruns: bool, seed: int) -> None:
    """Every run's report as one journal commit dated when the run ended (as `gen_history.ingest`); with
    `reruns`, each failed result followed by a second attempt in the same run: a flaky failure outside a
    breakage passes it with probability 1 - its planted rate, anything else fails again."""
    from com.ingest import junit

    if not reruns:
        gen_history.ingest(history, memory, warn=lambda message: None)
        return
    truth = history.truth
    rng = random.Random(seed)
    index = {c["sha"]: c["index"] for c in truth["commits"]}
    periods: dict[str, list] = {}
    for b in truth["breakages"]:
        end = index[b["fixed_by"]] if b.get("fixed_by") else 10 ** 9
        for t in b["tests"]:
            periods.setdefault(t, []).append((index[b["commit"]], end))
    project = truth["generator"]["project"]
    for run in history.runs:
        events = junit.events_from_reports([str(history.out_dir / run["junit"])], project=project,
                                           commit=run["commit"], run_id=run["run_id"], branch="main",
                                           warn=lambda message: None)
        c = index[run["commit"]]
        extra = []
        for e in events:
            d = e["data"]
            if d["status"] not in ("failed", "error"):
                continue
            broken = any(start <= c < end for start, end in periods.get(d["test_id"], ()))
            passes = not broken and rng.random() >= truth["flaky"].get(d["test_id"], {}).get("rate", 1.0)
            data = {k: v for k, v in d.items() if not (passes and k in ("error_message", "error_type", "trace"))}
            data.update(attempt=2, status="passed" if passes else d["status"])
            extra.append(validate({"type": "test_result", "project": e["project"], "source": e["source"],
                                   "ts": e["ts"], "data": data}))
        with gen_history._committer_date(run["end"]):
            memory.record(events + extra, message=f"CI run {run['run_id']} on {run['commit'][:10]} (main)")


def broken_mask(cols: ResultColumns, truth: dict) -> tuple[np.ndarray, dict]:
    """Rows inside a planted breakage of their test; and test -> [(break index, fix index)]."""
    index = {c["sha"]: c["index"] for c in truth["commits"]}
    commit_index = np.array([index[c] for c in cols.commits] + [-1], np.int64)[cols.commit]
    periods: dict[str, list] = {}
    for b in truth["breakages"]:
        start = index[b["commit"]]
        end = index[b["fixed_by"]] if b.get("fixed_by") else 10 ** 9
        for t in b["tests"]:
            periods.setdefault(t, []).append((start, end, b["commit"]))
    test_ix = {t: i for i, t in enumerate(cols.tests)}
    mask = np.zeros(len(cols), bool)
    for t, ps in periods.items():
        if t not in test_ix:
            continue
        rows = cols.test == test_ix[t]
        for start, end, _ in ps:
            mask |= rows & (commit_index >= start) & (commit_index < end)
    return mask, periods


def runs_per_test(cols: ResultColumns) -> np.ndarray:
    verdict = (cols.status <= 2) & (cols.attempt <= 1)
    return np.bincount(cols.test[verdict], minlength=len(cols.tests))


def evaluate(name: str, spec: dict, work: Path, embed) -> dict:
    spec = dict(spec)
    reruns = spec.pop("reruns", False)
    t0 = time.perf_counter()
    history = gen_history.generate(work / name, **spec)
    memory, _ = Memory.init(work / name / ".com", settings=load_settings(work))
    record(history, memory, reruns, spec["seed"])
    snapshot = memory.snapshot()
    memory.follow(snapshot)
    memory.follow(snapshot, [memory.results])
    recorded = time.perf_counter() - t0
    truth = history.truth
    t1 = time.perf_counter()
    result = ops.detect(memory, min_runs=MIN_RUNS).to_json()  # what `com flaky detect --min-runs 10` does
    detect_s = time.perf_counter() - t1
    cols = memory.results.columns(snapshot)
    brk_rows, periods = broken_mask(cols, truth)

    n_runs = runs_per_test(cols)
    test_ix = {t: i for i, t in enumerate(cols.tests)}
    planted = {t for t in truth["flaky"] if n_runs[test_ix[t]] >= MIN_RUNS}
    # A planted flaky test whose flakiness never showed outside its breakages cannot be found from results.
    fail_rows = (cols.status == 1) | (cols.status == 2)
    first = cols.attempt <= 1
    flaky_fail_counts = np.bincount(cols.test[fail_rows & first & ~brk_rows], minlength=len(cols.tests))
    observable = {t for t in planted if flaky_fail_counts[test_ix[t]] > 0}
    found = {f["test_id"] for f in result["flaky"]}
    tp = found & planted
    broken_only = set(periods) - set(truth["flaky"])
    planted_breaks = {(t, p[2]) for t, ps in periods.items() for p in ps if t in test_ix}
    found_breaks = {(b["test_id"], b["since_commit"]) for b in result["broken"]}

    # Severity: detected band against the band of the planted rate (flake rate of the planted failure rate).
    bands = {}
    hits = near = realised_hits = 0
    errors = []
    # The rate the generator's dice actually produced (flaky failures / runs outside breakages): the band
    # detection can hope for, sampling noise of the planted rate aside.
    outside = first & ~brk_rows & (cols.status <= 2)
    runs_outside = np.bincount(cols.test[outside], minlength=len(cols.tests))
    order = ("intermittent", "moderate", "high", "severe")
    by_id = {f["test_id"]: f for f in result["flaky"]}
    for t in sorted(tp):
        want = severity(flake_rate(truth["flaky"][t]["rate"]))
        got = by_id[t]["severity"]
        bands.setdefault(want, {}).setdefault(got, 0)
        bands[want][got] += 1
        hits += want == got
        near += abs(order.index(want) - order.index(got)) <= 1
        errors.append(abs(by_id[t]["flake_rate"] - flake_rate(truth["flaky"][t]["rate"])))
        i = test_ix[t]
        realised_hits += severity(flake_rate(flaky_fail_counts[i] / max(1, runs_outside[i]))) == got

    out = {
        "generator": {**spec, "reruns": reruns}, "results": len(cols), "tests": len(cols.tests),
        "flaky_planted_10_runs": len(planted), "flaky_observable": len(observable), "flaky_reported": len(found),
        "true_positives": len(tp), "false_positives": sorted(found - planted), "missed": sorted(planted - found),
        "precision": round(len(tp) / len(found), 4) if found else None,
        "recall": round(len(tp) / len(planted), 4) if planted else None,
        "recall_observable": round(len(tp & observable) / len(observable), 4) if observable else None,
        "broken_tests": len(broken_only), "broken_reported_as_flaky": len(found & broken_only),
        "breakages_planted": len(planted_breaks), "breakages_found_at_their_commit": len(planted_breaks & found_breaks),
        "breakages_reported_not_planted": len(found_breaks - planted_breaks),
        "severity": {"band_accuracy": round(hits / len(tp), 4) if tp else None,
                     "within_one_band": round(near / len(tp), 4) if tp else None,
                     "band_accuracy_vs_realised_rate": round(realised_hits / len(tp), 4) if tp else None,
                     "flake_rate_mean_abs_error": round(statistics.fmean(errors), 4) if errors else None,
                     "planted_band_to_detected": bands},
        "excluded_runs": len(result["excluded_runs"]),
        "generate_and_record_seconds": round(recorded, 2), "detect_seconds_through_the_view": round(detect_s, 4),
    }
    examples = {}
    for t in sorted(tp):
        examples.update(ops.failure_examples(memory, snapshot, cols, t))
    out["manifestations"] = manifestation_accuracy(cols, truth, brk_rows, sorted(tp), examples, embed, spec["seed"])
    memory.close()
    return out


def manifestation_accuracy(cols, truth, brk_rows, tests, examples, embed, seed) -> dict:
    """Per detected flaky test: its flaky failures fall in one group of the planted category, apart from its
    breakage failures; and two tests of different manifestations relabelled as one give two groups."""
    if not tests:
        return {}
    groups = manifestations(cols, tests, embed=embed, examples=examples)
    test_ix = {t: i for i, t in enumerate(cols.tests)}
    fail = ((cols.status == 1) | (cols.status == 2))
    one_group = right_category = separated = with_breaks = 0
    wrong = []
    for t in tests:
        rows = fail & (cols.test == test_ix[t])
        flaky_sigs = {cols.signatures[s] if s >= 0 else None for s in cols.signature[rows & ~brk_rows].tolist()}
        broken_sigs = {cols.signatures[s] if s >= 0 else None for s in cols.signature[rows & brk_rows].tolist()}
        hold = [g for g in groups[t] if flaky_sigs & set(g.signatures)]
        if len(hold) == 1:
            one_group += 1
        want = EXPECTED_CATEGORY[truth["flaky"][t]["manifestation"]]
        top = max(hold, key=lambda g: g.count) if hold else None
        if top is not None and top.category == want:
            right_category += 1
        else:
            wrong.append({"test": t, "want": want, "got": top.category if top else None,
                          "signature": top.signature if top else None})
        if broken_sigs:
            with_breaks += 1
            separated += not any((flaky_sigs & set(g.signatures)) and (broken_sigs & set(g.signatures))
                                 for g in groups[t])
    # Two kinds in one test: pair tests of different manifestations, relabel the second as the first.
    rng = random.Random(seed)
    by_kind: dict[str, list[str]] = {}
    for t in tests:
        by_kind.setdefault(truth["flaky"][t]["manifestation"], []).append(t)
    kinds = sorted(k for k, v in by_kind.items() if v)
    pairs = []
    for n in range(min(20, len(tests))):
        if len(kinds) < 2:
            break
        ka, kb = rng.sample(kinds, 2)
        pairs.append((rng.choice(by_kind[ka]), rng.choice(by_kind[kb])))
    two = 0
    for a, b in pairs:
        rows = np.flatnonzero(((cols.test == test_ix[a]) | (cols.test == test_ix[b])) & fail & ~brk_rows)
        sub = cols.take(rows)
        sub.test = np.full(rows.shape[0], test_ix[a], np.int32)
        got = manifestations(sub, [a], embed=embed, examples=examples)[a]
        two += len(got) == 2
    return {"tests": len(tests), "flaky_failures_in_one_group": round(one_group / len(tests), 4),
            "dominant_group_category_correct": round(right_category / len(tests), 4),
            "tests_with_breakage_failures": with_breaks,
            "breakage_failures_kept_apart": round(separated / with_breaks, 4) if with_breaks else None,
            "two_kinds_pairs": len(pairs), "two_kinds_give_two_groups": round(two / len(pairs), 4) if pairs else None,
            "category_misses": wrong[:10], "embedding": embed is not None}


def minilm(cache: Path):
    """The packaged MiniLM behind com's content-hash embedding cache (what `com flaky show` uses)."""
    from com.models.embedding import Embedder

    return Embedder.for_name("all-MiniLM-L6-v2", cache).embed


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help=f"only {', '.join(QUICK)}")
    ap.add_argument("--config", action="append", choices=sorted(CONFIGS))
    ap.add_argument("--no-embed", action="store_true", help="group manifestations by exact signature only")
    ap.add_argument("--work", type=Path, help="folder for the generated histories (default: a temp dir)")
    args = ap.parse_args(argv)
    names = args.config or (QUICK if args.quick else tuple(CONFIGS))
    with tempfile.TemporaryDirectory(dir=args.work) as tmp:
        embed = None if args.no_embed else minilm(Path(tmp) / "embedding-cache")
        results = {}
        for name in names:
            print(f"eval_flaky: {name}", file=sys.stderr)
            results[name] = evaluate(name, CONFIGS[name], Path(tmp), embed)
    two_plus = [r for r in results.values() if r["generator"]["runs_per_commit"] >= 2]
    tp = sum(r["true_positives"] for r in two_plus)
    rep = sum(r["flaky_reported"] for r in two_plus)
    pl = sum(r["flaky_planted_10_runs"] for r in two_plus)
    summary = {
        "histories_with_2_or_more_runs_per_commit": {
            "precision": round(tp / rep, 4) if rep else None, "recall": round(tp / pl, 4) if pl else None,
            "broken_reported_as_flaky": sum(r["broken_reported_as_flaky"] for r in two_plus)},
        "all_histories": {
            "precision": round(sum(r["true_positives"] for r in results.values())
                               / max(1, sum(r["flaky_reported"] for r in results.values())), 4),
            "recall": round(sum(r["true_positives"] for r in results.values())
                            / max(1, sum(r["flaky_planted_10_runs"] for r in results.values())), 4),
            "broken_reported_as_flaky": sum(r["broken_reported_as_flaky"] for r in results.values())},
        "targets": {"precision": 0.95, "recall": 0.90, "broken_reported_as_flaky": 0},
    }
    print(json.dumps({"summary": summary, "histories": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
