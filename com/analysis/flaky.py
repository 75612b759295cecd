"""Flaky-test detection over result columns: which tests are flaky (flake rate, severity, confidence and the
evidence behind them) and which are broken (a regression, with the commit it broke at) — never both for the
same failures, and a broken test is never called flaky.

How the results are read (every step is vectorised over all tests at once):

0. Rows with a verdict: passed, failed, error (skipped, xfailed and xpassed say nothing about flakiness).
   Runs where half the tests or more failed are the machine's failure and are left out (`excluded_runs`),
   unless every run of their commit failed that way (then it is the code: a breakage).
1. Rows -> runs. A test's attempts within one run; a run's verdict is its FIRST attempt (retries happen only
   after a failure, so counting them would bias the rate). A run that both failed and passed is evidence (1):
   pass on retry.
2. Runs -> entries, one per (test, code commit): how many runs of the test on that revision and how many
   failed. An entry whose runs disagree is evidence (2): same code, different outcome. Results without a
   commit are each their own revision (they can never show evidence 2).
3. Entries in commit order -> episodes: maximal streaks of commits on which every run failed (and stayed
   failed on retry). That is what a breakage looks like: failing from one commit until a later commit fixes
   it, or until now.
4. A choice between explanations, per test, by penalised likelihood: explain the j longest episodes as
   breakages and the remaining failures as flakiness; the j with the best score wins. A breakage costs
   -log P(a commit breaks this test) (`Priors.breakage`), plus -log P(fixed after L commits) with the
   heavy-tailed, parameter-free P(L) = 1 / (L (L + 1)) (still open: P(>= L) = 1 / L), plus or minus
   log(0.9 / 0.1) when the streak fails with the same error signature as the test's other failures (a
   flake's repeat) or with a new one (a regression fails in a new way). Flakiness costs the Bernoulli
   log-likelihood of the failures left at their rate, -log P(a test is flaky) and BIC's 1/2 log n; failing
   every run left is not flakiness at all. So a streak is called a breakage when chance would produce it
   less often than a breakage would; failures that no breakage can explain (evidence 1 and 2, or short
   streaks that come and go: evidence (3), outcome flips without a change that explains them) make the test
   flaky. A test whose every failure falls in explained episodes is broken, not flaky.

Flake rate. With p the share of the test's runs (outside explained breakages) whose first attempt failed,
flake_rate = 2 * min(p, 1 - p): the share of runs whose outcome was a coin toss. A test that fails with
probability p <= 1/2 behaves like one that passes for sure in 1 - 2p of its runs and tosses a fair coin in
the other 2p, so a test failing half the time has flake rate 1 (every run is a toss: the flakiest), one
failing 5 % or 95 % of the time has 0.1. The raw `fail_rate` p is reported beside it. Severity bands are on
the flake rate: intermittent < 0.25 <= moderate < 0.50 <= high < 0.75 <= severe.

Confidence = s * n / (n + n0), n the test's runs in the window, n0 = `Priors.pseudo_runs` (10): the weight a
prior worth n0 runs leaves to the test's own runs (0.5 at 10 runs, 0.83 at 50, 0.91 at 100), so it grows
with the number of runs. s = 1 when nondeterminism was seen directly (evidence 1 or 2); with window evidence
only, s is the model's posterior that the test is flaky rather than broken, 1 / (1 + exp(-delta)), delta the
score margin.

Incremental: `FlakyState` keeps the per-(test, commit) entries (tests x commits, not rows) and takes new rows
with `update()`; `detect()` works on the entries alone.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from com.model.errors import ComError
from com.model.event import EARLIEST_US, format_us
from com.model.result import STATUS_CODE, ResultColumns, distinct

PASSED, FAILED, ERROR = STATUS_CODE["passed"], STATUS_CODE["failed"], STATUS_CODE["error"]

SEVERITIES = ("intermittent", "moderate", "high", "severe")
SEVERITY_BOUNDS = (0.25, 0.50, 0.75)  # lower bounds of moderate, high, severe
DAY_US = 86_400_000_000
MASS_FAILURE = 0.5      # a run where half the tests or more failed is the machine's failure, not the tests'
MASS_FAILURE_MIN = 20   # ... when it ran at least this many tests
_MAX = np.iinfo(np.int64).max
_MIN = np.iinfo(np.int64).min
_ENTRY_FIELDS = ("test", "commit", "runs", "fails", "hard_fails", "retries", "first_us", "last_us",
                 "first_fail_us", "last_fail_us", "signature")
NO_MESSAGE = ""  # the state's signature key of failures without an error message


@dataclass(frozen=True)
class Priors:
    """What detection assumes before it sees a test's results."""

    breakage: float = 0.002   # chance that a given commit breaks a given test (one episode's prior)
    flaky: float = 0.05       # share of tests that are flaky
    pseudo_runs: float = 10.0  # confidence = n / (n + pseudo_runs) (times s, see the module text)
    # Chance that a streak of failures shows the error signature of the test's other failures when it is
    # flakiness (and 1 - it when it is a breakage: a regression fails in a new way).
    same_signature: float = 0.9

    def __post_init__(self):
        if not (0 < self.breakage < 1 and 0 < self.flaky < 1 and self.pseudo_runs > 0
                and 0.5 <= self.same_signature < 1):
            raise ComError("priors: breakage and flaky must be in (0, 1), pseudo_runs above 0, "
                           "same_signature in [0.5, 1)", param="priors")


