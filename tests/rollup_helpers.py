"""Roll-up tests' shared pieces: a generated history recorded in a real memory with a flaky registry beside it,
the journal's own events as the reference, and the roll-up facts counted the slow, obvious way from them."""

from __future__ import annotations

import sys
from collections import defaultdict
from datetime import datetime, timedelta

import numpy as np

from conftest import ROOT

from com.model.event import ts_us
from com.model.filter import EventFilter
from com.model.result import STATUS_CODE, ResultColumns
from com.model.text import signature

sys.path.insert(0, str(ROOT / "scripts"))
import eval_narrative  # noqa: E402
import gen_history  # noqa: E402

FAILING = ("failed", "error")


def recorded(folder, seed: int = 2, tests: int = 30, commits: int = 30, registry: bool = True):
    """(history, memory): about ten days of CI runs (a commit every 8 hours, two runs each, many flaky tests
    and breakages), recorded one journal commit per run, then the flaky registry kept over them."""
    from com.memory import Memory

    history = gen_history.generate(folder / "gen", seed=seed, tests=tests, commits=commits, runs_per_commit=2,
                                   flaky_fraction=0.15, break_rate=0.3, commit_gap_hours=8.0)
    memory, _ = Memory.init(folder / ".com")
    gen_history.ingest(history, memory, warn=lambda message: None)
    if registry:
        eval_narrative.record_registry(memory, history.truth)
    return history, memory


def journal_events(memory, at=None, types=None) -> list[dict]:
    """The snapshot's events straight from the journal's batches (no derived store)."""
    snapshot = memory.snapshot(at)
    return list(snapshot.events(EventFilter.create(types=types or ())))


def columns_from_events(events) -> ResultColumns:
    """ResultColumns built from events directly: what the test-results view must hand over."""
    tests, runs, commits, sigs = {}, {}, {}, {}
    cols = defaultdict(list)
    for e in events:
        if e["type"] != "test_result":
            continue
        d = e["data"]
        cols["test"].append(tests.setdefault(d["test_id"], len(tests)))
        cols["ts"].append(ts_us(e["ts"]))
        cols["status"].append(STATUS_CODE[d["status"]])
        cols["attempt"].append(d["attempt"] if isinstance(d.get("attempt"), int) else 0)
        cols["ms"].append(float(d["duration_ms"]) if isinstance(d.get("duration_ms"), (int, float)) else np.nan)
        cols["run"].append(runs.setdefault(d["run_id"], len(runs)) if d.get("run_id") else -1)
        cols["commit"].append(commits.setdefault(d["commit"], len(commits)) if d.get("commit") else -1)
        sig = signature(d) if d["status"] in ("failed", "error", "xpassed") else None
        cols["sig"].append(sigs.setdefault(sig, len(sigs)) if sig else -1)
    return ResultColumns(np.array(cols["test"], np.int32), list(tests), np.array(cols["ts"], np.int64),
                         np.array(cols["status"], np.int8), np.array(cols["attempt"], np.int16),
                         np.array(cols["ms"], np.float64), np.array(cols["run"], np.int32), list(runs),
                         np.array(cols["commit"], np.int32), list(commits), np.array(cols["sig"], np.int32),
                         list(sigs))


def _day(ts: str) -> str:
    return ts[:10]


