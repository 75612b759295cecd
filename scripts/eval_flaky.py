"""Evaluate flaky detection against generated histories with known ground truth; prints one JSON object.

For each history (several seeds and sizes, see CONFIGS): precision and recall of the flaky tests with at
least 10 runs, how many broken (not flaky) tests were called flaky, how many breakages were found at their
commit, severity bands against the planted rates, and how well manifestations group each test's failures
(with the packaged MiniLM model). Scenario "reruns" replays every failure once more as attempt 2, the way
pytest-rerunfailures does: a flaky failure passes on the rerun with probability 1 - rate, a broken test
fails again.

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
from result_columns import columns_from_history  # noqa: E402  (temporary adapter)

from com.analysis.flaky import detect_flaky, flake_rate, severity  # noqa: E402
from com.analysis.manifest import manifestations  # noqa: E402
from com.analysis.results import ResultColumns  # noqa: E402

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


def with_reruns(cols: ResultColumns, truth: dict, broken_rows: np.ndarray, seed: int) -> ResultColumns:
    """Every failed row gets a second attempt (first attempts become attempt 1): a flaky failure outside a
    breakage passes with probability 1 - its planted rate, anything else fails again."""
    rng = np.random.default_rng(seed)
    rate = np.array([truth["flaky"].get(t, {}).get("rate", 1.0) for t in cols.tests])
    fail = (cols.status == 1) | (cols.status == 2)
    idx = np.flatnonzero(fail)
    passes = (~broken_rows[idx]) & (rng.random(idx.shape[0]) >= rate[cols.test[idx]])
    extra = cols.take(idx)
    extra.attempt = np.full(idx.shape[0], 2, np.int16)
    extra.ts_us = extra.ts_us + 1
    extra.status = np.where(passes, 0, extra.status).astype(np.int8)
    extra.signature = np.where(passes, -1, extra.signature).astype(np.int32)
    first_attempt = np.ones(len(cols), np.int16)
    cat = lambda a, b: np.concatenate([a, b])  # noqa: E731
    return ResultColumns(cat(cols.test, extra.test), cols.tests, cat(cols.ts_us, extra.ts_us),
                         cat(cols.status, extra.status), cat(first_attempt, extra.attempt),
                         cat(cols.duration_ms, extra.duration_ms), cat(cols.run, extra.run), cols.runs,
                         cat(cols.commit, extra.commit), cols.commits, cat(cols.signature, extra.signature),
                         cols.signatures)


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
    cols, examples = columns_from_history(history)
    truth = history.truth
    brk_rows, periods = broken_mask(cols, truth)
    if reruns:
        cols = with_reruns(cols, truth, brk_rows, spec["seed"])
        brk_rows = broken_mask(cols, truth)[0]
    built = time.perf_counter() - t0
    t1 = time.perf_counter()
    det = detect_flaky(cols, min_runs=MIN_RUNS)
    detect_s = time.perf_counter() - t1

    n_runs = runs_per_test(cols)
    test_ix = {t: i for i, t in enumerate(cols.tests)}
    planted = {t for t in truth["flaky"] if n_runs[test_ix[t]] >= MIN_RUNS}
    # A planted flaky test whose flakiness never showed outside its breakages cannot be found from results.
    fail_rows = (cols.status == 1) | (cols.status == 2)
    first = cols.attempt <= 1
    flaky_fail_counts = np.bincount(cols.test[fail_rows & first & ~brk_rows], minlength=len(cols.tests))
    observable = {t for t in planted if flaky_fail_counts[test_ix[t]] > 0}
    found = {f.test_id for f in det.flaky}
    tp = found & planted
    broken_only = set(periods) - set(truth["flaky"])
    planted_breaks = {(t, p[2]) for t, ps in periods.items() for p in ps if t in test_ix}
    found_breaks = {(b.test_id, b.since_commit) for b in det.broken}

    # Severity: detected band against the band of the planted rate (flake rate of the planted failure rate).
    bands = {}
    hits = near = realised_hits = 0
    errors = []
    # The rate the generator's dice actually produced (flaky failures / runs outside breakages): the band
    # detection can hope for, sampling noise of the planted rate aside.
    outside = first & ~brk_rows & (cols.status <= 2)
    runs_outside = np.bincount(cols.test[outside], minlength=len(cols.tests))
    order = ("intermittent", "moderate", "high", "severe")
    by_id = {f.test_id: f for f in det.flaky}
    for t in sorted(tp):
        want = severity(flake_rate(truth["flaky"][t]["rate"]))
        got = by_id[t].severity
        bands.setdefault(want, {}).setdefault(got, 0)
        bands[want][got] += 1
        hits += want == got
        near += abs(order.index(want) - order.index(got)) <= 1
        errors.append(abs(by_id[t].flake_rate - flake_rate(truth["flaky"][t]["rate"])))
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
        "excluded_runs": len(det.excluded_runs),
        "build_columns_seconds": round(built, 2), "detect_seconds": round(detect_s, 4),
    }
    out["manifestations"] = manifestation_accuracy(cols, truth, brk_rows, sorted(tp), examples, embed, spec["seed"])
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


def minilm():
    from com.embed import load_model, resolve_model

    model = load_model(resolve_model("all-MiniLM-L6-v2")[0])
    return lambda texts: model.encode(list(texts), batch_size=64, normalize_embeddings=True,
                                      convert_to_numpy=True, show_progress_bar=False)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help=f"only {', '.join(QUICK)}")
    ap.add_argument("--config", action="append", choices=sorted(CONFIGS))
    ap.add_argument("--no-embed", action="store_true", help="group manifestations by exact signature only")
    ap.add_argument("--work", type=Path, help="folder for the generated histories (default: a temp dir)")
    args = ap.parse_args(argv)
    names = args.config or (QUICK if args.quick else tuple(CONFIGS))
    embed = None if args.no_embed else minilm()
    with tempfile.TemporaryDirectory(dir=args.work) as tmp:
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