def _window_start(as_of_us: int, window_days: float) -> int | None:
    """Where a window of `window_days` before `as_of_us` starts; None (the whole history) when it reaches back
    past the first day a time can name (year 1)."""
    span = window_days * DAY_US
    return None if span >= as_of_us - EARLIEST_US else as_of_us - int(span)


def iso(us: int | None) -> str | None:
    """Microseconds since the epoch as a stored event time (None stays None)."""
    return None if us is None else format_us(int(us))


def severity(flake_rate: float) -> str:
    """The band of a flake rate: intermittent < 0.25 <= moderate < 0.50 <= high < 0.75 <= severe."""
    return SEVERITIES[int(np.searchsorted(SEVERITY_BOUNDS, flake_rate, side="right"))]


def flake_rate(fail_rate: float) -> float:
    """2 * min(p, 1 - p): 1.0 for a test failing half the time, 0.1 for one failing 5 % or 95 %."""
    return 2.0 * min(fail_rate, 1.0 - fail_rate)


def _interval(failures: np.ndarray, runs: np.ndarray, z: float = 1.96) -> tuple[np.ndarray, np.ndarray]:
    """95 % Wilson interval of the fail rate, carried over to the flake rate (whose top is 1 when the
    interval holds 1/2)."""
    n = np.maximum(runs, 1).astype(np.float64)
    p = failures / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    lo_p, hi_p = np.clip(centre - half, 0, 1), np.clip(centre + half, 0, 1)
    f_lo, f_hi = 2 * np.minimum(lo_p, 1 - lo_p), 2 * np.minimum(hi_p, 1 - hi_p)
    low = np.minimum(f_lo, f_hi)
    high = np.where((lo_p <= 0.5) & (hi_p >= 0.5), 1.0, np.maximum(f_lo, f_hi))
    return low, high


@dataclass
class FlakyTest:
    test_id: str
    flake_rate: float        # 2 * min(fail_rate, 1 - fail_rate)
    fail_rate: float         # failed runs / runs, outside explained breakages
    severity: str
    confidence: float
    runs: int                # runs in the window (first attempts with a verdict)
    failures: int            # failed runs counted as flaky (outside explained breakages)
    first_seen_us: int       # first and last flaky failure
    last_seen_us: int
    evidence: dict           # retry_passes, same_commit, flips, broken_runs, strongest
    interval: tuple[float, float] = (0.0, 1.0)  # 95 % interval of the flake rate (Wilson, on the fail rate)

    def to_json(self) -> dict:
        out = asdict(self)
        out["flake_rate"] = round(self.flake_rate, 4)
        out["fail_rate"] = round(self.fail_rate, 4)
        out["confidence"] = round(self.confidence, 4)
        out["interval"] = [round(x, 4) for x in self.interval]
        out["first_seen"] = iso(out.pop("first_seen_us"))
        out["last_seen"] = iso(out.pop("last_seen_us"))
        return out


