"""`com retrieve`: the context pack for a task, as a policy says: candidates from the hybrid index and the related
evidence the memory holds, scored, re-ranked for diversity and packed under a token budget.

Where the evidence comes from, all of it read at one snapshot (`--at REV` packs only what existed at REV):
- similar events: the hybrid index (meaning and keywords) for the query, or, without a query, for the test's own
  newest failure; filtered by the policy's EventFilter before ranking;
- the test's own recent results and its history (the test-results view): its flaky status from the flaky
  registry (detection over its results, its lifecycle and quarantine), its pass/fail history, and the code
  commits its failures ran against (`com.analysis.test_history`);
- code changes (`code_change` events) naming the code commits the test's failures ran against;
- healing attempts (`healing_attempt` events) naming the test;
- the newest roll-ups, when the policy's include_rollups is true;
- analysis commits (`com commit --event`) naming any of these events: those events are pinned, and the analysis
  itself goes in as a note (`type: analysis`, id `analysis_<sha>`).
"""

from __future__ import annotations

from dataclasses import dataclass

from com.memory import Memory
from com.model.errors import ComError
from com.model.event import format_ts
from com.model.filter import EventFilter, TestMatch
from com.model.text import event_text, normalise, split_test_id

RELATED_LIMIT = 10  # code changes and healing attempts fetched by what they name
ROLLUPS = 3  # newest roll-ups offered to a policy that includes them
MIN_CANDIDATES = 40
MAX_CANDIDATES = 200
ANALYSIS_IMPORTANCE = 4.0


@dataclass
class Evidence:
    """What retrieval gathered before packing (the use-case keeps it for tests and the bench)."""

    candidates: list
    facts: list
    query_text: str
    query_vector: object


def retrieve(memory: Memory, *, policy: str | None = None, task: str | None = None, test: str | None = None,
             query: str | None = None, project: str | None = None, budget: int | None = None, at: str | None = None,
             progress=None):
    """The context pack (`com.analysis.packing.Pack`, with `to_json()` and `to_markdown()`) of the snapshot at
    `at` for the policy named by id or task, about a test, a query or both. `budget` overrides the policy's
    budget_tokens for this call only."""
    from com.analysis.packing import pack
    from com.models.tokens import count_tokens
    from com.policies import event_filter, find_policy, load_policies, user_dir

    chosen = find_policy(load_policies(user_dir(memory.root)), policy, task).with_budget(budget)
    query = query.strip() if query else None
    if not test and not query:
        raise ComError("say what the pack is about: a test, a query, or both", param="query")
    match = TestMatch.parse(test) if test else None
    where = event_filter(chosen, EventFilter.create(projects=project))
    snapshot = memory.snapshot(at)
    if not snapshot:
        return pack([], chosen, test=test, query=query, facts=[("journal", "empty: nothing recorded yet")],
                    counter=count_tokens)
    evidence = gather(memory, snapshot, chosen, where, match, query, progress)
    return pack(evidence.candidates, chosen, test=test, query=query, query_vector=evidence.query_vector,
                keywords=evidence.query_text, now=snapshot.commit.commit_time, facts=evidence.facts,
                at=snapshot.sha, counter=count_tokens)


