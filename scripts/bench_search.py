"""Benchmark of the semantic index and `com search`; prints one JSON object of measured figures.

    .venv/bin/python scripts/bench_search.py [--events 100000] [--full 1000000] [--queries 26] [--keep DIR]
    .venv/bin/python scripts/bench_search.py --reuse DIR [--reps 3]   # a memory made earlier (DIR/.com)

A million results take minutes to write and index: build them once with --keep DIR (or use a history from
`scripts/gen_history.py OUT ... --ingest`), then measure again and again on that folder with --reuse DIR (it
indexes nothing new unless the journal moved). Every figure is a median (and p95 where it says so) with the
load average beside it, and CPU time (user+sys) beside wall time: this machine is shared and often busy.

What it does, all through the real code paths (real journal, real packaged model, real LanceDB and row store):
1. embedding throughput of the packaged model on this CPU (distinct failure texts, cold cache);
2. writes `--events` synthetic but realistic test results into a real journal (2,000 tests, runs of 2,000
   results, ~4% failing with a few dozen messages whose numbers, ports, paths and ids vary), then times the
   first index build (cold embedding cache) and a `--rebuild` (warm cache);
3. grows the same journal to `--full` results (more runs) and times the incremental update and a rebuild;
4. on the result (or the --reuse folder), `measure`:
   - the index on disk: LanceDB texts, the row store, the vectors file, and bytes per event;
   - in-process latency (p50/p95, and CPU per query): hybrid, vector-only, keyword-only, `--status failed`,
     `--at` half-way back, the first pass of a process, the query embedding alone, a new query with it;
   - the first query of fresh processes (open the memory, then one search: its time alone);
   - whole `com search` processes, a new query text (the model runs) and a repeated one (its vector is
     cached): wall, CPU and peak RSS;
   - the resident mode, `com serve` on stdin/stdout: the round trip of each request seen by the client, new
     query texts and repeated ones.
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


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def median(values) -> float:
    return round(statistics.median(values), 4) if values else None


def new_texts(count: int, seed: int) -> list[str]:
    """Query texts no run has embedded before: made-up words survive normalisation (numbers would not)."""
    r = random.Random(f"{seed}-{time.time_ns()}")
    word = lambda: "".join(r.choice("bcdfghjklmnpqrstvwxz") + r.choice("aeiou") for _ in range(3))  # noqa: E731
    return [f"{r.choice(QUERIES)} near {word()} {word()}" for _ in range(count)]


def cpu_timings(fn, items, reps=1):
    """p50/p95 of wall time per call, and the median CPU time per call (this process: user+sys)."""
    out, cpu = [], []
    for _ in range(reps):
        for item in items:
            c, t = time.process_time(), time.perf_counter()
            fn(item)
            out.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
    return {"p50_ms": pct(out, 0.5), "p95_ms": pct(out, 0.95), "cpu_p50_ms": pct(cpu, 0.5), "n": len(out)}


def latencies(searcher, journal, queries, older_rev, reps=2):
    from com.model.text import normalise

    searcher.embedder.embed([normalise(q) for q in queries])  # the query vectors, cached: index cost alone below
    s = searcher.search
    started = load()
    first = cpu_timings(lambda q: s(q, 10), queries)  # a fresh process's first queries map the index in
    out = {
        "load_avg_at_start": started,
        "hybrid_first_pass": first,
        "hybrid": cpu_timings(lambda q: s(q, 10), queries, reps=reps),
        "vector": cpu_timings(lambda q: s(q, 10, mode="vector"), queries, reps=reps),
        "keyword": cpu_timings(lambda q: s(q, 10, mode="keyword"), queries, reps=reps),
        "hybrid_status_failed": cpu_timings(lambda q: s(q, 10, status="failed"), queries, reps=reps),
        "hybrid_at_older_rev": cpu_timings(lambda q: s(q, 10, at=older_rev), queries, reps=reps),
    }
    model = searcher.embedder.model
    out["query_embedding"] = cpu_timings(lambda q: model.embed_batch([q]), new_texts(len(queries), 1))
    out["hybrid_new_query_including_embedding"] = cpu_timings(lambda q: s(q, 10), new_texts(len(queries), 2))
    out["min_results_per_query"] = min(len(s(q, 10)) for q in queries)
    out["load_avg_at_end"] = load()
    return out


def run_process(argv: list[str], cwd: Path, stdin: str | None = None) -> dict:
    """One whole process: wall time, and its own CPU time (user+sys) and peak RSS (os.wait4's rusage)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                                stdout=out, stderr=err)
        if stdin is not None:
            proc.stdin.write(stdin.encode())
            proc.stdin.close()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            raise SystemExit(f"{' '.join(argv[:3])} failed: {err.read().decode()[-2000:]}")
        out.seek(0)
        return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "rss_mib": usage.ru_maxrss / 1024,
                "stdout": out.read()}


