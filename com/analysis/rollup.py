"""The facts of a roll-up (a day, a week, or one pattern), computed deterministically from result columns.

Everything a roll-up's narrative may say comes from these facts: a JSON-serialisable dict with stable keys
(documented in FACTS.md beside this module, schema `com.rollup.facts/1`). Same columns and inputs, same
dict, byte for byte once dumped with sort_keys. Nothing here reads a clock, the journal or a view: the
caller passes the result columns, the flaky registry's status changes and the healing attempts.

Definitions used throughout:
- a result is one recorded attempt; an *outcome* is the final attempt of a test in a run (highest
  attempt, then latest time), so a retry that passed makes a passing outcome;
- an outcome is *executed* unless skipped, *failing* when failed or error; the pass rate is the share of
  executed outcomes that are not failing (xfailed and xpassed count as not failing);
- a test's state before a period is its last executed outcome before the period starts;
- flaky evidence for a test, up to the period's end: a pass on retry within one run, a failing and a
  non-failing outcome on the same code commit, or a registry status that says it is known flaky.
  Failing tests with such evidence are reported as flaky failures, never as new failures or fixes.

The flaky registry comes in as its events' contents (docs/flaky.md): status changes (`flaky_status`, and the
change a healing attempt implies), healing attempts and committed detections (`flaky_registry`). Status
changes are replayed through the registry's lifecycle (`com.analysis.lifecycle`), so a change the lifecycle
refused (two branches merged) counts for nothing here either.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone

import numpy as np

from com.analysis.flaky import with_runs
from com.analysis.lifecycle import OPEN, replay
from com.model.errors import ComError
from com.model.event import EARLIEST_US
from com.model.result import STATUS_CODE, STATUS_CODES, ResultColumns, distinct

FACTS_SCHEMA = "com.rollup.facts/1"
STATUS_NAMES = STATUS_CODES
PASSED, FAILED, ERROR, SKIPPED = (STATUS_CODE[s] for s in ("passed", "failed", "error", "skipped"))
DAY_US = 86_400_000_000
# Registry statuses under which a test counts as known flaky: the lifecycle's open ones.
KNOWN_FLAKY = OPEN
LIST_LIMIT = 20  # items kept per list; every list also carries its full count
TOP = 5  # signatures, slowest tests, duration regressions

# Manifestation categories, tried in order (a Playwright "Timeout ... waiting for locator" is a selector).
CATEGORIES = (
    ("selector", re.compile(r"selector|locator|element|no such|not visible|not attached", re.I)),
    ("network", re.compile(r"connection|connect\b|refused|reset by peer|econn|socket|dns|unreachable|"
                           r"network|\b50[234]\b|remote end closed", re.I)),
    ("timeout", re.compile(r"timeout|timed out|time out|deadline exceeded", re.I)),
    ("timing", re.compile(r"\btook\b|elapsed|budget|out of order|race", re.I)),
    ("resource", re.compile(r"memory|no space|disk|permission denied|too many open files|oserror|"
                            r"environment|resource", re.I)),
)


# -- time -------------------------------------------------------------------------------------------
def to_us(value) -> int:
    """Microseconds since the epoch from an int (already µs), a date, a datetime or an ISO-8601 text."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, datetime):
        dt = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        return _dt_us(dt)
    if isinstance(value, date):
        return _dt_us(datetime(value.year, value.month, value.day, tzinfo=timezone.utc))
    if isinstance(value, str):
        text = value.strip()
        try:
            if len(text) == 10:
                return to_us(date.fromisoformat(text))
            return to_us(datetime.fromisoformat(text[:-1] + "+00:00" if text[-1:] in "Zz" else text))
        except ValueError:
            pass
    raise ComError(f"not a date or time: {value!r} (expected ISO-8601, e.g. 2026-01-05)")


def _dt_us(dt: datetime) -> int:
    delta = dt.astimezone(timezone.utc) - datetime(1970, 1, 1, tzinfo=timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def iso(us: int) -> str:
    """Second-precision UTC ISO text of a µs time."""
    return (datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=int(us))).strftime("%Y-%m-%dT%H:%M:%SZ")


def day_of(us: int) -> str:
    return iso(us)[:10]


def iso_week(week: str) -> tuple[date, date]:
    """`2026-W02` -> (Monday, next Monday)."""
    m = re.fullmatch(r"(\d{4})-?W(\d{2})", week.strip())
    if not m:
        raise ComError(f"not an ISO week: {week!r} (expected e.g. 2026-W02)")
    try:
        monday = date.fromisocalendar(int(m.group(1)), int(m.group(2)), 1)
    except ValueError:
        raise ComError(f"no such ISO week: {week!r}") from None
    return monday, monday + timedelta(days=7)


