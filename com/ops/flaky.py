"""The flaky registry's use-cases: detect flaky and broken tests from the test-results view; explain one test
(its history, manifestations, lifecycle, healing attempts, recommended strategies and similar failures
elsewhere that were healed); record lifecycle changes and healing attempts as journal events; healing
statistics; a report; the quarantine list; and what `com diff` needs to tell a flaky flip from a regression.

Detection reads `ResultColumns` from the test-results view and recomputes from them each time: on 1,000,000
results reading the columns takes 0.20 s of CPU and detection 0.13 s, while the state detection could resume
from (`FlakyState`) holds one entry per (test, code commit), half as many as results when each commit runs
twice, so storing it would save little of the read (docs/flaky.md). The registry's own events are few and
live in the registry view (`com.views.registry`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from com.analysis.healing import OUTCOMES, recommend, success_rates
from com.analysis.lifecycle import OPEN, STATUSES, LifecycleState, on_detection, replay, transition
from com.journal.snapshot import Snapshot
from com.memory import Memory
from com.model import registry as types
from com.model.errors import ComError, NotFound
from com.model.event import format_ts, format_us, now_utc, ts_us, validate
from com.model.filter import EventFilter, TestMatch
from com.ops.result import Result

DEFAULT_MIN_RUNS = 5
WINDOW_CONFIDENCE = 0.5  # com diff calls a flip flaky on window evidence alone only from this confidence
SOURCE = "com"


def _iso(us):
    return None if us is None else format_us(int(us))


# -- the registry at a snapshot ----------------------------------------------------------------------------------
@dataclass
class Registry:
    """The registry's events of one snapshot, folded: each test's lifecycle state and the changes that led
    there, every healing attempt, and the newest committed detection."""

    states: dict = field(default_factory=dict)      # test_id -> LifecycleState
    changes: dict = field(default_factory=dict)     # test_id -> [change], oldest first
    attempts: list = field(default_factory=list)    # healing attempts, oldest first
    latest: dict | None = None                      # the newest flaky_registry event's data, with its ts and id
    rejected: list = field(default_factory=list)    # status changes not allowed where they fell (after a merge)

    def state(self, test_id: str) -> LifecycleState:
        return self.states.get(test_id, LifecycleState())

    def known(self, test_id: str) -> bool:
        return test_id in self.changes

    def committed_flaky(self) -> dict:
        """test_id -> entry of the newest committed detection's flaky tests."""
        return {f["test_id"]: f for f in (self.latest or {}).get("flaky", [])}

    def quarantined(self) -> list[str]:
        return sorted(t for t, s in self.states.items() if s.quarantined)


def read_registry(memory: Memory, snapshot: Snapshot) -> Registry:
    """The registry at a snapshot (an empty one for an empty journal)."""
    out = Registry()
    if not snapshot:
        return out
    memory.follow(snapshot, [memory.registry])
    for event in memory.registry.events(snapshot):
        data, when = event.get("data") or {}, ts_us(event["ts"])
        if event["type"] == types.FLAKY_REGISTRY:
            out.latest = {**data, "ts": event["ts"], "id": event["id"]}
            continue
        test_id = data.get("test_id")
        if not isinstance(test_id, str) or not test_id:
            continue
        if event["type"] == types.FLAKY_STATUS:
            change = {"status": data.get("status"), "ts_us": when, "ts": event["ts"], "reason": data.get("reason"),
                      "by": data.get("by"), "id": event["id"]}
        else:
            ok = OUTCOMES.get(str(data.get("outcome")).lower())
            if ok is None or not data.get("strategy"):
                continue
            attempt = {"test_id": test_id, "strategy": data["strategy"], "outcome": "success" if ok else "failure",
                       "category": data.get("category") or "other", "notes": data.get("notes"), "ts": event["ts"],
                       "id": event["id"]}
            out.attempts.append(attempt)
            change = {"status": "healed" if ok else "healing_attempted", "ts_us": when, "ts": event["ts"],
                      "reason": f"healing attempt: {data['strategy']} ({attempt['outcome']})", "by": "heal",
                      "implied": True, "id": event["id"]}
        out.changes.setdefault(test_id, []).append(change)
    for test_id, changes in out.changes.items():
        folded = replay(changes)
        out.states[test_id] = folded.state
        out.rejected.extend({**c, "test_id": test_id} for c in folded.rejected)
    return out