@dataclass
class Breakage:
    """A test failing in every run from `since_commit` until `fixed_commit` (None: still failing)."""

    test_id: str
    since_commit: str
    since_us: int
    fixed_commit: str | None
    fixed_us: int | None
    runs: int                # failing runs in the episode
    commits: int             # commits in the episode
    last_failure_us: int

    @property
    def ongoing(self) -> bool:
        return self.fixed_commit is None

    def to_json(self) -> dict:
        return {"test_id": self.test_id, "since_commit": self.since_commit, "since": iso(self.since_us),
                "fixed_commit": self.fixed_commit, "fixed": iso(self.fixed_us), "runs": self.runs,
                "commits": self.commits, "last_failure": iso(self.last_failure_us), "ongoing": self.ongoing}


@dataclass
class Detection:
    flaky: list[FlakyTest]   # flakiest first
    broken: list[Breakage]   # newest first
    tests: int               # tests with at least one verdict in the window
    runs: int                # (test, run) verdicts considered
    as_of_us: int | None
    since_us: int | None
    min_runs: int
    too_few_runs: list[str] = field(default_factory=list)  # flaky-looking tests under min_runs
    excluded_runs: list[str] = field(default_factory=list)  # runs left out as mass failures

    def to_json(self) -> dict:
        return {"flaky": [f.to_json() for f in self.flaky], "broken": [b.to_json() for b in self.broken],
                "tests": self.tests, "runs": self.runs, "as_of": iso(self.as_of_us), "since": iso(self.since_us),
                "min_runs": self.min_runs, "too_few_runs": self.too_few_runs, "excluded_runs": self.excluded_runs}


# -- rows -> (test, commit) entries ------------------------------------------------------------------------
def _entries_from_columns(cols: ResultColumns, rows: np.ndarray | None):
    """Per (test, commit) counts of the given rows, and the commit keys and first-seen times they use.

    Returns (entries: dict of arrays in the columns' index spaces, commit_keys: {local commit id: key},
    commit_first_us: {local commit id: us}, signature_keys: {local signature id: text}). Local commit ids:
    the commit index, or len(commits) + run for a result without a commit (its own revision, keyed
    "run:<run id>"); local signature len(signatures) is a failure without a message."""
    test, status, run, commit, ts, attempt, sig = (
        cols.test, cols.status, cols.run, cols.commit, cols.ts_us, cols.attempt, cols.signature)
    if rows is not None:
        test, status, run, commit, ts, attempt, sig = (a[rows] for a in (test, status, run, commit, ts, attempt, sig))
    verdict = (status == PASSED) | (status == FAILED) | (status == ERROR)
    if not verdict.all():
        test, status, run, commit, ts, attempt, sig = (
            a[verdict] for a in (test, status, run, commit, ts, attempt, sig))
    n = int(test.shape[0])
    if n == 0:
        return {k: np.zeros(0, np.int64) for k in _ENTRY_FIELDS}, {}, {}, {}
    n_commits, n_runs, n_tests = len(cols.commits), max(len(cols.runs), 1), max(len(cols.tests), 1)
    c2 = n_commits + n_runs
    if n_tests * c2 * n_runs >= 2 ** 62:
        raise ComError("too many tests x commits x runs for one detection: narrow the window")
    test64 = test.astype(np.int64)
    local_commit = np.where(commit >= 0, commit.astype(np.int64), n_commits + run.astype(np.int64))
    key = (test64 * c2 + local_commit) * n_runs + run
    order = np.argsort(key, kind="stable")  # timsort: results arrive grouped by run, so in sorted stretches
    ks = key[order]
    same_run = ks[1:] == ks[:-1]
    if same_run.any():  # several attempts of a test in one run: first attempt first (unknown ones by time)
        order = np.lexsort((ts, attempt, key))
        ks = key[order]
        same_run = ks[1:] == ks[:-1]
    failed = status[order] != PASSED
    ts_sorted = ts[order]
    n_sigs = len(cols.signatures)  # local id of "no message"
    sig_sorted = np.where(failed, np.where(sig[order] >= 0, sig[order], n_sigs), -1).astype(np.int64)
    if not same_run.any():  # one row per (test, run): the common case, no per-run reduction
        run_key, first_fail, final_fail, run_us, run_sig = ks, failed, failed, ts_sorted, sig_sorted
        retried = np.zeros(n, bool)
    else:
        starts = np.flatnonzero(np.r_[True, ~same_run])
        ends = np.r_[starts[1:], n] - 1
        n_fail = np.add.reduceat(failed.astype(np.int32), starts)
        size = np.diff(np.r_[starts, n])
        run_key, first_fail, final_fail, run_sig = ks[starts], failed[starts], failed[ends], sig_sorted[starts]
        retried = (n_fail > 0) & (n_fail < size)
        run_us = np.minimum.reduceat(ts_sorted, starts)
    entry_key = run_key // n_runs
    est = np.flatnonzero(np.r_[True, entry_key[1:] != entry_key[:-1]])
    g = int(run_key.shape[0])
    out = {
        "test": entry_key[est] // c2,
        "commit": entry_key[est] % c2,
        "runs": np.diff(np.r_[est, g]).astype(np.int64),
        "fails": np.add.reduceat(first_fail.astype(np.int64), est),
        "hard_fails": np.add.reduceat(final_fail.astype(np.int64), est),
        "retries": np.add.reduceat(retried.astype(np.int64), est),
        "first_us": np.minimum.reduceat(run_us, est),
        "last_us": np.maximum.reduceat(run_us, est),
        "first_fail_us": np.minimum.reduceat(np.where(first_fail, run_us, _MAX), est),
        "last_fail_us": np.maximum.reduceat(np.where(first_fail, run_us, _MIN), est),
        # One failing run's signature (runs of a commit nearly always share it); -1 without a failure.
        "signature": np.maximum.reduceat(run_sig, est),
    }
    used = distinct(out["commit"])
    first_seen = np.full(c2, _MAX, np.int64)
    np.minimum.at(first_seen, out["commit"], out["first_us"])
    keys = {}
    for c in used.tolist():
        keys[c] = cols.commits[c] if c < n_commits else "run:" + cols.runs[c - n_commits]
    sig_keys = {s: (cols.signatures[s] if s < n_sigs else NO_MESSAGE)
                for s in distinct(out["signature"]).tolist() if s >= 0}
    return out, keys, {c: int(first_seen[c]) for c in used.tolist()}, sig_keys


