"""Context packs: score candidate events for a task, re-rank them for diversity by maximal marginal relevance, and
pack the best under a token budget, each rendered compactly; the pack as JSON and as Markdown for an LLM prompt.

Pure: the caller (the retrieve use-case) fetches the candidates (hybrid index, the test's own results, the code
commits and analyses that name them) and passes the policy; nothing here reads the journal, the index or a model.
Tokens are counted by the caller's counter (`com.models.tokens`: tiktoken's cl100k_base, offline).

How a pack is made:
1. Each candidate gets a score: the policy's weights times five parts, each from 0 to 1 and each reported --
   semantic (cosine of its text to the query), keyword (BM25 rank, or the share of query words it contains),
   importance (0-5 scaled), recency (0.5 ** (age / half-life)) and pinned (named by an analysis, or tagged).
2. Maximal marginal relevance picks the next item: relevance (score / best score) minus `diversity` times its
   highest cosine to an item already packed, so ten occurrences of one failure do not crowd out other evidence.
3. Greedy packing: the picked item is rendered (long traces cut to a few lines) and counted; if it does not fit
   the tokens left, shorter renderings are tried (fewer trace lines, a shorter message), and if none fits it is
   skipped and the next one tried -- packing never stops at the first overflow. `max_events` caps the items.
   With diversity on, a candidate whose text is the same as a packed item's (same test, type and status, cosine
   >= SAME) is another occurrence of that failure: it is folded into the item's line as a count, a time span and
   its commits ("+4 more like it: ...") instead of taking a line of its own.
The pack's Markdown is made of the same pieces that were counted, and its exact count is `tokens_used`.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, Iterable, Protocol, Sequence

import numpy as np

from com.model.errors import ComError
from com.model.event import ts_us

PARTS = ("semantic", "keyword", "importance", "recency", "pinned")
PINNED_TAG = "pinned"

MAX_TRACE_LINES = 12  # a compact item never shows more; trimming to fit shows fewer
MAX_TRACE_LINE_CHARS = 200
MAX_MESSAGE_CHARS = 400  # an error message or a data value
MIN_MESSAGE_CHARS = 60  # the shortest rendering keeps this much of the message
MAX_LIST_ITEMS = 6  # of a list value such as the files of a code change
KEYWORD_RANK_HALF = 10  # the BM25 rank whose keyword part is 0.5 (rank 1 gives 1.0)
REDUNDANT = 0.9  # "why" names the packed item an item is this close to
SAME = 0.995  # this close to a packed item of the same test and type: another occurrence, folded into that item
MAX_FOLDED_COMMITS = 3  # commits named on a folded line

# Groups of evidence, in the order the Markdown shows them.
GROUPS = ("status", "test", "similar", "code", "healing", "rollup", "notes", "other")
_TITLES = {
    "status": "Status of this test", "test": "Recent results of this test",
    "similar": "Similar failures in other tests", "code": "Related code changes",
    "healing": "Healing attempts and their outcomes", "rollup": "Summaries", "notes": "Notes and analyses",
    "other": "Other events",
}
_TITLES_NO_TEST = {"status": "Status", "similar": "Matching test results"}
_LABELS = {
    "status": "flaky status", "test": "a result of this test", "similar": "a similar result in another test",
    "code": "a related code change", "healing": "a healing attempt", "rollup": "a summary",
    "notes": "a note or analysis", "other": "an event",
}
_NEWEST_FIRST = frozenset(("status", "test", "code", "healing", "rollup"))  # timelines; the rest by rank

_MESSAGE_KEYS = ("error_message", "message", "failure_message", "error", "failure", "reason")
_TYPE_KEYS = ("error_type", "exception", "exception_type", "failure_type")
_TRACE_KEYS = ("trace", "stack_trace", "stacktrace", "traceback", "details", "stack")
_SHA_KEYS = ("commit", "sha")
# Data values shown first for events other than test results; plumbing ids are left out.
_TEXT_KEYS = ("message", "title", "summary", "narrative", "text", "description")  # said without a label
_FIRST_KEYS = ("strategy", "action", "outcome", "result", "status", "period", "kind", "files")
_HIDDEN_KEYS = frozenset(("run_id", "id", "parent", "batch", "duration_ms", "line"))
_WORD = re.compile(r"\w+(?:[-.]\w+)*")
_STOP = frozenset("a an and are as at be but by for from has have in is it its not of on or that the this to was "
                  "were will with after before while when".split())


class PackPolicy(Protocol):
    """What packing reads of a policy (com.policies.Policy has it all)."""

    id: str
    task: str
    weights: object  # semantic, keyword, importance, recency, diversity, pinned: floats
    recency_half_life_days: float
    budget_tokens: int
    max_events: int
    include_rollups: bool


@dataclass
class Candidate:
    """An event that may go into a pack, with what the retrieval knows about it."""

    event: dict
    similarity: float | None = None  # cosine of the event's text to the query (the index knows it)
    keyword_rank: int | None = None  # 1-based BM25 rank of the event's text for the query
    vector: np.ndarray | None = None  # the unit vector of the event's text, for MMR
    pinned: bool = False  # named by an analysis commit (com commit --event) or pinned by the caller
    relation: str | None = None  # the group it was fetched for (one of GROUPS), when the caller knows better


@dataclass
class PackItem:
    event: dict
    score: float  # the weighted sum of the parts
    parts: dict  # part -> its value from 0 to 1 (before weights)
    contributions: dict  # part -> weight * value
    rank: int  # 1 = packed first
    relevance: float  # score / best score
    redundancy: float  # highest cosine to an item packed before it
    similar_to: str | None  # that item's id, when the cosine is at least REDUNDANT
    group: str
    text: str  # the rendering that was counted, ending in a newline
    tokens: int
    trimmed: bool
    age_days: float
    relation: str | None = None
    because: str = ""
    also: list[dict] = field(default_factory=list)  # other occurrences of the same failure, folded into its line
    trim: dict = field(default_factory=dict)  # the render options it was trimmed to ({} when whole)

    def why(self, diversity: float) -> dict:
        return {
            **{k: round(v, 4) for k, v in self.contributions.items()},
            "parts": {k: round(v, 4) for k, v in self.parts.items()},
            "diversity_penalty": round(diversity * self.redundancy, 4),
            "redundancy": round(self.redundancy, 4),
            "similar_to": self.similar_to,
            "rank": self.rank,
            "group": self.group,
            "relation": self.relation,
            "age_days": round(self.age_days, 3),
            "trimmed": self.trimmed,
            "occurrences": 1 + len(self.also),
            "because": self.because,
        }


@dataclass
class Skipped:
    id: str
    reason: str  # "filtered", "rollups", "budget", "max_events"
    # For "budget": the tokens it needed at the least (its shortest rendering and its group's heading, or what
    # folding it into a packed item's line would have added), more than were left.
    needed: int | None = None


@dataclass
class Pack:
    policy: str
    task: str
    budget: int
    tokens_used: int
    items: list[PackItem]
    diversity: float
    test: str | None = None
    query: str | None = None
    since: str | None = None  # the time window the evidence was drawn from
    until: str | None = None
    facts: list[tuple[str, str]] = field(default_factory=list)
    considered: int = 0  # distinct candidates
    skipped: list[Skipped] = field(default_factory=list)
    encoding: str | None = None  # the token counter's encoding (com.models.tokens: cl100k_base)
    at: str | None = None  # the journal commit the evidence was read at

    def to_json(self) -> dict:
        counts: dict[str, int] = {}
        for s in self.skipped:
            counts[s.reason] = counts.get(s.reason, 0) + 1
        return {
            "policy": self.policy,
            "task": self.task,
            "budget": self.budget,
            "tokens_used": self.tokens_used,
            "encoding": self.encoding,
            "at": self.at,
            "test": self.test,
            "query": self.query,
            "window": {"since": self.since, "until": self.until},
            "facts": [{"name": k, "value": v} for k, v in self.facts],
            "considered": self.considered,
            "skipped": counts,
            "items": [
                {"event": it.event, "score": round(it.score, 4), "why": it.why(self.diversity), "tokens": it.tokens,
                 "text": it.text, "also": [e["id"] for e in it.also]}
                for it in self.items
            ],
        }

    def to_markdown(self) -> str:
        return to_markdown(self.to_json())


# -- scoring -----------------------------------------------------------------------------------------------------
def parse_ts(value) -> float:
    """Seconds since the epoch of an event time (ISO text, naive meaning UTC), a datetime or a number."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, datetime):
        return (value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)).timestamp()
    return ts_us(str(value).strip()) / 1e6  # the one parser of stored times (cached per text)


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class QueryTerms(frozenset):
    """The words of a query that count for the keyword part (stop words and single letters left out), with one
    pattern that finds them in an event's text: a term counts where it is not glued to other letters or digits
    (`checkout` is in `tests/test_checkout.py`, `time` is not in `timeout`)."""

    pattern: re.Pattern | None = None


