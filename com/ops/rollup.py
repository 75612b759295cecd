"""Roll-ups: the facts of a day, a week or one failure pattern, computed from the test-results view and the flaky
registry at a snapshot, told as a narrative by a local text model (or by com itself), and saved as a `rollup`
event in the journal.

The facts are `com.analysis.rollup` over `ResultColumns`; the narrative is `com.analysis.narrative` (placeholders,
grammar, grounding check, retry, deterministic fallback); the model is found by `com.models.text.find_model`
(`--model`, the `llm_url` / `llm_model` settings, else the packaged default, assembled once into
`.com/cache/models/`). With `llm=False` no model is looked for and llama_cpp is never imported.

A saved roll-up is an ordinary event, so it is versioned, read with `--at`, searchable (the index embeds its
narrative) and offered to context packs by policies with `include_rollups`:

    rollup  data: kind (daily | weekly | pattern), period (its label: 2026-11-27, 2026-W48, 2026-11-01..2026-11-30),
            narrative (the text, ending with the line that says who wrote it), model (name or null),
            facts (the whole `com.rollup.facts/1` object); pattern roll-ups add pattern {by, value}
            ts: the end of the period (or now, for a period not over yet); tags: [kind]

The same roll-up of the same snapshot is the same event (its id comes from its content and time), recorded once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone

from com.memory import Memory
from com.model import registry as types
from com.model.errors import ComError, NotFound
from com.model.event import EARLIEST_US, format_ts, format_us, now_utc, ts_us, validate
from com.model.filter import EventFilter, TestMatch
from com.ops.result import Result

ROLLUP = "rollup"
SOURCE = "com"
KINDS = ("daily", "weekly", "pattern")
DEFAULT_PATTERN_DAYS = 30
ALL_PROJECTS = "all"  # the project a roll-up over several projects is recorded in
DAY_US = 86_400_000_000


@dataclass
class RollupResult(Result):
    kind: str
    period: dict                # {start, end, label, days}; end exclusive
    facts: dict                 # com.rollup.facts/1 (com/analysis/FACTS.md)
    narrative: str              # ends with the line saying which model, or that none, wrote it
    model: str | None           # the model that wrote the narrative; None: com's own fallback
    fallback_reason: str | None  # why com wrote it (no model, --no-llm, the check rejected the model's text...)
    snapshot: str | None        # the journal commit read
    saved: bool                 # the roll-up's event is in the journal (written now, or already there)
    commit: str | None          # the journal commit that saved it now (None: not saved, or already saved)
    event_id: str | None
    project: str | None
    timing: dict = field(default_factory=dict)  # seconds: facts, narrative, model load; tokens; tokens/s
    attempts: list = field(default_factory=list)  # each model attempt: its raw text and what the check found


# -- dates -------------------------------------------------------------------------------------------------
def _day(value: str, param: str) -> date:
    text = value.strip().lower()
    today = now_utc().date()
    if text == "today":
        return today
    if text == "yesterday":
        return today - timedelta(days=1)
    try:
        return date.fromisoformat(text) if len(text) == 10 else datetime.fromisoformat(
            text[:-1] + "+00:00" if text.endswith("z") else text).astimezone(timezone.utc).date()
    except ValueError:
        raise ComError(f"not a date: {value!r} (expected YYYY-MM-DD, today or yesterday)", param=param) from None


def _us(d: date) -> int:
    return ts_us(f"{d.isoformat()}T00:00:00Z")


def _newest_day(cols) -> date | None:
    if not len(cols):
        return None
    return datetime.fromtimestamp(int(cols.ts_us.max()) / 1e6, timezone.utc).date()


# -- reading ---------------------------------------------------------------------------------------------------
def _read(memory: Memory, at: str | None, project: str | None, test: str | None = None):
    """(snapshot, its result columns, the flaky registry as roll-ups read it)."""
    from com.analysis.rollup import Registry

    snapshot = memory.snapshot(at)
    memory.follow(snapshot, [memory.results, memory.registry])
    where = EventFilter.create(projects=project or (), test=TestMatch(test, "exact") if test else None)
    cols = memory.results.columns(snapshot, where)
    events = memory.registry.events(snapshot)
    if project:  # the registry's events about this project's tests
        known = set(cols.tests)
        events = [e for e in events if e["type"] == types.FLAKY_REGISTRY
                  or (e.get("data") or {}).get("test_id") in known]
    changes, attempts, detections = [], [], []
    for e in events:
        data = e.get("data") or {}
        if e["type"] == types.FLAKY_STATUS and isinstance(data.get("test_id"), str) and data.get("status"):
            changes.append({"test_id": data["test_id"], "ts_us": ts_us(e["ts"]), "status": data["status"]})
        elif e["type"] == types.HEALING_ATTEMPT and isinstance(data.get("test_id"), str) \
                and data.get("outcome") in ("success", "failure"):
            attempts.append({"test_id": data["test_id"], "ts_us": ts_us(e["ts"]), "strategy": data.get("strategy"),
                             "outcome": data["outcome"]})
        elif e["type"] == types.FLAKY_REGISTRY and (not project or data.get("project") in (None, project)):
            detections.append({"ts_us": ts_us(e["ts"]), "flaky": [f.get("test_id") for f in data.get("flaky") or ()
                                                                   if isinstance(f, dict)]})
    return snapshot, cols, Registry(changes, attempts, detections)


# -- the narrative -----------------------------------------------------------------------------------------------
def _narrative(memory: Memory, facts: dict, llm: bool, model: str | None, progress=None):
    from com.analysis import narrative

    if not llm:
        if model:
            raise ComError("a model was named, but no model was asked for", param="model")
        return narrative.write(facts, None, no_model_reason="no model was asked for"), None
    from com.models import text

    found, why = text.find_model(model, memory.cache_path / "models", url=memory.settings.get("llm_url"),
                                 configured=memory.settings.get("llm_model"))
    if found is not None and progress is not None:
        progress(f"writing the narrative with {found.name}", 0, 0)
    return narrative.write(facts, found, no_model_reason=why), found


def _timing(written, found, facts_seconds: float) -> dict:
    out = {"facts_seconds": round(facts_seconds, 3), "narrative_seconds": round(written.seconds, 3),
           "model_load_seconds": None, "attempts": len(written.attempts), "prompt_tokens": None,
           "completion_tokens": None, "tokens_per_second": None}
    if found is not None and found.load_seconds is not None:
        out["model_load_seconds"] = round(found.load_seconds, 3)
    generated = [a for a in written.attempts if a.get("completion_tokens") is not None]
    if generated:
        last = generated[-1]
        out["prompt_tokens"] = last.get("prompt_tokens")
        out["completion_tokens"] = sum(a["completion_tokens"] for a in generated)
        rates = [a["tokens_per_second"] for a in generated if a.get("tokens_per_second")]
        out["tokens_per_second"] = round(sum(rates) / len(rates), 1) if rates else None
    return out


# -- saving ------------------------------------------------------------------------------------------------------
def _event_project(memory: Memory, snapshot, project: str | None) -> str:
    if project:
        return project
    configured = memory.settings.get("project")
    if configured:
        return str(configured)
    projects = {b.project for b in snapshot.batches()} if snapshot else set()
    return projects.pop() if len(projects) == 1 else ALL_PROJECTS


def rollup_event(facts: dict, written, project: str, now_us: int | None = None) -> dict:
    """The `rollup` event of a roll-up (validated): dated at the end of its period, or now if that is later."""
    now_us = ts_us(format_ts(now_utc())) if now_us is None else now_us
    end = ts_us(facts["period"]["end"]) - 1_000_000
    data = {"kind": facts["kind"], "period": facts["period"]["label"], "narrative": written.text,
            "model": written.model, "facts": facts}
    if facts["kind"] == "pattern":
        data["pattern"] = facts["pattern"]
    return validate({"type": ROLLUP, "project": project, "source": SOURCE, "ts": format_us(min(end, now_us)),
                     "tags": [facts["kind"]], "data": data})


def _finish(memory: Memory, snapshot, facts: dict, project: str | None, at: str | None, llm: bool,
            model: str | None, save: bool, facts_seconds: float, progress=None) -> RollupResult:
    written, found = _narrative(memory, facts, llm, model, progress)
    event = rollup_event(facts, written, _event_project(memory, snapshot, project))
    saved, commit = False, None
    # A roll-up read at an earlier revision (--at) is an answer about the past, not a record of now.
    if save and at is None:
        label = facts["period"]["label"]
        what = f"{facts['kind']} {label}" if facts["kind"] != "pattern" else \
            f"pattern {facts['pattern']['by']} {facts['pattern']['value']} over {label}"
        result = memory.record([event], message=f"rollup: {what} ({written.model or 'no model'})")
        saved, commit = True, result.commit
    return RollupResult(facts["kind"], facts["period"], facts, written.text, written.model, written.fallback_reason,
                        snapshot.sha, saved, commit, event["id"], project, _timing(written, found, facts_seconds),
                        written.attempts)


# -- the three roll-ups ------------------------------------------------------------------------------------------
def daily(memory: Memory, *, day: str | None = None, project: str | None = None, at: str | None = None,
          llm: bool = True, model: str | None = None, save: bool = True, progress=None) -> RollupResult:
    """The roll-up of one UTC day (default: the day of the newest result), compared with the day before."""
    from com.analysis import rollup

    snapshot, cols, registry = _read(memory, at, project)
    when = _day(day, "day") if day else (_newest_day(cols) or now_utc().date())
    t0 = time.perf_counter()
    facts = rollup.daily_facts(cols, when, registry=registry)
    return _finish(memory, snapshot, facts, project, at, llm, model, save, time.perf_counter() - t0, progress)


def weekly(memory: Memory, *, week: str | None = None, start: str | None = None, end: str | None = None,
           project: str | None = None, at: str | None = None, llm: bool = True, model: str | None = None,
           save: bool = True, progress=None) -> RollupResult:
    """The roll-up of an ISO week (`2026-W48`; default: the week of the newest result) or of the days from
    `start` to `end` (both included; one alone means seven days), compared with as many days before, with a
    day-by-day trend and what recurred."""
    from com.analysis import rollup

    if week and (start or end):
        raise ComError("give an ISO week, or a first and last day, not both", param="week")
    snapshot, cols, registry = _read(memory, at, project)
    if week:
        try:
            first, after = rollup.iso_week(week)
        except ComError as exc:
            raise ComError(exc.message, param="week") from None
    elif start or end:
        first = _day(start, "start") if start else None
        last = _day(end, "end") if end else None
        if first is None:
            first = last - timedelta(days=6)
        after = (last if last is not None else first + timedelta(days=6)) + timedelta(days=1)
        if after <= first:
            raise ComError(f"the last day ({end}) comes before the first ({start})", param="end")
        if (after - first).days > 366:
            raise ComError("a roll-up covers a year at most", param="end")
    else:
        newest = _newest_day(cols) or now_utc().date()
        first = newest - timedelta(days=newest.weekday())
        after = first + timedelta(days=7)
    t0 = time.perf_counter()
    facts = rollup.weekly_facts(cols, first, after, registry=registry)
    return _finish(memory, snapshot, facts, project, at, llm, model, save, time.perf_counter() - t0, progress)


def pattern(memory: Memory, *, test: str | None = None, signature: str | None = None, tag: str | None = None,
            days: int = DEFAULT_PATTERN_DAYS, until: str | None = None, project: str | None = None,
            at: str | None = None, llm: bool = True, model: str | None = None, save: bool = True,
            progress=None) -> RollupResult:
    """The roll-up of one failure pattern (a test, a piece of error signature, or a tag) over the `days` days
    ending with `until` (default: the day of the newest result): occurrences, affected tests, first and last
    seen, evidence, and a root-cause hypothesis drawn from it."""
    from com.analysis import rollup

    given = [name for name, value in (("test", test), ("signature", signature), ("tag", tag)) if value]
    if len(given) != 1:
        raise ComError("give exactly one of a test id, an error signature text or a tag",
                       param=given[1] if len(given) > 1 else "test")
    if days < 1:
        raise ComError(f"must be at least 1, not {days}", param="days")
    snapshot, cols, registry = _read(memory, at, project, test=test)
    if test and test not in cols.tests and not any(c["test_id"] == test for c in registry.applied):
        raise _unknown(memory, snapshot, test)
    last = _day(until, "until") if until else None
    if last is None:
        if test:  # the newest result of any test, not only of this one: their times alone
            times = memory.results.select(snapshot, EventFilter.create(projects=project or ()), ("ts",))["ts"]
            last = datetime.fromtimestamp(int(times.max()) / 1e6, timezone.utc).date() if len(times) else None
        else:
            last = _newest_day(cols)
        last = last or now_utc().date()
    tags = None
    if tag:
        start = max(_us(last) + DAY_US - days * DAY_US, EARLIEST_US)
        where = EventFilter.create(projects=project or (), since=start)
        tags = memory.results.test_tags(snapshot, where)
    t0 = time.perf_counter()
    facts = rollup.pattern_facts(cols, until=last, days=days, test=test, signature=signature, tag=tag,
                                 test_tags=tags, registry=registry)
    return _finish(memory, snapshot, facts, project, at, llm, model, save, time.perf_counter() - t0, progress)


def _unknown(memory: Memory, snapshot, test_id: str) -> NotFound:
    import difflib

    known = list(memory.results.test_numbers(TestMatch("*", "glob")).values())
    close = difflib.get_close_matches(test_id, known, n=1, cutoff=0.8)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return NotFound(f"unknown test '{test_id}': no result of it is recorded{hint}", param="test")