def _merge_entries(parts: list[dict]) -> dict:
    """Entries of several batches summed per (test, commit)."""
    cat = {k: np.concatenate([p[k] for p in parts]) for k in _ENTRY_FIELDS}
    if cat["test"].shape[0] == 0:
        return cat
    width = int(cat["commit"].max()) + 1
    key = cat["test"] * width + cat["commit"]
    order = np.argsort(key, kind="stable")
    ks = key[order]
    st = np.flatnonzero(np.r_[True, ks[1:] != ks[:-1]])
    if st.shape[0] == ks.shape[0]:
        return {k: v[order] for k, v in cat.items()}
    out = {"test": cat["test"][order][st], "commit": cat["commit"][order][st]}
    for k in ("runs", "fails", "hard_fails", "retries"):
        out[k] = np.add.reduceat(cat[k][order], st)
    for k in ("first_us", "first_fail_us"):
        out[k] = np.minimum.reduceat(cat[k][order], st)
    for k in ("last_us", "last_fail_us", "signature"):
        out[k] = np.maximum.reduceat(cat[k][order], st)
    return out


def mass_failures(cols: ResultColumns, rows: np.ndarray | None, share: float, min_results: int) -> np.ndarray:
    """Runs (a bool per run index) in which at least `share` of the tests failed, out of `min_results` or
    more: the machine or the network failed, not the tests. A commit whose every run failed that way is kept:
    then it is the code (a broken conftest), and its failures are a breakage."""
    n_runs = len(cols.runs)
    sel = (cols.status <= ERROR) & (cols.attempt <= 1)
    if rows is not None:
        sel &= rows
    run = cols.run[sel]
    total = np.bincount(run, minlength=n_runs)
    failed = np.bincount(run[cols.status[sel] != PASSED], minlength=n_runs)
    run_commit = np.full(n_runs, -1, np.int64)
    run_commit[run] = cols.commit[sel]
    return mass_failure_runs(total, failed, run_commit, share, min_results)


def mass_failure_runs(total: np.ndarray, failed: np.ndarray, run_commit: np.ndarray, share: float,
                      min_results: int) -> np.ndarray:
    """`mass_failures` from per-run counts: first-attempt verdicts, failures among them, and the run's code
    commit (any numbering, -1 for none)."""
    mass = (total >= min_results) & (failed >= share * np.maximum(total, 1))
    if not mass.any():
        return mass
    run_commit = np.asarray(run_commit, dtype=np.int64)
    seen = (total > 0) & (run_commit >= 0)
    width = int(run_commit.max(initial=-1)) + 2
    runs_of_commit = np.bincount(run_commit[seen], minlength=width)
    mass_of_commit = np.bincount(run_commit[seen & mass], minlength=width)
    code = seen & (runs_of_commit[np.maximum(run_commit, 0)] == mass_of_commit[np.maximum(run_commit, 0)])
    return mass & ~code