def _period(start_us: int, end_us: int, label: str) -> dict:
    return {"start": iso(start_us), "end": iso(end_us), "label": label, "days": (end_us - start_us) // DAY_US}


# -- the columns, prepared once ---------------------------------------------------------------------
class _Prepared:
    """Columns sorted into outcomes (final attempt per run and test), with the per-outcome flags analyses use."""

    def __init__(self, cols: ResultColumns):
        cols = with_runs(cols)  # results recorded without a run id at one time are one run
        self.cols = cols
        self.tests = list(cols.tests)
        n = len(cols.test)
        test = np.asarray(cols.test, dtype=np.int64)
        run = np.asarray(cols.run, dtype=np.int64)
        ts = np.asarray(cols.ts_us, dtype=np.int64)
        status = np.asarray(cols.status, dtype=np.int8)
        attempt = np.asarray(cols.attempt, dtype=np.int64)
        for name, arr in (("run", run), ("ts_us", ts), ("status", status), ("attempt", attempt),
                          ("duration_ms", cols.duration_ms), ("commit", cols.commit), ("signature", cols.signature)):
            if len(arr) != n:
                raise ComError(f"result columns disagree in length: test has {n} rows, {name} has {len(arr)}")
        if n and (status.min() < 0 or status.max() >= len(STATUS_NAMES)):
            raise ComError("result columns hold an unknown status code")
        self.n = n
        self.test, self.run, self.ts, self.status = test, run, ts, status
        self.duration = np.asarray(cols.duration_ms, dtype=np.float64)
        self.commit = np.asarray(cols.commit, dtype=np.int64)
        self.signature = np.asarray(cols.signature, dtype=np.int64)
        self.failing = (status == FAILED) | (status == ERROR)
        if n == 0:
            self.final = np.zeros(0, dtype=np.int64)
            self.retry_pass = np.zeros(0, dtype=bool)
            return
        key = run * (len(self.tests) + 1) + test
        order = np.lexsort((ts, attempt, key))
        k = key[order]
        last = np.r_[k[1:] != k[:-1], True]
        first = np.r_[True, k[1:] != k[:-1]]
        starts = np.nonzero(first)[0]
        any_fail = np.maximum.reduceat(self.failing[order].astype(np.int8), starts).astype(bool)
        self.final = order[last]  # row index of each outcome
        # A test that failed an attempt and then did not fail in the same run passed on retry.
        self.retry_pass = any_fail & ~self.failing[self.final]

    # outcome views
    def outcomes(self, start: int | None = None, end: int | None = None) -> np.ndarray:
        """Positions into self.final of the outcomes with start <= ts < end."""
        ts = self.ts[self.final]
        mask = np.ones(len(ts), dtype=bool)
        if start is not None:
            mask &= ts >= start
        if end is not None:
            mask &= ts < end
        return np.nonzero(mask)[0]

    def rows(self, start: int, end: int) -> np.ndarray:
        return np.nonzero((self.ts >= start) & (self.ts < end))[0]

    def last_state(self, end: int) -> dict[int, tuple[bool, int]]:
        """test -> (failing, row) of its last executed outcome before `end`."""
        pos = self.outcomes(None, end)
        rows = self.final[pos]
        rows = rows[self.status[rows] != SKIPPED]
        return _last_per_test(self.test, self.ts, rows, lambda r: (bool(self.failing[r]), int(r)))

    def flaky_evidence(self, end: int, known: set[int]) -> dict[int, set]:
        """test -> evidence kinds (pass_on_retry, same_commit, registry) seen before `end`."""
        out: dict[int, set] = {}
        pos = self.outcomes(None, end)
        for p in pos[self.retry_pass[pos]]:
            out.setdefault(int(self.test[self.final[p]]), set()).add("pass_on_retry")
        rows = self.final[pos]
        rows = rows[(self.status[rows] != SKIPPED) & (self.commit[rows] >= 0)]
        if len(rows):
            key = self.test[rows] * (len(self.cols.commits) + 1) + self.commit[rows]
            uniq, inv = np.unique(key, return_inverse=True)
            fails = np.bincount(inv, weights=self.failing[rows].astype(np.float64), minlength=len(uniq))
            total = np.bincount(inv, minlength=len(uniq))
            mixed = (fails > 0) & (fails < total)
            for k in uniq[mixed]:
                out.setdefault(int(k // (len(self.cols.commits) + 1)), set()).add("same_commit")
        for t in known:
            out.setdefault(t, set()).add("registry")
        return out

    def test_index(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.tests)}

    def commit_sha(self, row: int) -> str | None:
        c = int(self.commit[row])
        return self.cols.commits[c] if c >= 0 else None

    def signature_text(self, row: int) -> str | None:
        s = int(self.signature[row])
        return self.cols.signatures[s] if s >= 0 else None


def _last_per_test(test: np.ndarray, ts: np.ndarray, rows: np.ndarray, value) -> dict:
    if len(rows) == 0:
        return {}
    order = np.lexsort((ts[rows], test[rows]))
    r = rows[order]
    t = test[r]
    last = np.r_[t[1:] != t[:-1], True]
    return {int(test[x]): value(int(x)) for x in r[last]}


# -- the flaky registry ------------------------------------------------------------------------------
class Registry:
    """The flaky registry's events as the roll-ups read them.

    changes: `flaky_status` contents {test_id, ts (or ts_us), status}; attempts: `healing_attempt` contents
    {test_id, ts, strategy, outcome: success|failure}, each also implying a status change (success: healed,
    failure: healing_attempted) where the lifecycle allows it; detections: committed detections
    (`flaky_registry`) {ts, flaky: [test_id or {test_id, ...}]}."""

    def __init__(self, changes=(), attempts=(), detections=()):
        self.attempts = _normalise_attempts(attempts)
        rows = []
        for ch in changes or ():
            try:
                rows.append({"test_id": str(ch["test_id"]), "ts_us": _when(ch), "status": str(ch["status"])})
            except KeyError as exc:
                raise ComError(f"a flaky registry change lacks {exc.args[0]!r}") from None
        for a in self.attempts:
            rows.append({"test_id": a["test_id"], "ts_us": a["ts_us"], "implied": True,
                         "status": "healed" if a["success"] else "healing_attempted"})
        by_test: dict[str, list] = {}
        for r in rows:
            by_test.setdefault(r["test_id"], []).append(r)
        applied = []
        for test_id in sorted(by_test):
            # Stable within one time: explicit changes before the one an attempt implies, as recorded.
            ordered = sorted(by_test[test_id], key=lambda r: (r["ts_us"], bool(r.get("implied"))))
            applied.extend(replay(ordered).applied)
        self.applied = sorted(applied, key=lambda r: (r["ts_us"], r["test_id"], r["status"]))
        dets = []
        for d in detections or ():
            flaky = frozenset(str(f["test_id"] if isinstance(f, dict) else f) for f in d.get("flaky") or ())
            dets.append((_when(d), flaky))
        self.detections = sorted(dets, key=lambda d: d[0])

    def _detection_before(self, end: int) -> tuple[int, frozenset] | None:
        found = None
        for d in self.detections:
            if d[0] >= end:
                break
            found = d
        return found

    def status_at(self, end: int) -> dict[str, str]:
        """test id -> its lifecycle status just before `end`."""
        out: dict[str, str] = {}
        for c in self.applied:
            if c["ts_us"] >= end:
                break
            out[c["test_id"]] = c["status"]
        return out

    def known_flaky(self, end: int) -> set[str]:
        """Tests the registry calls flaky just before `end`: an open lifecycle status, or listed by the newest
        committed detection and not healed or found a false positive since."""
        status = self.status_at(end)
        out = {t for t, s in status.items() if s in KNOWN_FLAKY}
        newest = self._detection_before(end)
        if newest is not None:
            settled = {c["test_id"] for c in self.applied
                       if newest[0] <= c["ts_us"] < end and c["status"] in ("healed", "false_positive")}
            out |= newest[1] - settled
        return out

    def facts(self, start: int, end: int, tests: set[str] | None = None) -> dict:
        """What changed in the registry from `start` to `end` (of `tests` only, when given)."""
        chosen = [c for c in self.applied if start <= c["ts_us"] < end and (tests is None or c["test_id"] in tests)]

        def with_status(*names):
            return {c["test_id"] for c in chosen if c["status"] in names}

        became = with_status("detected")
        gone: set = set()
        newest_in = self._detection_before(end)
        if newest_in is not None and newest_in[0] >= start:
            before = self._detection_before(start)
            listed_before = before[1] if before is not None else frozenset()
            became |= newest_in[1] - listed_before
            gone = set(listed_before - newest_in[1])
        if tests is not None:
            became &= tests
            gone &= tests
        return {"changes": len(chosen),
                "detections": sum(1 for d in self.detections if start <= d[0] < end),
                "became_flaky": _capped(sorted(became)), "no_longer_flaky": _capped(sorted(gone)),
                "healed": _capped(sorted(with_status("healed"))),
                "quarantined": _capped(sorted(with_status("quarantined"))),
                "false_positive": _capped(sorted(with_status("false_positive")))}

    def healing(self, start: int, end: int, tests: set[str] | None = None) -> dict:
        return _healing(self.attempts, start, end, tests)


def _when(item: dict) -> int:
    if "ts_us" in item:
        return int(item["ts_us"])
    return to_us(item["ts"])


def _normalise_attempts(attempts) -> list[dict]:
    out = []
    for a in attempts or ():
        try:
            outcome = str(a["outcome"])
            out.append({"test_id": str(a["test_id"]), "ts_us": _when(a),
                        "strategy": str(a.get("strategy") or "unspecified"), "success": outcome == "success"})
        except KeyError as exc:
            raise ComError(f"a healing attempt lacks {exc.args[0]!r}") from None
        if outcome not in ("success", "failure"):
            raise ComError(f"a healing attempt's outcome must be success or failure, not {outcome!r}")
    out.sort(key=lambda r: (r["ts_us"], r["test_id"], r["strategy"]))
    return out


def _healing(attempts: list[dict], start: int, end: int, tests: set[str] | None = None) -> dict:
    chosen = [a for a in attempts if start <= a["ts_us"] < end and (tests is None or a["test_id"] in tests)]
    by: dict[str, list[int]] = {}
    for a in chosen:
        s = by.setdefault(a["strategy"], [0, 0])
        s[0] += 1
        s[1] += a["success"]
    ok = sum(a["success"] for a in chosen)
    return {
        "attempts": len(chosen),
        "succeeded": ok,
        "failed": len(chosen) - ok,
        "success_rate": round(ok / len(chosen), 4) if chosen else None,
        "by_strategy": [{"strategy": k, "attempts": v[0], "succeeded": v[1]}
                        for k, v in sorted(by.items(), key=lambda kv: (-kv[1][0], kv[0]))],
        "tests": _capped(sorted({a["test_id"] for a in chosen})),
    }


def _capped(items: list, limit: int = LIST_LIMIT) -> dict:
    return {"count": len(items), "items": items[:limit]}


# -- categories ---------------------------------------------------------------------------------------
def category(signature: str | None) -> str:
    """The manifestation category of an error signature: selector, network, timeout, timing, resource, other."""
    if not signature:
        return "other"
    for name, pattern in CATEGORIES:
        if pattern.search(signature):
            return name
    return "other"


# -- one period ---------------------------------------------------------------------------------------
def _rate(passing: int, executed: int) -> float | None:
    return round(passing / executed, 4) if executed else None


def _counts(p: _Prepared, start: int, end: int) -> dict:
    rows = p.rows(start, end)
    by_status = np.bincount(p.status[rows].astype(np.int64), minlength=len(STATUS_NAMES))
    pos = p.outcomes(start, end)
    out_rows = p.final[pos]
    executed = int(np.count_nonzero(p.status[out_rows] != SKIPPED))
    failing = int(np.count_nonzero(p.failing[out_rows]))
    return {
        "runs": int(len(distinct(p.run[rows]))),
        "commits": int(len(distinct(p.commit[rows][p.commit[rows] >= 0]))),
        "tests": int(len(distinct(p.test[rows]))),
        "results": {"total": int(len(rows)), **{name: int(by_status[i]) for i, name in enumerate(STATUS_NAMES)}},
        "outcomes": {"total": int(len(pos)), "executed": executed, "failing": failing,
                     "retried": int(np.count_nonzero(p.retry_pass[pos]))},
        "pass_rate": _rate(executed - failing, executed),
    }


def _signatures(p: _Prepared, rows: np.ndarray, limit: int = TOP) -> list[dict]:
    rows = rows[p.failing[rows] & (p.signature[rows] >= 0)]
    if len(rows) == 0:
        return []
    sig = p.signature[rows]
    uniq, inv, counts = np.unique(sig, return_inverse=True, return_counts=True)
    out = []
    for k, s in enumerate(uniq):
        members = rows[inv == k]
        tests = sorted({p.tests[int(t)] for t in p.test[members]})
        text = p.cols.signatures[int(s)]
        out.append({"signature": text, "count": int(counts[k]), "tests": len(tests), "example_test": tests[0],
                    "category": category(text)})
    out.sort(key=lambda d: (-d["count"], d["signature"]))
    return out[:limit]


def _medians(p: _Prepared, rows: np.ndarray) -> dict[int, tuple[float, int, float]]:
    """test -> (median, samples, max) of passed durations among rows."""
    rows = rows[(p.status[rows] == PASSED) & ~np.isnan(p.duration[rows])]
    if len(rows) == 0:
        return {}
    order = np.lexsort((p.duration[rows], p.test[rows]))
    r = rows[order]
    t = p.test[r]
    starts = np.nonzero(np.r_[True, t[1:] != t[:-1]])[0]
    ends = np.r_[starts[1:], len(r)]
    d = p.duration[r]
    size = ends - starts
    # Sorted by duration within each test: the median is the middle one (or the mean of the two middle ones).
    med = (d[starts + (size - 1) // 2] + d[starts + size // 2]) / 2
    return {int(t[s]): (float(m), int(n), float(d[e - 1])) for s, m, n, e in
            zip(starts.tolist(), med.tolist(), size.tolist(), ends.tolist())}


def _durations(p: _Prepared, start: int, end: int, baseline_days: int, ratio: float, min_ms: float,
               limit: int = TOP) -> tuple[list, list]:
    now = _medians(p, p.rows(start, end))
    slowest = sorted(now.items(), key=lambda kv: (-kv[1][0], p.tests[kv[0]]))[:limit]
    slow = [{"test_id": p.tests[t], "median_ms": round(m, 1), "results": n} for t, (m, n, _) in slowest]
    base = _medians(p, p.rows(start - baseline_days * DAY_US, start))
    regressions = []
    for t, (m, n, _) in now.items():
        b = base.get(t)
        # Jitter of a few runs is not a regression: at least 3 baseline samples, slower than all of them.
        if b is None or b[1] < 3 or n < 2 or b[0] <= 0:
            continue
        if m >= ratio * b[0] and m - b[0] >= min_ms and m > b[2]:
            regressions.append({"test_id": p.tests[t], "median_ms": round(m, 1), "baseline_median_ms": round(b[0], 1),
                                "ratio": round(m / b[0], 2), "results": n, "baseline_results": b[1]})
    regressions.sort(key=lambda d: (-d["ratio"], d["test_id"]))
    return slow, regressions[:limit]


def _period_facts(p: _Prepared, start: int, end: int, prev_start: int, registry: Registry, *,
                  baseline_days: int, slow_ratio: float, slow_min_ms: float) -> dict:
    index = p.test_index()
    known = {index[t] for t in registry.known_flaky(end) if t in index}
    now = _counts(p, start, end)
    prev = _counts(p, prev_start, start)
    change = None
    if now["pass_rate"] is not None and prev["pass_rate"] is not None:
        change = round((now["pass_rate"] - prev["pass_rate"]) * 100, 1) + 0.0  # + 0.0: no "-0.0"

    before = p.last_state(start)
    evidence = p.flaky_evidence(end, known)
    pos = p.outcomes(start, end)
    out_rows = p.final[pos]
    executed = out_rows[p.status[out_rows] != SKIPPED]
    order = executed[np.lexsort((p.test[executed], p.ts[executed]))]  # by time, then test
    first_fail: dict[int, int] = {}
    fail_count: dict[int, int] = {}
    runs_of: dict[int, int] = {}
    last_row: dict[int, int] = {}
    for r in order:
        t = int(p.test[r])
        runs_of[t] = runs_of.get(t, 0) + 1
        last_row[t] = int(r)
        if p.failing[r]:
            fail_count[t] = fail_count.get(t, 0) + 1
            first_fail.setdefault(t, int(r))

    new_failures, flaky, still = [], [], []
    for t, r in first_fail.items():
        if t in evidence:
            continue
        entry = {"test_id": p.tests[t], "failures": fail_count[t], "runs": runs_of[t],
                 "first_failed_at": iso(p.ts[r]), "commit": p.commit_sha(r), "signature": p.signature_text(r)}
        (still if before.get(t, (False, 0))[0] else new_failures).append(entry)
    # Flaky failures count failing attempts too: a failure that passed on retry is the typical one.
    rows = p.rows(start, end)
    failed_rows = rows[p.failing[rows]]
    failed_rows = failed_rows[np.lexsort((p.test[failed_rows], p.ts[failed_rows]))]
    first_attempt: dict[int, int] = {}
    attempt_count: dict[int, int] = {}
    for r in failed_rows:
        t = int(p.test[r])
        if t in evidence:
            first_attempt.setdefault(t, int(r))
            attempt_count[t] = attempt_count.get(t, 0) + 1
    for t, r in first_attempt.items():
        flaky.append({"test_id": p.tests[t], "failures": attempt_count[t], "runs": runs_of.get(t, 0),
                      "first_failed_at": iso(p.ts[r]), "commit": p.commit_sha(r), "signature": p.signature_text(r),
                      "evidence": sorted(evidence[t])})
    fixed = []
    for t, r in last_row.items():
        if before.get(t, (False, 0))[0] and not p.failing[r] and t not in evidence:
            fixed.append({"test_id": p.tests[t], "fixed_at": iso(p.ts[r]), "commit": p.commit_sha(r)})
    by_time = lambda key: (lambda d: (d[key], d["test_id"]))  # noqa: E731
    new_failures.sort(key=by_time("first_failed_at"))
    still.sort(key=by_time("first_failed_at"))
    flaky.sort(key=lambda d: (-d["failures"], d["test_id"]))
    fixed.sort(key=by_time("fixed_at"))

    slow, regressions = _durations(p, start, end, baseline_days, slow_ratio, slow_min_ms)
    return {
        "schema": FACTS_SCHEMA,
        **now,
        "previous": {"period": _period(prev_start, start, _label(prev_start, start)), "runs": prev["runs"],
                     "results": prev["results"]["total"], "pass_rate": prev["pass_rate"]},
        "pass_rate_change_pts": change,
        "new_failures": _capped(new_failures),
        "still_failing": _capped(still),
        "fixed": _capped(fixed),
        "flaky_failures": _capped(flaky),
        "top_signatures": _signatures(p, p.rows(start, end)),
        "slowest": slow,
        "duration_regressions": regressions,
        "registry": registry.facts(start, end),
        "healing": registry.healing(start, end),
    }


def _label(start: int, end: int) -> str:
    first, last = day_of(start), day_of(end - 1)
    return first if first == last else f"{first}..{last}"


# -- the three roll-ups -------------------------------------------------------------------------------
def daily_facts(cols: ResultColumns, day, *, registry: Registry | None = None, baseline_days: int = 7,
                slow_ratio: float = 1.5, slow_min_ms: float = 50.0) -> dict:
    """Facts of one UTC day (`day`: a date or `YYYY-MM-DD`), compared with the day before."""
    start = to_us(day)
    start -= start % DAY_US
    p = _Prepared(cols)
    facts = _period_facts(p, start, start + DAY_US, start - DAY_US, registry or Registry(),
                          baseline_days=baseline_days, slow_ratio=slow_ratio, slow_min_ms=slow_min_ms)
    return {"kind": "daily", "period": _period(start, start + DAY_US, day_of(start)), **facts}


def weekly_facts(cols: ResultColumns, start, end=None, *, registry: Registry | None = None, baseline_days: int = 7,
                 slow_ratio: float = 1.5, slow_min_ms: float = 50.0) -> dict:
    """Facts of the days from `start` up to `end` (exclusive; default: 7 days), compared with as many days
    before, with a day-by-day trend and the issues that recurred on two days or more."""
    s = to_us(start)
    s -= s % DAY_US
    e = s + 7 * DAY_US if end is None else to_us(end)
    e -= e % DAY_US
    if e <= s:
        raise ComError("a weekly roll-up needs its end after its start")
    p = _Prepared(cols)
    facts = _period_facts(p, s, e, s - (e - s), registry or Registry(),
                          baseline_days=baseline_days, slow_ratio=slow_ratio, slow_min_ms=slow_min_ms)
    trend = []
    for d in range(s, e, DAY_US):
        c = _counts(p, d, d + DAY_US)
        trend.append({"date": day_of(d), "runs": c["runs"], "results": c["results"]["total"],
                      "failing": c["outcomes"]["failing"], "pass_rate": c["pass_rate"]})
    label = _label(s, e)
    monday = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=s)
    if e - s == 7 * DAY_US and monday.weekday() == 0:
        y, w, _ = monday.isocalendar()
        label = f"{y}-W{w:02d}"
    return {"kind": "weekly", "period": _period(s, e, label), **facts, "trend": trend,
            "recurring": _recurring(p, s, e)}


def _recurring(p: _Prepared, start: int, end: int) -> dict:
    """Failure signatures and failing tests seen on two days or more of the period."""
    rows = p.rows(start, end)
    rows = rows[p.failing[rows]]
    day = (p.ts[rows] // DAY_US)
    sigs: dict[int, list] = {}
    tests: dict[int, list] = {}
    for r, d in zip(rows, day):
        s = int(p.signature[r])
        if s >= 0:
            entry = sigs.setdefault(s, [set(), 0, set()])
            entry[0].add(int(d))
            entry[1] += 1
            entry[2].add(int(p.test[r]))
        entry = tests.setdefault(int(p.test[r]), [set(), 0])
        entry[0].add(int(d))
        entry[1] += 1
    signatures = [{"signature": p.cols.signatures[s], "days": len(v[0]), "count": v[1], "tests": len(v[2]),
                   "category": category(p.cols.signatures[s])} for s, v in sigs.items() if len(v[0]) >= 2]
    signatures.sort(key=lambda d: (-d["days"], -d["count"], d["signature"]))
    failing = [{"test_id": p.tests[t], "days": len(v[0]), "failures": v[1]} for t, v in tests.items() if len(v[0]) >= 2]
    failing.sort(key=lambda d: (-d["days"], -d["failures"], d["test_id"]))
    return {"signatures": signatures[:TOP], "tests": _capped(failing)}


def pattern_facts(cols: ResultColumns, *, until, days: int = 30, test: str | None = None, signature: str | None = None,
                  tag: str | None = None, test_tags: dict | None = None, registry: Registry | None = None) -> dict:
    """Facts of one pattern over the `days` days ending with the day `until` (inclusive): a test id, a piece
    of error signature (case-insensitive), or a tag (`test_tags` maps test id -> tags)."""
    chosen = [(k, v) for k, v in (("test", test), ("signature", signature), ("tag", tag)) if v]
    if len(chosen) != 1:
        raise ComError("a pattern roll-up needs exactly one of a test id, an error signature or a tag",
                       param=chosen[1][0] if len(chosen) > 1 else "test")
    by, value = chosen[0]
    if days < 1:
        raise ComError(f"must be at least 1, not {days}", param="days")
    end = to_us(until)
    end = end - end % DAY_US + DAY_US
    start = max(end - days * DAY_US, EARLIEST_US)  # at most back to year 1: the days there are
    p = _Prepared(cols)
    index = p.test_index()
    registry = registry or Registry()
    known = {index[t] for t in registry.known_flaky(end) if t in index}
    rows = p.rows(start, end)
    if by == "test":
        wanted = {index[value]} if value in index else set()
        match = np.isin(p.test[rows], list(wanted)) & p.failing[rows]
    elif by == "tag":
        tagged = {t for t, tags in (test_tags or {}).items() if value in (tags or ())}
        wanted = {index[t] for t in tagged if t in index}
        match = np.isin(p.test[rows], list(wanted)) & p.failing[rows]
    else:
        needle = value.lower()
        sig_ok = np.array([needle in s.lower() for s in p.cols.signatures] + [False], dtype=bool)
        match = p.failing[rows] & sig_ok[p.signature[rows]]  # index -1 reads the trailing False
        wanted = {int(t) for t in p.test[rows][match]}
    hits = rows[match]
    hit_order = hits[np.lexsort((p.test[hits], p.ts[hits]))]
    affected = []
    test_rows = rows[np.isin(p.test[rows], list(wanted))] if wanted else rows[:0]
    totals = np.bincount(p.test[test_rows], minlength=len(p.tests)) if len(test_rows) else np.zeros(len(p.tests))
    per_test: dict[int, list] = {}
    for r in hit_order:
        e = per_test.setdefault(int(p.test[r]), [0, int(r), int(r)])
        e[0] += 1
        e[2] = int(r)
    for t, (n, first, last) in per_test.items():
        affected.append({"test_id": p.tests[t], "failures": n, "results": int(totals[t]),
                         "first_failed": iso(p.ts[first]), "last_failed": iso(p.ts[last])})
    affected.sort(key=lambda d: (-d["failures"], d["test_id"]))
    hit_days = p.ts[hits] // DAY_US
    days_hit, per_day = np.unique(hit_days, return_counts=True)
    by_day = [{"date": day_of(int(d) * DAY_US), "occurrences": int(n)} for d, n in zip(days_hit, per_day)]
    sigs = _signatures(p, hits, limit=TOP)
    evidence = _pattern_evidence(p, start, end, wanted, hits, known)
    tests_hit = {p.tests[t] for t in per_test}
    facts = {
        "kind": "pattern",
        "schema": FACTS_SCHEMA,
        "pattern": {"by": by, "value": value},
        "period": _period(start, end, _label(start, end)),
        "occurrences": int(len(hits)),
        "results": int(len(test_rows)),
        "runs": int(len(distinct(p.run[hits]))),
        "commits": int(len(distinct(p.commit[hits][p.commit[hits] >= 0]))),
        "first_seen": iso(p.ts[hit_order[0]]) if len(hits) else None,
        "last_seen": iso(p.ts[hit_order[-1]]) if len(hits) else None,
        "days_with_occurrences": int(len(distinct(hit_days))),
        "affected_tests": _capped(affected),
        "signatures": sigs,
        "by_day": by_day,
        "evidence": evidence,
        "registry": registry.facts(start, end, tests_hit | ({value} if by == "test" else set())),
        "healing": registry.healing(start, end, tests_hit | ({value} if by == "test" else set())),
    }
    facts["hypothesis"] = _hypothesis(facts)
    return facts


def _pattern_evidence(p: _Prepared, start: int, end: int, wanted: set, hits: np.ndarray, known: set) -> dict:
    """What the pattern's failures look like: flaky signs, failing streaks across commits, failing together."""
    pos = p.outcomes(start, end)
    rows = p.final[pos]
    keep = np.isin(p.test[rows], list(wanted)) if wanted else np.zeros(len(rows), dtype=bool)
    pos, rows = pos[keep], rows[keep]
    retry = int(np.count_nonzero(p.retry_pass[pos]))
    execd = rows[(p.status[rows] != SKIPPED)]
    mixed_commits = 0
    streaks = []
    flaky_tests = {int(p.test[p.final[x]]) for x in pos[p.retry_pass[pos]]}
    flaky_tests |= wanted & known
    by_test: dict[int, list] = {}
    for r in execd[np.lexsort((p.ts[execd], p.test[execd]))]:
        by_test.setdefault(int(p.test[r]), []).append(int(r))
    for t, rs in by_test.items():
        per_commit: dict[int, set] = {}
        for r in rs:
            if p.commit[r] >= 0:
                per_commit.setdefault(int(p.commit[r]), set()).add(bool(p.failing[r]))
        mixed = sum(1 for v in per_commit.values() if len(v) == 2)
        mixed_commits += mixed
        if mixed:
            flaky_tests.add(t)
        streaks.extend(_streaks(p, t, rs, per_commit))
    # Runs in which two or more of the pattern's tests failed: one cause behind several failures.
    run_tests: dict[int, set] = {}
    for r in hits:
        run_tests.setdefault(int(p.run[r]), set()).add(int(p.test[r]))
    together = sum(1 for v in run_tests.values() if len(v) >= 2)
    cats: dict[str, int] = {}
    for r in hits:
        cat = category(p.signature_text(int(r)))
        cats[cat] = cats.get(cat, 0) + 1
    streaks.sort(key=lambda d: (d["started_at"], d["test_id"]))
    return {
        "pass_on_retry": retry,
        "mixed_commits": mixed_commits,
        "flaky_test_occurrences": int(np.count_nonzero(np.isin(p.test[hits], list(flaky_tests)))) if flaky_tests else 0,
        "failing_streaks": streaks[:LIST_LIMIT],
        "runs_failing_together": together,
        "categories": dict(sorted(cats.items(), key=lambda kv: (-kv[1], kv[0]))),
        "known_flaky": sorted(p.tests[t] for t in wanted & known),
    }


def _streaks(p: _Prepared, t: int, rows: list[int], per_commit: dict) -> list[dict]:
    """Failing stretches of a test (two failures or more) that failed on every run of their commits: the shape
    of a regression, where a flaky test also passes on the same code."""
    out, cur = [], []
    for r in rows + [None]:
        if r is not None and p.failing[r]:
            cur.append(r)
            continue
        commits = {int(p.commit[x]) for x in cur if p.commit[x] >= 0}
        if commits and len(cur) >= 2 and all(per_commit.get(c) == {True} for c in commits):
            out.append({"test_id": p.tests[t], "started_at": iso(p.ts[cur[0]]), "first_commit": p.commit_sha(cur[0]),
                        "failures": len(cur), "commits": len(commits),
                        "ended_at": iso(p.ts[r]) if r is not None else None,
                        "fixed_by": p.commit_sha(r) if r is not None else None})
        cur = []
    return out


def _hypothesis(f: dict) -> dict:
    """A root-cause hypothesis from the evidence, with the rule that produced it."""
    ev = f["evidence"]
    n = f["occurrences"]
    if n == 0:
        return {"cause": "none", "confidence": "high", "rule": "no_occurrences",
                "statement": "No failure matched the pattern in the period."}
    cats = ev["categories"]
    top_cat = next(iter(cats)) if cats else "other"
    confidence = "high" if n >= 5 else "medium" if n >= 2 else "low"
    flaky_share = ev["flaky_test_occurrences"] / n
    streak_share = sum(s["failures"] for s in ev["failing_streaks"]) / n
    kind = {"timeout": "a timeout", "selector": "an element or selector wait", "network": "the network",
            "timing": "a timing assertion", "resource": "the environment's resources"}.get(top_cat)
    if flaky_share >= 0.75:
        why = f", most often through {kind}" if kind else ""
        return {"cause": "flaky", "confidence": confidence, "rule": "pass_and_fail_on_same_commit",
                "category": top_cat,
                "statement": "Intermittent: the same code both passed and failed"
                             f"{why}, so a code change does not explain these failures."}
    if streak_share >= 0.5 and flaky_share < 0.25:
        first = ev["failing_streaks"][0]
        fixed = all(s["fixed_by"] for s in ev["failing_streaks"])
        return {"cause": "regression", "confidence": confidence, "rule": "failing_streak_across_commits",
                "category": top_cat, "commit": first["first_commit"],
                "statement": "A regression: failures start at one code commit and every run of it fails "
                             + ("until a fixing commit." if fixed else "up to now.")}
    if flaky_share >= 0.25 and streak_share >= 0.25:
        return {"cause": "mixed", "confidence": "medium" if n >= 5 else "low", "rule": "flaky_and_streaks",
                "category": top_cat,
                "statement": "Two causes: part of these failures are intermittent (the same code also passed), "
                             "the rest fail on every run of the code they broke on, like regressions."}
    if ev["runs_failing_together"] >= 2 and len(f["affected_tests"]["items"]) >= 2:
        return {"cause": "shared_cause", "confidence": confidence, "rule": "tests_fail_together",
                "category": top_cat,
                "statement": "A shared cause: several affected tests fail together in the same runs."}
    if top_cat in ("timeout", "network", "resource"):
        return {"cause": "environment", "confidence": "low", "rule": "category_only", "category": top_cat,
                "statement": f"Possibly the environment: the failures are mostly of the {top_cat} kind."}
    return {"cause": "unknown", "confidence": "low", "rule": "no_rule_matched", "category": top_cat,
            "statement": "The evidence points to no single cause."}