# -- reading results -------------------------------------------------------------------------------------------
def results_columns(memory: Memory, snapshot: Snapshot, project: str | None = None, test_id: str | None = None):
    """The snapshot's test results as `ResultColumns` (of one project, or one test, when given)."""
    memory.follow(snapshot, [memory.results])
    where = EventFilter.create(projects=project or (), test=TestMatch(test_id, "exact") if test_id else None)
    return memory.results.columns(snapshot, where)


def _detect(memory: Memory, snapshot: Snapshot, project, days, min_runs):
    from com.analysis.flaky import detect_flaky

    if min_runs < 1:
        raise ComError(f"must be at least 1, not {min_runs}", param="min_runs")
    if days is not None and not (0 < days < float("inf")):  # NaN fails both comparisons
        raise ComError(f"must be a number of days above 0, not {days:g}", param="days")
    cols = results_columns(memory, snapshot, project)
    det = detect_flaky(cols, window_days=days, min_runs=min_runs)
    if det.as_of_us is None and len(cols):
        det.as_of_us = int(cols.ts_us.max())
    return cols, det


def _flaky_entry(f, registry: Registry) -> dict:
    """A detected flaky test with its registry status: none yet reads as detected; a healed test that failed
    again after it was healed reads as detected again (reopened)."""
    state = registry.state(f.test_id)
    shown = on_detection(state, flaky=True, last_failure_us=f.last_seen_us)
    return {**f.to_json(), "status": shown.status, "quarantined": shown.quarantined,
            "reopened": state.status == "healed" and shown.status == "detected"}


def _unknown(test_id: str, known) -> NotFound:
    import difflib

    close = difflib.get_close_matches(test_id, list(known), n=1, cutoff=0.8)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return NotFound(f"unknown test '{test_id}': no result of it is recorded{hint}", param="test_id")


def _event_project(memory: Memory, snapshot: Snapshot, explicit: str | None, test_id: str | None = None) -> str:
    """The project a registry event is recorded in: the one asked for, the configured one, the project of the
    test's newest result, or the only project the results have."""
    if explicit:
        return explicit
    configured = memory.settings.get("project")
    if configured:
        return str(configured)
    if test_id and snapshot:
        found, _ = memory.results.events(snapshot, EventFilter.create(test=TestMatch(test_id, "exact")), 1)
        if found:
            return found[0]["project"]
    projects = {b.project for b in snapshot.batches()} if snapshot else set()
    if len(projects) == 1:
        return projects.pop()
    raise ComError("which project should the registry event go to? give one (or set [tool.com] project)",
                   param="project")


def _record(memory: Memory, raw: list[dict], message: str):
    events = [validate(e) for e in raw]
    return memory.record(events, message=message)


# -- detect ----------------------------------------------------------------------------------------------------
@dataclass
class DetectResult(Result):
    flaky: list             # flakiest first: FlakyTest's keys plus status, quarantined, reopened
    broken: list            # newest first: test_id, since_commit, fixed_commit, ...
    tests: int
    runs: int
    as_of: str | None       # the newest result considered
    since: str | None       # the window's start (--days)
    min_runs: int
    days: float | None
    project: str | None
    too_few_runs: list
    excluded_runs: list
    snapshot: str | None    # the journal commit read
    commit: str | None      # the journal commit that recorded this detection (--commit), else None
    reopened: list          # healed tests found flaky again


