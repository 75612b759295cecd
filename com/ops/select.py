"""`com select`: which tests to run for a code change, in which order, and why; history-only prioritisation
(`--tests` without `--diff`); observation mode (run everything, record what a selection would have skipped)
and its report.

The use-case gathers what the pure scorer (`com.analysis.selection`) needs: the memory's results as columns
(history statistics, co-failure), the code repository's change, dependency graph and commit history (through
`com.code`, cached under `.com/cache/code/`), optionally semantic similarity through the index, and flake
rates from the flaky analysis where it exists. Candidates are every test the memory knows plus every test
discovered in the code (a new test file's tests run before they ever ran); parametrised cases are selected by
their function (pytest runs every case of `path::test_x`).
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from com.analysis import selection as sel
from com.code.discover import function_id as function_key  # a parametrised case is selected by its function
from com.memory import Memory
from com.model.errors import ComError
from com.model.filter import EventFilter
from com.ops.result import Result

SELECTION_EVENT = "selection"  # the event observation mode records
HISTORY_COMMITS = 500  # code commits read for co-change and co-failure statistics
MODES = ("run", "observe")


@dataclass
class SelectOptions:
    diff: str | None = None  # REV (REV..HEAD), A..B or A...B of the code repository
    repo: str | None = None  # the code repository (default: the one holding the working directory)
    budget: str | None = None  # "30%"
    time: str | None = None  # "5m"
    max_tests: int | None = None
    at: str | None = None  # journal revision the history is read at
    worktree: bool = False  # the change includes uncommitted files
    tests: list[str] | None = None  # candidates restricted to these ids
    fallback: bool = True  # a global change selects everything
    semantic: bool | None = None  # None: the `select_semantic` setting
    project: str | None = None  # history of this project only
    observe: bool | None = None  # None: the `select` setting ("observe" runs everything and records)
    weights: sel.Weights | None = None


@dataclass
class SelectResult(Result):
    selected: list  # [{"test_id", "score", "reasons", "signals", "duration_ms", "must_run"}] in run order
    skipped: list  # [test_id], most likely to fail first
    fallback: str | None  # why every test is selected, or None
    mode: str  # diff | history | all | observe
    observe: bool
    would_select: list | None  # observation mode: what a real selection would have run
    diff: dict | None  # {"spec", "base", "head", "worktree", "files", "unmapped", "global"}
    budget: dict
    candidates: int
    suite_ms: float
    selected_ms: float
    time_share: float
    history: dict  # {"journal", "results", "runs", "tests"}
    messages: list
    weights: dict
    skipped_tests: list  # [{"test_id", "score", "reasons", "signals", "duration_ms"}]
    seconds: dict  # wall time per stage
    cpu_seconds: dict  # CPU time (user + system) per stage
    recorded: str | None = None  # journal commit of the observation event

    @property
    def ids(self) -> list[str]:
        return [t["test_id"] for t in self.selected]


class _Clock:
    """Wall seconds per stage (`stages`) and CPU seconds, user + system, per stage (`cpu`)."""

    def __init__(self):
        self.t, self.c = time.perf_counter(), time.process_time()
        self.stages: dict[str, float] = {}
        self.cpu: dict[str, float] = {}

    def __call__(self, stage: str) -> None:
        now, cpu = time.perf_counter(), time.process_time()
        self.stages[stage] = round(self.stages.get(stage, 0.0) + now - self.t, 4)
        self.cpu[stage] = round(self.cpu.get(stage, 0.0) + cpu - self.c, 4)
        self.t, self.c = now, cpu


# -- candidates and their history -------------------------------------------------------------------------
def _aggregate(stats: list[sel.TestStats]) -> sel.TestStats:
    """One function's statistics from its parametrised cases': the worst case's failures, every case's time."""
    if len(stats) == 1:
        return stats[0]
    durations = [s.duration_ms for s in stats if not math.isnan(s.duration_ms)]
    ages = [s.last_fail_age for s in stats if s.last_fail_age is not None]
    latest = max(stats, key=lambda s: (s.failed_in_latest_run, s.runs))
    return sel.TestStats(
        runs=max(s.runs for s in stats), results=sum(s.results for s in stats),
        fail_runs=max(s.fail_runs for s in stats), flaky_runs=max(s.flaky_runs for s in stats),
        last_status=latest.last_status, last_fail_age=min(ages) if ages else None,
        density=max(s.density for s in stats), flake_rate=max(s.flake_rate for s in stats),
        duration_ms=float(sum(durations)) if durations else float("nan"),
        failed_in_latest_run=any(s.failed_in_latest_run for s in stats), latest_run=latest.latest_run)


class _History:
    """The memory's results at a snapshot, per candidate key."""

    def __init__(self, memory: Memory, at: str | None, project: str | None):
        self.snapshot = memory.snapshot(at)
        memory.follow(self.snapshot, [memory.results])
        where = EventFilter.create(types=["test_result"], projects=[project] if project else None)
        self.cols = memory.results.columns(self.snapshot, where)
        self.flake_rates = flake_rates(self.cols)
        self.groups = sel.run_groups(self.cols) if len(self.cols) else None
        self.stats = sel.test_stats(self.cols, flake_rates=self.flake_rates, groups=self.groups) if len(self.cols) else {}
        self.cases: dict[str, list[str]] = {}
        for tid in self.stats:
            self.cases.setdefault(function_key(tid), []).append(tid)
        self._merged: dict[str, sel.TestStats | None] = {}

    def __len__(self) -> int:
        return len(self.cols)

    def of(self, key: str) -> sel.TestStats | None:
        """Statistics of a candidate: the recorded test itself, or its function's parametrised cases."""
        found = self.stats.get(key)
        if found is not None:
            return found
        if key not in self._merged:
            cases = self.cases.get(key)
            self._merged[key] = _aggregate([self.stats[c] for c in cases]) if cases else None
        return self._merged[key]

    def by_key(self, per_test: dict[str, tuple[float, str]]) -> dict[str, tuple[float, str]]:
        """A per-recorded-test signal (co-failure) per candidate key: the strongest of its cases."""
        out: dict[str, tuple[float, str]] = {}
        for tid, value in per_test.items():
            for key in {tid, function_key(tid)}:
                if value[0] > out.get(key, (0.0, ""))[0]:
                    out[key] = value
        return out

    def facts(self) -> dict:
        runs = len(set(self.groups.run.tolist())) if self.groups is not None else 0
        return {"journal": self.snapshot.sha, "results": len(self.cols), "runs": runs, "tests": len(self.stats)}


