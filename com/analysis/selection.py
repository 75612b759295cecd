"""Regression selection: which tests to run for a change, in which order, and why (pure functions).

Inputs are passed in: graph impacts per test (from com.code.graph), co-change and co-failure statistics,
per-test history statistics (from result columns), criticality, flake rates and durations. The output is
every candidate with its score, its signals and its reasons, the selected ones first, most likely to fail
first. Nothing here reads git, the journal or a view.

Score (weights calibrated on generated histories, see `CALIBRATED`; the seed's are `SEED_WEIGHTS`):

    relation    max(direct graph hit, semantic similarity)            -- the seed's "semantic"
    history     noisy-or(co-failure, co-change, recent failures) x (1 - flake rate)
    base        decayed failure density, flaky failures included: how likely the test fails whatever the
                change. It orders the run (a test failing half its runs fails early in this one too) and
                fills a time budget, but never selects a test by itself: flakiness still discounts history
                as evidence that the test relates to the change.
    criticality importance/tags, 0..1
    flakiness   1 - flake rate (a flaky test's failures say little about the change)
    efficiency  short tests first: 1 / (1 + duration / median duration)

Safety rules, each stated as a reason: tests never seen before run; tests that failed in the latest run
run; a change to a global file (conftest.py, pyproject.toml, requirements/lock files, setup.cfg, CI
config, ...) selects everything unless `fallback=False`; no history selects everything; an empty
selection is stated in the messages. Budgets (`30%`, `5m`, `--max N`) cut the ordered list; must-run
tests are kept even over budget (said so).
"""

from __future__ import annotations

import fnmatch
import math
import re
from dataclasses import dataclass, field
from typing import Iterable, Mapping

import numpy as np

from com.model.result import FAILING_CODES, STATUS_CODE

FAILED = FAILING_CODES  # failed, error
PASSED = (STATUS_CODE["passed"], STATUS_CODE["xpassed"])
DURATION_FLOOR_MS = 1.0

GLOBAL_FILES = (
    "conftest.py", "*/conftest.py", "pyproject.toml", "setup.cfg", "setup.py", "tox.ini", "pytest.ini", "noxfile.py",
    "requirements*.txt", "*/requirements*.txt", "requirements/*", "constraints*.txt", "*.lock", "*-lock.json",
    "*-lock.yaml", "package.json", "Pipfile", "poetry.lock", "uv.lock", "Makefile", ".github/workflows/*",
    ".gitlab-ci.yml", ".circleci/*", "Jenkinsfile", "azure-pipelines.yml", ".ci/*", "tsconfig.json",
    "jest.config.*", "vitest.config.*", "playwright.config.*", ".coveragerc", "MANIFEST.in",
)


@dataclass(frozen=True)
class Weights:
    relation: float = 0.40  # the seed's "semantic" slot: code relation through the dependency graph
    history: float = 0.30
    criticality: float = 0.15
    flakiness: float = 0.10
    efficiency: float = 0.05
    module_level: float = 0.5  # relation of a test reached only at module level (name level is 1.0)
    min_history: float = 0.25  # history alone selects a test from this strength up
    semantic: float = 0.0  # similarity of the change's text to the test and its past failures (the index)
    semantic_selects: float = 1.01  # semantic alone selects a test from this similarity up (above 1: never)
    # how likely the test fails whatever the change (its decayed failure density, flaky failures included):
    # orders the run and fills a time budget, never selects a test by itself
    base: float = 0.0

    def to_json(self) -> dict:
        return dict(self.__dict__)


SEED_WEIGHTS = Weights()
# Calibrated by scripts/eval_select.py --calibrate (grid over relation/history/criticality/module level/
# min_history on seeds 101-103, 200 and 500 tests, 60 commits, 30% budget): no setting reached change-level
# recall 0.95 there; the best by recall then APFD had relation 0.4, history 0.2. On held-out seeds 1-4 the
# criticality, flakiness and efficiency terms only lowered recall (0.977 -> 0.919: they reorder the
# module-level tier, whose victims gen_history draws at random), so they are 0 here; flakiness still acts
# through the history term (x (1 - flake rate)). Checked again on unseen seeds 5-6 (see the report).
#
# `base` (how likely a test fails whatever the change) was calibrated on seeds 101-103 (reach victims, 200 and
# 500 tests, 60 commits, 30% budget) over 0.2 ... 1.5: APFD over every failure of the CI run rose from 0.875
# (base 0) to 0.933 (0.5), 0.942 (1.0) and 0.953 (1.5) while APFD over the change's own failures fell from
# 0.968 to 0.968, 0.965 and 0.962; recall and time share did not move (base never selects a test, it orders the
# run and fills the budget). 1.0 is the largest setting that costs the change's failures under 0.005.
# Held out, seeds 1-8 (150 changes): recall 0.973 at 28% of the time (mean), APFD 0.918 over every failure,
# 0.954 over the change's own (base 0: 0.80 and 0.958). See docs/select.md.
CALIBRATED = Weights(relation=0.40, history=0.20, criticality=0.0, flakiness=0.0, efficiency=0.0,
                     module_level=0.5, min_history=0.5, base=1.0)


