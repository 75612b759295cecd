"""Time the pure part of `com retrieve`: scoring, MMR and token-budgeted packing of N candidates (prints JSON).

Candidates look like a CI history's: failures of a few hundred tests with twenty kinds of messages, a third with
a Python traceback, some code changes and notes; vectors are random unit vectors of MiniLM's size (384), which
cost MMR the same as real ones. The first token count loads the encoding (reported apart).

    python scripts/bench_packing.py [--candidates 100 300 1000] [--reps 30]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from datetime import datetime, timedelta, timezone

import numpy as np

MESSAGES = [
    "TimeoutError: Timed out after {n}ms waiting for the payment iframe",
    "AssertionError: expected status 200, got 503 from http://shop-{n}.internal/api/cart",
    "ConnectionRefusedError: [Errno 111] Connection refused: db-{n}:5432",
    "KeyError: 'receipt_id'",
    "ElementClickInterceptedException: element <button id=pay-{n}> is not clickable",
    "AssertionError: assert {n} == 100",
    "OSError: [Errno 28] No space left on device: '/tmp/run-{n}/out.json'",
    "E4077 payment declined by gateway for order {n}",
    "ValueError: invalid literal for int() with base 10: 'n/a'",
    "StaleElementReferenceException: element is not attached to the page document",
] * 2


def trace(frames: int) -> str:
    lines = ["Traceback (most recent call last):"]
    for i in range(frames):
        lines += [f'  File "src/shop/module_{i}.py", line {10 + i}, in step_{i}', f"    return step_{i + 1}(ctx)"]
    return "\n".join(lines + ["RuntimeError: boom"])


def candidates(n: int, rng: random.Random):
    from com.analysis.packing import Candidate

    now = datetime(2026, 11, 27, tzinfo=timezone.utc)
    out = []
    for i in range(n):
        when = (now - timedelta(hours=rng.uniform(0, 24 * 30))).strftime("%Y-%m-%dT%H:%M:%SZ")
        kind = rng.random()
        if kind < 0.85:
            data = {"test_id": f"tests/test_{rng.randrange(300)}.py::test_case_{rng.randrange(20)}",
                    "status": rng.choice(["failed", "error"]), "error_message": rng.choice(MESSAGES).format(n=i),
                    "run_id": f"run-{i % 50}", "commit": f"{rng.getrandbits(160):040x}", "duration_ms": rng.uniform(5, 9000)}
            if rng.random() < 0.33:
                data["trace"] = trace(rng.randrange(3, 40))
            event = {"type": "test_result", "importance": 3.0, "data": data}
        elif kind < 0.95:
            event = {"type": "code_change", "importance": 2.0,
                     "data": {"sha": f"{rng.getrandbits(160):040x}", "author": "alice", "message": "Refactor the cart",
                              "files": [f"src/shop/f{j}.py" for j in range(rng.randrange(1, 12))]}}
        else:
            event = {"type": "note", "importance": 1.0, "data": {"message": "Gateway slow since the CDN move " * 3}}
        event.update(id=f"evt_{i:024x}", project="shop", source="bench", ts=when, tags=[])
        vector = np.asarray([rng.gauss(0, 1) for _ in range(384)], dtype=np.float32)
        out.append(Candidate(event, similarity=rng.uniform(0.2, 0.9), keyword_rank=rng.choice([None, None, i % 50 + 1]),
                             vector=vector / np.linalg.norm(vector)))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--candidates", type=int, nargs="+", default=[100, 300, 1000])
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--policy", default="qa_root_cause")
    args = ap.parse_args(argv)

    from com.analysis import packing
    from com.models.tokens import count_tokens
    from com.policies import load_policies

    t0 = time.perf_counter()
    count_tokens("warm up")
    load_ms = (time.perf_counter() - t0) * 1000
    t0 = time.perf_counter()
    policies = load_policies()
    policies_ms = (time.perf_counter() - t0) * 1000
    policy = policies[args.policy]
    rng = random.Random(7)
    out = {"policy": policy.id, "encoding_load_ms": round(load_ms, 1), "load_policies_ms": round(policies_ms, 2),
           "runs": []}
    for n in args.candidates:
        cs = candidates(n, rng)
        times, items, used = [], [], []
        for _ in range(args.reps):
            t0 = time.perf_counter()
            p = packing.pack(cs, policy, test=cs[0].event["data"].get("test_id"), query="payment timeout",
                             counter=count_tokens)
            times.append((time.perf_counter() - t0) * 1000)
            items.append(len(p.items))
            used.append(p.tokens_used)
        times.sort()
        out["runs"].append({
            "candidates": n, "budget": policy.budget_tokens, "max_events": policy.max_events,
            "items": statistics.median(items), "tokens_used": statistics.median(used),
            "p50_ms": round(statistics.median(times), 2), "p95_ms": round(times[int(0.95 * (len(times) - 1))], 2),
        })
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