CRITICAL_TAGS = frozenset({"smoke", "critical", "blocker", "p0", "sanity"})


def criticality(memory: Memory, history: "_History") -> dict[str, float]:
    """0..1 per test from the importance and tags of its results in the newest run (importance 1 -> 0, 5 -> 1;
    a smoke/critical/blocker/p0/sanity tag -> 1). Read only when the weights use it: it rebuilds events."""
    from dataclasses import replace as _replace

    g = history.groups
    if g is None:
        return {}
    newest = int(np.argmax(g.rank)) if len(g.rank) else 0
    run_rows = np.flatnonzero(history.cols.run == g.run[newest]) if g.run[newest] < len(history.cols.runs) else []
    if not len(run_rows):
        return {}
    since = int(np.asarray(history.cols.ts_us)[run_rows].min())
    where = _replace(EventFilter.create(types=["test_result"]), since_us=since)
    events, _ = memory.results.events(history.snapshot, where)
    out: dict[str, float] = {}
    for e in events:
        tid = (e.get("data") or {}).get("test_id")
        if not tid:
            continue
        value = max(0.0, min(1.0, (float(e.get("importance") or 1.0) - 1.0) / 4.0))
        if CRITICAL_TAGS & {str(t).lower() for t in e.get("tags") or ()}:
            value = 1.0
        key = function_key(tid)
        out[key] = max(out.get(key, 0.0), value)
    return out


def flake_rates(cols) -> dict[str, float] | None:
    """Flake rates from the flaky analysis (`com.analysis.flaky.detect_flaky`) when it is installed; None lets
    the selection use its own simple rate (the share of a test's runs that both failed and passed, or whose
    commit both failed and passed). This is the seam where the flaky registry plugs in."""
    try:
        from com.analysis.flaky import detect_flaky  # the flaky registry's analysis, where it exists
    except ImportError:
        return None
    if not len(cols):
        return {}
    rates = dict.fromkeys(cols.tests, 0.0)  # what detection does not call flaky is not flaky
    rates.update({f.test_id: float(f.flake_rate) for f in detect_flaky(cols).flaky})
    return rates