# -- budgets ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Budget:
    fraction: float | None = None  # share of the whole suite's time
    time_ms: float | None = None
    max_tests: int | None = None

    def limit_ms(self, suite_ms: float) -> float | None:
        limits = [x for x in (self.time_ms, self.fraction * suite_ms if self.fraction is not None else None)
                  if x is not None]
        return min(limits) if limits else None

    def to_json(self) -> dict:
        return {"fraction": self.fraction, "time_ms": self.time_ms, "max_tests": self.max_tests}


_TIME = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


def parse_budget(budget: str | None = None, time: str | None = None, max_tests: int | None = None) -> Budget:
    """`--budget 30%` (or 0.3), `--time 5m` / `90s` / `1h30m` / `250ms`, `--max N`; ValueError on nonsense."""
    fraction = time_ms = None
    if budget is not None:
        b = budget.strip()
        if b.endswith("%"):
            fraction = float(b[:-1]) / 100.0
        elif _TIME.fullmatch(b) or _TIME.match(b):
            time = b if time is None else time
        else:
            fraction = float(b)
            if fraction > 1:
                fraction /= 100.0
        if fraction is not None and not 0 < fraction <= 1:
            raise ValueError(f"budget {budget!r}: a share of the suite's time between 0% and 100%")
    if time is not None:
        t = time.strip().replace(" ", "")
        parts = _TIME.findall(t)
        if not parts or "".join(a + u for a, u in parts) != t:
            raise ValueError(f"time {time!r}: use e.g. 5m, 90s, 1h30m, 250ms")
        scale = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000}
        time_ms = sum(float(a) * scale[u] for a, u in parts)
    if max_tests is not None and max_tests < 0:
        raise ValueError("--max: a number of tests, 0 or more")
    return Budget(fraction, time_ms, max_tests)


def floor_durations(durations: Mapping[str, float | None], tests: Iterable[str], floor_ms: float = DURATION_FLOOR_MS
                    ) -> dict[str, float]:
    """Every test's duration in ms: a missing or NaN one is the median of the known ones; all at least floor_ms."""
    known = [float(d) for d in durations.values() if d is not None and not math.isnan(d) and d > 0]
    default = float(np.median(known)) if known else floor_ms
    out = {}
    for t in tests:
        d = durations.get(t)
        d = default if d is None or math.isnan(d) or d <= 0 else float(d)
        out[t] = max(d, floor_ms)
    return out


# -- history statistics from result columns ----------------------------------------------------------------

def _runs(cols) -> tuple[np.ndarray, list[str], np.ndarray]:
    """(run code per row, run names, first time of each run): a result without a run id is a run of its own
    time (results recorded together share it)."""
    run = np.asarray(cols.run)
    names = list(cols.runs)
    if len(run) and run.min() < 0:
        missing = run < 0
        times, inverse = np.unique(np.asarray(cols.ts_us)[missing], return_inverse=True)
        run = run.copy()
        run[missing] = len(names) + inverse
        names = names + [f"(no run id, {int(t)})" for t in times]
    first = np.full(len(names), np.iinfo(np.int64).max, np.int64)
    np.minimum.at(first, run, np.asarray(cols.ts_us, np.int64))
    return run, names, first

