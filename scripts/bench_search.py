"""Benchmark of the semantic index and `com search`; prints one JSON object of measured figures.

    .venv/bin/python scripts/bench_search.py [--events 100000] [--full 1000000] [--queries 26] [--keep DIR]
    .venv/bin/python scripts/bench_search.py --reuse DIR [--reps 3]   # latencies only, on a kept journal

A million results take minutes to write and index: build them once with --keep DIR, then measure the search
latencies again and again on that folder with --reuse DIR (it indexes nothing new unless the journal moved).

What it does, all through the real code paths (real journal, real packaged model, real LanceDB):
1. embedding throughput of the packaged model on this CPU (distinct failure texts, cold cache);
2. writes `--events` synthetic but realistic test results into a real journal (2,000 tests, runs of 2,000
   results, ~4% failing with a few dozen messages whose numbers, ports, paths and ids vary), then times the
   first index build (cold embedding cache) and a `--rebuild` (warm cache);
3. in-process search latency (p50/p95) at that size: hybrid, vector-only, keyword-only, with a filter, at an
   older revision, and the query embedding alone;
4. grows the same journal to `--full` results (more runs) and times the incremental update, then a full
   rebuild from the journal alone, then the same latencies at that size (IVF_PQ index);
5. whole-process `com search` wall time (a repeated query whose vector is cached, and a new query that needs
   the model), median of 3.
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
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

AREAS = ("cart", "checkout", "auth", "search", "payments", "inventory", "shipping", "users",
         "catalog", "orders", "reports", "notify", "pricing", "reviews", "admin", "billing")
VERBS = ("add", "remove", "update", "compute", "validate", "parse", "render", "sync", "apply", "fetch")
NOUNS = ("item", "total", "discount", "token", "session", "order", "price", "stock", "label", "invoice",
         "refund", "address", "coupon", "currency")
SELECTORS = ("[data-test=checkout]", "#submit-order", "text=Add to cart", "[data-test=login-button]",
             "iframe[name=payment-frame]", "role=dialog[name='Confirm']")
HOSTS = ("db.internal", "payments-stub", "redis", "search.internal", "smtp-mock")
FAILURES = (
    ("TimeoutError", lambda r: f"Timeout {r.choice((5000, 10000, 30000))}ms exceeded waiting for selector \"{r.choice(SELECTORS)}\""),
    ("AssertionError", lambda r: f"assert {r.randint(1, 99)}.{r.randint(10, 99)} == {r.randint(1, 99)}.{r.randint(10, 99)}"),
    ("ConnectionRefusedError", lambda r: f"[Errno 111] Connection refused ({r.choice(HOSTS)}:{r.randint(1024, 65000)})"),
    ("OperationalError", lambda r: f"could not connect to server at \"{r.choice(HOSTS)}\" port {r.randint(1024, 65000)}"),
    ("KeyError", lambda r: f"'{r.choice(NOUNS)}'"),
    ("ReadTimeout", lambda r: f"HTTPSConnectionPool(host='payments-stub', port=8080): Read timed out. (read timeout={r.randint(5, 60)})"),
    ("PaymentError", lambda r: f"E40{r.randint(70, 79)}: gateway declined transaction {uuid.UUID(int=r.getrandbits(128))}"),
    ("FileNotFoundError", lambda r: f"[Errno 2] No such file or directory: '/tmp/pytest-of-ci/pytest-{r.randint(1, 999)}/test_export0/out.csv'"),
    ("AssertionError", lambda r: f"expected status 200 but got {r.choice((500, 502, 503, 404))}"),
    ("ValueError", lambda r: f"could not convert string to float: '{r.randint(1, 99)},{r.randint(10, 99)}'"),
    ("RuntimeError", lambda r: "Event loop is closed"),
    ("StaleElementReferenceException", lambda r: "stale element reference: element is not attached to the page document"),
    ("IntegrityError", lambda r: f"duplicate key value violates unique constraint \"orders_pkey\" DETAIL: Key (id)=({r.randint(10000, 999999)}) already exists."),
    ("ConnectionError", lambda r: f"Error 111 connecting to redis:{r.randint(6000, 6999)}. Connection refused."),
    ("ExpiredSignatureError", lambda r: "Signature has expired"),
    ("AttributeError", lambda r: f"'NoneType' object has no attribute '{r.choice(NOUNS)}'"),
    ("TypeError", lambda r: "unsupported operand type(s) for +: 'int' and 'str'"),
    ("OSError", lambda r: "[Errno 28] No space left on device"),
    ("SSLError", lambda r: "certificate verify failed: unable to get local issuer certificate"),
    ("MemoryError", lambda r: f"cannot allocate {r.randint(100, 900)} MB for the report buffer"),
)
SKIPS = ("requires a GPU runner", "not implemented yet", "needs the staging database")
QUERIES = (
    "timeout waiting for the payment iframe", "database connection refused", "E4077", "gateway declined the card",
    "redis unreachable", "element detached from the DOM", "price comparison assertion failed", "disk is full",
    "token expired", "certificate problem on https", "float parsing error with a comma", "event loop closed",
    "server returned 503", "duplicate primary key on orders", "None has no attribute", "string plus int type error",
    "file missing in temp folder", "read timed out talking to payments", "out of memory building the report",
    "checkout button never clickable", "login button selector timeout", "cart total wrong", "refund invoice parse",
    "inventory stock sync broken", "shipping address validation", "search results render slowly",
)


class Synth:
    """Test results of a CI history: 2,000 tests, most always pass, some fail in one or two ways, some flaky."""

    def __init__(self, seed: int = 7, tests: int = 2000):
        self.r = random.Random(seed)
        self.tests = []
        for n in range(tests):
            area = AREAS[n % len(AREAS)]
            name = f"tests/{area}/test_{self.r.choice(VERBS)}_{self.r.choice(NOUNS)}.py::test_{self.r.choice(VERBS)}_{n}"
            kind = self.r.random()
            modes = self.r.sample(range(len(FAILURES)), 2)
            # 90% solid, 6% flaky (fail 15% of runs), 3% often broken (fail 50%), 1% skipped.
            rate = 0.0 if kind < 0.90 else 0.15 if kind < 0.96 else 0.5 if kind < 0.99 else -1
            self.tests.append((name, rate, modes))
        self.run = 0

    def runs(self, count: int):
        from com.model.event import validate as normalize

        for _ in range(count):
            self.run += 1
            day = 1 + self.run // 20
            ts = f"2026-{1 + (day // 28) % 12:02d}-{1 + day % 28:02d}T{self.run % 24:02d}:00:00Z"
            sha = f"{self.r.getrandbits(160):040x}"
            events = []
            for name, rate, modes in self.tests:
                data = {"test_id": name, "duration_ms": self.r.randint(5, 3000), "commit": sha, "run_id": f"run-{self.run}"}
                if rate < 0:
                    data.update(status="skipped", message=self.r.choice(SKIPS))
                elif self.r.random() < rate:
                    etype, make = FAILURES[self.r.choice(modes)]
                    message = make(self.r)
                    line = self.r.randint(10, 400)
                    data.update(status="failed", error_type=etype, error_message=f"{etype}: {message}",
                                trace=f"Traceback (most recent call last):\n  File \"{name.split('::')[0]}\", line {line}, in "
                                      f"{name.split('::')[1]}\n    result = client.{self.r.choice(VERBS)}()\n{etype}: {message}")
                else:
                    data["status"] = "passed"
                events.append(normalize({"type": "test_result", "project": "shop", "source": "pytest", "ts": ts, "data": data}))
            yield events


def pct(values, q):
    values = sorted(values)
    return round(values[min(len(values) - 1, int(round(q * (len(values) - 1))))] * 1000, 2)


def timings(fn, items, reps=1):
    out = []
    for _ in range(reps):
        for item in items:
            t = time.perf_counter()
            fn(item)
            out.append(time.perf_counter() - t)
    return {"p50_ms": pct(out, 0.5), "p95_ms": pct(out, 0.95), "n": len(out)}


def write_runs(memory, synth, runs):
    started = time.monotonic()
    for events in synth.runs(runs):
        memory.record(events, message=f"ci run {synth.run}")
    return round(time.monotonic() - started, 1)


class Searcher:
    """One memory's search, kept for many queries in one process (the model and the tables load once)."""

    def __init__(self, memory):
        self.memory = memory
        self.embedder = memory.embedder()
        self.index = memory.index()

    def update(self, rebuild: bool = False):
        from com.ops.search import update

        return update(self.memory, rebuild=rebuild)

    def search(self, query, k=10, status=None, **options):
        from com.model.filter import EventFilter
        from com.ops.search import search

        where = EventFilter.create(statuses=[status] if status else ())
        return search(self.memory, query, k, where, **options).results