# -- the code repository ----------------------------------------------------------------------------------
def _open_repo(path: str | None):
    from com.code import diff as code_diff

    if path is not None and not Path(path).is_dir():
        raise ComError(f"{path}: no such folder", param="repo")
    try:
        return code_diff.open_repo(path)
    except ComError as exc:
        raise ComError(exc.message, param="repo") from None


def _global_patterns(memory: Memory) -> tuple[str, ...]:
    extra = memory.settings.get("select_global")
    if isinstance(extra, str):
        extra = [p.strip() for p in extra.split(",") if p.strip()]
    return tuple(sel.GLOBAL_FILES) + tuple(extra or ())


def _global_changes(paths, changed_nodes, graph, impacts_of, patterns) -> list[str]:
    """Changed files that change every test's conditions: a listed file (pyproject.toml, lock files, CI
    config, conftest.py, ...) that the graph cannot map to tests. A conftest.py edit inside a fixture maps to
    the tests using that fixture and is not global; one in a hook or in module code is."""
    import fnmatch

    out = []
    for p in sorted(paths):
        if not any(fnmatch.fnmatchcase(p, pat) for pat in patterns):
            continue
        if p.endswith(".py"):
            names = [k for k in changed_nodes.by_file.get(p, ()) if k.startswith("sym:")]
            mapped = names and not any(k.endswith(":<module>") for k in names) and all(impacts_of([k]) for k in names)
            if mapped:
                continue
        out.append(p)
    return out


def _gone(keys, graph) -> set[str]:
    """Recorded tests that are no longer in the code: their Python file is gone, or discovery reads the file and
    finds tests in it but not this one. Where com cannot tell (another language, a file discovery finds no
    tests in: a plugin may make them), the test stays."""
    from com.code.discover import test_file_of

    if not graph.files:
        return set()
    with_tests = {t.path for t in graph.tests.values()}
    out = set()
    for key in keys:
        if "::" not in key:
            continue
        path = test_file_of(key)
        if path not in graph.files:
            if path.endswith(".py"):
                out.add(key)
        elif path in with_tests and key not in graph.tests:
            out.add(key)
    return out


# -- names in a test's text --------------------------------------------------------------------------------
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")


def words(text: str) -> list[str]:
    """Lower-case words of identifiers and prose alike: `remove_report`, `removeReport`, `/cart/remove-report`
    and `Remove Report` all give ["remove", "report"]."""
    return [w.lower() for w in _WORD.findall(text)]


def mentions(repo, graph, keys, names) -> dict[str, str]:
    """{candidate: name} for tests whose own text names, as a run of two words or more (one word is too common
    to mean anything), code the change reaches in a module their file imports. End-to-end and API tests reach
    code through a URL or a page title (`client.post("/cart/remove_report")`, `"Remove Report"`), which no
    import of a name shows; the import of its module still must be there."""
    wanted: dict[tuple, list[tuple[str, str | None]]] = {}
    for name, path in names:
        w = tuple(words(name))
        if len(w) >= 2:
            wanted.setdefault(w, []).append((name, path))
    if not wanted:
        return {}
    sizes = sorted({len(w) for w in wanted})
    texts: dict[str, list[str]] = {}
    closures: dict[str, set] = {}
    out: dict[str, str] = {}
    for key in keys:
        t = graph.tests.get(function_key(key))
        if t is None or t.path not in graph.files:
            continue
        lines = texts.get(t.path)
        if lines is None:
            try:
                lines = texts[t.path] = repo[graph.files[t.path]].data.decode("utf-8", "replace").splitlines()
            except (KeyError, ValueError):
                lines = texts[t.path] = []
        text = words("\n".join(lines[max(t.line - 1, 0): t.end_line]) if t.function else "\n".join(lines))
        grams = {tuple(text[i:i + n]) for n in sizes for i in range(len(text) - n + 1)}
        for gram in grams & wanted.keys():
            closure = closures.get(t.path)
            if closure is None:
                closure = closures[t.path] = graph.module_closure(t.path)
            hit = next((name for name, path in wanted[gram] if path in closure), None)
            if hit is not None:
                out[key] = hit
                break
    return out