def gather(memory: Memory, snapshot, policy, where: EventFilter, match: TestMatch | None, query: str | None,
           progress=None) -> Evidence:
    """Every candidate of the pack and the facts about the test, read at `snapshot`."""
    from com.analysis import test_history
    from com.analysis.packing import Candidate

    facts: list[tuple[str, str]] = []
    own: list[dict] = []
    history = None
    if match is not None:
        results = memory.results
        memory.follow(snapshot, [results])
        mine = EventFilter(test=match, projects=where.projects)
        cols = results.columns(snapshot, mine)
        history = test_history.history(cols)
        facts = [*flaky_status(memory, snapshot, cols), *test_history.facts(history)]
        # The view stops at the limit only for conditions it holds as columns: importance and tags are checked here.
        recent = EventFilter(test=match, projects=where.projects, statuses=where.result_statuses,
                             since_us=where.since_us, until_us=where.until_us)
        found, _ = results.events(snapshot, recent, policy.max_events)
        own = [e for e in found if where.matches(e)]

    # What the pack is about, as text: the query, else the test's newest failure, else the test's name.
    text = normalise(query) if query else None
    if text is None:
        failure = next((e for e in own if e["data"].get("status") in ("failed", "error")), None)
        if failure is None and history is not None and history.failed:
            found, _ = memory.results.events(snapshot, EventFilter(test=match, projects=where.projects,
                                                                   statuses=("failed", "error")), 1)
            failure = found[0] if found else None
        text = event_text(failure) if failure is not None else split_test_id(match.pattern)
    embedder = memory.embedder()
    vector = embedder.embed([text])[0]

    index = memory.index(progress)
    index.ensure(memory.journal, snapshot.commit)
    from com.views.index.query import newest_events, ranked_events

    k = max(MIN_CANDIDATES, min(MAX_CANDIDATES, 2 * policy.max_events))
    # Evidence found by what it names rather than by meaning: the code changes of the commits the test failed
    # on, the test's healing attempts, the newest roll-ups.
    wants, checks = {}, {}
    if history is not None and history.failing_commits and _allows(where, "code_change"):
        shas = [c for c, _, _ in history.failing_commits[:RELATED_LIMIT]]
        wants["code_change"] = RELATED_LIMIT
        checks["code_change"] = lambda e: where.matches(e) and _names_commit(e, shas)
    if match is not None and _allows(where, "healing_attempt"):
        wants["healing_attempt"] = RELATED_LIMIT
        checks["healing_attempt"] = lambda e: where.matches(e) and _names_test(e, match)
    if policy.include_rollups:
        wants["rollup"] = ROLLUPS
        checks["rollup"] = where.but(types=("rollup",)).matches
    relation = {"code_change": "code", "healing_attempt": "healing", "rollup": "rollup"}
    candidates: list = []
    with index.reading():
        rows = index.batch_filter(snapshot)
        for hit in ranked_events(index, text, vector, "hybrid", rows, where, k):
            candidates.append(Candidate(hit["event"], similarity=hit["similarity"], keyword_rank=hit["keyword_rank"]))
        if wants:
            found = newest_events(index, wants, rows, lambda e: checks[e["type"]](e))
            for etype, events in found.items():
                candidates.extend(Candidate(e, relation=relation[etype]) for e in events)
    candidates.extend(Candidate(e, relation="test") for e in own)
    for c in candidates:
        if c.relation is None and match is not None and c.event["type"] == "test_result" \
                and match.matches(c.event["data"].get("test_id") or ""):
            c.relation = "test"

    candidates.extend(analyses(memory, snapshot, candidates))
    # Unit vectors for diversity (MMR) and for the semantic part of evidence that did not come from the index:
    # every indexed text is in the embedding cache, so this is a lookup, not a model run.
    texts = {id(c): event_text(c.event) for c in candidates if c.event["type"] != "analysis"}
    if texts:
        vectors = embedder.embed(list(texts.values()))
        for c, v in zip((c for c in candidates if id(c) in texts), vectors):
            c.vector = v
    return Evidence(candidates, facts, text, vector)