@dataclass
class TestStats:
    runs: int  # runs with a result of this test (reruns inside one run are one run)
    results: int  # results, one per attempt
    fail_runs: int  # runs whose last attempt failed
    flaky_runs: int  # runs that failed and passed (a rerun passed, or the same commit both ways)
    last_status: int  # status of the last attempt in its latest run
    last_fail_age: int | None  # runs of the whole history since it last failed (0: in the latest run)
    density: float  # decayed share of failing runs (half-life in runs of the whole history)
    flake_rate: float
    duration_ms: float  # expected time of one attempt (the mean of the known ones), NaN when unknown
    failed_in_latest_run: bool  # its own latest run failed (a test not run lately keeps its last verdict)
    latest_run: str | None = None
    # decayed failure weight and total weight over the test's own runs (half-life in its runs, not the history's):
    # a test run once a week is judged on its last few runs however long ago they were
    own_fail: float = 0.0
    own_weight: float = 0.0

    def to_json(self) -> dict:
        d = dict(self.__dict__)
        d["duration_ms"] = None if math.isnan(self.duration_ms) else self.duration_ms
        return d


@dataclass
class RunGroups:
    """Result columns grouped by (test, run), sorted by test then run order: what history statistics and
    co-failure both read. A run's outcome is its last attempt's status."""

    test: np.ndarray  # per group: test code
    run: np.ndarray  # run code (see _runs)
    rank: np.ndarray  # the run's rank in the whole history (0 oldest)
    last_status: np.ndarray
    any_fail: np.ndarray
    any_pass: np.ndarray
    commit: np.ndarray  # code commit of the run's first row (-1 none)
    run_names: list
    last_rank: int

    @property
    def fail(self) -> np.ndarray:
        return np.isin(self.last_status, FAILED)

    @property
    def counted(self) -> np.ndarray:  # skipped runs say nothing
        return np.isin(self.last_status, FAILED) | np.isin(self.last_status, PASSED)


def run_groups(cols) -> RunGroups:
    run, run_names, run_ts = _runs(cols)
    n_runs = max(len(run_names), 1)
    run_rank = np.empty(len(run_names), np.int64)
    run_rank[np.argsort(run_ts, kind="stable")] = np.arange(len(run_names))
    primary = np.asarray(cols.test, np.int64) * n_runs + run_rank[run]
    # one int64 key: (test, run order, attempt); equal keys keep their order, so later rows of an attempt win
    order = np.argsort(primary * 65536 + np.asarray(cols.attempt, np.int64).clip(0, 65535), kind="stable")
    key = primary[order]
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    ends = np.r_[starts[1:], len(key)]
    st = np.asarray(cols.status)[order]
    fail = np.isin(st, FAILED).astype(np.int64)
    passed = np.isin(st, PASSED).astype(np.int64)
    g_run = run[order][starts]
    return RunGroups(test=np.asarray(cols.test)[order][starts], run=g_run, rank=run_rank[g_run],
                     last_status=st[ends - 1], any_fail=np.add.reduceat(fail, starts) > 0,
                     any_pass=np.add.reduceat(passed, starts) > 0, commit=np.asarray(cols.commit)[order][starts],
                     run_names=run_names, last_rank=int(run_rank.max()) if len(run_rank) else 0)