# -- semantic similarity ----------------------------------------------------------------------------------
SEMANTIC_FLOOR = 0.25  # cosine similarity under this is no evidence (MiniLM puts unrelated texts around 0.1)


def _change_text(cs, limit: int = 4000) -> str:
    """The changed lines of a change (both sides), file by file, for embedding."""
    parts = []
    for fc in cs.files:
        if fc.binary:
            continue
        lines = []
        for side, text, wanted in (("-", cs.old_text(fc), fc.old_lines()), ("+", cs.new_text(fc), fc.new_lines())):
            if not text or not wanted:
                continue
            src = text.decode("utf-8", "replace").splitlines()
            lines += [src[n - 1].strip() for n in sorted(wanted) if 0 < n <= len(src) and src[n - 1].strip()]
        parts.append(f"{fc.path}: " + " ".join(lines))
    return "\n".join(parts)[:limit]


def semantic_scores(memory: Memory, snapshot_at: str | None, cs, graph, keys: list[str],
                    names: list[str] = ()) -> dict[str, float]:
    """0..1 per candidate: how close the change's text is to the test's source and to its past failure
    messages (the index), whichever is closer; rescaled so SEMANTIC_FLOOR and below count as nothing. The
    change's text is its changed lines plus `names`: what the graph says the change reaches (a test that
    reaches code through a URL or a page title names it there, not in an import)."""
    from com.ops.search import search

    query = _change_text(cs)
    if names:
        words = " ".join(n.replace("_", " ") for n in names)
        query = f"{words}\n{query}"
    if not query.strip():
        return {}
    embedder = memory.embedder()
    texts, owners = [], []
    blobs: dict[str, list[str]] = {}
    repo = cs._repo
    for key in keys:
        t = graph.tests.get(function_key(key))
        if t is None or not t.function or t.path not in graph.files:
            continue
        lines = blobs.get(t.path)
        if lines is None:
            try:
                lines = blobs[t.path] = repo[graph.files[t.path]].data.decode("utf-8", "replace").splitlines()
            except (KeyError, ValueError):
                lines = blobs[t.path] = []
        body = "\n".join(lines[t.line - 1: t.end_line]) if lines else ""
        texts.append(f"{t.id}\n{body}"[:2000])
        owners.append(key)
    out: dict[str, float] = {}

    def scale(s: float) -> float:
        return max(0.0, min(1.0, (s - SEMANTIC_FLOOR) / (1.0 - SEMANTIC_FLOOR)))

    if texts:
        vectors = np.asarray(embedder.embed([query] + texts), dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1)
        norms[norms == 0] = 1.0
        sims = (vectors[1:] @ vectors[0]) / (norms[1:] * norms[0])
        for key, s in zip(owners, sims.tolist()):
            out[key] = scale(s)
    where = EventFilter.create(types=["test_result"], statuses=["failed", "error"])
    try:
        found = search(memory, query, k=50, where=where, at=snapshot_at, mode="vector").results
    except ComError:
        found = []
    for r in found:
        tid = (r.get("event", {}).get("data") or {}).get("test_id")
        sim = r.get("similarity")
        if tid is None or sim is None:
            continue
        for key in {tid, function_key(tid)}:
            out[key] = max(out.get(key, 0.0), scale(float(sim)))
    return out


# -- the use-case ------------------------------------------------------------------------------------------
def _budget(opts: SelectOptions) -> sel.Budget:
    try:
        return sel.parse_budget(opts.budget, opts.time, opts.max_tests)
    except ValueError as exc:
        param = "max_tests" if "--max" in str(exc) else ("time" if str(exc).startswith("time") else "budget")
        raise ComError(str(exc).replace("--max: ", ""), param=param) from None


def _mode_observe(memory: Memory, opts: SelectOptions) -> bool:
    if opts.observe is not None:
        return opts.observe
    mode = str(memory.settings.get("select") or "run").strip().lower()
    if mode not in MODES:
        raise ComError(f"[tool.com] select = {mode!r}: expected one of {', '.join(MODES)}", param="select")
    return mode == "observe"