def query_terms(query: str | None) -> QueryTerms:
    terms = QueryTerms(w for w in _WORD.findall((query or "").lower()) if len(w) > 1 and w not in _STOP)
    if terms:
        alternatives = "|".join(re.escape(t) for t in sorted(terms, key=len, reverse=True))
        terms.pattern = re.compile(rf"(?<![a-z0-9])(?:{alternatives})(?![a-z0-9])")
    return terms


def _event_text(event: dict) -> str:
    data = event.get("data") or {}
    parts = [value[:2000] for value in data.values() if isinstance(value, str)]
    parts.extend(event.get("tags") or ())
    return "\n".join(parts).lower()


def keyword_part(candidate: Candidate, terms: frozenset[str]) -> float:
    """1 for the best BM25 rank, 0.5 at rank KEYWORD_RANK_HALF; without a rank, the share of the query's words
    the event contains (the test's own results and other evidence do not come from the keyword index)."""
    if candidate.keyword_rank is not None and candidate.keyword_rank >= 1:
        return (KEYWORD_RANK_HALF - 1) / (KEYWORD_RANK_HALF - 2 + candidate.keyword_rank)
    if not terms:
        return 0.0
    if not isinstance(terms, QueryTerms) or terms.pattern is None:
        terms = query_terms(" ".join(terms))
    text = _event_text(candidate.event)
    found = _found_memo.get((terms.pattern, text))
    if found is None:
        found = len(set(terms.pattern.findall(text))) / len(terms)
        if len(_found_memo) > 10_000:
            _found_memo.clear()
        _found_memo[(terms.pattern, text)] = found  # failures repeat a few messages
    return found