def _typical(test: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """A test's expected time per attempt: the mean of its known durations (a budget is spent on expected cost,
    timeouts included), in one pass; NaN when none is known."""
    ok = ~np.isnan(values)
    count = np.bincount(test[ok], minlength=n)
    total = np.bincount(test[ok], weights=values[ok], minlength=n)
    return np.where(count > 0, np.divide(total, count, out=np.zeros(n), where=count > 0), np.nan)


def test_stats(cols, half_life_runs: float = 3.0, flake_rates: Mapping[str, float] | None = None,
               groups: RunGroups | None = None) -> dict[str, TestStats]:
    """Per-test statistics of result columns (one row per attempt, any order), vectorised over all tests.

    A run's outcome is its last attempt's status; a run with a failed attempt and a passing one counts
    as flaky evidence, as does a commit with both failing and passing runs. Ages count runs of the whole
    history (ordered by their first result), so a test not run for a while ages too."""
    if len(cols.test) == 0:
        return {}
    flake_rates = flake_rates or {}
    g = groups if groups is not None else run_groups(cols)
    n = len(cols.tests)
    fail, counted = g.fail, g.counted
    runs = np.bincount(g.test, weights=counted, minlength=n).astype(np.int64)
    fail_runs = np.bincount(g.test, weights=fail, minlength=n).astype(np.int64)
    mixed = np.bincount(g.test, weights=g.any_fail & g.any_pass, minlength=n).astype(np.int64)
    # commits with both failing and passing runs of the test
    with_commit = counted & (g.commit >= 0)
    n_commits = int(g.commit.max()) + 2 if len(g.commit) else 1
    tc = g.test[with_commit].astype(np.int64) * n_commits + g.commit[with_commit]
    keys, inverse = np.unique(tc, return_inverse=True)
    k_fail = np.bincount(inverse, weights=fail[with_commit], minlength=len(keys)) > 0
    k_pass = np.bincount(inverse, weights=~fail[with_commit], minlength=len(keys)) > 0
    flips = np.bincount((keys[k_fail & k_pass] // n_commits).astype(np.int64), minlength=n)
    age = g.last_rank - g.rank
    weight = 0.5 ** (age / half_life_runs) * counted
    w_sum = np.bincount(g.test, weights=weight, minlength=n)
    w_fail = np.bincount(g.test, weights=weight * fail, minlength=n)
    density = np.divide(w_fail, w_sum, out=np.zeros(n), where=w_sum > 0)
    never = np.iinfo(np.int64).max
    fail_age = np.full(n, never, np.int64)
    np.minimum.at(fail_age, g.test[fail], age[fail])
    last = np.flatnonzero(np.r_[g.test[1:] != g.test[:-1], True])  # each test's latest run
    # the same decay over each test's own runs: groups are sorted by test, then run order
    after = np.cumsum(counted[::-1].astype(np.int64))[::-1] - counted  # counted runs after each group, any test
    own_age = after - after[last][np.searchsorted(last, np.arange(len(g.test)))]  # ... of its own test
    own_w = 0.5 ** (own_age / half_life_runs) * counted
    own_sum = np.bincount(g.test, weights=own_w, minlength=n)
    own_fail = np.bincount(g.test, weights=own_w * fail, minlength=n)
    results = np.bincount(cols.test, minlength=n)
    typical = _typical(np.asarray(cols.test), np.asarray(cols.duration_ms, np.float64), n)
    out: dict[str, TestStats] = {}
    flaky = mixed + flips
    for i in last.tolist():
        ti = int(g.test[i])
        tid = cols.tests[ti]
        r = int(runs[ti])
        rate = flake_rates.get(tid)
        if rate is None:
            rate = min(1.0, flaky[ti] / r) if r else 0.0
        out[tid] = TestStats(
            runs=r, results=int(results[ti]), fail_runs=int(fail_runs[ti]), flaky_runs=int(flaky[ti]),
            last_status=int(g.last_status[i]), last_fail_age=None if fail_age[ti] == never else int(fail_age[ti]),
            density=float(density[ti]), flake_rate=float(rate), duration_ms=float(typical[ti]),
            failed_in_latest_run=bool(fail[i]), latest_run=g.run_names[int(g.run[i])],
            own_fail=float(own_fail[ti]), own_weight=float(own_sum[ti]))
    return out


# -- co-change and co-failure ------------------------------------------------------------------------------
def cochange(commit_files: Mapping[str, Iterable[str]], changed: Iterable[str], test_files: Mapping[str, str],
             min_support: int = 2) -> dict[str, tuple[float, str]]:
    """{test: (confidence, changed file)}: how often the test's file changed in commits that changed a file
    of this change (max over the change's files; the test file itself does not count)."""
    changed = set(changed)
    count: dict[str, int] = {}
    pair: dict[tuple[str, str], int] = {}
    wanted_targets = set(test_files.values())
    for files in commit_files.values():
        files = set(files)
        hit = files & changed
        if not hit:
            continue
        for f in hit:
            count[f] = count.get(f, 0) + 1
        for g in files & wanted_targets:
            for f in hit:
                if f != g:
                    pair[(f, g)] = pair.get((f, g), 0) + 1
    best: dict[str, tuple[float, str]] = {}
    for (f, g), k in pair.items():
        if count[f] >= min_support:
            conf = k / (count[f] + 1)  # +1: one co-change in one commit is weak evidence
            if conf > best.get(g, (0.0, ""))[0]:
                best[g] = (conf, f)
    return {t: best[f] for t, f in test_files.items() if f in best}


def cofailure(cols, commit_files: Mapping[str, Iterable[str]], changed: Iterable[str],
              groups: RunGroups | None = None) -> dict[str, tuple[float, str]]:
    """{test: (P(test newly fails | a commit changed f), f)} over this change's files f, from history.

    "Newly fails": the test's run on that commit failed and its previous run had passed; a test broken
    over several commits counts once, on the commit that broke it."""
    changed = set(changed)
    if len(cols.test) == 0 or not changed:
        return {}
    touches = {f: 0 for f in changed}
    commit_hits: dict[str, set] = {}
    for sha, files in commit_files.items():
        hit = changed.intersection(files)
        if hit:
            commit_hits[sha] = hit
            for f in hit:
                touches[f] += 1
    if not commit_hits:
        return {}
    g = groups if groups is not None else run_groups(cols)
    counted = g.counted
    gt, gc, fail = g.test[counted], g.commit[counted], g.fail[counted]
    same = np.r_[False, gt[1:] == gt[:-1]]
    prev_pass = np.r_[False, ~fail[:-1]] & same
    newly = fail & prev_pass & (gc >= 0)
    hits: dict[tuple[int, str], int] = {}
    for ti, ci in zip(gt[newly].tolist(), gc[newly].tolist()):
        files = commit_hits.get(cols.commits[ci])
        if files:
            for f in files:
                hits[(ti, f)] = hits.get((ti, f), 0) + 1
    out: dict[str, tuple[float, str]] = {}
    for (ti, f), k in hits.items():
        p = k / (touches[f] + 1)
        tid = cols.tests[ti]
        if p > out.get(tid, (0.0, ""))[0]:
            out[tid] = (p, f)
    return out


# -- scoring -----------------------------------------------------------------------------------------------
@dataclass
class Signals:
    """What is known about one candidate; every field optional (0 / None: no evidence)."""

    direct: float = 0.0  # graph: 1 for its own change or a name/data reach; tiers below it decay with distance
    direct_reason: str | None = None
    # name: resolved names; mention: the test's text names code the change reaches (a URL path, a page title:
    # how end-to-end and API tests reach code); module: through a whole module where names cannot be resolved;
    # import: only the test file's import closure holds a changed file. module and import are scaled by
    # Weights.module_level.
    direct_tier: str = "name"
    semantic: float | None = None  # similarity of the change to the test and its failures (index), 0..1
    cochange: float = 0.0
    cochange_file: str | None = None
    cofailure: float = 0.0
    cofailure_file: str | None = None
    recent: float = 0.0  # decayed failure density
    last_fail_age: int | None = None
    criticality: float = 0.0  # 0..1
    flake_rate: float = 0.0
    duration_ms: float | None = None
    seen: bool = True
    failed_latest: bool = False
    latest_run: str | None = None


@dataclass
class ScoredTest:
    test: str
    score: float
    signals: dict
    reasons: list[str]
    selected: bool = False
    must_run: bool = False
    duration_ms: float = DURATION_FLOOR_MS

    def to_json(self) -> dict:
        return {"test": self.test, "score": round(self.score, 6), "selected": self.selected,
                "must_run": self.must_run, "duration_ms": round(self.duration_ms, 3),
                "signals": self.signals, "reasons": self.reasons}


@dataclass
class Selection:
    tests: list[ScoredTest]  # selected first (in run order), then the rest by score
    mode: str  # diff | history | all
    budget: Budget = field(default_factory=Budget)
    suite_ms: float = 0.0
    selected_ms: float = 0.0
    limit_ms: float | None = None
    messages: list[str] = field(default_factory=list)
    weights: Weights = field(default_factory=Weights)

    @property
    def selected(self) -> list[ScoredTest]:
        return [t for t in self.tests if t.selected]

    @property
    def ids(self) -> list[str]:
        return [t.test for t in self.tests if t.selected]

    def to_json(self) -> dict:
        return {"mode": self.mode, "selected": len(self.selected), "candidates": len(self.tests),
                "suite_ms": round(self.suite_ms, 3), "selected_ms": round(self.selected_ms, 3),
                "time_share": round(self.selected_ms / self.suite_ms, 6) if self.suite_ms else 0.0,
                "limit_ms": self.limit_ms, "budget": self.budget.to_json(), "messages": self.messages,
                "weights": self.weights.to_json(), "tests": [t.to_json() for t in self.tests]}


def _noisy_or(*ps: float) -> float:
    q = 1.0
    for p in ps:
        q *= 1.0 - min(max(p, 0.0), 1.0)
    return 1.0 - q


def score(sig: Signals, w: Weights, median_ms: float) -> tuple[float, dict, list[str]]:
    """(score, signal values, reasons) of one candidate."""
    direct = sig.direct * (w.module_level if sig.direct_tier not in ("name", "mention") else 1.0)
    relation = direct
    semantic = sig.semantic or 0.0
    flake = min(max(sig.flake_rate, 0.0), 1.0)
    history = _noisy_or(sig.cofailure, sig.cochange, sig.recent) * (1.0 - flake)
    d = sig.duration_ms if sig.duration_ms else median_ms
    efficiency = 1.0 / (1.0 + d / max(median_ms, DURATION_FLOOR_MS))
    base = min(max(sig.recent, 0.0), 1.0)
    total = (w.relation * relation + w.semantic * semantic + w.history * history + w.criticality * sig.criticality
             + w.flakiness * (1.0 - flake) + w.efficiency * efficiency + w.base * base)
    signals = {"relation": round(relation, 6), "direct": round(direct, 6), "tier": sig.direct_tier if direct else None,
               "semantic": None if sig.semantic is None else round(sig.semantic, 6),
               "history": round(history, 6), "cofailure": round(sig.cofailure, 6), "cochange": round(sig.cochange, 6),
               "recent": round(sig.recent, 6), "criticality": round(sig.criticality, 6), "flake_rate": round(flake, 6),
               "efficiency": round(efficiency, 6), "base": round(base, 6)}
    reasons = []
    if direct > 0 and sig.direct_reason:
        reasons.append(sig.direct_reason)
    if semantic > 0 and w.semantic > 0:
        reasons.append(f"similar to the change (semantic {semantic:.2f})")
    if sig.cofailure > 0:
        reasons.append(f"failed before after changes to {sig.cofailure_file} ({sig.cofailure:.0%} of them)")
    if sig.cochange > 0:
        reasons.append(f"its file changes together with {sig.cochange_file} ({sig.cochange:.0%})")
    if sig.recent > 0.05:
        ago = "in the latest run" if sig.last_fail_age == 0 else f"{sig.last_fail_age} runs ago"
        reasons.append(f"failed recently ({ago}; failure density {sig.recent:.2f})")
    if flake > 0.05:
        reasons.append(f"flaky (flake rate {flake:.0%}): its failures weigh less")
    return total, signals, reasons


def _relevant(sig: Signals, w: Weights) -> bool:
    """Evidence enough to select a test on its own. The import-closure tier (the test's file imports a changed
    module, but no name it uses is known to change) is not: it only fills a budget, most likely first."""
    return ((sig.direct > 0 and sig.direct_tier != "import"
             and (sig.direct_tier in ("name", "mention") or w.module_level > 0))
            or (w.semantic > 0 and (sig.semantic or 0) >= w.semantic_selects)
            or max(sig.cofailure, sig.cochange) >= w.min_history)


def select(signals: Mapping[str, Signals], *, budget: Budget | None = None, weights: Weights = CALIBRATED,
           changed: Iterable[str] = (), global_files: Iterable[str] = GLOBAL_FILES, fallback: bool = True,
           has_history: bool = True, mode: str = "diff", select_all: bool = False,
           all_reason: str | None = None, fill: bool = True) -> Selection:
    """Score every candidate, apply the safety rules and the budget, order most-likely-to-fail first.

    `changed`: the change's paths (for the global-file rule); `mode` "history" selects every candidate
    and only orders them (history-only prioritisation); `select_all` (with `all_reason`) selects every
    candidate for a reason the caller found (a global change the caller mapped itself, a missing revision).
    With a time budget and `fill`, related tests that are not selected by themselves (the import-closure tier,
    weak history) fill what the budget leaves, most likely first: the budget is the time the user gives."""
    budget = budget or Budget()
    tests = sorted(signals)
    durations = floor_durations({t: signals[t].duration_ms for t in tests}, tests)
    median_ms = float(np.median(list(durations.values()))) if durations else DURATION_FLOOR_MS
    messages: list[str] = []
    global_hits = sorted(p for p in set(changed) if any(fnmatch.fnmatchcase(p, pat) for pat in global_files))
    select_all = select_all or mode == "history"
    if mode == "diff" and global_hits:
        if fallback:
            select_all = True
            all_reason = f"global change: {', '.join(global_hits[:3])}{' ...' if len(global_hits) > 3 else ''} selects every test"
            messages.append(all_reason + " (use --no-fallback to select by the rest of the change)")
        else:
            messages.append(f"global change to {', '.join(global_hits[:3])} ignored (--no-fallback)")
    if mode == "diff" and not has_history:
        select_all = True
        all_reason = "no test history: every test is selected"
        messages.append(all_reason)
    scored: list[ScoredTest] = []
    evidence: dict[str, bool] = {}  # not selected by themselves, but related (True) or likely to fail: they may fill a budget
    for tid in tests:
        sig = signals[tid]
        total, sv, reasons = score(sig, weights, median_ms)
        must = False
        if not sig.seen:
            must = True
            reasons.insert(0, "never run before: always runs")
            total += 1.0
        elif sig.failed_latest:
            must = True
            reasons.insert(0, f"failed in the latest run{f' ({sig.latest_run})' if sig.latest_run else ''}: always runs")
            total += 1.0
        chosen = must or select_all or _relevant(sig, weights)
        if select_all and all_reason and not reasons:
            reasons.append(all_reason)
        scored.append(ScoredTest(tid, total, sv, reasons, chosen, must, durations[tid]))
        if not chosen:
            related = ((weights.relation > 0 and sv["relation"] > 0) or bool(weights.semantic > 0 and sv["semantic"])
                       or (weights.history > 0 and max(sv["cofailure"], sv["cochange"]) > 0))
            if related or (weights.history > 0 and sv["history"] > 0) or (weights.base > 0 and sv["base"] > 0):
                evidence[tid] = related
    # most likely to fail first; ties: shorter first, then by id (stable, deterministic)
    scored.sort(key=lambda s: (not s.must_run, -s.score, s.duration_ms, s.test))
    suite_ms = float(sum(durations.values()))
    limit = budget.limit_ms(suite_ms)
    used = 0.0
    count = 0
    over = 0
    for s in scored:
        if not s.selected:
            continue
        fits = (limit is None or used + s.duration_ms <= limit) and (budget.max_tests is None or count < budget.max_tests)
        if fits or s.must_run:
            used += s.duration_ms
            count += 1
            if not fits:
                over += 1
        else:
            s.selected = False
            s.reasons.append("left out by the budget")
    if over:
        messages.append(f"{over} must-run test(s) kept over the budget")
    if limit is not None and fill:
        filled = 0
        for s in scored:
            if s.selected or s.test not in evidence:
                continue
            if used + s.duration_ms <= limit and (budget.max_tests is None or count < budget.max_tests):
                s.selected = True
                used += s.duration_ms
                count += 1
                filled += 1
                s.reasons.append("fills the time budget (related to the change, most likely first)" if evidence[s.test]
                                 else f"fills the time budget (fails often whatever the change: failure density "
                                      f"{s.signals['recent']:.2f})")
        if filled:
            messages.append(f"{filled} related or often failing test(s) fill the rest of the time budget")
    if not any(s.selected for s in scored):
        messages.append("no test selected: nothing in this change maps to a test" if mode == "diff"
                        else "no test selected")
    scored.sort(key=lambda s: (not s.selected, not s.must_run, -s.score, s.duration_ms, s.test))
    return Selection(scored, "all" if select_all and mode == "diff" else mode, budget, suite_ms, used, limit,
                     messages, weights)


# -- history-only prioritisation ----------------------------------------------------------------------------
@dataclass(frozen=True)
class HistoryParams:
    half_life_runs: float = 3.0
    new_test_prior: float = 0.5  # P(fail) of a test with no history (the caller may estimate it: new_test_prior())
    # order by p / duration**power; None: 1 under a time budget short of the whole suite (the most failures per
    # second fit in it), else 0 (with every test running, only the order of failures matters)
    duration_power: float | None = None
    flake_discount: float = 0.5  # share of a flaky test's failure density that is discounted
    # decay over the test's own runs (a test run once a week is judged on its last runs, however old), or over
    # the whole history's runs (False)
    own_runs: bool = True
    # runs' worth of weight the new-test prior keeps in a test's estimate: a test that passed twice is less
    # surely passing than one that passed fifty times
    prior_weight: float = 1.0


def new_test_prior(groups: RunGroups | None, default: float = 0.5) -> float:
    """P(a test fails in its first run), estimated from the history: the share of tests whose first counted run
    failed, smoothed towards one half (Laplace). What a never-seen test's history-only score starts from."""
    if groups is None or not len(groups.test):
        return default
    counted = groups.counted
    first = np.flatnonzero(np.r_[True, groups.test[1:] != groups.test[:-1]] & counted)
    fails = int(groups.fail[first].sum())
    return (fails + 1) / (len(first) + 2)


def history_probability(stats: Mapping[str, TestStats], tests: Iterable[str], params: HistoryParams = HistoryParams()
                        ) -> dict[str, float]:
    """P(fail) estimate per test from its history alone: failure density decayed over its own runs and smoothed
    towards the new-test prior, discounted for flakiness.

    Calibrated on the first 160 cycles of the IOF/ROL history (scripts/eval_iofrol.py reports both halves):
    own-run decay with a prior weight of one run beat history-wide decay there at every budget."""
    out = {}
    for t in tests:
        s = stats.get(t)
        if s is None or s.runs == 0:
            out[t] = params.new_test_prior
        else:
            if params.own_runs:
                k = params.prior_weight
                density = (s.own_fail + k * params.new_test_prior) / (s.own_weight + k) if s.own_weight + k > 0 else 0.0
            else:
                density = s.density
            out[t] = density * (1.0 - params.flake_discount * s.flake_rate)
    return out


def prioritise(stats: Mapping[str, TestStats], tests: Iterable[str], *, params: HistoryParams = HistoryParams(),
               durations: Mapping[str, float | None] | None = None, budget: Budget | None = None) -> Selection:
    """History-only order (no diff): likeliest to fail first, per unit of time when params.duration_power > 0."""
    tests = list(dict.fromkeys(tests))
    budget = budget or Budget()
    durations = durations if durations is not None else {t: (stats[t].duration_ms if t in stats else None) for t in tests}
    dur = floor_durations(durations, tests)
    suite = float(sum(dur.values()))
    limit = budget.limit_ms(suite)
    power = params.duration_power
    if power is None:
        power = 1.0 if limit is not None and limit < suite else 0.0
    p = history_probability(stats, tests, params)
    scored = []
    for t in tests:
        s = stats.get(t)
        value = p[t] / (dur[t] ** power) if power else p[t]
        reasons = []
        if s is None or s.runs == 0:
            reasons.append("never run before")
        else:
            if s.last_fail_age is not None:
                reasons.append(f"failed {'in the latest run' if s.last_fail_age == 0 else f'{s.last_fail_age} runs ago'}"
                               f" (density {s.density:.2f})")
            if s.flake_rate > 0.05:
                reasons.append(f"flaky ({s.flake_rate:.0%})")
        sig = {"p_fail": round(p[t], 6), "duration_ms": round(dur[t], 3)}
        scored.append(ScoredTest(t, value, sig, reasons, True, False, dur[t]))
    scored.sort(key=lambda s: (-s.score, s.duration_ms, s.test))
    used, count = 0.0, 0
    for s in scored:
        if (limit is None or used + s.duration_ms <= limit) and (budget.max_tests is None or count < budget.max_tests):
            used += s.duration_ms
            count += 1
        else:
            s.selected = False
    scored.sort(key=lambda s: (not s.selected, -s.score, s.duration_ms, s.test))
    return Selection(scored, "history", budget, suite, used, limit, [] if scored else ["no candidate tests"])


# -- metrics ---------------------------------------------------------------------------------------------
def apfd(order: list[str], failing: Iterable[str]) -> float | None:
    """APFD of an ordering: 1 - sum(rank of each failing test)/(n*m) + 1/(2n); failing tests missing from
    the order are ranked after it (n counts them). None without failures."""
    failing = set(failing)
    m = len(failing)
    if m == 0:
        return None
    pos = {t: i + 1 for i, t in enumerate(order)}
    n = len(set(order) | failing)
    missing = sorted(failing - set(pos))
    ranks = [pos[t] for t in failing if t in pos] + [len(order) + 1 + i for i in range(len(missing))]
    return 1.0 - sum(ranks) / (n * m) + 1.0 / (2 * n)


def napfd(durations: list[float], verdicts: list[int], budget_fraction: float = 1.0) -> float | None:
    """NAPFD of one ordered cycle under a time budget (share of the cycle's total time), as RETECS computes
    it: a test that does not fit in the time left is skipped (later, shorter ones may still run), ranks
    count every test, a failure not run is not detected. None for a cycle without failures."""
    n = len(verdicts)
    m = sum(1 for v in verdicts if v)
    if m == 0 or n == 0:
        return None
    available = budget_fraction * float(sum(durations))
    used = 0.0
    ranks, undetected = [], 0
    for i, (d, v) in enumerate(zip(durations, verdicts), 1):
        if used + d <= available + 1e-9:
            used += d
            if v:
                ranks.append(i)
        elif v:
            undetected += 1
    p = len(ranks) / m if undetected else 1.0
    return p - sum(ranks) / (n * m) + p / (2 * n)