def detect(memory: Memory, *, at: str | None = None, project: str | None = None, days: float | None = None,
           min_runs: int = DEFAULT_MIN_RUNS, commit: bool = False) -> DetectResult:
    """Flaky and broken tests of the snapshot `at`. With `commit`, the detection is recorded as a registry
    snapshot (a `flaky_registry` event), and healed tests found flaky again are set back to detected, in one
    journal commit."""
    snapshot = memory.snapshot(at)
    if commit and at is not None:
        raise ComError("a detection is committed at the head of the current branch, not at an earlier revision",
                       param="at")
    _, det = _detect(memory, snapshot, project, days, min_runs)
    registry = read_registry(memory, snapshot)
    flaky = [_flaky_entry(f, registry) for f in det.flaky]
    reopened = [f["test_id"] for f in flaky if f["reopened"]]
    result = DetectResult(flaky, [b.to_json() for b in det.broken], det.tests, det.runs, _iso(det.as_of_us),
                          _iso(det.since_us), det.min_runs, days, project, det.too_few_runs, det.excluded_runs,
                          snapshot.sha, None, reopened)
    if commit and snapshot:
        result.commit = _commit_detection(memory, snapshot, result)
    return result


def _commit_detection(memory: Memory, snapshot: Snapshot, result: DetectResult) -> str | None:
    project = _event_project(memory, snapshot, result.project)
    data = {
        "flaky": [{k: f[k] for k in ("test_id", "flake_rate", "severity", "runs", "fail_rate", "confidence")}
                  for f in result.flaky],
        "broken": [{k: b[k] for k in ("test_id", "since_commit", "fixed_commit")} for b in result.broken],
        "as_of": result.as_of, "since": result.since, "min_runs": result.min_runs, "days": result.days,
        "project": result.project, "tests": result.tests, "runs": result.runs,
    }
    # No ts of its own: the same detection of the same results is the same event, recorded once.
    raw = [{"type": types.FLAKY_REGISTRY, "project": project, "source": SOURCE, "data": data}]
    now = format_ts(now_utc())
    for test_id in result.reopened:
        raw.append({"type": types.FLAKY_STATUS, "project": project, "source": SOURCE, "ts": now,
                    "data": {"test_id": test_id, "status": "detected", "previous": "healed", "by": "detect",
                             "reason": "flaky again"}})
    message = (f"flaky: detection of {len(result.flaky)} flaky and {len(result.broken)} broken test(s) "
               f"as of {result.as_of}")
    return _record(memory, raw, message).commit


# -- show ------------------------------------------------------------------------------------------------------
@dataclass
class ShowResult(Result):
    test_id: str
    snapshot: str | None
    flaky: dict | None          # the detection's entry for the test, None when it is not flaky
    broken: list                # its breakages
    status: dict                # lifecycle: status, quarantined, since, reason
    status_history: list        # [{status, ts, reason, by}]
    history: dict               # runs, failures, commits: [{commit, runs, failures, first_seen, last_seen}]
    recent: list                # newest results: [{ts, status, attempt, commit, run_id, signature}]
    manifestations: list
    attempts: list
    recommendations: list
    similar_healed: list        # failures of other, healed tests that read like this test's
    notes: list                 # what could not be done (e.g. no embedding model: exact signatures only)