_found_memo: dict = {}


def score_parts(candidate: Candidate, *, now: float, half_life_days: float, terms: frozenset[str] = QueryTerms(),
                query_vector: np.ndarray | None = None) -> dict:
    """The five parts of a candidate's score, each from 0 to 1."""
    event = candidate.event
    sim = candidate.similarity
    if sim is None and query_vector is not None and candidate.vector is not None:
        sim = float(np.dot(candidate.vector, query_vector))
    age_days = max(0.0, now - parse_ts(event["ts"])) / 86400.0
    return {
        "semantic": min(1.0, max(0.0, float(sim))) if sim is not None else 0.0,
        "keyword": keyword_part(candidate, terms),
        "importance": min(1.0, max(0.0, float(event.get("importance", 0.0)) / 5.0)),
        "recency": 0.5 ** (age_days / half_life_days),
        "pinned": 1.0 if is_pinned(candidate) else 0.0,
    }


def is_pinned(candidate: Candidate) -> bool:
    return candidate.pinned or PINNED_TAG in (candidate.event.get("tags") or ())


def weighted(parts: dict, weights) -> dict:
    return {k: getattr(weights, k) * parts[k] for k in PARTS}


# -- rendering one item ------------------------------------------------------------------------------------------
def group_of(candidate: Candidate, test: str | None) -> str:
    if candidate.relation in GROUPS:
        return candidate.relation
    event = candidate.event
    etype = event["type"]
    if etype == "test_result":
        return "test" if test is not None and (event.get("data") or {}).get("test_id") == test else "similar"
    if etype == "code_change":
        return "code"
    if etype.startswith("heal"):
        return "healing"
    if etype.startswith("flaky"):
        return "status"
    if etype == "rollup":
        return "rollup"
    if etype in ("note", "analysis", "comment"):
        return "notes"
    return "other"


def _one_line(value, limit: int) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[: max(1, limit - 1)].rstrip() + "…"


def _code(text: str) -> str:
    return "`" + _one_line(text, 300).replace("`", "'") + "`"