@dataclass
class Prepared:
    """Everything a selection needs that does not depend on the weights or the budget (see `prepare`)."""

    signals: dict  # candidate key -> sel.Signals
    mode: str  # diff | history
    fallback: str | None
    diff: dict | None
    history: "_History"
    messages: list
    changed: list  # changed paths
    clock: _Clock
    keys: list = field(default_factory=list)  # history mode: the candidates in the given order
    stats: dict = field(default_factory=dict)  # history mode: their statistics


def prepare(memory: Memory, opts: SelectOptions) -> Prepared:
    """Read the history, the change, the graph and (if asked) the index; the signals of every candidate."""
    clock = _Clock()
    if opts.diff is None and opts.tests is None:
        raise ComError("nothing to select for: give the change (--diff REV) or the tests to order (--tests FILE)",
                       param="diff")
    history = _History(memory, opts.at, opts.project)
    clock("history")
    messages: list[str] = []
    if opts.diff is None:
        keys = list(dict.fromkeys(opts.tests))
        stats = {k: s for k in keys if (s := history.of(k)) is not None}
        if not len(history):
            messages.append("no test history: the order is the given one")
        return Prepared({}, "history", None, None, history, messages, [], clock, keys=keys, stats=stats)

    from com.code import diff as code_diff
    from com.code import graph as code_graph
    from com.code.cache import CodeCache

    repo = _open_repo(opts.repo)
    cache = CodeCache(memory.cache_path / "code")
    fallback = None
    diff_facts: dict = {"spec": opts.diff, "worktree": opts.worktree}
    cs = None
    try:
        cs = code_diff.changes(repo, opts.diff, worktree=opts.worktree)
    except code_diff.RevisionNotFound as exc:
        fallback = f"{exc.message}: every test is selected"
    except ComError as exc:
        raise ComError(exc.message, param="diff") from None
    clock("diff")
    head = cs.head if cs is not None else _head_sha(repo)
    if cs is not None and cs.head is None:  # the working tree: its graph is built on the base's files
        graph = cache.graph(repo, cs.base, worktree=True, changes=cs)  # the diff just made, not a second one
    else:
        graph = cache.graph(repo, head) if head else code_graph.CodeGraph(None, None, {})
    diff_facts["graph"] = cache.graph_source
    clock("graph")

    # candidates: every known test (by the id pytest selects it by), every discovered one, or those given
    if opts.tests is not None:
        keys = list(dict.fromkeys(opts.tests))
    else:
        recorded = list(dict.fromkeys(function_key(t) for t in history.stats))
        gone = _gone(recorded, graph)
        if gone:
            messages.append(f"{len(gone)} recorded test(s) no longer in the code are left out")
        keys = list(dict.fromkeys([k for k in recorded if k not in gone] + sorted(graph.tests)))

    impacts: dict = {}
    changed_paths: list[str] = []
    if cs is not None:
        # a graph from the cache: parse the few changed files rather than read every file's summary
        summaries = cache.summaries if cache.graph_source == "built" else code_graph.SummaryCache()
        changed = code_graph.changed_nodes(cs, graph, summaries)
        impacts = graph.affected(changed.keys)
        changed_paths = sorted(cs.paths)
        globals_hit = _global_changes(cs.paths, changed, graph, lambda ks: graph.affected(ks, module_level=False),
                                      _global_patterns(memory))
        diff_facts.update(base=cs.base, head=cs.head, files=changed_paths,
                          unmapped=[p for p in changed.unmapped if p not in globals_hit], **{"global": globals_hit})
        if globals_hit:
            if opts.fallback:
                fallback = (f"global change: {', '.join(globals_hit[:3])}{' ...' if len(globals_hit) > 3 else ''}"
                            " selects every test")
            else:
                messages.append(f"global change to {', '.join(globals_hit[:3])} ignored (--no-fallback)")
        if not changed_paths:
            messages.append("the change is empty")
    clock("impact")

    # tests the graph reaches at most through their file's imports, whose text names code the change reaches
    mentioned: dict[str, str] = {}
    if cs is not None and impacts:
        weak = [k for k in keys if (i := impacts.get(function_key(k))) is not None and i.level in ("module", "import")]
        mentioned = mentions(repo, graph, weak, graph.reached_names(changed.keys, limit=5000))
    clock("mentions")

    cochange, cofail = {}, {}
    if cs is not None and len(history):
        try:
            commit_files = cache.commit_files(repo, cs.base, HISTORY_COMMITS)
        except ComError:
            commit_files = {}
        from com.code.discover import test_file_of

        cochange = sel.cochange(commit_files, changed_paths, {k: test_file_of(k) for k in keys})
        cofail = history.by_key(sel.cofailure(history.cols, commit_files, changed_paths, groups=history.groups))
    clock("co-change")

    use_semantic = opts.semantic if opts.semantic is not None else _truthy(memory.settings.get("select_semantic"))
    semantic: dict[str, float] = {}
    if use_semantic and cs is not None:
        semantic = semantic_scores(memory, opts.at, cs, graph, keys, [n for n, _ in graph.reached_names(changed.keys)])
    clock("semantic")

    weights = opts.weights or sel.CALIBRATED
    critical = criticality(memory, history) if weights.criticality > 0 else {}
    clock("criticality")
    signals: dict[str, sel.Signals] = {}
    for key in keys:
        s = history.of(key)
        imp = impacts.get(function_key(key))
        sig = sel.Signals(semantic=semantic.get(key, 0.0) if use_semantic else None, criticality=critical.get(key, 0.0),
                          duration_ms=s.duration_ms if s else None, seen=s is not None,
                          failed_latest=bool(s and s.failed_in_latest_run), latest_run=s.latest_run if s else None,
                          flake_rate=s.flake_rate if s else 0.0)
        if imp is not None:
            sig.direct_tier = imp.level
            sig.direct = 1.0 if imp.level == "name" else 1.0 / (1.0 + 0.25 * max(imp.distance - 1, 0))
            sig.direct_reason = imp.reason()
        if key in mentioned:
            sig.direct_tier, sig.direct = "mention", 1.0
            sig.direct_reason = f"its text names {mentioned[key]}, which the change reaches (a URL, a page title)"
        if key in cochange:
            sig.cochange, sig.cochange_file = cochange[key]
        if key in cofail:
            sig.cofailure, sig.cofailure_file = cofail[key]
        if s is not None:
            sig.recent, sig.last_fail_age = s.density, s.last_fail_age
        signals[key] = sig
    if fallback is None and not len(history):
        fallback = "no test history: every test is selected"
    cache.save()
    clock("signals")
    return Prepared(signals, "diff", fallback, diff_facts, history, messages, changed_paths, clock)