def show(memory: Memory, test_id: str, *, at: str | None = None, project: str | None = None,
         days: float | None = None, min_runs: int = DEFAULT_MIN_RUNS, embed: bool = True, similar: bool = True,
         recent: int = 10) -> ShowResult:
    """Everything the registry knows about one test at the snapshot `at`."""
    import numpy as np

    from com.analysis.flaky import ERROR, FAILED, PASSED
    from com.model.result import STATUS_CODES

    snapshot = memory.snapshot(at)
    cols, det = _detect(memory, snapshot, project, days, min_runs)
    registry = read_registry(memory, snapshot)
    if test_id not in cols.tests and not registry.known(test_id):
        raise _unknown(test_id, cols.tests)
    notes: list[str] = []
    entry = next((f for f in det.flaky if f.test_id == test_id), None)
    flaky = _flaky_entry(entry, registry) if entry is not None else None
    broken = [b.to_json() for b in det.broken if b.test_id == test_id]
    state = registry.state(test_id)

    history = {"runs": 0, "failures": 0, "commits": []}
    recent_rows, groups = [], []
    if test_id in cols.tests:
        t = cols.tests.index(test_id)
        rows = np.flatnonzero(cols.test == t)
        verdict = rows[(cols.status[rows] <= ERROR) & (cols.attempt[rows] <= 1)]
        failing = cols.status[verdict] != PASSED
        history["runs"], history["failures"] = int(len(verdict)), int(failing.sum())
        by_commit: dict = {}
        for i, bad in zip(verdict.tolist(), failing.tolist()):
            c = int(cols.commit[i])
            key = cols.commits[c] if c >= 0 else None
            item = by_commit.setdefault(key, [0, 0, int(cols.ts_us[i]), int(cols.ts_us[i])])
            item[0] += 1
            item[1] += bad
            item[2], item[3] = min(item[2], int(cols.ts_us[i])), max(item[3], int(cols.ts_us[i]))
        ordered = sorted(by_commit.items(), key=lambda kv: -kv[1][3])
        history["commits"] = [{"commit": k, "runs": v[0], "failures": v[1], "first_seen": _iso(v[2]),
                               "last_seen": _iso(v[3])} for k, v in ordered[:20]]
        history["commits_total"] = len(ordered)
        newest = rows[np.lexsort((cols.attempt[rows], cols.ts_us[rows]))[::-1][:recent]]

        recent_rows = [{"ts": _iso(cols.ts_us[i]), "status": STATUS_CODES[int(cols.status[i])],
                        "attempt": int(cols.attempt[i]) or None,
                        "commit": cols.commits[int(cols.commit[i])] if cols.commit[i] >= 0 else None,
                        "run_id": cols.runs[int(cols.run[i])] if cols.run[i] >= 0 else None,
                        "signature": cols.signatures[int(cols.signature[i])] if cols.signature[i] >= 0 else None}
                       for i in newest.tolist()]
        if bool(((cols.status[rows] == FAILED) | (cols.status[rows] == ERROR)).any()):
            groups = _manifestations(memory, snapshot, cols, test_id, embed, notes)
    category = groups[0].category if groups else "other"
    mine = [a for a in registry.attempts if a["test_id"] == test_id]
    recs = recommend(registry.attempts, category, test_id=test_id, limit=5)
    similar_healed = []
    if similar and groups:
        similar_healed = _similar_healed(memory, snapshot, registry, test_id, groups[0], notes)
    return ShowResult(
        test_id, snapshot.sha, flaky, broken,
        {"status": state.status, "quarantined": state.quarantined, "since": _iso(state.since_us),
         "quarantined_since": _iso(state.quarantined_since_us), "reason": state.reason},
        [{k: c.get(k) for k in ("status", "ts", "reason", "by")} for c in registry.changes.get(test_id, [])],
        history, recent_rows, [g.to_json() for g in groups], mine, [r.to_json() for r in recs], similar_healed,
        notes,
    )


def _manifestations(memory: Memory, snapshot: Snapshot, cols, test_id: str, embed: bool, notes: list) -> list:
    """The test's manifestations, merged by the configured embedding model when asked and installed (else, with
    a note, by exact signature only)."""
    from com.analysis.manifest import manifestations

    examples = failure_examples(memory, snapshot, cols, test_id)
    if embed:
        try:
            return manifestations(cols, [test_id], embed=memory.embedder().embed, examples=examples)[test_id]
        except ComError as exc:
            notes.append(f"manifestations grouped by exact signature only: {exc}")
    return manifestations(cols, [test_id], examples=examples)[test_id]


