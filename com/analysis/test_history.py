"""A test's pass/fail history as a few facts for a context pack: how many runs, how many failed, on which code
commits, and whether it is failing now (since which commit, last passed when), failing now and then, or
flaky-looking (passed on retry, or both passed and failed on the same code).

What a pack shows beside the flaky registry's verdict (`com.analysis.flaky`, flake rate and severity): plain
counts and where the failures ran. Pure: numpy over `ResultColumns`, nothing read here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

from com.model.result import STATUS_CODE, ResultColumns, distinct

PASSED, FAILED, ERROR = STATUS_CODE["passed"], STATUS_CODE["failed"], STATUS_CODE["error"]
MAX_COMMITS = 5  # failing commits named in a fact


@dataclass
class TestHistory:
    __test__ = False  # not a pytest test class, whatever its name

    tests: int = 0  # tests with a verdict
    runs: int = 0  # runs of those tests with a verdict (passed, failed or error), a run counted by its first attempt
    failed: int = 0  # runs whose first attempt failed or errored
    first_us: int | None = None
    last_us: int | None = None
    retried_passes: int = 0  # runs that failed and then passed on retry
    disagreeing: list[str] = field(default_factory=list)  # code commits with passing and failing runs of one test
    streak: int = 0  # the newest runs in a row that failed (one test only)
    streak_start: tuple[int, str | None] | None = None  # (time, commit) of the streak's first failure
    last_pass: tuple[int, str | None] | None = None  # (time, commit) of the newest passing run
    last_failure: tuple[int, str | None] | None = None
    failing_commits: list[tuple[str, int, int]] = field(default_factory=list)  # (commit, failed runs, last time)

    @property
    def verdict(self) -> str:
        """no results | passing | flaky | failing | intermittent."""
        if not self.runs:
            return "no results"
        if not self.failed:
            return "passing"
        if self.retried_passes or self.disagreeing:
            return "flaky"
        if self.streak:
            return "failing"
        return "intermittent"


def history(cols: ResultColumns) -> TestHistory:
    """The history of the tests in `cols` (usually one): runs, failures, streaks and the commits failures ran on."""
    import numpy as np

    status = np.asarray(cols.status)
    keep = np.flatnonzero((status == PASSED) | (status == FAILED) | (status == ERROR))
    if not len(keep):
        return TestHistory()
    test = np.asarray(cols.test)[keep].astype(np.int64)
    run = np.asarray(cols.run)[keep].astype(np.int64)
    ts = np.asarray(cols.ts_us)[keep].astype(np.int64)
    attempt = np.asarray(cols.attempt)[keep].astype(np.int64)
    commit = np.asarray(cols.commit)[keep].astype(np.int64)
    failing = status[keep] != PASSED
    # A run is (test, run id); its verdict is its first attempt (retries happen only after a failure).
    key = (test << 32) | (run & 0xFFFFFFFF)
    order = np.lexsort((np.where(attempt > 0, attempt, 1), ts, key))
    key, ts, commit, failing, test = key[order], ts[order], commit[order], failing[order], test[order]
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    run_fail = failing[starts]
    passes = np.add.reduceat((~failing).astype(np.int64), starts)
    run_ts, run_commit, run_test = ts[starts], commit[starts], test[starts]

    def named(c: int) -> str | None:
        return cols.commits[c] if c >= 0 else None

    h = TestHistory(tests=len(distinct(run_test)), runs=len(starts), failed=int(run_fail.sum()),
                    first_us=int(run_ts.min()), last_us=int(run_ts.max()),
                    retried_passes=int((run_fail & (passes > 0)).sum()))
    # The same test both passing and failing on one code commit.
    with_commit = run_commit >= 0
    if with_commit.any():
        pair = (run_test[with_commit] << 32) | run_commit[with_commit]
        fails, oks = run_fail[with_commit], ~run_fail[with_commit]
        pairs, inverse = np.unique(pair, return_inverse=True)
        mixed = (np.bincount(inverse, fails, len(pairs)) > 0) & (np.bincount(inverse, oks, len(pairs)) > 0)
        last = np.full(len(pairs), np.iinfo(np.int64).min)
        np.maximum.at(last, inverse, run_ts[with_commit])
        chosen = np.flatnonzero(mixed)
        chosen = chosen[np.argsort(-last[chosen], kind="stable")]
        h.disagreeing = list(dict.fromkeys(named(int(p & 0xFFFFFFFF)) for p in pairs[chosen]))
    # Failures by code commit, newest first.
    failed_commits = run_commit[run_fail & with_commit]
    if len(failed_commits):
        names, inverse = np.unique(failed_commits, return_inverse=True)
        counts = np.bincount(inverse)
        last = np.full(len(names), np.iinfo(np.int64).min)
        np.maximum.at(last, inverse, run_ts[run_fail & with_commit])
        for i in np.argsort(-last, kind="stable"):
            h.failing_commits.append((named(int(names[i])), int(counts[i]), int(last[i])))
    by_time = np.argsort(run_ts, kind="stable")
    ok = by_time[~run_fail[by_time]]
    bad = by_time[run_fail[by_time]]
    if len(ok):
        h.last_pass = (int(run_ts[ok[-1]]), named(int(run_commit[ok[-1]])))
    if len(bad):
        h.last_failure = (int(run_ts[bad[-1]]), named(int(run_commit[bad[-1]])))
    if h.tests == 1 and run_fail[by_time[-1]]:
        newest_pass = int(np.flatnonzero(~run_fail[by_time])[-1]) if len(ok) else -1
        h.streak = len(by_time) - 1 - newest_pass
        first = by_time[newest_pass + 1]
        h.streak_start = (int(run_ts[first]), named(int(run_commit[first])))
    return h


def _when(us: int) -> str:
    return datetime.fromtimestamp(us / 1e6, timezone.utc).strftime("%Y-%m-%d %H:%M")


def _on(commit: str | None) -> str:
    return f" on commit {commit[:10]}" if commit else ""


def _runs(n: int) -> str:
    return f"{n} run" + ("" if n == 1 else "s")


def facts(h: TestHistory) -> list[tuple[str, str]]:
    """The history as (name, value) lines: the flaky status, the results, the code commits failures ran on."""
    if not h.runs:
        return [("history", "no results of this test in this snapshot")]
    verdict = h.verdict
    if verdict == "passing":
        status = f"passing: never failed in {_runs(h.runs)}"
    elif verdict == "flaky":
        signs = []
        if h.retried_passes:
            signs.append(f"passed on retry in {_runs(h.retried_passes)}")
        if h.disagreeing:
            shown = ", ".join(c[:10] for c in h.disagreeing[:MAX_COMMITS])
            more = f" +{len(h.disagreeing) - MAX_COMMITS}" if len(h.disagreeing) > MAX_COMMITS else ""
            signs.append(f"passed and failed on the same code ({shown}{more})")
        status = f"flaky: failed {h.failed} of {_runs(h.runs)}; " + "; ".join(signs)
    elif verdict == "failing":
        since, commit = h.streak_start
        status = (f"failing in every run ({h.runs}) since {_when(since)}{_on(commit)}" if h.streak == h.runs else
                  f"failing since {_when(since)}{_on(commit)} (the last {_runs(h.streak)})")
        if h.last_pass is not None:
            status += f"; last passed {_when(h.last_pass[0])}{_on(h.last_pass[1])}"
    else:
        status = f"intermittent: failed {h.failed} of {_runs(h.runs)}"
        if h.last_failure is not None:
            status += f", last {_when(h.last_failure[0])}{_on(h.last_failure[1])}"
        if h.tests == 1:
            status += "; passing since"
    tests = "" if h.tests == 1 else f" of {h.tests} tests"
    out = [("history", status),
           ("results", f"{_runs(h.runs)}{tests} from {_when(h.first_us)} to {_when(h.last_us)}: "
                       f"{h.runs - h.failed} passed, {h.failed} failed")]
    if h.failing_commits:
        shown = [f"{c[:10]} ({_runs(n)}, last {_when(last)})" for c, n, last in h.failing_commits[:MAX_COMMITS]]
        more = f" +{len(h.failing_commits) - MAX_COMMITS} more" if len(h.failing_commits) > MAX_COMMITS else ""
        out.append(("failed on code commits", ", ".join(shown) + more))
    return out
