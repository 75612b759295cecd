"""Benchmark of `com retrieve`; prints one JSON object of measured figures, with the load average beside them.

    .venv/bin/python scripts/bench_retrieve.py [--events 100000] [--reps 3] [--keep DIR]
    .venv/bin/python scripts/bench_retrieve.py --reuse DIR [--reps 3]   # latencies only, on a kept journal

What it does, through the real code paths (real journal, packaged MiniLM, LanceDB, tiktoken):
1. writes `--events` test results (scripts/bench_search.py's CI history: 2,000 tests, runs of 2,000 results,
   ~4% failing in a few dozen ways) with what a pack draws on besides them: a code change per run naming its
   commit, healing attempts of flaky tests, analysis commits naming failures (`com commit --event`), a daily
   roll-up; each run is one journal commit dated when it ran; then indexes it all;
2. in-process latency of `ops.retrieve.retrieve` (what `com retrieve` runs) over tests that fail, for the
   policies that take a test, and for a query without a test (its vector cached): the first call of the process
   apart, then p50/p95 wall and the median CPU time (user+sys) of repeated calls (target p95 <= 50 ms);
   the share of gathering the evidence and of packing; a new query (the model runs) apart;
3. whole-process `com retrieve ... --format json` wall time: the first call after the build, then repeated
   (median), and `python -c "import lancedb"` alone for scale.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

POLICIES_WITH_A_TEST = ("qa_root_cause", "qa_flaky_triage", "qa_healing", "qa_code_review_py")
STRATEGIES = ("retry the request", "raise the wait to 60 s", "wait for the element to be attached",
              "reset the fixture database", "pin the browser version")


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def pct(values, q):
    values = sorted(values)
    return round(values[min(len(values) - 1, int(round(q * (len(values) - 1))))] * 1000, 2)


def build(memory, events: int, seed: int = 7) -> dict:
    """The journal: CI runs of bench_search's synthetic history plus code changes, healing attempts, roll-ups and
    analysis commits, each run one commit dated when it ran."""
    from bench_search import Synth

    from com.model.event import validate
    from com.ops.refs import commit_about

    synth = Synth(seed=seed)
    rng = random.Random(seed)
    runs = max(1, events // len(synth.tests))
    counts = {"runs": runs, "results": 0, "code_changes": 0, "healing_attempts": 0, "rollups": 0, "analyses": 0}
    started = time.monotonic()
    for n, results in enumerate(synth.runs(runs), 1):
        ts = results[0]["ts"]
        sha = results[0]["data"]["commit"]
        extra = [validate({"type": "code_change", "project": "shop", "ts": ts, "data": {
            "sha": sha, "author": rng.choice(("ann", "bob", "eve")),
            "message": f"{rng.choice(('Fix', 'Refactor', 'Speed up', 'Log'))} the {rng.choice(('cart', 'checkout', 'auth', 'payments'))} "
                       f"{rng.choice(('service', 'client', 'fixtures', 'retry policy'))}",
            "files": [f"src/shop/{rng.choice(('cart', 'auth', 'payments'))}/{rng.choice(('api', 'db', 'ui'))}.py"]}})]
        failures = [e for e in results if e["data"]["status"] == "failed"]
        for failure in failures[: 2 if n % 5 == 0 else 0]:
            extra.append(validate({"type": "healing_attempt", "project": "shop", "ts": ts, "data": {
                "test_id": failure["data"]["test_id"], "strategy": rng.choice(STRATEGIES),
                "outcome": rng.choice(("fixed", "failed", "no change"))}}))
        if n % 20 == 0:
            extra.append(validate({"type": "rollup", "project": "shop", "ts": ts, "data": {
                "kind": "daily", "period": ts[:10],
                "narrative": f"{len(failures)} failures in run {n}; timeouts and refused connections lead"}}))
        os.environ["GIT_COMMITTER_DATE"] = ts
        memory.record(results + extra, message=f"ci run {n}")
        if n % 10 == 0 and failures:
            commit_about(memory, f"Triage of run {n}: {failures[0]['data']['error_type']} is the payments stub",
                         [failures[0]["id"]])
            counts["analyses"] += 1
        counts["results"] += len(results)
        for e in extra:
            key = {"code_change": "code_changes", "healing_attempt": "healing_attempts", "rollup": "rollups"}[e["type"]]
            counts[key] += 1
    os.environ.pop("GIT_COMMITTER_DATE", None)
    counts["write_s"] = round(time.monotonic() - started, 1)
    return counts


def failing_tests(memory, count: int) -> list[str]:
    """Tests with failures in the journal, the most failing first (flaky and broken ones)."""
    import numpy as np

    from com.model.result import FAILING_CODES

    snapshot = memory.snapshot()
    memory.follow(snapshot, [memory.results])
    cols = memory.results.columns(snapshot)
    failing = np.isin(cols.status, FAILING_CODES)
    per_test = np.bincount(cols.test[failing], minlength=len(cols.tests))
    order = np.argsort(-per_test, kind="stable")
    chosen = [int(i) for i in order if per_test[i] > 0]
    # Half the most failing (broken-looking), half from the middle (flaky-looking).
    half = count // 2
    picks = chosen[:half] + chosen[len(chosen) // 2: len(chosen) // 2 + count - half]
    return [cols.tests[i] for i in picks]


def latencies(memory, tests: list[str], queries: list[str], reps: int) -> dict:
    from com.analysis.packing import pack
    from com.models.tokens import count_tokens
    from com.model.filter import EventFilter, TestMatch
    from com.model.text import normalise
    from com.ops.retrieve import gather, retrieve
    from com.policies import event_filter, load_policies, user_dir

    cases = [dict(policy=p, test=t) for p in POLICIES_WITH_A_TEST for t in tests]
    cases += [dict(policy="qa_regression_select", query=q) for q in queries]
    memory.embedder().embed([normalise(q) for q in queries])  # query vectors cached: the model is not timed here

    t, c = time.perf_counter(), time.process_time()
    first = retrieve(memory, **cases[0])
    first_call = {"wall_ms": round((time.perf_counter() - t) * 1000, 1),
                  "cpu_ms": round((time.process_time() - c) * 1000, 1), "items": len(first.items)}

    walls, cpus, items, tokens, by_policy = [], [], [], [], {}
    load_before = load()
    for _ in range(reps):
        for case in cases:
            t, c = time.perf_counter(), time.process_time()
            p = retrieve(memory, **case)
            wall = time.perf_counter() - t
            walls.append(wall)
            cpus.append(time.process_time() - c)
            items.append(len(p.items))
            tokens.append(p.tokens_used)
            by_policy.setdefault(case["policy"], []).append(wall)
    # The same calls with every rendering counted afresh (the process's memo of counted texts emptied first), as
    # a process asked about tests it never packed before would count them.
    from com.models import tokens as token_counter

    fresh_counts = []
    for case in cases:
        token_counter._counted.clear()
        t = time.perf_counter()
        retrieve(memory, **case)
        fresh_counts.append(time.perf_counter() - t)
    repeated = {
        "calls": len(walls), "p50_ms": pct(walls, 0.5), "p95_ms": pct(walls, 0.95), "max_ms": pct(walls, 1.0),
        "cpu_p50_ms": pct(cpus, 0.5), "cpu_p95_ms": pct(cpus, 0.95),
        "items_median": statistics.median(items), "tokens_used_median": statistics.median(tokens),
        "by_policy": {k: {"p50_ms": pct(v, 0.5), "p95_ms": pct(v, 0.95)} for k, v in by_policy.items()},
        "tokens_counted_afresh": {"p50_ms": pct(fresh_counts, 0.5), "p95_ms": pct(fresh_counts, 0.95)},
        "load_avg_before": load_before, "load_avg_after": load(),
    }

    # Where the time goes: gathering the evidence (index, views, embedding lookups) and packing (scores, MMR,
    # rendering, tiktoken), on the root-cause cases.
    policies = load_policies(user_dir(memory.root))
    policy = policies["qa_root_cause"]
    snapshot = memory.snapshot()
    gather_s, pack_s, candidates = [], [], []
    for test in tests:
        match = TestMatch.parse(test)
        where = event_filter(policy, EventFilter())
        t = time.perf_counter()
        evidence = gather(memory, snapshot, policy, where, match, None)
        gather_s.append(time.perf_counter() - t)
        t = time.perf_counter()
        pack(evidence.candidates, policy, test=test, query_vector=evidence.query_vector,
             keywords=evidence.query_text, now=snapshot.commit.commit_time, facts=evidence.facts,
             counter=count_tokens)
        pack_s.append(time.perf_counter() - t)
        candidates.append(len(evidence.candidates))
    parts = {"gather_p50_ms": pct(gather_s, 0.5), "pack_p50_ms": pct(pack_s, 0.5),
             "candidates_median": statistics.median(candidates)}

    # A query nobody asked before: the model embeds it (loaded once per process).
    memory.embedder().model.embed_batch(["warm up"])
    fresh = []
    for i, q in enumerate(queries[:8]):
        t = time.perf_counter()
        retrieve(memory, policy="qa_regression_select", query=f"{q} after the deploy {i}")
        fresh.append(time.perf_counter() - t)
    return {"first_call": first_call, "repeated": repeated, "parts": parts,
            "new_query_including_embedding": {"p50_ms": pct(fresh, 0.5), "p95_ms": pct(fresh, 0.95)}}


def process(work: Path, args: list[str]) -> tuple[float, float]:
    """Wall and CPU (user+sys of the child) seconds of one `com` process."""
    exe = Path(sys.executable).parent / "com"
    before = os.times()
    t = time.monotonic()
    r = subprocess.run([str(exe), *args], cwd=work, capture_output=True, text=True)
    wall = time.monotonic() - t
    after = os.times()
    if r.returncode != 0:
        raise SystemExit(f"com {' '.join(args)} failed: {r.stderr}")
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    return wall, cpu


def processes(work: Path, test: str, reps: int) -> dict:
    args = ["retrieve", "--policy", "qa_root_cause", "--test", test, "--format", "json"]
    load_before = load()
    first = process(work, args)
    repeated = [process(work, args) for _ in range(reps)]
    t = time.monotonic()
    subprocess.run([sys.executable, "-c", "import lancedb"], check=True)
    lancedb_s = time.monotonic() - t
    return {"first_wall_s": round(first[0], 2), "first_cpu_s": round(first[1], 2),
            "repeated_wall_median_s": round(statistics.median(w for w, _ in repeated), 2),
            "repeated_cpu_median_s": round(statistics.median(c for _, c in repeated), 2),
            "import_lancedb_alone_s": round(lancedb_s, 2),
            "load_avg_before": load_before, "load_avg_after": load()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--tests", type=int, default=10, help="tests asked about (each with every policy)")
    parser.add_argument("--queries", type=int, default=10, help="queries without a test (qa_regression_select)")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="build in this folder and keep it")
    parser.add_argument("--reuse", type=Path, help="measure only, on a folder made with --keep")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    for name in [n for n in os.environ if n.startswith("COM_")]:
        del os.environ[name]

    from bench_search import QUERIES

    from com.memory import Memory
    from com.ops.search import update

    report: dict = {"machine": {"cpus": os.cpu_count(), "load_avg_at_start": load()}}
    if args.reuse:
        work = args.reuse.resolve()
        os.chdir(work)
        memory = Memory(work / ".com")
    else:
        work = (args.keep or Path(tempfile.mkdtemp(prefix="com-bench-retrieve-"))).resolve()
        work.mkdir(parents=True, exist_ok=True)
        os.chdir(work)
        memory, _ = Memory.init(work / ".com")
        report["journal"] = build(memory, args.events)
    t = time.monotonic()
    indexed = update(memory)
    report["index"] = {"update_s": round(time.monotonic() - t, 1), "rows": indexed.total_rows,
                       "texts": indexed.total_texts, "embedded": indexed.embedded}
    tests = failing_tests(memory, args.tests)
    report["tests"] = len(tests)
    report["in_process"] = latencies(memory, tests, list(QUERIES[: args.queries]), args.reps)
    report["in_process"]["target_p95_ms"] = 50
    report["process"] = processes(work, tests[0], args.reps)
    report["machine"]["load_avg_at_end"] = load()
    print(json.dumps(report, indent=1))
    if not (args.keep or args.reuse):
        import shutil

        os.chdir(ROOT)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