def finish(prepared: Prepared, budget: sel.Budget, weights: sel.Weights, observe: bool = False,
           history_params: sel.HistoryParams | None = None) -> SelectResult:
    """Score the prepared signals under weights and a budget: the selection, in run order, with its reasons."""
    p = prepared
    if p.mode == "history":
        if history_params is None:
            history_params = sel.HistoryParams(new_test_prior=sel.new_test_prior(p.history.groups))
        result = sel.prioritise(p.stats, p.keys, params=history_params, budget=budget)
    else:
        result = sel.select(p.signals, budget=budget, weights=weights, changed=p.changed, global_files=(),
                            mode="diff", select_all=p.fallback is not None, all_reason=p.fallback)
    p.clock("score")
    mode = p.mode if p.mode == "history" else ("all" if p.fallback else "diff")
    return _result(result, p.fallback, mode, p.diff, p.history, list(p.messages), weights, p.clock, observe)


def select(memory: Memory, opts: SelectOptions, progress=None) -> SelectResult:
    """The selection for a change (`opts.diff`) or a history-only order of `opts.tests`; see the module text."""
    budget = _budget(opts)
    observe = _mode_observe(memory, opts)
    prepared = prepare(memory, opts)
    out = finish(prepared, budget, opts.weights or sel.CALIBRATED, observe)
    return _observed(memory, out, opts) if observe else out


def _truthy(value) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def _head_sha(repo) -> str | None:
    try:
        return None if repo.head_is_unborn else str(repo.head.target)
    except Exception:  # noqa: BLE001 - a broken HEAD: no graph, a full selection
        return None