def with_runs(cols: ResultColumns) -> ResultColumns:
    """Every row in a run: results recorded without a run id (-1) that share one time are one run, keyed
    "at:<time>" (a report's results share its time)."""
    missing = cols.run < 0
    if not missing.any():
        return cols
    times, inverse = np.unique(cols.ts_us[missing], return_inverse=True)
    run = cols.run.astype(np.int32, copy=True)
    run[missing] = len(cols.runs) + inverse
    return replace(cols, run=run, runs=list(cols.runs) + [f"at:{iso(int(t))}" for t in times.tolist()])


def _rows_in(cols: ResultColumns, since_us: int | None, until_us: int | None):
    mask = None
    if since_us is not None:
        mask = cols.ts_us > since_us
    if until_us is not None:
        m = cols.ts_us <= until_us
        mask = m if mask is None else mask & m
    return mask


class FlakyState:
    """What detection needs, per (test, code commit): run and failure counts, times. Updatable with new rows.

    Size is tests x commits (about 500,000 entries for 10,000 tests x 50 commits), whatever the retries.
    A run's rows should arrive in one update (a run split across updates still counts right at the commit
    level, but its retry evidence is seen per part)."""

    def __init__(self):
        self.tests: list[str] = []
        self.commits: list[str] = []  # code shas, or "run:<run id>" for results without a commit
        self.commit_first_us = np.zeros(0, np.int64)
        self.signatures: list[str] = []  # error signatures ("" for failures without a message)
        self.entries = {k: np.zeros(0, np.int64) for k in _ENTRY_FIELDS}
        self._test_ix: dict[str, int] = {}
        self._sig_ix: dict[str, int] = {}
        self._commit_ix: dict[str, int] = {}
        self.excluded_runs: list[str] = []  # mass failures left out (see `mass_failures`)

    @classmethod
    def from_columns(cls, cols: ResultColumns, *, since_us: int | None = None,
                     until_us: int | None = None, mass_failure: float | None = MASS_FAILURE,
                     mass_failure_min: int = MASS_FAILURE_MIN) -> "FlakyState":
        state = cls()
        state.update(cols, since_us=since_us, until_us=until_us, mass_failure=mass_failure,
                     mass_failure_min=mass_failure_min)
        return state

    def update(self, cols: ResultColumns, *, since_us: int | None = None,
               until_us: int | None = None, mass_failure: float | None = MASS_FAILURE,
               mass_failure_min: int = MASS_FAILURE_MIN) -> None:
        """Add rows (new runs, or more runs of known commits); rows outside (since, until] are left out, and
        so are runs where at least `mass_failure` of `mass_failure_min` or more tests failed (None: keep all)."""
        cols = with_runs(cols)
        rows = _rows_in(cols, since_us, until_us)
        if mass_failure is not None and len(cols):
            mass = mass_failures(cols, rows, mass_failure, mass_failure_min)
            if mass.any():
                self.excluded_runs += [cols.runs[r] for r in np.flatnonzero(mass).tolist()]
                keep = ~mass[cols.run]
                rows = keep if rows is None else rows & keep
        entries, keys, first_us, sig_keys = _entries_from_columns(cols, rows)
        if entries["test"].shape[0] == 0:
            return
        test_map = np.array([self._intern_test(t) for t in cols.tests], np.int64)
        sig_map = np.full(len(cols.signatures) + 2, -1, np.int64)  # last slot: -1 (no failure) stays -1
        for s, text in sig_keys.items():
            ix = self._sig_ix.get(text)
            if ix is None:
                ix = self._sig_ix[text] = len(self.signatures)
                self.signatures.append(text)
            sig_map[s] = ix
        entries["signature"] = sig_map[entries["signature"]]
        local = sorted(keys)
        commit_map = np.zeros(max(local) + 1, np.int64)
        new_first = []
        for c in local:
            ix = self._commit_ix.get(keys[c])
            if ix is None:
                ix = self._commit_ix[keys[c]] = len(self.commits)
                self.commits.append(keys[c])
                new_first.append(first_us[c])
            else:
                self.commit_first_us[ix] = min(int(self.commit_first_us[ix]), first_us[c])
            commit_map[c] = ix
        if new_first:
            self.commit_first_us = np.r_[self.commit_first_us, np.array(new_first, np.int64)]
        entries["test"] = test_map[entries["test"]]
        entries["commit"] = commit_map[entries["commit"]]
        if self.entries["test"].shape[0] == 0:
            self.entries = entries
        else:
            self.entries = _merge_entries([self.entries, entries])

    def _intern_test(self, test_id: str) -> int:
        ix = self._test_ix.get(test_id)
        if ix is None:
            ix = self._test_ix[test_id] = len(self.tests)
            self.tests.append(test_id)
        return ix

    def detect(self, *, min_runs: int = 5, as_of_us: int | None = None, window_days: float | None = None,
               priors: Priors = Priors()) -> Detection:
        """Flaky and broken tests from the entries. `as_of_us`/`window_days` keep the entries whose runs
        all fall in (as_of - window, as_of]: commit granularity (use `detect_flaky` on rows to cut a
        commit's runs exactly)."""
        e = self.entries
        since_us = None
        if window_days is not None:
            if as_of_us is None:
                as_of_us = int(e["last_us"].max()) if e["last_us"].shape[0] else None
            if as_of_us is not None:
                since_us = _window_start(as_of_us, window_days)
        if as_of_us is not None or since_us is not None:
            keep = np.ones(e["test"].shape[0], bool)
            if as_of_us is not None:
                keep &= e["last_us"] <= as_of_us
            if since_us is not None:
                keep &= e["first_us"] > since_us
            e = {k: v[keep] for k, v in e.items()}
        det = _judge(e, self.tests, self.commits, self.commit_first_us, min_runs, priors, as_of_us, since_us)
        det.excluded_runs = sorted(set(self.excluded_runs))
        return det


