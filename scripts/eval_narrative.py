"""How often the roll-up narrative of each packaged model passes the grounding check; prints one JSON object.

    .venv/bin/python scripts/eval_narrative.py [--days 50] [--models gemma3-270m,smollm2-135m] [--keep DIR]

1. Generates a project history of about two months (scripts/gen_history.py through its Python API, one
   commit every 8 hours or so, two CI runs per commit, 6% flaky tests, breakages that get fixed) and records
   it in a real memory. The flaky registry and healing attempts of issue 13 do not exist yet, so a few are
   derived from the generator's ground truth (flaky tests marked detected after their third failure, some
   healed after an attempt), to give those facts values too.
2. Builds the daily facts of the first `--days` days with runs (com.analysis.rollup, through the temporary
   adapter scripts/rollup_columns.py from the journal's events to result columns).
3. For each model, writes every day's narrative (com.analysis.narrative.write: placeholders, grammar,
   grounding check, one retry, fallback) and counts: passed on the first try, passed after the retry,
   fell back; the reasons of the rejections; the time per narrative. Also checks that the fallback
   narrative of every day passes the same check.
Keeps three unedited example narratives per model (the first, middle and last evaluated day whose
narrative the model wrote).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))
import gen_history  # noqa: E402
from rollup_columns import columns_from_memory  # noqa: E402  (temporary adapter)

STRATEGIES = ("add_explicit_wait", "retry_with_backoff", "stabilise_selector", "mock_network", "raise_timeout")


def build_history(folder: Path, seed: int = 5, tests: int = 80, commits: int = 150) -> dict:
    """A generated, recorded history for roll-ups; reused when `folder` already holds one."""
    from com.memory import Memory, init_memory

    gen_dir, mem_dir = folder / "gen", folder / ".com"
    if (gen_dir / "ground_truth.json").exists() and (mem_dir / "journal.git").is_dir():
        history = gen_history.load(gen_dir)
        memory = Memory(mem_dir.resolve())
    else:
        history = gen_history.generate(gen_dir, seed=seed, tests=tests, commits=commits, runs_per_commit=2,
                                       flaky_fraction=0.06, break_rate=0.2, commit_gap_hours=8.0)
        memory, _ = init_memory(mem_dir)
        gen_history.ingest(history, memory)
    cols, tags, healing, registry = columns_from_memory(memory)
    reg, heal = registry_from_truth(history.truth)
    return {"history": history, "memory": memory, "cols": cols, "tags": tags,
            "registry": registry + reg, "healing": healing + heal}


def _iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def registry_from_truth(truth: dict) -> tuple[list[dict], list[dict]]:
    """Stand-ins for issue 13's registry: detected after the third failure; every second one gets a healing
    attempt two days later, which succeeds every other time (then the test is marked healed)."""
    failures: dict[str, list[str]] = {}
    for run in truth["runs"]:
        for tid in run["failing"]:
            if tid in truth["flaky"]:
                failures.setdefault(tid, []).append(run["ts"])
    changes, attempts = [], []
    for n, tid in enumerate(sorted(failures)):
        times = sorted(failures[tid])
        if len(times) < 3:
            continue
        detected = datetime.fromisoformat(times[2].replace("Z", "+00:00")) + timedelta(hours=1)
        changes.append({"test_id": tid, "ts": _iso(detected), "status": "detected"})
        if n % 2:
            continue
        when = detected + timedelta(days=2)
        digest = int(hashlib.sha256(tid.encode()).hexdigest(), 16)
        ok = (n // 2) % 2 == 0
        attempts.append({"test_id": tid, "ts": _iso(when), "strategy": STRATEGIES[digest % len(STRATEGIES)],
                         "outcome": "success" if ok else "failure"})
        if ok:
            changes.append({"test_id": tid, "ts": _iso(when + timedelta(minutes=5)), "status": "healed"})
    return changes, attempts


def days_with_runs(cols, count: int) -> list[str]:
    from com.analysis.rollup import DAY_US, day_of

    days = sorted({int(ts) // DAY_US for ts in cols.ts_us})
    return [day_of(d * DAY_US) for d in days[:count]]


def daily(data: dict, day: str) -> dict:
    from com.analysis import rollup

    return rollup.daily_facts(data["cols"], day, registry_changes=data["registry"], healing_attempts=data["healing"])


def evaluate(data: dict, days: list[str], model_key: str, cache_dir: Path) -> dict:
    from com.analysis import narrative
    from com.models import text

    model = text.LlamaCppModel(text.packaged_path(model_key, cache_dir), name=text.PACKAGED[model_key].name)
    t0 = time.perf_counter()
    model.llama
    load = time.perf_counter() - t0
    first = after_retry = fell_back = 0
    reasons: Counter = Counter()
    seconds, tps, prompt_tokens, out_tokens = [], [], [], []
    narratives = []
    for day in days:
        facts = daily(data, day)
        n = narrative.write(facts, model)
        seconds.append(n.seconds)
        for a in n.attempts:
            for p in a.get("problems", []):
                reasons[p.split(":")[0]] += 1
            if a.get("tokens_per_second"):
                tps.append(a["tokens_per_second"])
            prompt_tokens.append(a.get("prompt_tokens", 0))
            out_tokens.append(a.get("completion_tokens", 0))
        if n.model is None:
            fell_back += 1
        elif len(n.attempts) == 1:
            first += 1
        else:
            after_retry += 1
        narratives.append({"day": day, "model": n.model, "narrative": n.text, "attempts": n.attempts,
                           "fallback_reason": n.fallback_reason})
        print(f"eval_narrative: {model_key} {day} {'model' if n.model else 'fallback'} {n.seconds:.1f}s",
              file=sys.stderr, flush=True)
    written = [x for x in narratives if x["model"]]
    picks = [written[i] for i in sorted({0, len(written) // 2, len(written) - 1})] if written else []
    total = len(days)
    return {
        "model": model.name,
        "days": total,
        "grounded_share": round((first + after_retry) / total, 3),
        "grounded_first_try_share": round(first / total, 3),
        "passed_on_retry": after_retry,
        "fell_back": fell_back,
        "rejections": dict(reasons.most_common()),
        "load_seconds": round(load, 3),
        "seconds_per_narrative": {"median": round(statistics.median(seconds), 2), "max": round(max(seconds), 2)},
        "tokens_per_second_median": round(statistics.median(tps), 1) if tps else None,
        "prompt_tokens_median": int(statistics.median(prompt_tokens)) if prompt_tokens else None,
        "completion_tokens_median": int(statistics.median(out_tokens)) if out_tokens else None,
        "examples": [{"day": x["day"], "narrative": x["narrative"]} for x in picks],
        "all": narratives,
    }


def other_kinds(data: dict, days: list[str], weeks: int, patterns: int) -> list[dict]:
    """Weekly facts of the first `weeks` Mondays and pattern facts of the most failing tests and errors."""
    from collections import Counter as _Counter
    from datetime import date

    from com.analysis import rollup

    out = []
    first = date.fromisoformat(days[0])
    monday = first + timedelta(days=(7 - first.weekday()) % 7)
    for w in range(weeks):
        out.append(rollup.weekly_facts(data["cols"], monday + timedelta(days=7 * w),
                                       registry_changes=data["registry"], healing_attempts=data["healing"]))
    cols = data["cols"]
    failing = (cols.status == 1) | (cols.status == 2)
    by_test = _Counter(cols.test[failing].tolist()).most_common(patterns)
    by_sig, seen = [], set()
    for sig, n in _Counter(cols.signature[failing & (cols.signature >= 0)].tolist()).most_common():
        head = cols.signatures[sig].split(":")[0]
        if head not in seen:
            seen.add(head)
            by_sig.append((sig, n))
    for n in range(patterns):
        if n % 2 == 0 and by_test:
            kw = {"test": cols.tests[by_test.pop(0)[0]]}
        elif by_sig:
            kw = {"signature": cols.signatures[by_sig.pop(0)[0]].split(":")[0]}
        else:
            continue
        out.append(rollup.pattern_facts(cols, until=rollup.day_of(int(cols.ts_us.max())), days=60,
                                        registry_changes=data["registry"],
                                        healing_attempts=data["healing"], **kw))
    return out


def evaluate_other(facts_list: list[dict], model_key: str, cache_dir: Path) -> dict:
    from com.analysis import narrative
    from com.models import text

    model = text.LlamaCppModel(text.packaged_path(model_key, cache_dir), name=text.PACKAGED[model_key].name)
    by_kind: dict = {}
    for facts in facts_list:
        n = narrative.write(facts, model)
        k = by_kind.setdefault(facts["kind"], {"count": 0, "grounded": 0, "first_try": 0, "seconds": [], "examples": []})
        k["count"] += 1
        k["grounded"] += n.model is not None
        k["first_try"] += n.model is not None and len(n.attempts) == 1
        k["seconds"].append(n.seconds)
        if n.model is not None and len(k["examples"]) < 1:
            k["examples"].append(n.text)
        k.setdefault("rejections", []).extend(p for a in n.attempts for p in a.get("problems", []))
    for k in by_kind.values():
        k["seconds_median"] = round(statistics.median(k.pop("seconds")), 2)
    return by_kind


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--days", type=int, default=50)
    ap.add_argument("--models", default="gemma3-270m,smollm2-135m")
    ap.add_argument("--seed", type=int, default=11, help="History seed (the prompts were developed on seed 5)")
    ap.add_argument("--keep", type=Path, help="Folder for the history (kept and reused); default a temp dir")
    ap.add_argument("--dump", type=Path, help="Write every narrative and attempt to this JSON file")
    ap.add_argument("--weeks", type=int, default=4, help="Weekly roll-ups to evaluate too")
    ap.add_argument("--patterns", type=int, default=6, help="Pattern roll-ups (by test, by error) to evaluate too")
    args = ap.parse_args(argv)
    from com.analysis import narrative

    folder = args.keep or Path(tempfile.mkdtemp(prefix="com-eval-narrative-"))
    t0 = time.perf_counter()
    data = build_history(folder, seed=args.seed)
    days = days_with_runs(data["cols"], args.days)
    report = {"history": {"folder": str(folder), "seed": args.seed, "results": int(len(data["cols"].test)),
                          "tests": len(data["cols"].tests), "runs": len(data["cols"].runs), "days": len(days),
                          "from": days[0], "to": days[-1], "seconds": round(time.perf_counter() - t0, 1)}}
    bad_fallbacks = [d for d in days if narrative.check(narrative.fallback(daily(data, d)), daily(data, d))]
    report["fallback_grounded_share"] = round(1 - len(bad_fallbacks) / len(days), 3)
    report["load_average_at_start"] = round(os.getloadavg()[0], 2)
    cache = folder / "models"
    report["models"] = {}
    dump = {}
    for key in [m for m in args.models.split(",") if m]:
        result = evaluate(data, days, key, cache)
        dump[key] = result.pop("all")
        if args.weeks or args.patterns:
            result["other_kinds"] = evaluate_other(other_kinds(data, days, args.weeks, args.patterns), key, cache)
        report["models"][key] = result
    report["load_average_at_end"] = round(os.getloadavg()[0], 2)
    if args.dump:
        args.dump.write_text(json.dumps(dump, indent=1) + "\n")
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