def _first(data: dict, keys) -> tuple[str | None, str]:
    for key in keys:
        value = data.get(key)
        if isinstance(value, str) and value.strip():
            return key, value.strip()
    return None, ""


def _when(ts: str) -> str:
    return ts[:16].replace("T", " ")


def _trace_lines(trace: str) -> list[str]:
    return [line.rstrip()[:MAX_TRACE_LINE_CHARS] for line in trace[:20000].splitlines() if line.strip()]


def _ends_with_the_error(lines: list[str]) -> bool:
    """Python tracebacks and pytest's reports end with the error (Java, JS, Go and .NET traces start with it)."""
    return lines[0].startswith("Traceback") or any(line.startswith(("E   ", "E\t")) for line in lines)


def _trace_block(lines: list[str], keep: int) -> list[str]:
    """At most `keep` lines of a trace: the last lines of a Python traceback or a pytest report (the failing frame,
    the `E` lines, the location), the first lines of other traces; a marker says how many were left out."""
    if keep <= 0 or not lines:
        return []
    tail = _ends_with_the_error(lines)
    if len(lines) <= keep:
        shown, marker = lines, None
    elif tail:
        shown = lines[-keep:]
        if len(shown) > 1 and not shown[0].lstrip().startswith("File ") and lines[-keep - 1].lstrip().startswith("File "):
            shown = shown[1:]  # start at a frame, not at the source line of a frame left out
        marker = f"… {len(lines) - len(shown)} line(s) above"
    else:
        shown, marker = lines[:keep], f"… {len(lines) - keep} more line(s)"
    body = [marker, *shown] if marker and tail else [*shown, *([marker] if marker else [])]
    fence = "~~~" if any("```" in line for line in body) else "```"
    return [f"  {fence}", *(f"  {line}" for line in body), f"  {fence}"]


def _value(value, limit: int) -> str:
    if isinstance(value, list):
        items = [_one_line(v if not isinstance(v, (dict, list)) else json.dumps(v, ensure_ascii=False), limit)
                 for v in value[:MAX_LIST_ITEMS]]
        more = f" (+{len(value) - MAX_LIST_ITEMS} more)" if len(value) > MAX_LIST_ITEMS else ""
        return ", ".join(items) + more
    if isinstance(value, dict):
        return _one_line(json.dumps(value, ensure_ascii=False, sort_keys=True), limit)
    return _one_line(value, limit)


def _folded(event: dict, also: Sequence[dict]) -> str:
    """What a line says of the other occurrences folded into it: how many, when, on which commits."""
    if not also:
        return ""
    times = sorted(e["ts"] for e in also)
    span = _when(times[0]) if len(times) == 1 else f"{_when(times[0])} to {_when(times[-1])}"
    text = f" (+{len(also)} more like it: {span}"
    own = (event.get("data") or {}).get("commit")
    commits = list(dict.fromkeys(c[:10] for e in also for c in [(e.get("data") or {}).get("commit")]
                                 if isinstance(c, str) and c and c != own))
    if commits:
        more = f" +{len(commits) - MAX_FOLDED_COMMITS}" if len(commits) > MAX_FOLDED_COMMITS else ""
        text += f"; commits {', '.join(commits[:MAX_FOLDED_COMMITS])}{more}"
    return text + ")"


def _duration(ms: float) -> str:
    return f"{ms:.0f} ms" if ms < 1000 else f"{ms / 1000:.1f} s"