def _test_json(t: sel.ScoredTest) -> dict:
    return {"test_id": t.test, "score": round(t.score, 6), "reasons": t.reasons, "signals": t.signals,
            "duration_ms": round(t.duration_ms, 3), "must_run": t.must_run}


def _result(selection: sel.Selection, fallback, mode, diff_facts, history: _History, messages, weights, clock,
            observe) -> SelectResult:
    chosen = [t for t in selection.tests if t.selected]
    rest = [t for t in selection.tests if not t.selected]
    messages = messages + selection.messages
    would = None
    if observe:
        would = [t.test for t in chosen]
        for t in rest:
            t.reasons.append("observation mode: runs although a selection would skip it")
        chosen, rest = chosen + rest, []
    selected_ms = sum(t.duration_ms for t in chosen)
    return SelectResult(
        selected=[_test_json(t) for t in chosen], skipped=[t.test for t in rest], fallback=fallback,
        mode="observe" if observe else mode, observe=observe, would_select=would, diff=diff_facts,
        budget=selection.budget.to_json(), candidates=len(selection.tests), suite_ms=round(selection.suite_ms, 3),
        selected_ms=round(selected_ms, 3),
        time_share=round(selected_ms / selection.suite_ms, 6) if selection.suite_ms else 0.0,
        history=history.facts(), messages=messages, weights=weights.to_json(),
        skipped_tests=[_test_json(t) for t in rest], seconds=clock.stages, cpu_seconds=clock.cpu)


# -- observation mode and its report -----------------------------------------------------------------------
def _observed(memory: Memory, out: SelectResult, opts: SelectOptions) -> SelectResult:
    """Record what a real selection would have run (the event observation mode leaves for `report`)."""
    from com.model.event import validate

    diff = out.diff or {}
    would = out.would_select or []
    data = {"mode": "history" if opts.diff is None else "diff", "spec": opts.diff, "base": diff.get("base"),
            "commit": diff.get("head"), "worktree": bool(opts.worktree), "fallback": out.fallback,
            "candidates": out.candidates, "budget": out.budget,
            "would_run": would if len(would) < out.candidates or out.candidates == 0 else None,
            "would_run_all": len(would) == out.candidates and out.candidates > 0,
            "would_run_count": len(would)}
    project = opts.project or memory.settings.get("project") or "default"
    event = validate({"type": SELECTION_EVENT, "project": project, "source": "com select", "data": data})
    written = memory.record([event], message=f"select (observe): a selection would run {len(would)} of "
                                             f"{out.candidates} tests")
    out.recorded = written.commit
    return out


@dataclass
class ReportResult(Result):
    selections: int  # observation events in the snapshot
    matched: int  # of them, followed by a recorded run of their code commit
    runs: list  # [{"commit", "run", "tests", "would_run", "failures", "missed", "missed_tests", "saved_ms", "total_ms"}]
    failures: int
    missed: int  # failures a real selection would have skipped
    caught: int
    recall: float | None  # share of failures a real selection would have run
    changes_with_failures: int
    changes_missed: int  # changes where at least one failure would have been skipped
    saved_ms: float
    total_ms: float
    saved_share: float | None