def process_figures(work: Path, text: str, runs: int) -> dict:
    """`com search TEXT` as whole processes: wall, CPU and peak RSS of each, medians and the worst."""
    exe = str(Path(sys.executable).parent / "com")
    runs_out = [run_process([exe, "search", text.format(new=new_texts(1, 10 + i)[0]), "-k", "10", "--json"], work)
                for i in range(runs)]
    return {"wall_s_median": median([r["wall_s"] for r in runs_out]),
            "wall_s_max": round(max(r["wall_s"] for r in runs_out), 3),
            "cpu_s_median": median([r["cpu_s"] for r in runs_out]),
            "peak_rss_mib_median": round(statistics.median(r["rss_mib"] for r in runs_out), 1),
            "peak_rss_mib_max": round(max(r["rss_mib"] for r in runs_out), 1), "runs": runs, "load_avg_at_end": load()}


FIRST_QUERY = """
import json, sys, time
sys.path.insert(0, {root!r})
from com.memory import Memory
from com.model.text import normalise
from com.ops.search import search, update
memory = Memory(__import__("pathlib").Path({memory!r}))
t = time.perf_counter(); c = time.process_time()
update(memory)
memory.embedder().embed([normalise({query!r})])
opened, opened_cpu = time.perf_counter() - t, time.process_time() - c
t = time.perf_counter(); c = time.process_time()
search(memory, {query!r}, 10)
print(json.dumps({{"open_s": opened, "open_cpu_s": opened_cpu, "first_ms": (time.perf_counter() - t) * 1000,
                  "first_cpu_ms": (time.process_time() - c) * 1000}}))
"""