def failure_examples(memory: Memory, snapshot: Snapshot, cols, test_id: str, limit: int = 500) -> dict[int, str]:
    """A raw error message for each signature of a test's failures (its newest), from the stored events."""
    from com.model.text import signature

    index = {s: i for i, s in enumerate(cols.signatures)}
    where = EventFilter.create(test=TestMatch(test_id, "exact"), statuses=("failed", "error"))
    found, _ = memory.results.events(snapshot, where, limit)
    out: dict[int, str] = {}
    for event in found:
        data = event["data"]
        sig = signature(data)
        i = index.get(sig)
        message = data.get("error_message") or data.get("message")
        if i is not None and i not in out and isinstance(message, str) and message.strip():
            out[i] = message.strip()
    return out


def _similar_healed(memory: Memory, snapshot: Snapshot, registry: Registry, test_id: str, group, notes: list,
                    candidates: int = 20) -> list:
    """Failures of other tests that were healed (status healed, or a successful attempt), most like this test's
    main manifestation, from the semantic index: one filtered search per healed test (they are few)."""
    healed: dict[str, dict] = {}
    for a in reversed(registry.attempts):
        if a["outcome"] == "success" and a["test_id"] != test_id:
            healed.setdefault(a["test_id"], a)
    for other, st in registry.states.items():
        if st.status == "healed" and other != test_id:
            healed.setdefault(other, None)
    if not healed:
        return []
    from com.ops.search import search

    query = group.example or group.signature
    out = []
    try:
        for other, attempt in list(healed.items())[:candidates]:
            where = EventFilter.create(test=TestMatch(other, "exact"), statuses=("failed", "error"))
            found = search(memory, query, 1, where, at=snapshot.sha, mode="vector").results
            if not found or found[0].get("similarity") is None:
                continue
            event = found[0]["event"]
            out.append({"test_id": other, "similarity": round(float(found[0]["similarity"]), 4),
                        "error_message": event["data"].get("error_message"), "ts": event["ts"],
                        "strategy": attempt["strategy"] if attempt else None,
                        "status": registry.state(other).status})
    except ComError as exc:
        notes.append(f"similar healed failures not searched: {exc}")
        return []
    out.sort(key=lambda s: -s["similarity"])
    return [s for s in out if s["similarity"] >= 0.5][:5]


# -- mark and heal -----------------------------------------------------------------------------------------------
@dataclass
class MarkResult(Result):
    commit: str | None
    test_id: str
    status: str
    previous: str | None
    quarantined: bool
    reason: str | None


def _known_test(memory: Memory, snapshot: Snapshot, registry: Registry, test_id: str) -> None:
    if not test_id:
        raise ComError("the test id is empty", param="test_id")
    if registry.known(test_id):
        return
    if snapshot:
        memory.follow(snapshot, [memory.results])
        if memory.results.test_numbers(TestMatch(test_id, "exact")):
            found, _ = memory.results.events(snapshot, EventFilter.create(test=TestMatch(test_id, "exact")), 1)
            if found:
                return
    raise _unknown(test_id, _all_test_ids(memory))


def _all_test_ids(memory: Memory) -> list[str]:
    return list(memory.results.test_numbers(TestMatch("*", "glob")).values())


def mark(memory: Memory, test_id: str, status: str, *, reason: str | None = None,
         project: str | None = None) -> MarkResult:
    """Change a test's lifecycle status (an allowed change only), recorded as a `flaky_status` event."""
    if status not in STATUSES:
        raise ComError(f"unknown flaky status '{status}': use one of {', '.join(STATUSES)}", param="status")
    snapshot = memory.snapshot()
    registry = read_registry(memory, snapshot)
    _known_test(memory, snapshot, registry, test_id)
    state = registry.state(test_id)
    new = transition(state, status, reason=reason)
    data = {"test_id": test_id, "status": status, "previous": state.status, "by": "mark"}
    if reason:
        data["reason"] = reason
    raw = {"type": types.FLAKY_STATUS, "project": _event_project(memory, snapshot, project, test_id),
           "source": SOURCE, "ts": format_ts(now_utc()), "data": data}
    written = _record(memory, [raw], f"flaky: {test_id} {state.status or 'unregistered'} -> {status}"
                      + (f"\n\n{reason}" if reason else ""))
    return MarkResult(written.commit, test_id, status, state.status, new.quarantined, reason)