def latencies(searcher, journal, queries, older_rev, reps=2):
    from com.model.text import normalise

    searcher.embedder.embed([normalise(q) for q in queries])  # the query vectors, cached: index cost alone below
    s = searcher.search
    first = timings(lambda q: s(q, 10), queries)  # a fresh process's first queries read the index pages in
    for q in queries:
        s(q, 10, status="failed")
        s(q, 10, at=older_rev)
    out = {
        "hybrid_first_pass": first,
        "hybrid": timings(lambda q: s(q, 10), queries, reps=reps),
        "vector": timings(lambda q: s(q, 10, mode="vector"), queries, reps=reps),
        "keyword": timings(lambda q: s(q, 10, mode="keyword"), queries, reps=reps),
        "hybrid_status_failed": timings(lambda q: s(q, 10, status="failed"), queries, reps=reps),
        "hybrid_at_older_rev": timings(lambda q: s(q, 10, at=older_rev), queries, reps=reps),
    }
    model = searcher.embedder.model
    out["query_embedding"] = timings(lambda q: model.embed_batch([q]), [f"{q} {i}" for i, q in enumerate(queries)])
    fresh = [f"{q} after the deploy {i}" for i, q in enumerate(queries)]
    out["hybrid_new_query_including_embedding"] = timings(lambda q: s(q, 10), fresh)
    out["min_results_per_query"] = min(len(s(q, 10)) for q in queries)
    return out


