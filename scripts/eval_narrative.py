"""How often the roll-up narrative of each packaged model passes the grounding check; prints one JSON object.

    .venv/bin/python scripts/eval_narrative.py [--days 50] [--models gemma3-270m,smollm2-135m] [--keep DIR]

1. Generates a project history of about two months (scripts/gen_history.py through its Python API, one
   commit every 8 hours or so, two CI runs per commit, 6% flaky tests, breakages that get fixed), records it
   in a real memory (one journal commit per CI run), and records a flaky registry beside it as journal events
   (`record_registry`: flaky tests marked detected after their third failure, healing attempts, committed
   detections), as `com flaky mark|heal|detect --commit` would have.
2. For each model and each of the first `--days` days with runs, runs the daily roll-up through the real
   memory exactly as `com rollup daily --date D --model M --no-save` does (`com.ops.rollup.daily`: the
   test-results view, the registry view, the facts, the narrative with placeholders, grammar, grounding
   check, one retry, fallback) and counts: passed on the first try, passed after the retry, fell back; the
   reasons of the rejections; the time per narrative. Also checks that com's own fallback narrative of every
   day passes the same check (`--no-llm`).
3. Weekly and pattern roll-ups of the same history, the same way (`--weeks`, `--patterns`).
Keeps three unedited example narratives per model (the first, middle and last evaluated day whose narrative
the model wrote). The load average is printed beside the figures.
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

STRATEGIES = ("add_explicit_wait", "retry_with_backoff", "stabilise_selector", "mock_network", "raise_timeout")


def _iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


def registry_events(truth: dict, project: str) -> list[dict]:
    """The flaky registry a team would have kept over the generated history, as raw journal events:
    - a flaky test is marked `detected` an hour after its third failure (`flaky_status`);
    - every second detected test gets a healing attempt two days later (`healing_attempt`), which succeeds
      every other time (the lifecycle then calls the test healed);
    - every seventh day a detection is committed (`flaky_registry`) listing the flaky tests with three
      failures or more so far."""
    failures: dict[str, list[str]] = {}
    for run in truth["runs"]:
        for tid in run["failing"]:
            if tid in truth["flaky"]:
                failures.setdefault(tid, []).append(run["ts"])
    events = []
    detected_at: dict[str, datetime] = {}
    for n, tid in enumerate(sorted(failures)):
        times = sorted(failures[tid])
        if len(times) < 3:
            continue
        detected = _parse(times[2]) + timedelta(hours=1)
        detected_at[tid] = detected
        events.append({"type": "flaky_status", "project": project, "source": "com", "ts": _iso(detected),
                       "data": {"test_id": tid, "status": "detected", "by": "mark", "reason": "third failure"}})
        if n % 2:
            continue
        when = detected + timedelta(days=2)
        digest = int(hashlib.sha256(tid.encode()).hexdigest(), 16)
        ok = (n // 2) % 2 == 0
        events.append({"type": "healing_attempt", "project": project, "source": "com", "ts": _iso(when),
                       "data": {"test_id": tid, "strategy": STRATEGIES[digest % len(STRATEGIES)],
                                "outcome": "success" if ok else "failure", "category": "other"}})
    first = _parse(truth["runs"][0]["ts"])
    last = _parse(truth["runs"][-1]["ts"])
    day = first.replace(hour=23, minute=0, second=0) + timedelta(days=6)
    while day <= last:
        listed = sorted(t for t, at in detected_at.items() if at <= day)
        events.append({"type": "flaky_registry", "project": project, "source": "com", "ts": _iso(day),
                       "data": {"flaky": [{"test_id": t, "flake_rate": 0.5, "severity": "moderate", "runs": 10,
                                           "fail_rate": 0.25, "confidence": 0.5} for t in listed],
                                "broken": [], "as_of": _iso(day), "project": project}})
        day += timedelta(days=7)
    return events


def record_registry(memory, truth: dict) -> dict:
    from com.model.event import validate

    project = truth["generator"]["project"]
    events = [validate(e) for e in registry_events(truth, project)]
    result = memory.record(events, message="flaky registry kept over the generated history")
    return {"events": len(events), "commit": result.commit}


def build_history(folder: Path, seed: int = 5, tests: int = 80, commits: int = 150) -> dict:
    """A generated history recorded in a real memory with its flaky registry; reused when `folder` holds one."""
    from com.memory import Memory

    gen_dir, mem_dir = folder / "gen", folder / ".com"
    if (gen_dir / "ground_truth.json").exists() and (mem_dir / "journal.git").is_dir():
        history = gen_history.load(gen_dir)
        memory = Memory(mem_dir.resolve())
    else:
        history = gen_history.generate(gen_dir, seed=seed, tests=tests, commits=commits, runs_per_commit=2,
                                       flaky_fraction=0.06, break_rate=0.2, commit_gap_hours=8.0)
        memory, _ = Memory.init(mem_dir)
        gen_history.ingest(history, memory, warn=lambda message: None)
        record_registry(memory, history.truth)
    snapshot = memory.snapshot()
    memory.follow(snapshot, [memory.results])
    cols = memory.results.columns(snapshot)
    return {"history": history, "memory": memory, "cols": cols}


def days_with_runs(cols, count: int) -> list[str]:
    from com.analysis.rollup import DAY_US, day_of

    days = sorted({int(ts) // DAY_US for ts in cols.ts_us})
    return [day_of(d * DAY_US) for d in days[:count]]


def evaluate(memory, days: list[str], model_key: str) -> dict:
    from com.analysis import narrative
    from com.ops import rollup

    first = after_retry = fell_back = 0
    reasons: Counter = Counter()
    seconds, tps, prompt_tokens, out_tokens, loads = [], [], [], [], []
    narratives = []
    for day in days:
        r = rollup.daily(memory, day=day, model=model_key, save=False)
        attempts = r.timing["attempts"]
        seconds.append(r.timing["narrative_seconds"])
        if r.timing["model_load_seconds"]:
            loads.append(r.timing["model_load_seconds"])
        if r.timing["tokens_per_second"]:
            tps.append(r.timing["tokens_per_second"])
        if r.timing["prompt_tokens"]:
            prompt_tokens.append(r.timing["prompt_tokens"])
            out_tokens.append(r.timing["completion_tokens"] / max(attempts, 1))
        body = r.narrative.rsplit("\n\n", 1)[0]
        for a in r.attempts:
            for problem in a.get("problems", []):
                reasons[problem.split(":")[0]] += 1
        if r.model is None:
            fell_back += 1
        elif attempts == 1:
            first += 1
        else:
            after_retry += 1
        if r.model is not None:  # the check itself, again, on exactly what the user sees
            assert narrative.check(body, r.facts) == [], (day, body)
        narratives.append({"day": day, "model": r.model, "narrative": r.narrative, "attempts": attempts,
                           "fallback_reason": r.fallback_reason})
        print(f"eval_narrative: {model_key} {day} {'model' if r.model else 'fallback'} "
              f"{r.timing['narrative_seconds']:.1f}s", file=sys.stderr, flush=True)
    written = [x for x in narratives if x["model"]]
    picks = [written[i] for i in sorted({0, len(written) // 2, len(written) - 1})] if written else []
    total = len(days)
    return {
        "model": written[0]["model"] if written else model_key,
        "days": total,
        "grounded_share": round((first + after_retry) / total, 3),
        "grounded_first_try_share": round(first / total, 3),
        "passed_on_retry": after_retry,
        "fell_back": fell_back,
        "rejections": dict(reasons.most_common()),
        "load_seconds": round(loads[0], 3) if loads else None,
        "seconds_per_narrative": {"median": round(statistics.median(seconds), 2), "max": round(max(seconds), 2)},
        "tokens_per_second_median": round(statistics.median(tps), 1) if tps else None,
        "prompt_tokens_median": int(statistics.median(prompt_tokens)) if prompt_tokens else None,
        "completion_tokens_median": int(statistics.median(out_tokens)) if out_tokens else None,
        "examples": [{"day": x["day"], "narrative": x["narrative"]} for x in picks],
        "all": narratives,
    }


def other_kinds(cols, days: list[str], weeks: int, patterns: int) -> list[dict]:
    """Arguments of weekly roll-ups (the first `weeks` Mondays) and pattern roll-ups (the most failing tests and
    the most frequent kinds of error, alternately)."""
    from collections import Counter as _Counter
    from datetime import date

    out = []
    first = date.fromisoformat(days[0])
    monday = first + timedelta(days=(7 - first.weekday()) % 7)
    for w in range(weeks):
        y, n, _ = (monday + timedelta(days=7 * w)).isocalendar()
        out.append(("weekly", {"week": f"{y}-W{n:02d}"}))
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
        out.append(("pattern", {**kw, "days": 60}))
    return out


def evaluate_other(memory, calls: list, model_key: str) -> dict:
    from com.ops import rollup

    by_kind: dict = {}
    for kind, kw in calls:
        r = getattr(rollup, kind)(memory, model=model_key, save=False, **kw)
        k = by_kind.setdefault(kind, {"count": 0, "grounded": 0, "first_try": 0, "seconds": [], "examples": [],
                                      "fallback_reasons": []})
        k["count"] += 1
        k["grounded"] += r.model is not None
        k["first_try"] += r.model is not None and r.timing["attempts"] == 1
        k["seconds"].append(r.timing["narrative_seconds"])
        if r.model is not None and not k["examples"]:
            k["examples"].append(r.narrative)
        if r.model is None:
            k["fallback_reasons"].append(r.fallback_reason)
    for k in by_kind.values():
        k["seconds_median"] = round(statistics.median(k.pop("seconds")), 2)
    return by_kind


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--days", type=int, default=50)
    ap.add_argument("--models", default="gemma3-270m,smollm2-135m")
    ap.add_argument("--seed", type=int, default=11, help="History seed (the prompts were developed on seed 5)")
    ap.add_argument("--keep", type=Path, help="Folder for the history (kept and reused); default a temp dir")
    ap.add_argument("--dump", type=Path, help="Write every narrative to this JSON file")
    ap.add_argument("--weeks", type=int, default=4, help="Weekly roll-ups to evaluate too")
    ap.add_argument("--patterns", type=int, default=6, help="Pattern roll-ups (by test, by error) to evaluate too")
    args = ap.parse_args(argv)
    from com.analysis import narrative
    from com.models import text
    from com.ops import rollup

    folder = args.keep or Path(tempfile.mkdtemp(prefix="com-eval-narrative-"))
    t0 = time.perf_counter()
    data = build_history(folder, seed=args.seed)
    memory, cols = data["memory"], data["cols"]
    days = days_with_runs(cols, args.days)
    report = {"history": {"folder": str(folder), "seed": args.seed, "results": int(len(cols.test)),
                          "tests": len(cols.tests), "runs": len(cols.runs), "days": len(days),
                          "from": days[0], "to": days[-1], "seconds": round(time.perf_counter() - t0, 1)}}
    bad = 0
    for d in days:
        r = rollup.daily(memory, day=d, llm=False, save=False)
        bad += bool(narrative.check(r.narrative[: -len(narrative.FALLBACK_NOTE)], r.facts))
    report["fallback_grounded_share"] = round(1 - bad / len(days), 3)
    report["load_average_at_start"] = [round(x, 2) for x in os.getloadavg()]
    report["models"] = {}
    dump = {}
    for key in [m for m in args.models.split(",") if m]:
        if text.packaged_path(key, memory.cache_path / "models") is None:
            report["models"][key] = {"skipped": f"not installed (pip install {text.PACKAGED[key].pip})"}
            continue
        t1 = time.process_time()
        result = evaluate(memory, days, key)
        dump[key] = result.pop("all")
        if args.weeks or args.patterns:
            result["other_kinds"] = evaluate_other(memory, other_kinds(cols, days, args.weeks, args.patterns), key)
        result["cpu_seconds"] = round(time.process_time() - t1, 1)
        report["models"][key] = result
    report["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    if args.dump:
        args.dump.write_text(json.dumps(dump, indent=1) + "\n")
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