def report(memory: Memory, at: str | None = None, project: str | None = None) -> ReportResult:
    """Over the recorded observation events: for each, the first run of its code commit recorded after it;
    how many of that run's failures a real selection would have skipped, and how much time it would have saved."""
    import numpy as np

    from com.model.event import ts_us

    snap = memory.snapshot(at)
    where = EventFilter.create(types=[SELECTION_EVENT], projects=[project] if project else None)
    events = sorted(snap.events(where), key=lambda e: e["ts"])
    memory.follow(snap, [memory.results])
    cols = memory.results.columns(snap, EventFilter.create(types=["test_result"],
                                                           projects=[project] if project else None))
    commit_index = {c: n for n, c in enumerate(cols.commits)}
    run_first = {}
    if len(cols):
        order = np.argsort(cols.ts_us, kind="stable")
        for r, t in zip(cols.run[order].tolist(), cols.ts_us[order].tolist()):
            run_first.setdefault(r, t)
    rows = []
    for e in events:
        data = e.get("data") or {}
        code = commit_index.get(data.get("commit"))
        if code is None:
            continue
        after = ts_us(e["ts"])
        mask = cols.commit == code
        runs = sorted({r for r in cols.run[mask].tolist() if r >= 0 and run_first.get(r, -1) >= after},
                      key=lambda r: run_first[r])
        if not runs:
            continue
        run = runs[0]
        rows_of = np.flatnonzero(cols.run == run)
        would = None if data.get("would_run_all") else set(data.get("would_run") or [])
        by_key: dict[str, dict] = {}
        for i in rows_of.tolist():
            tid = cols.tests[int(cols.test[i])]
            key = function_key(tid)
            entry = by_key.setdefault(key, {"failed": False, "ms": 0.0})
            if int(cols.status[i]) in sel.FAILED:
                entry["failed"] = True
            d = float(cols.duration_ms[i])
            entry["ms"] += 0.0 if math.isnan(d) else d
        failing = sorted(k for k, v in by_key.items() if v["failed"])
        skipped = [k for k in by_key if would is not None and k not in would]
        missed = sorted(k for k in failing if k in set(skipped))
        total = sum(v["ms"] for v in by_key.values())
        saved = sum(by_key[k]["ms"] for k in skipped)
        rows.append({"commit": data.get("commit"), "run": cols.runs[run], "selection_ts": e["ts"],
                     "tests": len(by_key), "would_run": len(by_key) - len(skipped), "failures": len(failing),
                     "missed": len(missed), "missed_tests": missed[:20], "saved_ms": round(saved, 3),
                     "total_ms": round(total, 3)})
    failures = sum(r["failures"] for r in rows)
    missed = sum(r["missed"] for r in rows)
    saved = sum(r["saved_ms"] for r in rows)
    total = sum(r["total_ms"] for r in rows)
    return ReportResult(selections=len(events), matched=len(rows), runs=rows, failures=failures, missed=missed,
                        caught=failures - missed, recall=round((failures - missed) / failures, 4) if failures else None,
                        changes_with_failures=sum(1 for r in rows if r["failures"]),
                        changes_missed=sum(1 for r in rows if r["missed"]),
                        saved_ms=round(saved, 3), total_ms=round(total, 3),
                        saved_share=round(saved / total, 4) if total else None)


# -- pytest: deselect what a selection would skip -----------------------------------------------------------
@dataclass
class Collected:
    """What `--com-select` does to a pytest session's collected items."""

    keep: list
    deselected: list
    line: str  # one line for the terminal


def collected_selection(items, rev: str, memory_path: str | None = None, root: str | None = None,
                        worker: bool = False) -> Collected:
    """Split pytest items (anything with `.nodeid`) into those `com select --diff REV` selects and the rest,
    the selected ones most likely to fail first.

    Candidates are the collected tests; a problem (no memory, an unknown revision) keeps every item and says
    why: `--com-select` never makes a test run silently disappear. A pytest-xdist worker (`worker`) selects
    like the others but leaves recording an observation to the controller."""
    if not items:
        return Collected(list(items), [], "com: --com-select: no tests collected")
    ids = [item.nodeid for item in items]
    try:
        memory = Memory.find(memory_path, cwd=Path(root) if root else None)
        try:
            opts = SelectOptions(diff=rev, repo=root, tests=list(dict.fromkeys(function_key(i) for i in ids)))
            if worker:  # the same selection, nothing recorded
                result = finish(prepare(memory, opts), _budget(opts), sel.CALIBRATED, _mode_observe(memory, opts))
            else:
                result = select(memory, opts)
        finally:
            memory.close()
    except ComError as exc:
        return Collected(list(items), [], f"com: --com-select: {exc.message}; running every collected test")
    chosen = set(result.ids)
    order = {tid: n for n, tid in enumerate(result.ids)}
    keep = [item for item, nid in zip(items, ids) if function_key(nid) in chosen]
    keep.sort(key=lambda item: order.get(function_key(item.nodeid), len(order)))
    dropped = [item for item, nid in zip(items, ids) if function_key(nid) not in chosen]
    why = f" ({result.fallback})" if result.fallback else ""
    line = (f"com: --com-select {rev}: {len(keep)} of {len(items)} tests selected, "
            f"{result.time_share:.0%} of the suite's time{why}")
    if result.observe:
        line += "; observation mode: every test runs"
    return Collected(keep, dropped, line)