@dataclass
class HealResult(Result):
    commit: str | None
    test_id: str
    strategy: str
    outcome: str
    category: str
    notes: str | None
    status: str | None      # the test's lifecycle status after the attempt
    quarantined: bool


def heal(memory: Memory, test_id: str, strategy: str, outcome: str, *, notes: str | None = None,
         category: str | None = None, project: str | None = None) -> HealResult:
    """Record a healing attempt (`healing_attempt` event). Its category is the manifestation category of the
    test's main way of failing unless given; a success makes the test healed, a failure healing_attempted,
    where the lifecycle allows it."""
    from com.analysis.manifest import CATEGORIES

    ok = OUTCOMES.get(outcome.lower()) if isinstance(outcome, str) else None
    if ok is None:
        raise ComError(f"must be success or failure, not '{outcome}'", param="outcome")
    if not strategy or not strategy.strip():
        raise ComError("the strategy is empty", param="strategy")
    if category is not None and category not in CATEGORIES:
        raise ComError(f"unknown category '{category}' (expected {', '.join(CATEGORIES)})", param="category")
    snapshot = memory.snapshot()
    registry = read_registry(memory, snapshot)
    _known_test(memory, snapshot, registry, test_id)
    if category is None:
        category = _main_category(memory, snapshot, test_id)
    data = {"test_id": test_id, "strategy": strategy.strip(), "outcome": "success" if ok else "failure",
            "category": category}
    if notes:
        data["notes"] = notes
    raw = {"type": types.HEALING_ATTEMPT, "project": _event_project(memory, snapshot, project, test_id),
           "source": SOURCE, "ts": format_ts(now_utc()), "data": data}
    written = _record(memory, [raw], f"flaky: healing attempt on {test_id}: {data['strategy']} ({data['outcome']})"
                      + (f"\n\n{notes}" if notes else ""))
    after = read_registry(memory, memory.snapshot()).state(test_id)
    return HealResult(written.commit, test_id, data["strategy"], data["outcome"], category, notes, after.status,
                      after.quarantined)


def _main_category(memory: Memory, snapshot: Snapshot, test_id: str) -> str:
    """The category of the test's largest manifestation (exact signatures: no model needed), else other."""
    from com.analysis.manifest import manifestations

    if not snapshot:
        return "other"
    cols = results_columns(memory, snapshot, test_id=test_id)
    if not len(cols):
        return "other"
    groups = manifestations(cols, [test_id], examples=failure_examples(memory, snapshot, cols, test_id))[test_id]
    return groups[0].category if groups else "other"


# -- stats, report, quarantine ---------------------------------------------------------------------------------------
@dataclass
class StatsResult(Result):
    attempts: int
    overall: dict
    by_strategy: dict
    by_category: dict
    by_category_strategy: dict
    snapshot: str | None


def stats(memory: Memory, *, at: str | None = None) -> StatsResult:
    """Success rates of healing attempts: overall, by strategy, by manifestation category, and both."""
    snapshot = memory.snapshot(at)
    registry = read_registry(memory, snapshot)
    rates = success_rates(registry.attempts)
    return StatsResult(
        len(registry.attempts), rates["overall"].to_json(),
        {k: v.to_json() for k, v in rates["by_strategy"].items()},
        {k: v.to_json() for k, v in rates["by_category"].items()},
        {c: {s: r.to_json() for s, r in v.items()} for c, v in rates["by_category_strategy"].items()},
        snapshot.sha,
    )


@dataclass
class ReportResult(Result):
    snapshot: str | None
    as_of: str | None
    since: str | None
    project: str | None
    summary: dict       # flaky, broken, by_severity, by_status, quarantined, tests, runs
    top: list           # the flakiest tests
    broken: list        # ongoing breakages
    healing: dict       # attempts, overall, by_strategy, by_category