def detect_flaky(cols: ResultColumns, *, window_days: float | None = None,
                 min_runs: int = 5, as_of_us: int | None = None, priors: Priors = Priors(),
                 mass_failure: float | None = MASS_FAILURE) -> Detection:
    """Flaky and broken tests among the results at or before `as_of_us` (default: the newest result) and
    within `window_days` of it (default: all); the caller chooses the project (the view filters by it). Runs
    where `mass_failure` of the tests or more failed are left out (listed in `excluded_runs`) unless every
    run of their commit did."""
    if min_runs < 1:
        raise ComError(f"must be at least 1, not {min_runs}", param="min_runs")
    if window_days is not None and window_days <= 0:
        raise ComError(f"must be above 0, not {window_days:g}", param="days")
    if as_of_us is None and window_days is not None and len(cols):
        as_of_us = int(cols.ts_us.max())
    since_us = None if window_days is None or as_of_us is None else _window_start(as_of_us, window_days)
    state = FlakyState.from_columns(cols, since_us=since_us, until_us=as_of_us,
                                    mass_failure=mass_failure)
    det = state.detect(min_runs=min_runs, priors=priors)
    det.as_of_us, det.since_us = as_of_us, since_us
    return det


# -- the judgement ---------------------------------------------------------------------------------------------
def _loglik(f: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Bernoulli log-likelihood of f failures in n runs at the fitted rate f / n."""
    f = f.astype(np.float64)
    n = n.astype(np.float64)
    inside = (f > 0) & (f < n)
    p = np.where(inside, f / np.where(n > 0, n, 1), 0.5)
    return np.where(inside, f * np.log(p) + (n - f) * np.log1p(-p), 0.0)


def _score(f: np.ndarray, n: np.ndarray, breakage_cost: np.ndarray | float, priors: Priors) -> np.ndarray:
    """Log score of explaining episodes as breakages (their summed cost) and the f failures left in n runs
    as flakiness."""
    flaky_cost = 0.5 * np.log(np.maximum(n, 1)) - math.log(priors.flaky)
    score = _loglik(f, n) - breakage_cost - np.where(f > 0, flaky_cost, 0.0)
    # Failing every run left is not flakiness (nothing varies): those failures must be breakages.
    return np.where((f > 0) & (f >= n), -np.inf, score)


def _episode_cost(commits: np.ndarray, ongoing: np.ndarray, priors: Priors) -> np.ndarray:
    """-log P(a breakage at this commit, fixed after exactly `commits` commits (or not yet)).

    Fix times are heavy-tailed and parameter-free: P(L) = 1 / (L (L + 1)), so P(still open after L) = 1 / L."""
    length = commits.astype(np.float64)
    fix = np.where(ongoing, np.log(length), np.log(length) + np.log1p(length))
    return fix - math.log(priors.breakage)


def _judge(e: dict, tests: list[str], commits: list[str], commit_first_us: np.ndarray, min_runs: int,
           priors: Priors, as_of_us, since_us) -> Detection:
    m = int(e["test"].shape[0])
    if m == 0:
        return Detection([], [], 0, 0, as_of_us, since_us, min_runs)
    n_commits = int(commit_first_us.shape[0])
    rank = np.empty(n_commits, np.int64)
    rank[np.lexsort((np.arange(n_commits), commit_first_us))] = np.arange(n_commits)
    key = e["test"] * n_commits + rank[e["commit"]]
    if np.any(key[1:] < key[:-1]):
        order = np.argsort(key, kind="stable")
        e = {k: v[order] for k, v in e.items()}
    et, runs, fails = e["test"], e["runs"], e["fails"]
    new_test = np.r_[True, et[1:] != et[:-1]]
    tstart = np.flatnonzero(new_test)
    tpos = np.cumsum(new_test) - 1                      # entry -> position of its test
    n_tests = int(tstart.shape[0])
    N = np.add.reduceat(runs, tstart)
    F = np.add.reduceat(fails, tstart)
    mixed = (fails > 0) & (fails < runs)
    same_commit = np.add.reduceat(mixed.astype(np.int64), tstart)
    retry_passes = np.add.reduceat(e["retries"], tstart)

    # Episodes: streaks of commits on which every run failed, first attempt and last.
    all_fail = (fails == runs) & (e["hard_fails"] == runs)
    prev_same = ~new_test
    ep_start = all_fail & ~(prev_same & np.r_[False, all_fail[:-1]])
    ep_of_entry = np.cumsum(ep_start) - 1
    af = np.flatnonzero(all_fail)
    ep_first = np.flatnonzero(ep_start)
    n_eps = int(ep_first.shape[0])
    explained_entry = np.zeros(m, bool)
    best_j = np.zeros(n_tests, np.int64)
    explained_runs = np.zeros(n_tests, np.int64)
    score0 = _score(F, N, 0.0, priors)
    best = score0.copy()
    all_explained = np.full(n_tests, -np.inf)  # score with every episode a breakage, when that leaves no failure
    if n_eps:
        af_ep = ep_of_entry[af]
        ep_bounds = np.flatnonzero(np.r_[True, af_ep[1:] != af_ep[:-1]])
        ep_len = np.add.reduceat(runs[af], ep_bounds)
        ep_last = af[np.r_[ep_bounds[1:], af.shape[0]] - 1]
        ep_test = tpos[ep_first]
        nxt = np.minimum(ep_last + 1, m - 1)
        ep_open = (ep_last + 1 >= m) | (et[nxt] != et[ep_last])  # still failing at the test's last commit
        ep_commits = ep_last - ep_first + 1
        ep_cost = _episode_cost(ep_commits, ep_open, priors)
        # A streak failing like the test's other failures looks like its flakiness; one failing in a new way,
        # like a breakage (a regression fails differently). Counted in commits.
        sig, failing_entry = e["signature"], fails > 0
        width = int(sig.max()) + 2
        kinds, kind_counts = np.unique((tpos * width + sig + 1)[failing_entry], return_counts=True)
        ep_sig = sig[ep_first]
        own_same = np.add.reduceat((sig[af] == ep_sig[af_ep]).astype(np.int64), ep_bounds)
        other_same = kind_counts[np.searchsorted(kinds, ep_test * width + ep_sig + 1)] - own_same
        other_fail = np.add.reduceat(failing_entry.astype(np.int64), tstart)[ep_test] - ep_commits
        ratio = math.log(priors.same_signature / (1.0 - priors.same_signature))
        ep_cost += np.where(other_fail > 0, np.where(other_same > 0, ratio, -ratio), 0.0)
        # Candidates: explain the j longest episodes of a test, j = 1..k (j = 0 is score0).
        eo = np.lexsort((-ep_len, ep_test))
        t_sorted, l_sorted = ep_test[eo], ep_len[eo]
        grp = np.r_[True, t_sorted[1:] != t_sorted[:-1]]
        gstart = np.flatnonzero(grp)
        gid = np.cumsum(grp) - 1

        def within(values):  # cumulative sum within each test's episodes
            c = np.cumsum(values)
            return c - np.r_[0, c[:-1]][gstart][gid]

        cum_l = within(l_sorted)
        cum_cost = within(ep_cost[eo])
        j = np.arange(n_eps) - gstart[gid] + 1
        cand = _score(F[t_sorted] - cum_l, N[t_sorted] - cum_l, cum_cost, priors)
        np.maximum.at(best, t_sorted, cand)
        is_best = (cand >= best[t_sorted]) & (cand > score0[t_sorted])
        jmin = np.full(n_tests, np.iinfo(np.int64).max)
        np.minimum.at(jmin, t_sorted[is_best], j[is_best])
        best_j = np.where(jmin == np.iinfo(np.int64).max, 0, jmin)
        explained_sorted = j <= best_j[t_sorted]
        ep_explained = np.zeros(n_eps, bool)
        ep_explained[eo] = explained_sorted
        np.add.at(explained_runs, t_sorted[explained_sorted], l_sorted[explained_sorted])
        explained_entry[af] = ep_explained[af_ep]
        last_of_group = np.r_[gstart[1:], n_eps] - 1
        leaves_none = (F[t_sorted[last_of_group]] - cum_l[last_of_group]) == 0
        all_explained[t_sorted[last_of_group[leaves_none]]] = cand[last_of_group[leaves_none]]

    n_r = N - explained_runs
    f_r = F - explained_runs
    # Evidence (3): outcome flips between consecutive commits of a test that no explained breakage accounts for.
    failing = fails > 0
    flip = prev_same & (failing != np.r_[False, failing[:-1]]) & ~explained_entry & ~np.r_[False, explained_entry[:-1]]
    flips = np.add.reduceat(flip.astype(np.int64), tstart)
    counted = failing & ~explained_entry
    first_seen = np.minimum.reduceat(np.where(counted, e["first_fail_us"], _MAX), tstart)
    last_seen = np.maximum.reduceat(np.where(counted, e["last_fail_us"], _MIN), tstart)

    is_flaky = f_r > 0
    enough = N >= min_runs
    direct = (retry_passes > 0) | (same_commit > 0)
    with np.errstate(over="ignore"):
        posterior = 1.0 / (1.0 + np.exp(-(best - all_explained)))
    strength = np.where(direct, 1.0, posterior)
    confidence = strength * N / (N + priors.pseudo_runs)
    p = f_r / np.maximum(n_r, 1)
    rate = 2.0 * np.minimum(p, 1.0 - p)
    low, high = _interval(f_r, n_r)

    flaky = []
    for i in np.flatnonzero(is_flaky & enough).tolist():
        strongest = "retry" if retry_passes[i] else "same_commit" if same_commit[i] else "window"
        fr = float(rate[i])
        flaky.append(FlakyTest(
            tests[int(et[tstart[i]])], fr, float(p[i]), severity(fr), float(confidence[i]), int(N[i]), int(f_r[i]),
            int(first_seen[i]), int(last_seen[i]),
            {"retry_passes": int(retry_passes[i]), "same_commit": int(same_commit[i]), "flips": int(flips[i]),
             "broken_runs": int(explained_runs[i]), "strongest": strongest},
            (round(float(low[i]), 6), round(float(high[i]), 6)),
        ))
    flaky.sort(key=lambda f: (-f.flake_rate, -f.confidence, f.test_id))
    too_few = sorted(tests[int(et[tstart[i]])] for i in np.flatnonzero(is_flaky & ~enough).tolist())

    broken = []
    if n_eps:
        for k in np.flatnonzero(ep_explained).tolist():
            first, last = int(ep_first[k]), int(ep_last[k])
            nxt = last + 1 if last + 1 < m and et[last + 1] == et[first] else None
            broken.append(Breakage(
                tests[int(et[first])], commits[int(e["commit"][first])], int(e["first_us"][first]),
                None if nxt is None else commits[int(e["commit"][nxt])],
                None if nxt is None else int(e["first_us"][nxt]),
                int(ep_len[k]), last - first + 1, int(e["last_us"][last]),
            ))
    broken.sort(key=lambda b: (-b.since_us, b.test_id))
    return Detection(flaky, broken, n_tests, int(N.sum()), as_of_us, since_us, min_runs, too_few)