def first_query_figures(work: Path, queries: list[str], runs: int) -> dict:
    """The first search of fresh processes (after opening the memory and embedding the query), its time alone."""
    out = []
    for i in range(runs):
        code = FIRST_QUERY.format(root=str(ROOT), memory=str(work / ".com"), query=queries[i % len(queries)])
        r = subprocess.run([sys.executable, "-c", code], cwd=work, capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit(f"first-query probe failed: {r.stderr[-2000:]}")
        out.append(json.loads(r.stdout.strip().splitlines()[-1]))
    firsts = [o["first_ms"] for o in out]
    return {"first_query_p50_ms": round(statistics.median(firsts), 2), "first_query_max_ms": round(max(firsts), 2),
            "first_query_cpu_p50_ms": round(statistics.median(o["first_cpu_ms"] for o in out), 2),
            "open_s_median": median([o["open_s"] for o in out]), "processes": runs, "load_avg_at_end": load()}


def resident_figures(work: Path, queries: list[str], count: int) -> dict:
    """`com serve` on stdin/stdout: each request written, its answer read, timed by the client."""
    exe = str(Path(sys.executable).parent / "com")
    proc = subprocess.Popen([exe, "serve"], cwd=work, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)

    def ask(request: dict) -> tuple[float, dict]:
        t = time.perf_counter()
        proc.stdin.write(json.dumps(request) + "\n")
        proc.stdin.flush()
        answer = json.loads(proc.stdout.readline())
        if not answer.get("ok"):
            raise SystemExit(f"com serve: {answer}")
        return time.perf_counter() - t, answer

    try:
        started = time.perf_counter()
        ask({"op": "ping"})
        ask({"text": queries[0], "k": 10})  # loads the model and maps the index
        ready = time.perf_counter() - started
        repeated = [ask({"text": queries[i % len(queries)], "k": 10}) for i in range(count)]
        fresh = [ask({"text": q, "k": 10}) for q in new_texts(count, 3)]
        filtered = [ask({"text": queries[i % len(queries)], "k": 10, "status": "failed"}) for i in range(count)]
    finally:
        proc.stdin.close()
        proc.wait(timeout=120)

    def summary(pairs):
        walls = [w for w, _ in pairs]
        return {"p50_ms": pct(walls, 0.5), "p95_ms": pct(walls, 0.95),
                "server_p50_ms": round(statistics.median(a["ms"] for _, a in pairs), 2), "n": len(pairs)}

    return {"ready_s": round(ready, 3), "repeated_query": summary(repeated), "new_query": summary(fresh),
            "status_failed": summary(filtered), "load_avg_at_end": load()}


def index_figures(memory) -> dict:
    """The index on disk: LanceDB texts (at the index URI), the row store and the vectors file (.com/cache)."""
    lance = sum(p.stat().st_size for p in memory.index_path.rglob("*") if p.is_file())
    rows = sum(p.stat().st_size for p in memory.cache_path.glob("search.sqlite*"))
    vectors = sum(p.stat().st_size for p in memory.cache_path.glob("search.vectors"))
    events = memory.index().row_count()
    total = lance + rows + vectors
    return {"lancedb_bytes": lance, "row_store_bytes": rows, "vectors_bytes": vectors, "total_bytes": total,
            "total_mib": round(total / 2 ** 20, 1), "events": events,
            "bytes_per_event": round(total / events, 1) if events else None}


def measure(work: Path, memory, searcher, queries: list[str], older_rev: str, reps: int, processes: int,
            requests: int) -> dict:
    """Every figure on one memory (see the module docstring, step 4)."""
    out = {"index": index_figures(memory), "search": latencies(searcher, memory.journal, queries, older_rev, reps=reps)}
    out["first_query_of_a_process"] = first_query_figures(work, queries, processes)
    run_process([str(Path(sys.executable).parent / "com"), "search", queries[0], "--json"], work)  # warm the page cache
    out["com_search_process"] = {
        "load_avg_at_start": load(),
        "new_query": process_figures(work, "{new}", processes),
        "repeated_query": process_figures(work, queries[0], processes),
    }
    from com.cli.app import COMMANDS

    # (A version of com without `com serve` is measured too, for a before/after table.)
    out["resident_com_serve"] = resident_figures(work, queries, requests) if "serve" in COMMANDS else None
    return out


def reuse(work: Path, queries: list[str], reps: int, processes: int, requests: int) -> dict:
    """Every figure on a memory made earlier (its older revision: half-way back)."""
    from com.memory import Memory

    os.chdir(work)
    memory = Memory((work / ".com").resolve())
    journal = memory.journal
    commits = sum(1 for _ in journal.repo.walk(journal.head().id))
    searcher = Searcher(memory)
    started = load()
    update = searcher.update()
    return {
        "machine": {"cpus": os.cpu_count(), "load_avg_at_start": started},
        "events": searcher.index.row_count(), "texts": searcher.index.text_count(), "ann": searcher.index.has_ann(),
        "index_update_s": round(update.seconds, 2),
        **measure(work, memory, searcher, queries, f"HEAD~{commits // 2}", reps, processes, requests),
        "load_avg_at_end": load(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--full", type=int, default=1_000_000, help="grow to this many results (0: skip)")
    parser.add_argument("--queries", type=int, default=len(QUERIES))
    parser.add_argument("--keep", type=Path, help="build in this folder and keep it")
    parser.add_argument("--reuse", type=Path, help="measure search latencies only, on a folder made with --keep")
    parser.add_argument("--reps", type=int, default=2, help="times each query kind runs over the queries")
    parser.add_argument("--processes", type=int, default=5, help="whole processes per process figure")
    parser.add_argument("--requests", type=int, default=50, help="requests per kind sent to com serve")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    for name in [n for n in os.environ if n.startswith("COM_")]:
        del os.environ[name]
    if args.reuse:
        print(json.dumps(reuse(args.reuse.resolve(), list(QUERIES[: args.queries]), args.reps, args.processes,
                               args.requests), indent=1))
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
    report: dict = {"machine": {"cpus": os.cpu_count(), "load_avg_at_start": load()}}

    # 1. embedding throughput: distinct failure texts through the model, nothing cached.
    sample = []
    for events in Synth(seed=99).runs(3):
        sample.extend(event_text(e) for e in events if e["data"]["status"] == "failed")
    sample = list(dict.fromkeys(sample))[:600]
    t, c = time.monotonic(), time.process_time()
    embedder = Embedder.for_name("all-MiniLM-L6-v2", work / "throwaway-cache", dim=384)
    embedder.embed(["load the model"])
    load_s, load_cpu = time.monotonic() - t, time.process_time() - c
    t, c = time.monotonic(), time.process_time()
    embedder.embed(sample)
    seconds, cpu = time.monotonic() - t, time.process_time() - c
    report["embedding"] = {"model": type(embedder.model).__name__, "model_load_s": round(load_s, 2),
                           "model_load_cpu_s": round(load_cpu, 2), "texts": len(sample),
                           "texts_per_s": round(len(sample) / seconds, 1), "texts_per_cpu_s": round(len(sample) / cpu, 1),
                           "load_avg": load()}

    # 2. a journal of --events results, indexed from scratch (cold cache), then rebuilt (warm cache).
    runs = max(1, args.events // per_run)
    write_s = write_runs(memory, synth, runs)
    older_rev = f"HEAD~{max(1, runs // 2)}"
    searcher = Searcher(memory)
    build = timed(searcher.update)
    rebuild = timed(lambda: searcher.update(rebuild=True))
    report["small"] = {
        "events": runs * per_run, "journal_write_s": write_s,
        "index_build_cold_cache": build, "index_rebuild_warm_cache": rebuild,
        "search": latencies(searcher, journal, queries, older_rev),
    }

    # 3. grow to --full results; incremental update, full rebuild from the journal alone.
    total_runs = runs
    if args.full and args.full > runs * per_run:
        more = max(0, args.full // per_run - runs)
        write_s = write_runs(memory, synth, more)
        total_runs += more
        report["full"] = {
            "events": total_runs * per_run, "journal_write_s": write_s,
            "index_update_incremental": timed(searcher.update),
            "index_rebuild_warm_cache": timed(lambda: searcher.update(rebuild=True)),
            "ann": searcher.index.has_ann(),
        }

    # 4. every figure at the final size: index bytes, latencies, first queries, whole processes, com serve.
    report["measured"] = measure(work, memory, searcher, queries, f"HEAD~{max(1, total_runs // 2)}", args.reps,
                                 args.processes, args.requests)
    report["machine"]["load_avg_at_end"] = load()
    print(json.dumps(report, indent=1))


def timed(update) -> dict:
    """An index update with its wall time, CPU time and throughput."""
    c = time.process_time()
    stats = update()
    cpu = time.process_time() - c
    return {**stats.to_json(), "cpu_s": round(cpu, 2), "events_per_s": round(stats.rows / max(stats.seconds, 1e-9), 1),
            "load_avg": load()}


if __name__ == "__main__":
    main()