def process_search(work: Path, text: str) -> float:
    exe = Path(sys.executable).parent / "com"
    t = time.monotonic()
    r = subprocess.run([str(exe), "search", text, "-k", "10", "--json"], cwd=work, capture_output=True, text=True)
    elapsed = time.monotonic() - t
    if r.returncode != 0:
        raise SystemExit(f"com search failed: {r.stderr}")
    return elapsed


def reuse(work: Path, queries: list[str], reps: int) -> dict:
    """Search latencies on a journal built earlier with --keep (its older revision: half-way back)."""
    from com.memory import Memory

    os.chdir(work)
    memory = Memory((work / ".com").resolve())
    journal = memory.journal
    commits = sum(1 for _ in journal.repo.walk(journal.head().id))
    searcher = Searcher(memory)
    update = searcher.update()
    return {
        "machine": {"cpus": os.cpu_count(), "load_avg_at_start": os.getloadavg()},
        "events": searcher.index.row_count(), "texts": searcher.index.text_count(), "ann": searcher.index.has_ann(),
        "index_update_s": round(update.seconds, 2),
        "search": latencies(searcher, journal, queries, f"HEAD~{commits // 2}", reps=reps),
        "load_avg_at_end": os.getloadavg(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--full", type=int, default=1_000_000, help="grow to this many results (0: skip)")
    parser.add_argument("--queries", type=int, default=len(QUERIES))
    parser.add_argument("--keep", type=Path, help="build in this folder and keep it")
    parser.add_argument("--reuse", type=Path, help="measure search latencies only, on a folder made with --keep")
    parser.add_argument("--reps", type=int, default=2, help="times each query kind runs over the queries")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    for name in [n for n in os.environ if n.startswith("COM_")]:
        del os.environ[name]
    if args.reuse:
        print(json.dumps(reuse(args.reuse, list(QUERIES[: args.queries]), args.reps), indent=1))
        return

    from com.memory import Memory
    from com.model.text import event_text
    from com.models.embedding import Embedder

    work = args.keep or Path(tempfile.mkdtemp(prefix="com-bench-search-"))
    work.mkdir(parents=True, exist_ok=True)
    os.chdir(work)
    memory, _ = Memory.init(work / ".com")
    journal = memory.journal
    synth = Synth()
    per_run = len(synth.tests)
    queries = list(QUERIES[: args.queries])
    report: dict = {"machine": {"cpus": os.cpu_count(), "load_avg_at_start": os.getloadavg()[0]}}

    # 1. embedding throughput: distinct failure texts through the model, nothing cached.
    sample = []
    for events in Synth(seed=99).runs(3):
        sample.extend(event_text(e) for e in events if e["data"]["status"] == "failed")
    sample = list(dict.fromkeys(sample))[:600]
    t = time.monotonic()
    embedder = Embedder.for_name("all-MiniLM-L6-v2", work / "throwaway-cache", dim=384)
    embedder.model.model()
    load_s = time.monotonic() - t
    t = time.monotonic()
    embedder.embed(sample)
    report["embedding"] = {"model_load_s": round(load_s, 2), "texts": len(sample),
                           "texts_per_s": round(len(sample) / (time.monotonic() - t), 1)}

    # 2. a journal of --events results, indexed from scratch (cold cache), then rebuilt (warm cache).
    runs = max(1, args.events // per_run)
    write_s = write_runs(memory, synth, runs)
    older_rev = f"HEAD~{max(1, runs // 2)}"
    searcher = Searcher(memory)
    build = searcher.update()
    rebuild = searcher.update(rebuild=True)
    report["small"] = {
        "events": runs * per_run, "journal_write_s": write_s,
        "index_build_cold_cache": {**build.to_json(), "events_per_s": round(build.rows / build.seconds, 1)},
        "index_rebuild_warm_cache": {**rebuild.to_json(), "events_per_s": round(rebuild.rows / rebuild.seconds, 1)},
        "search": latencies(searcher, journal, queries, older_rev),
    }

    # 3. grow to --full results; incremental update, full rebuild from the journal alone, latencies again.
    if args.full and args.full > runs * per_run:
        more = max(0, args.full // per_run - runs)
        write_s = write_runs(memory, synth, more)
        grow = searcher.update()
        rebuild = searcher.update(rebuild=True)
        report["full"] = {
            "events": (runs + more) * per_run, "journal_write_s": write_s,
            "index_update_incremental": {**grow.to_json(), "events_per_s": round(grow.rows / max(grow.seconds, 1e-9), 1)},
            "index_rebuild_warm_cache": {**rebuild.to_json(), "events_per_s": round(rebuild.rows / rebuild.seconds, 1)},
            "ann": searcher.index.has_ann(),
            "search": latencies(searcher, journal, queries, f"HEAD~{(runs + more) // 2}"),
        }

    # 4. whole process: a repeated query (vector cached: the model is not loaded) and new queries.
    process_search(work, queries[0])
    cached = [process_search(work, queries[0]) for _ in range(3)]
    new = [process_search(work, f"{queries[1]} seen on run {i}") for i in range(3)]
    report["com_search_process_s"] = {"repeated_query_median": round(statistics.median(cached), 2),
                                      "new_query_median": round(statistics.median(new), 2)}
    report["index_bytes"] = sum(p.stat().st_size for p in memory.index_path.rglob("*") if p.is_file())
    report["machine"]["load_avg_at_end"] = os.getloadavg()[0]
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