def flaky_status(memory: Memory, snapshot, cols) -> list[tuple[str, str]]:
    """The "flaky status" fact, from the flaky registry (issue 13): detection over the test's own results (flake
    rate, severity, confidence and evidence, or the breakage it is), and its lifecycle in the registry (status,
    quarantine). With several tests (a file or class prefix), the flaky ones among them."""
    from com.analysis.flaky import detect_flaky
    from com.ops.flaky import DEFAULT_MIN_RUNS, read_registry

    if not len(cols):
        return []
    # Judged on these tests' own rows: a run where the whole machine failed (which `com flaky detect`, seeing every
    # test, leaves out) counts here as a failure of these tests; `ops.flaky.flipped_columns` would judge it over
    # every test, at the cost of reading a few columns of the whole snapshot per pack.
    found = detect_flaky(cols, min_runs=DEFAULT_MIN_RUNS, mass_failure=None)
    if len(cols.tests) > 1:
        flaky = ", ".join(f"{f.test_id} ({f.severity}, flake rate {f.flake_rate:.2f})" for f in found.flaky[:5])
        broken = ", ".join(b.test_id for b in found.broken if b.ongoing)
        said = f"{len(found.flaky)} of {len(cols.tests)} tests flaky" + (f": {flaky}" if flaky else "")
        return [("flaky status", said + (f"; broken: {broken}" if broken else ""))]
    test_id = cols.tests[0]
    registry = read_registry(memory, snapshot)
    if found.flaky:
        f = found.flaky[0]
        seen = [f"{k.replace('_', ' ')} {v}" for k, v in f.evidence.items() if isinstance(v, int) and v]
        said = (f"flaky ({f.severity}): flake rate {f.flake_rate:.2f}, failed {f.failures} of {f.runs} runs, "
                f"confidence {f.confidence:.2f}" + (f"; evidence: {', '.join(seen)}" if seen else ""))
    elif any(b.ongoing for b in found.broken):
        b = next(b for b in found.broken if b.ongoing)
        said = f"broken, not flaky: failing since commit {b.since_commit[:10]} ({_when_us(b.since_us)}, {b.runs} runs)"
    elif found.broken:
        b = found.broken[0]
        said = (f"not flaky; was broken from commit {b.since_commit[:10]} to {str(b.fixed_commit)[:10]} "
                f"({_when_us(b.since_us)} to {_when_us(b.fixed_us)})")
    elif test_id in found.too_few_runs:
        said = f"too few runs to tell (under {DEFAULT_MIN_RUNS})"
    else:
        said = "not flaky"
    state = registry.state(test_id)
    if state.status or state.quarantined:
        said += f"; registry: {state.status or 'quarantined'}"
        if state.since_us is not None:
            said += f" since {_when_us(state.since_us)}"
        if state.quarantined and state.status != "quarantined":
            said += ", quarantined"
        if state.reason:
            said += f" ({state.reason})"
    return [("flaky status", said)]


def _when_us(us) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(us / 1e6, timezone.utc).strftime("%Y-%m-%d %H:%M") if us is not None else "?"


def analyses(memory: Memory, snapshot, candidates: list) -> list:
    """Analysis commits of the snapshot naming any candidate: each named candidate is pinned, and each analysis
    comes back as a candidate note of its own."""
    from com.analysis.packing import Candidate

    view = memory.analyses
    memory.follow(snapshot, [view])
    by_id: dict[str, list] = {}
    for c in candidates:
        by_id.setdefault(c.event["id"], []).append(c)
    found = []
    repo = memory.journal.repo
    tip = snapshot.commit.id
    for a in view.about(list(by_id)):
        if a["sha"] != snapshot.sha and not repo.descendant_of(tip, a["sha"]):
            continue  # written later, or on another branch
        for eid in a["about"]:
            for c in by_id.get(eid, ()):
                c.pinned = True
        first = next((by_id[e][0].event for e in a["about"] if e in by_id), None)
        event = {
            "id": f"analysis_{a['sha']}", "type": "analysis", "project": first["project"] if first else "",
            "source": "com commit", "ts": format_ts_seconds(a["time"]), "importance": ANALYSIS_IMPORTANCE,
            "tags": [], "data": {"commit": a["sha"], "message": a["message"], "about": a["about"]},
        }
        found.append(Candidate(event, pinned=True, relation="notes"))
    return found


def format_ts_seconds(seconds: int) -> str:
    from datetime import datetime, timezone

    return format_ts(datetime.fromtimestamp(seconds, timezone.utc))


def _allows(where: EventFilter, etype: str) -> bool:
    return not where.types or etype in where.types


def _names_commit(event: dict, shas: list[str]) -> bool:
    data = event.get("data") or {}
    values = [v for k in ("sha", "commit", "commits") for v in ([data.get(k)] if not isinstance(data.get(k), list)
                                                                 else data.get(k)) if isinstance(v, str) and v]
    return any(v == sha or (len(v) >= 7 and sha.startswith(v)) for v in values for sha in shas)


def _names_test(event: dict, match: TestMatch) -> bool:
    test_id = (event.get("data") or {}).get("test_id")
    return isinstance(test_id, str) and match.matches(test_id)