def render_item(event: dict, group: str, *, test: str | None = None, show_project: bool = False,
                trace_lines: int = MAX_TRACE_LINES, message_chars: int = MAX_MESSAGE_CHARS,
                also: Sequence[dict] = ()) -> str:
    """One item of a pack as Markdown: one list line, plus a short trace block for a failure; `also` are other
    occurrences of the same failure, folded into the line as a count, a time span and their commits.
    Ends in a newline."""
    data = event.get("data") or {}
    when = _when(event["ts"])
    project = f" [{event['project']}]" if show_project else ""
    if event["type"] == "test_result":
        status = data.get("status", "?")
        test_id = data.get("test_id") or data.get("name")
        who = "" if (group == "test" and test_id == test) or not test_id else " " + _code(test_id)
        details = []
        if data.get("run_id"):
            details.append(f"run {_one_line(data['run_id'], 40)}")
        if isinstance(data.get("commit"), str) and data["commit"]:
            details.append(f"commit {data['commit'][:10]}")
        duration = data.get("duration_ms")
        if isinstance(duration, (int, float)) and not isinstance(duration, bool) and math.isfinite(duration):
            details.append(_duration(duration))
        if isinstance(data.get("attempt"), int) and data["attempt"] > 1:
            details.append(f"attempt {data['attempt']}")
        tags = [t for t in event.get("tags") or () if t != PINNED_TAG]
        if tags:
            details.append("tags: " + ", ".join(tags))
        line = f"- {when} {status}{who}{project}" + (f" ({', '.join(details)})" if details else "")
        _, error_type = _first(data, _TYPE_KEYS)
        _, message = _first(data, _MESSAGE_KEYS)
        if error_type and not message.startswith(error_type):
            message = f"{error_type}: {message}" if message else error_type
        if message:
            line += ": " + _one_line(message, message_chars)
        line += _folded(event, also)
        _, trace = _first(data, _TRACE_KEYS)
        block = _trace_block(_trace_lines(trace), trace_lines) if trace else []
        return "\n".join([line, *block]) + "\n"
    kind = event["type"].replace("_", " ")
    head = f"- {when} {kind}{project}"
    fields = []
    sha_key, sha = _first(data, _SHA_KEYS)
    if sha:
        head += f" {sha[:10]}"
    if isinstance(data.get("test_id"), str) and data["test_id"]:
        head += " " + _code(data["test_id"])
    author_key, author = _first(data, ("author",))
    if author:
        head += f" by {_one_line(author, 60)}"
    text_key, text = _first(data, _TEXT_KEYS)
    if text:
        fields.append(_one_line(text, message_chars))
    keys = [k for k in _FIRST_KEYS if k in data] + sorted(k for k in data if k not in _FIRST_KEYS)
    for key in keys:
        value = data[key]
        if key in _HIDDEN_KEYS or key in (sha_key, author_key, text_key, "test_id") or value in (None, "", []):
            continue
        if key in _TRACE_KEYS and isinstance(value, str):
            fields.append(f"{key}: {_one_line(value, message_chars)}")
        else:
            fields.append(f"{key.replace('_', ' ')}: {_value(value, message_chars)}")
    tags = [t for t in event.get("tags") or () if t != PINNED_TAG]
    if tags:
        fields.append("tags: " + ", ".join(tags))
    return head + (": " + "; ".join(fields) if fields else "") + _folded(event, also) + "\n"


def _fit(event: dict, group: str, room: int, count: Callable[[str], int], **opts) -> tuple[str | None, int, dict, int]:
    """The fullest rendering of `event` within `room` tokens: (text or None, its tokens, the trim it took -- {} when
    whole, else trace_lines and message_chars --, the tokens of its shortest rendering). Fewer trace lines first,
    then a shorter message."""
    full = render_item(event, group, **opts)
    n = count(full)
    if n <= room:
        return full, n, {}, n
    data = event.get("data") or {}
    _, trace = _first(data, _TRACE_KEYS) if event["type"] == "test_result" else (None, "")
    have = min(len(_trace_lines(trace)), MAX_TRACE_LINES) if trace else 0

    def render(lines, chars):
        text = render_item(event, group, trace_lines=lines, message_chars=chars, **opts)
        return text, count(text), {"trace_lines": lines, "message_chars": chars}

    shortest = render(0, MIN_MESSAGE_CHARS)
    if shortest[1] > room:
        return None, 0, {}, shortest[1]
    best = None
    # Most trace lines that fit with the whole message (token counts grow with lines: binary search).
    lo, hi = 0, have - 1
    while lo <= hi:
        mid = (lo + hi) // 2
        tried = render(mid, MAX_MESSAGE_CHARS)
        if tried[1] <= room:
            best, lo = tried, mid + 1
        else:
            hi = mid - 1
    if best is None:  # not even the message whole: the longest message that fits
        best = shortest
        lo, hi = MIN_MESSAGE_CHARS + 1, MAX_MESSAGE_CHARS - 1
        while lo <= hi:
            mid = (lo + hi) // 2
            tried = render(0, mid)
            if tried[1] <= room:
                best, lo = tried, mid + 1
            else:
                hi = mid - 1
    return best[0], best[1], best[2], shortest[1]