def reference_daily(events: list[dict], day: str) -> dict:
    """The daily facts counted straight from the journal's events (every attempt is 1 in these histories)."""
    results = [e for e in events if e["type"] == "test_result"]
    in_day = [e for e in results if _day(e["ts"]) == day]
    before = sorted((e for e in results if _day(e["ts"]) < day), key=lambda e: (e["ts"], e["data"]["test_id"]))
    upto = [e for e in results if _day(e["ts"]) <= day]
    prev_day = (datetime.fromisoformat(day) - timedelta(days=1)).date().isoformat()
    prev = [e for e in results if _day(e["ts"]) == prev_day]

    def rate(evs):
        executed = [e for e in evs if e["data"]["status"] != "skipped"]
        ok = [e for e in executed if e["data"]["status"] not in FAILING]
        return round(len(ok) / len(executed), 4) if executed else None

    state_before = {}
    for e in before:
        if e["data"]["status"] != "skipped":
            state_before[e["data"]["test_id"]] = e["data"]["status"] in FAILING
    mixed = defaultdict(set)
    for e in upto:
        if e["data"]["status"] != "skipped":
            mixed[(e["data"]["test_id"], e["data"]["commit"])].add(e["data"]["status"] in FAILING)
    flaky = {t for (t, _), kinds in mixed.items() if len(kinds) == 2} | registry_flaky(events, day)
    failing_today = {e["data"]["test_id"] for e in in_day if e["data"]["status"] in FAILING}
    last_today = {}
    for e in sorted(in_day, key=lambda e: e["ts"]):
        if e["data"]["status"] != "skipped":
            last_today[e["data"]["test_id"]] = e["data"]["status"] in FAILING
    sig_counts = defaultdict(int)
    for e in in_day:
        if e["data"]["status"] in FAILING:
            sig_counts[signature(e["data"])] += 1
    statuses = defaultdict(int)
    for e in in_day:
        statuses[e["data"]["status"]] += 1
    registry = [e for e in events if e["type"] in ("flaky_status", "healing_attempt") and _day(e["ts"]) == day]
    return {
        "runs": len({e["data"]["run_id"] for e in in_day}),
        "commits": len({e["data"]["commit"] for e in in_day}),
        "tests": len({e["data"]["test_id"] for e in in_day}),
        "results": dict(statuses),
        "pass_rate": rate(in_day),
        "previous_pass_rate": rate(prev),
        "new_failures": sorted(t for t in failing_today if t not in flaky and not state_before.get(t, False)),
        "still_failing": sorted(t for t in failing_today if t not in flaky and state_before.get(t, False)),
        "flaky_failures": sorted(failing_today & flaky),
        "fixed": sorted(t for t, failing in last_today.items()
                        if not failing and state_before.get(t, False) and t not in flaky),
        "signatures": dict(sig_counts),
        "marked_detected": sorted(e["data"]["test_id"] for e in registry
                                  if e["type"] == "flaky_status" and e["data"]["status"] == "detected"),
        "healing_attempts": sum(1 for e in registry if e["type"] == "healing_attempt"),
        "healed": sorted(e["data"]["test_id"] for e in registry
                         if e["type"] == "healing_attempt" and e["data"]["outcome"] == "success"),
    }


def registry_flaky(events: list[dict], day: str) -> set:
    """Tests the registry calls flaky by the end of `day` in these histories: marked detected, not healed since
    (a successful attempt heals; a failed one leaves it open), or listed by the newest committed detection and
    not healed after it."""
    end = day + "T99"
    status, detections = {}, []
    for e in sorted((e for e in events if e["ts"] < end), key=lambda e: e["ts"]):
        d = e["data"]
        if e["type"] == "flaky_status":
            status[d["test_id"]] = (d["status"], e["ts"])
        elif e["type"] == "healing_attempt":
            status[d["test_id"]] = ("healed" if d["outcome"] == "success" else "healing_attempted", e["ts"])
        elif e["type"] == "flaky_registry":
            detections.append((e["ts"], {f["test_id"] for f in d["flaky"]}))
    out = {t for t, (s, _) in status.items() if s != "healed"}
    if detections:
        at, listed = detections[-1]
        out |= {t for t in listed if not (t in status and status[t][0] == "healed" and status[t][1] >= at)}
    return out


def registry_from_events(events: list[dict]):
    """The roll-ups' registry built from the journal's own registry events (no view)."""
    from com.analysis.rollup import Registry

    changes, attempts, detections = [], [], []
    for e in events:
        d = e["data"]
        if e["type"] == "flaky_status":
            changes.append({"test_id": d["test_id"], "ts": e["ts"], "status": d["status"]})
        elif e["type"] == "healing_attempt":
            attempts.append({"test_id": d["test_id"], "ts": e["ts"], "strategy": d["strategy"],
                             "outcome": d["outcome"]})
        elif e["type"] == "flaky_registry":
            detections.append({"ts": e["ts"], "flaky": d["flaky"]})
    return Registry(changes, attempts, detections)