def report(memory: Memory, *, at: str | None = None, project: str | None = None, days: float | None = None,
           min_runs: int = DEFAULT_MIN_RUNS, top: int = 10) -> ReportResult:
    """The registry in one page: flaky tests by severity and status, the flakiest, ongoing breakages, healing."""
    from com.analysis.flaky import SEVERITIES

    if top < 1:
        raise ComError(f"must be at least 1, not {top}", param="top")
    snapshot = memory.snapshot(at)
    _, det = _detect(memory, snapshot, project, days, min_runs)
    registry = read_registry(memory, snapshot)
    flaky = [_flaky_entry(f, registry) for f in det.flaky]
    by_severity = {s: 0 for s in SEVERITIES}
    by_status = {s: 0 for s in STATUSES}
    for f in flaky:
        by_severity[f["severity"]] += 1
        by_status[f["status"]] += 1
    for test_id, state in registry.states.items():  # tests a person settled that detection no longer sees
        if state.status in ("healed", "false_positive") and not any(f["test_id"] == test_id for f in flaky):
            by_status[state.status] += 1
    rates = success_rates(registry.attempts)
    ongoing = [b.to_json() for b in det.broken if b.ongoing]
    summary = {"flaky": len(flaky), "broken": len(ongoing), "breakages": len(det.broken), "tests": det.tests,
               "runs": det.runs, "by_severity": by_severity, "by_status": by_status,
               "quarantined": len(registry.quarantined())}
    healing = {"attempts": len(registry.attempts), "overall": rates["overall"].to_json(),
               "by_strategy": {k: v.to_json() for k, v in rates["by_strategy"].items()},
               "by_category": {k: v.to_json() for k, v in rates["by_category"].items()}}
    return ReportResult(snapshot.sha, _iso(det.as_of_us), _iso(det.since_us), project, summary, flaky[:top],
                        ongoing[:top], healing)


@dataclass
class QuarantineResult(Result):
    quarantined: list   # [{test_id, status, since, reason}]
    snapshot: str | None


def quarantine(memory: Memory, *, at: str | None = None) -> QuarantineResult:
    """The tests whose failures do not fail CI (status quarantined, or investigated or being healed since)."""
    snapshot = memory.snapshot(at)
    registry = read_registry(memory, snapshot)
    out = []
    for test_id in registry.quarantined():
        s = registry.states[test_id]
        out.append({"test_id": test_id, "status": s.status, "since": _iso(s.quarantined_since_us),
                    "reason": next((c.get("reason") for c in reversed(registry.changes[test_id])
                                    if c["status"] == "quarantined"), None)})
    return QuarantineResult(out, snapshot.sha)


def quarantined_among(memory: Memory, test_ids) -> set[str]:
    """Which of `test_ids` are quarantined at the head of the current branch (for the pytest plugin's writer)."""
    wanted = set(test_ids)
    if not wanted:
        return set()
    registry = read_registry(memory, memory.snapshot())
    return {t for t in wanted if registry.state(t).quarantined}


# -- com diff ------------------------------------------------------------------------------------------------------
@dataclass
class Flips:
    newly_failing: list     # test ids that began failing and are not flaky: regressions
    fixed: list             # test ids that stopped failing and are not flaky
    flaky: list             # [{test_id, now, flake_rate, severity, why}]: flips of flaky tests
    registry: dict          # became_flaky, no_longer_flaky, status: what the registry says changed