# -- the pack as Markdown ----------------------------------------------------------------------------------------
def _title(group: str, test: str | None) -> str:
    return (_TITLES_NO_TEST.get(group) if test is None else None) or _TITLES[group]


def heading(group: str, test: str | None) -> str:
    return f"## {_title(group, test)}\n"


def header(policy: str, task: str, test: str | None, query: str | None, since: str | None, until: str | None) -> str:
    """The pack's first lines: what it is for, about what, over which time window. Ends in a blank line."""
    task_words = task.replace("_", " ")
    about = []
    if test:
        about.append(f"test {_code(test)}")
    if query:
        about.append(f"query “{_one_line(query, 200)}”")
    window = f"events from {_when(since)} to {_when(until)} UTC" if since and until else (
        f"events up to {_when(until)} UTC" if until else "")
    if window:
        about.append(window)
    meta = f"Policy {policy}" + (" · " + " · ".join(about) if about else "")
    return f"# Context pack: {task_words}\n{meta}\n\n"


def facts_section(facts: Sequence[tuple[str, str]], test: str | None) -> str:
    if not facts:
        return ""
    return heading("status", test) + "".join(f"- {_one_line(k, 80)}: {_one_line(v, 400)}\n" for k, v in facts)


EMPTY = "No events matched this policy and these filters.\n"


def _ordered(items: list[dict]) -> list[dict]:
    out = []
    for group in GROUPS:
        members = [it for it in items if it["why"]["group"] == group]
        if group in _NEWEST_FIRST:
            members.sort(key=lambda it: (it["event"]["ts"], -it["why"]["rank"]), reverse=True)
        else:
            members.sort(key=lambda it: it["why"]["rank"])
        out.extend(members)
    return out


def to_markdown(pack: dict) -> str:
    """The pack (its to_json() form, so any front end renders it alike) for an LLM prompt: a short header, then
    the evidence grouped (status, this test's results, similar failures elsewhere, code changes, healing attempts,
    summaries, notes), each item as it was counted."""
    window = pack.get("window") or {}
    facts = [(f["name"], f["value"]) for f in pack.get("facts") or ()]
    parts = [header(pack["policy"], pack["task"], pack.get("test"), pack.get("query"), window.get("since"),
                    window.get("until")),
             facts_section(facts, pack.get("test"))]
    group = None
    status_open = bool(facts)
    for item in _ordered(pack["items"]):
        if item["why"]["group"] != group:
            group = item["why"]["group"]
            if not (group == "status" and status_open):
                parts.append(heading(group, pack.get("test")))
        parts.append(item["text"])
    if not pack["items"]:
        parts.append(EMPTY)
    return "".join(parts)


# -- packing -----------------------------------------------------------------------------------------------------
def _merge(candidates: Iterable[Candidate]) -> list[Candidate]:
    """One candidate per event id: the best similarity and keyword rank, pinned if any copy is."""
    by_id: dict[str, Candidate] = {}
    for c in candidates:
        have = by_id.get(c.event["id"])
        if have is None:
            by_id[c.event["id"]] = Candidate(c.event, c.similarity, c.keyword_rank, c.vector, c.pinned, c.relation)
            continue
        if c.similarity is not None and (have.similarity is None or c.similarity > have.similarity):
            have.similarity = c.similarity
        if c.keyword_rank is not None and (have.keyword_rank is None or c.keyword_rank < have.keyword_rank):
            have.keyword_rank = c.keyword_rank
        if have.vector is None:
            have.vector = c.vector
        have.pinned = have.pinned or c.pinned
        have.relation = have.relation or c.relation
    return list(by_id.values())


def _same_failure(item: PackItem, event: dict, group: str) -> bool:
    """Whether `event` (as close as SAME to `item`) is another occurrence of it: same type, test and status."""
    a, b = item.event.get("data") or {}, event.get("data") or {}
    return (item.group == group and item.event["type"] == event["type"] and a.get("test_id") == b.get("test_id")
            and a.get("status") == b.get("status"))