def flipped_columns(memory: Memory, snapshot: Snapshot, test_ids: list[str]):
    """The results of `test_ids` in the snapshot, less the runs detection leaves out as mass failures (judged over
    every test of each run): what `detect_flaky` over the whole snapshot would see of these tests, at the cost of
    their rows and a few columns of the rest (a `com diff` of one CI run classifies a handful of flips)."""
    import numpy as np

    from com.analysis.flaky import MASS_FAILURE, MASS_FAILURE_MIN, mass_failure_runs, mass_failures, with_runs

    memory.follow(snapshot, [memory.results])
    cols = with_runs(memory.results.columns(snapshot, tests=test_ids))
    if not len(cols):
        return cols
    outcomes = memory.results.run_outcomes(snapshot)  # counts per run, not a row per result
    if outcomes is not None:
        names, total, failed, run_commit = outcomes
        left_out = {names[r] for r in np.flatnonzero(
            mass_failure_runs(total, failed, run_commit, MASS_FAILURE, MASS_FAILURE_MIN)).tolist()}
    else:
        every = with_runs(memory.results.columns(snapshot, runs_only=True))
        left_out = {every.runs[r] for r in np.flatnonzero(
            mass_failures(every, None, MASS_FAILURE, MASS_FAILURE_MIN)).tolist()}
    if not left_out:
        return cols
    run_left_out = np.array([run in left_out for run in cols.runs] + [False], dtype=bool)
    return cols.take(~run_left_out[cols.run])


def classify_flips(memory: Memory, a: Snapshot, b: Snapshot, newly_failing: list[str], fixed: list[str]) -> Flips:
    """Tell flips of flaky tests from regressions and fixes: a test is flaky at B when B's newest committed
    detection or its lifecycle (an open status) says so, or when detection over B's results finds it flaky:
    it passed and failed on one code commit or passed on retry, or it flips without a change to explain it
    with a confidence of at least WINDOW_CONFIDENCE (ten runs or more)."""
    reg_a, reg_b = read_registry(memory, a), read_registry(memory, b)
    committed = reg_b.committed_flaky()
    flipped = newly_failing + fixed
    found: dict = {}
    if flipped:
        from com.analysis.flaky import detect_flaky

        cols = flipped_columns(memory, b, flipped)
        for f in detect_flaky(cols, min_runs=1, mass_failure=None).flaky:
            # Seen nondeterminism (a retry, one commit both ways) is enough; flips alone only with the
            # confidence of enough runs: one failure after two passes is a regression until shown otherwise.
            if f.evidence["strongest"] != "window" or f.confidence >= WINDOW_CONFIDENCE:
                found[f.test_id] = f
    flaky, regressions, fixes = [], [], []
    for test_id, now in [(t, "failing") for t in newly_failing] + [(t, "passing") for t in fixed]:
        f, c, state = found.get(test_id), committed.get(test_id), reg_b.state(test_id)
        why = (f.evidence["strongest"] if f is not None else "registry" if c is not None
               else "status" if state.status in OPEN else None)
        if why is None:
            (regressions if now == "failing" else fixes).append(test_id)
            continue
        rate = f.flake_rate if f is not None else c["flake_rate"] if c is not None else None
        severity = f.severity if f is not None else c["severity"] if c is not None else None
        flaky.append({"test_id": test_id, "now": now, "flake_rate": None if rate is None else round(rate, 4),
                      "severity": severity, "status": state.status, "why": why})
    flaky.sort(key=lambda x: (x["now"], x["test_id"]))
    return Flips(regressions, fixes, flaky, registry_changes(reg_a, reg_b))


def registry_changes(a: Registry, b: Registry) -> dict:
    """What the registry says changed from A to B: tests that became flaky or stopped being flaky in the newest
    committed detection, and lifecycle status changes (healed ones among them)."""
    fa, fb = a.committed_flaky(), b.committed_flaky()
    became = [{"test_id": t, "flake_rate": fb[t]["flake_rate"], "severity": fb[t]["severity"]}
              for t in sorted(set(fb) - set(fa))]
    gone = sorted(set(fa) - set(fb)) if b.latest is not None else []
    status = []
    for test_id in sorted(set(a.states) | set(b.states)):
        before, after = a.state(test_id), b.state(test_id)
        if before.status != after.status or before.quarantined != after.quarantined:
            status.append({"test_id": test_id, "from": before.status, "to": after.status,
                           "quarantined": after.quarantined})
    return {"became_flaky": became, "no_longer_flaky": gone, "healed": [s["test_id"] for s in status if s["to"] == "healed"],
            "status": status, "detection_from": (a.latest or {}).get("id"), "detection_to": (b.latest or {}).get("id")}