def _because(group_label: str, parts: dict, contributions: dict, age_days: float, event: dict, trimmed: bool,
             similar_to: str | None) -> str:
    said = {
        "semantic": f"similarity {parts['semantic']:.2f}",
        "keyword": f"keyword match {parts['keyword']:.2f}",
        "importance": f"importance {float(event.get('importance', 0.0)):g}",
        "recency": f"{age_days:.1f} days old",
        "pinned": "pinned",
    }
    top = [k for k, v in sorted(contributions.items(), key=lambda kv: -kv[1]) if v > 0][:3]
    text = group_label + (", " + ", ".join(said[k] for k in top) if top else "")
    if trimmed:
        text += ", trimmed to fit"
    if similar_to:
        text += f", close to {similar_to}"
    return text


def pack(candidates: Iterable[Candidate], policy: PackPolicy, *, test: str | None = None, query: str | None = None,
         query_vector: np.ndarray | None = None, budget: int | None = None, now=None, since=None,
         facts: Sequence[tuple[str, str]] | dict = (), accept: Callable[[dict], bool] | None = None,
         counter: Callable[[str], int], keywords: str | None = None, at: str | None = None) -> Pack:
    """The context pack of `candidates` under `policy`.

    test, query: what the pack is about (the header; `test` decides the "this test" group; the query's words give
    the keyword part of candidates without a BM25 rank). query_vector: the query's unit vector, for candidates
    with a vector but no similarity. budget: overrides the policy's budget_tokens for this call. now: the time
    recency is measured from (the snapshot's time; default: the newest candidate). since: the start of the time
    window shown (default: the oldest candidate). facts: (name, value) lines about the test (flaky status, last
    pass), always shown first. accept: the EventFilter's matches(event), when the caller did not filter already.
    counter: counts tokens (`com.models.tokens.count_tokens`: cl100k_base, offline; its `encoding` attribute is
    reported). keywords: the text whose words give the keyword
    part (default: the query; the retrieve use-case passes the test's failure when there is no query). at: the
    journal commit the candidates were read at, reported as is."""
    count = counter
    budget = int(budget if budget is not None else policy.budget_tokens)
    weights = policy.weights
    diversity = float(weights.diversity)
    facts = list(facts.items()) if isinstance(facts, dict) else [tuple(f) for f in facts]
    facts = [(str(k), str(v)) for k, v in facts]
    merged = _merge(candidates)
    skipped: list[Skipped] = []
    eligible: list[Candidate] = []
    for c in merged:
        if accept is not None and not accept(c.event):
            skipped.append(Skipped(c.event["id"], "filtered"))
        elif c.event["type"] == "rollup" and not policy.include_rollups:
            skipped.append(Skipped(c.event["id"], "rollups"))
        else:
            eligible.append(c)

    times = [parse_ts(c.event["ts"]) for c in eligible]
    now_s = parse_ts(now) if now is not None else (max(times) if times else None)
    since_s = parse_ts(since) if since is not None else (min(times) if times else None)
    until = _iso(now_s) if now_s is not None else None
    since_iso = _iso(since_s) if since_s is not None else None

    title = header(policy.id, policy.task, test, query, since_iso, until)
    empty = count(EMPTY)
    head_tokens = count(title)
    if head_tokens + empty > budget:
        raise ComError(f"a budget of {budget} tokens cannot hold even the pack's header ({head_tokens} tokens)",
                       param="budget")
    # Facts come first, most telling first, each while it fits (a small budget keeps the first few).
    shown: list[tuple[str, str]] = []
    for fact in facts:
        tried = count(title + facts_section([*shown, fact], test))
        if tried + empty <= budget:
            shown.append(fact)
            head_tokens = tried
        else:
            skipped.append(Skipped(f"fact:{fact[0]}", "budget", tried - head_tokens))
    facts = shown

    terms = query_terms(keywords if keywords is not None else query)
    half_life = float(policy.recency_half_life_days)
    n = len(eligible)
    parts = [score_parts(c, now=now_s, half_life_days=half_life, terms=terms, query_vector=query_vector)
             for c in eligible]
    contributions = [weighted(p, weights) for p in parts]
    scores = np.array([sum(c.values()) for c in contributions], dtype=np.float64)
    best = float(scores.max()) if n else 0.0
    relevance = scores / best if best > 0 else np.zeros(n)

    # Unit vectors for MMR; a candidate without one is redundant with nothing.
    dim = next((len(c.vector) for c in eligible if c.vector is not None), 0)
    vectors = np.zeros((n, dim), dtype=np.float32)
    with_vector = [i for i, c in enumerate(eligible) if c.vector is not None]
    if with_vector:
        vectors[with_vector] = np.stack([np.asarray(eligible[i].vector, dtype=np.float32) for i in with_vector])
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        vectors = np.divide(vectors, norms, out=vectors, where=norms > 0)
    redundancy = np.zeros(n, dtype=np.float64)
    nearest = np.full(n, -1, dtype=np.int64)
    # Ties: higher score, then newer, then id -- the same pack every time.
    score_list = scores.tolist()
    tiebreak = sorted(range(n), key=lambda i: (-score_list[i], -times[i], eligible[i].event["id"]))
    order_key = np.empty(n, dtype=np.int64)
    order_key[tiebreak] = np.arange(n)

    show_project = len({c.event["project"] for c in eligible}) > 1
    open_groups = {"status"} if facts else set()
    heading_tokens: dict[str, int] = {}
    remaining = np.ones(n, dtype=bool)
    room = budget - head_tokens
    items: list[PackItem] = []
    item_of: dict[int, PackItem] = {}  # candidate index -> its item
    while remaining.any():
        if len(items) >= policy.max_events:
            skipped.extend(Skipped(eligible[i].event["id"], "max_events") for i in np.flatnonzero(remaining))
            break
        mmr = relevance - diversity * redundancy
        mmr = np.where(remaining, mmr, -np.inf)
        top = float(mmr.max())
        ties = np.flatnonzero(mmr >= top - 1e-12)
        i = int(ties[np.argmin(order_key[ties])])
        remaining[i] = False
        c = eligible[i]
        group = group_of(c, test)
        packed = item_of.get(int(nearest[i])) if redundancy[i] >= SAME else None
        if diversity > 0 and packed is not None and _same_failure(packed, c.event, group):
            # Another occurrence of a packed failure: a count, a time span and commits on that item's line.
            text = render_item(packed.event, packed.group, test=test, show_project=show_project,
                               also=[*packed.also, c.event], **packed.trim)
            delta = count(text) - packed.tokens
            if delta > room:
                skipped.append(Skipped(c.event["id"], "budget", delta))
                continue
            room -= delta
            packed.also.append(c.event)
            packed.text, packed.tokens = text, packed.tokens + delta
            continue
        if group in open_groups:
            cost = 0
        else:
            cost = heading_tokens.setdefault(group, count(heading(group, test)))
        text, tokens, trim, shortest = _fit(c.event, group, room - cost, count, test=test, show_project=show_project)
        if text is None:
            skipped.append(Skipped(c.event["id"], "budget", shortest + cost))
            continue
        room -= tokens + cost
        open_groups.add(group)
        age_days = max(0.0, now_s - times[i]) / 86400.0
        similar_to = eligible[int(nearest[i])].event["id"] if redundancy[i] >= REDUNDANT and nearest[i] >= 0 else None
        item_of[i] = PackItem(
            event=c.event, score=float(scores[i]), parts=parts[i], contributions=contributions[i],
            rank=len(items) + 1, relevance=float(relevance[i]), redundancy=float(redundancy[i]), similar_to=similar_to,
            group=group, text=text, tokens=tokens, trimmed=bool(trim), age_days=age_days, relation=c.relation,
            because=_because(_LABELS[group] if group != "other" else f"an event of type {c.event['type']}",
                             parts[i], contributions[i], age_days, c.event, bool(trim), similar_to),
            trim=trim,
        )
        items.append(item_of[i])
        if dim and c.vector is not None:
            sims = vectors @ vectors[i]
            closer = sims > redundancy
            nearest[closer] = i
            redundancy = np.maximum(redundancy, sims)

    # The Markdown is these pieces end to end, and its tokens are their sum: each piece ends in a newline and the
    # next starts with a visible character, and cl100k's pre-tokeniser never joins a newline to a following
    # visible character, so no token spans two pieces (tests/test_packing.py counts whole packs to check).
    used = budget - room + (0 if items else count(EMPTY))
    return Pack(policy=policy.id, task=policy.task, budget=budget, tokens_used=used, items=items,
                diversity=diversity, test=test, query=query, since=since_iso, until=until, facts=facts,
                considered=len(merged), skipped=skipped, at=at, encoding=getattr(counter, "encoding", None))
