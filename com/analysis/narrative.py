"""The narrative of a roll-up, written from its facts by a small local model that is not allowed to invent.

A free prompt makes a 135M-270M model invent run counts, dates and pass rates. So the model never sees a
number or a test id: each is a placeholder (`{runs}`, `{pass_rate}`, `{new_failure_1}` ...) that com fills
in from the facts afterwards. The prompt shows the facts block (placeholders and qualitative words only)
and two summaries com composed for exactly these facts in different wordings; the model writes a third.
A llama.cpp grammar lets it write only this roll-up's placeholders and the words of the prompt: no digit,
no raw test id, no cause or comparison nobody stated. Then the checks:
- grounding (`check`, on the filled text): a number, date, id or test id that is not in the facts, or a
  claim the facts refute ("no new failures" on a day with some, the pass rate "rose" when it fell);
- placement (`check_usage`, on the model's own text, for grammar-bound models): each placeholder between
  words com itself puts around it ("{runs} failed" would be a true number under a false claim), and no
  sentence said twice.
A rejected narrative is retried once with other wordings, then com's deterministic fallback is used.
The fallback (no model, the model failed, nothing happened, or --no-llm) says that no model was used;
every narrative ends with a line saying which model (or none) wrote it.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

from com.model.errors import ComError

MAX_TOKENS = 160
MAX_SENTENCES = 7
ITEMS = 3  # test ids per list offered to the model


# -- how values read -------------------------------------------------------------------------------
def _n(n: int) -> str:
    return f"{n:,}"


def _count(n: int, one: str, many: str, zero: str | None = None) -> str:
    if n == 0:
        return zero if zero is not None else f"no {many}"
    return f"1 {one}" if n == 1 else f"{_n(n)} {many}"


def _pct(rate: float) -> str:
    return f"{rate * 100:.1f}%"


def _ms(ms: float) -> str:
    return f"{ms:.0f} ms" if ms < 1000 else f"{ms / 1000:.1f} s"


def _pass_rate_change(f: dict, before: str) -> tuple[str | None, str]:
    """(the slot text, a qualitative word for the facts block)."""
    prev = f["previous"]["pass_rate"]
    change = f.get("pass_rate_change_pts")
    if f["pass_rate"] is None:
        return None, ""
    if prev is None or change is None:
        return f"with no runs {before} to compare", "no comparison"
    if change > 0:
        return f"up {change:.1f} points from {_pct(prev)} {before}", "better"
    if change < 0:
        return f"down {-change:.1f} points from {_pct(prev)} {before}", "worse"
    return f"the same as {before}", "unchanged"


@dataclass
class Slots:
    """Placeholder name -> text com fills in, and the facts block the model reads (placeholders only)."""

    values: dict = field(default_factory=dict)
    lines: list = field(default_factory=list)

    def add(self, name: str, text: str) -> str:
        self.values[name] = text
        return "{" + name + "}"


def _test_list(s: Slots, prefix: str, items: list[dict], with_error: bool = False) -> str:
    names = []
    for i, item in enumerate(items[:ITEMS], 1):
        ref = s.add(f"{prefix}_{i}", item["test_id"])
        if with_error and item.get("signature"):
            ref += " (" + s.add(f"{prefix}_{i}_error", item["signature"]) + ")"
        names.append(ref)
    return ", ".join(names)


def _period_slots(f: dict, s: Slots, unit: str) -> None:
    """The lines shared by daily and weekly facts."""
    before = "the day before" if unit == "day" else "the week before" if f["period"]["days"] == 7 else "the period before"
    res = f["results"]
    s.lines.append(f"{'Day' if unit == 'day' else 'Period'}: " + s.add("period", f["period"]["label"]))
    if f["runs"] == 0:
        s.lines.append("Activity: no test runs were recorded.")
        return
    s.lines.append("Activity: " + s.add("runs", _count(f["runs"], "CI run", "CI runs")) + " on "
                   + s.add("commits", _count(f["commits"], "code commit", "code commits")) + " recorded "
                   + s.add("results", _count(res["total"], "test result", "test results")) + " ("
                   + s.add("breakdown", ", ".join(
                       f"{_n(res[k])} {label if res[k] != 1 or k != 'error' else 'error'}"
                       for k, label in (("passed", "passed"), ("failed", "failed"), ("error", "errors"),
                                        ("skipped", "skipped"), ("xfailed", "xfailed"), ("xpassed", "xpassed"))
                       if res[k] or k == "passed")) + ").")
    change, word = _pass_rate_change(f, before)
    if f["pass_rate"] is not None:
        s.lines.append("Pass rate: " + s.add("pass_rate", _pct(f["pass_rate"])) + ", "
                       + s.add("pass_rate_change", change) + f" ({word}).")
    nf = f["new_failures"]
    if nf["count"]:
        s.lines.append("New failures: " + s.add("new_failures", _count(nf["count"], "new failure", "new failures"))
                       + ": " + _test_list(s, "new_failure", nf["items"], with_error=True) + ".")
    else:
        s.lines.append("New failures: none.")
    st = f["still_failing"]
    if st["count"]:
        s.lines.append("Still failing from before: " + s.add(
            "still_failing", _count(st["count"], "test", "tests")) + ": " + _test_list(s, "still_failing", st["items"]) + ".")
    fx = f["fixed"]
    if fx["count"]:
        s.lines.append("Fixed: " + s.add("fixed", _count(fx["count"], "test", "tests")) + " passing again: "
                       + _test_list(s, "fixed", fx["items"]) + ".")
    else:
        s.lines.append("Fixed: none.")
    fl = f["flaky_failures"]
    if fl["count"]:
        s.lines.append("Flaky (failed, but also passed on the same code): " + s.add(
            "flaky", _count(fl["count"], "flaky test", "flaky tests")) + ": " + _test_list(s, "flaky", fl["items"]) + ".")
    if f["top_signatures"]:
        top = f["top_signatures"][0]
        s.lines.append("Most common error: " + s.add("top_error", top["signature"]) + ", "
                       + s.add("top_error_count", _count(top["count"], "time", "times")) + ".")
    if f["slowest"]:
        slow = f["slowest"][0]
        s.lines.append("Slowest test: " + s.add("slowest", slow["test_id"]) + ", "
                       + s.add("slowest_time", _ms(slow["median_ms"])) + " (median).")
    if f["duration_regressions"]:
        reg = f["duration_regressions"][0]
        s.lines.append("Slower than the week before: " + s.add("slower", reg["test_id"]) + ", " + s.add(
            "slower_change", f"{reg['ratio']:.2f} times slower ({_ms(reg['median_ms'])} against "
                             f"{_ms(reg['baseline_median_ms'])})") + ".")
    h = f["healing"]
    if h["attempts"]:
        s.lines.append("Healing: " + s.add("healing", _count(h["attempts"], "healing attempt", "healing attempts")
                                           + ", " + _count(h["succeeded"], "success", "successes", "none successful"))
                       + ".")
    reg = f["registry"]
    if reg["became_flaky"]["count"]:
        s.lines.append("Flaky registry: " + s.add("became_flaky", _count(
            reg["became_flaky"]["count"], "test", "tests")) + " newly marked flaky.")
    if reg["healed"]["count"]:
        s.lines.append("Flaky registry: " + s.add("healed", _count(reg["healed"]["count"], "test", "tests"))
                       + " marked healed.")


def _weekly_slots(f: dict, s: Slots) -> None:
    days = [d for d in f["trend"] if d["pass_rate"] is not None]
    if len(days) >= 2:
        worst = min(days, key=lambda d: (d["pass_rate"], d["date"]))
        best = max(days, key=lambda d: (d["pass_rate"], d["date"]))
        s.lines.append("Worst day: " + s.add("worst_day", f"{worst['date']} ({_pct(worst['pass_rate'])})")
                       + "; best day: " + s.add("best_day", f"{best['date']} ({_pct(best['pass_rate'])})") + ".")
    rec = f["recurring"]
    if rec["signatures"]:
        r = rec["signatures"][0]
        s.lines.append("Recurring error: " + s.add("recurring_error", r["signature"]) + ", on "
                       + s.add("recurring_error_days", _count(r["days"], "day", "days")) + ".")
    if rec["tests"]["count"]:
        t = rec["tests"]["items"][0]
        s.lines.append("Failing on several days: " + s.add(
            "recurring_tests", _count(rec["tests"]["count"], "test", "tests")) + ", most often "
            + s.add("recurring_test", t["test_id"]) + " on " + s.add("recurring_test_days", _count(t["days"], "day", "days"))
            + ".")


def _pattern_slots(f: dict, s: Slots) -> None:
    pat = f["pattern"]
    what = {"test": "the test", "signature": "errors matching", "tag": "tests tagged"}[pat["by"]]
    s.lines.append("Pattern: " + s.add("pattern", f"{what} {pat['value']}") + ", over "
                   + s.add("period", f["period"]["label"]) + ".")
    if not f["occurrences"]:
        s.lines.append("Occurrences: none in the period.")
        return
    s.lines.append("Occurrences: " + s.add("occurrences", _count(f["occurrences"], "failure", "failures")) + " in "
                   + s.add("runs", _count(f["runs"], "CI run", "CI runs")) + " on "
                   + s.add("days_hit", _count(f["days_with_occurrences"], "day", "days")) + ", first on "
                   + s.add("first_seen", f["first_seen"][:10]) + ", last on " + s.add("last_seen", f["last_seen"][:10]) + ".")
    at = f["affected_tests"]
    s.lines.append("Affected: " + s.add("affected", _count(at["count"], "test", "tests")) + ": "
                   + _test_list(s, "affected", at["items"]) + ".")
    if f["signatures"]:
        top = f["signatures"][0]
        s.lines.append("Most common error: " + s.add("top_error", top["signature"]) + ", "
                       + s.add("top_error_count", _count(top["count"], "time", "times")) + ".")
    ev = f["evidence"]
    if ev["mixed_commits"]:
        s.lines.append("Evidence: passed and failed on the same code commit "
                       + s.add("mixed_commits", _count(ev["mixed_commits"], "time", "times")) + ".")
    if ev["failing_streaks"]:
        s.lines.append("Evidence: failed on every run of the code it failed on, "
                       + s.add("streaks", _count(len(ev["failing_streaks"]), "time", "times")) + ".")
    hyp = f["hypothesis"]
    s.lines.append("Hypothesis: " + s.add("hypothesis", hyp["statement"].rstrip(".")) + f" (confidence {hyp['confidence']}).")
    h = f["healing"]
    if h["attempts"]:
        s.lines.append("Healing: " + s.add("healing", _count(h["attempts"], "healing attempt", "healing attempts")
                                           + ", " + _count(h["succeeded"], "success", "successes", "none successful"))
                       + ".")


def slots(facts: dict) -> Slots:
    s = Slots()
    kind = facts.get("kind")
    if kind == "daily":
        _period_slots(facts, s, "day")
    elif kind == "weekly":
        _period_slots(facts, s, "week")
        if facts["runs"]:
            _weekly_slots(facts, s)
    elif kind == "pattern":
        _pattern_slots(facts, s)
    else:
        raise ComError(f"unknown roll-up kind {kind!r}")
    return s


_VERBATIM = re.compile(r"error|^hypothesis$|_\d+$|^slowest$|^slower$|^recurring_test$")


def fill(text: str, values: dict) -> str:
    """Placeholders replaced by their values; a phrase opening a sentence gets its capital letter (test ids,
    errors and other verbatim values never change)."""

    def value(m: re.Match) -> str:
        name = m.group(1)
        if name not in values:
            return m.group(0)
        v = values[name]
        at_start = m.start() == 0 or text[: m.start()].rstrip().endswith(".")
        if at_start and v[:1].islower() and not _VERBATIM.search(name):
            v = v[0].upper() + v[1:]
        return v

    return re.sub(r"\{([a-z0-9_]+)\}", value, text)


# -- the prompt --------------------------------------------------------------------------------------
# Sentences com writes for each kind of fact, in a few wordings: the reference summaries of the prompt are
# made of them, for the very facts at hand, so the model sees how these facts are told and writes its own
# version. Verbs in the past tense, so that "1 test" and "3 tests" read right before them.
_SAY = {
    "open": ("On {period}, {runs} on {commits} recorded {results}.",
             "{period} saw {runs} on {commits}, which recorded {results}.",
             "The suite ran {runs} on {commits} on {period} and recorded {results}."),
    "open_week": ("In {period}, {runs} on {commits} recorded {results}.",
                  "{period} saw {runs} on {commits}, which recorded {results}.",
                  "Over {period} the suite ran {runs} on {commits} and recorded {results}."),
    "rate_worse": ("The pass rate fell to {pass_rate}, {pass_rate_change}.",
                   "Things got worse: the pass rate was {pass_rate}, {pass_rate_change}."),
    "rate_better": ("The pass rate rose to {pass_rate}, {pass_rate_change}.",
                    "Things improved: the pass rate reached {pass_rate}, {pass_rate_change}."),
    "rate_same": ("The pass rate stayed at {pass_rate}, {pass_rate_change}.",
                  "The pass rate held at {pass_rate}, {pass_rate_change}."),
    "rate_none": ("The pass rate was {pass_rate}, {pass_rate_change}.",
                  "It ended with a pass rate of {pass_rate}, {pass_rate_change}."),
    "new": ("The day brought {new_failures}, among them {new_failure_1}, which failed with {new_failure_1_error}.",
            "{new_failures} showed up; {new_failure_1} failed with {new_failure_1_error}.",
            "New breakage: {new_failure_1} started failing with {new_failure_1_error}."),
    "new_week": ("The week brought {new_failures}, among them {new_failure_1}, which failed with "
                 "{new_failure_1_error}.",
                 "{new_failures} showed up; {new_failure_1} failed with {new_failure_1_error}.",
                 "New breakage: {new_failure_1} started failing with {new_failure_1_error}."),
    "new_none": ("No new failures appeared.", "Nothing new broke."),
    "still": ("{still_failing} kept failing from before, {still_failing_1} among them.",
              "{still_failing_1} is still failing, as it was before."),
    "fixed": ("{fixed} passed again, {fixed_1} among them.", "{fixed_1} was fixed and passed again."),
    "fixed_none": ("Nothing was fixed.", "No fix landed."),
    "flaky": ("{flaky} failed but also passed on the same code, so they look flaky rather than broken, "
              "{flaky_1} among them.",
              "Some failures were flaky: {flaky_1} failed and passed on the same code."),
    "drop_without_new": ("With no new failures, the drop comes from flaky and still failing tests.",
                         "No new breakage explains the drop: flaky and still failing tests do."),
    "top_error": ("The most common error was {top_error}, seen {top_error_count}.",
                  "{top_error} was the most frequent error, seen {top_error_count}."),
    "slowest": ("The slowest test was {slowest} at {slowest_time}.",
                "{slowest} was the slowest test, with a median of {slowest_time}."),
    "slower": ("{slower} got slower: {slower_change}.", "{slower} ran {slower_change}."),
    "healing": ("Healing work: {healing}.", "On the healing side: {healing}."),
    "became_flaky": ("{became_flaky} got marked flaky in the registry.",
                     "The flaky registry took in {became_flaky}."),
    "healed": ("{healed} got marked healed.", "The registry marked {healed} as healed."),
    "worst_best": ("The worst day was {worst_day} and the best {best_day}.",
                   "Day by day, {worst_day} was the worst and {best_day} the best."),
    "recurring_error": ("The error {recurring_error} came back on {recurring_error_days}.",
                        "{recurring_error} recurred on {recurring_error_days}."),
    "recurring_tests": ("{recurring_tests} failed on several days, most often {recurring_test}, on "
                        "{recurring_test_days}.",
                        "{recurring_test} failed on {recurring_test_days}, the most of {recurring_tests} "
                        "that failed on several days."),
    "p_open": ("For {pattern} over {period}, there were {occurrences} in {runs} on {days_hit}, from {first_seen} "
               "to {last_seen}.",
               "{pattern} had {occurrences} in {runs} over {period}, on {days_hit} between {first_seen} and "
               "{last_seen}."),
    "p_none": ("For {pattern} over {period}, no failure matched.",),
    "p_affected": ("It affected {affected}, most often {affected_1}.", "{affected_1} was hit most, of {affected}."),
    "p_error": ("The most common error was {top_error}, seen {top_error_count}.",
                "It usually failed with {top_error}, {top_error_count}."),
    "p_mixed": ("The same code passed and failed {mixed_commits}.",
                "It both passed and failed on the same commit {mixed_commits}."),
    "p_streak": ("It failed on every run of the code it failed on, {streaks}.",),
    "p_hypothesis": ("{hypothesis}.",),
    "p_healing": ("Healing work: {healing}.",),
}


def _plan(facts: dict, s: Slots) -> list[str]:
    """The kinds of sentence the facts call for, in telling order."""
    v = s.values
    if facts["kind"] == "pattern":
        if "occurrences" not in v:
            return ["p_none"]
        plan = ["p_open"] + (["p_affected"] if facts["pattern"]["by"] != "test" else [])
        plan += ["p_error"] if "top_error" in v else []
        plan += ["p_mixed"] if "mixed_commits" in v else []
        plan += ["p_streak"] if "streaks" in v else []
        plan += ["p_hypothesis"] + (["p_healing"] if "healing" in v else [])
        return plan
    if "runs" not in v:
        return []
    change = facts.get("pass_rate_change_pts")
    rate = ("rate_none" if change is None else "rate_better" if change > 0 else "rate_worse" if change < 0
            else "rate_same")
    week = facts["kind"] == "weekly"
    plan = ["open_week" if week else "open"] + ([rate] if "pass_rate" in v else [])
    plan.append(("new_week" if week else "new") if "new_failures" in v else "new_none")
    if rate == "rate_worse" and "new_failures" not in v and ("flaky" in v or "still_failing" in v):
        plan.append("drop_without_new")
    plan += ["still"] if "still_failing" in v else []
    plan.append("fixed" if "fixed" in v else "fixed_none")
    for key in ("flaky", "top_error", "slower", "slowest", "worst_best", "recurring_error", "recurring_tests",
                "healing", "became_flaky", "healed"):
        name = {"worst_best": "worst_day"}.get(key, key)
        if name in v:
            plan.append(key)
    return plan


def compose(facts: dict, s: Slots, variant: int = 0) -> str:
    """A summary with placeholders, in the wording `variant` picks for each sentence."""
    out = []
    for n, key in enumerate(_plan(facts, s)):
        options = _SAY[key]
        out.append(options[(variant + n) % len(options)])
    return " ".join(out)


_INTRO = ("Summaries of a test suite's facts. Every number, date, test and error is written as its placeholder "
          "in curly braces, exactly as in the facts; nothing else is made up.\n\n")
END = "\n"


def prompt(facts: dict, s: Slots, variant: int = 0) -> str:
    """The completion prompt: the facts once, then two summaries com composed for them in different wordings,
    and the model writes the third. The retry (variant 1) shows other wordings, in the other order.

    (Hand-written examples of other days, nearest first, were measured too: twice the prompt, and the
    model copied claims of the example that did not hold for the day, e.g. "no new failures".)"""
    block = "Facts:\n" + "\n".join(s.lines) + "\n"
    first, second = (0, 1) if variant % 2 == 0 else (3, 2)
    return (_INTRO + block + "Summary A: " + compose(facts, s, first) + "\nSummary B: "
            + compose(facts, s, second) + "\nSummary C:")


_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*")


def vocabulary(facts: dict, s: Slots) -> list[str]:
    """The words the model may use: those of the facts block and of every wording com has for these facts
    (placeholders aside), each also capitalised. A model that can only recombine them cannot bring in a
    cause, a component or a comparison that nobody stated."""
    texts = [re.sub(r"\{[a-z0-9_]+\}", " ", line) for line in s.lines]
    for key in _plan(facts, s):
        texts.extend(re.sub(r"\{[a-z0-9_]+\}", " ", t) for t in _SAY[key])
    words = set()
    for text in texts:
        for w in _WORD.findall(text):
            words.update((w, w[0].upper() + w[1:], w.lower()))
    return sorted(words)


def _trie(name: str, words, suffix: str = "") -> list[str]:
    """GBNF rules `name ::= ...` matching exactly `words` (each followed by `suffix`), shared prefixes merged:
    llama.cpp checks every live grammar stack, so a trie costs one stack per distinct next character where
    a flat list of alternatives costs one per word."""
    trie: dict = {}
    for word in sorted(set(words)):
        node = trie
        for ch in word + suffix:
            node = node.setdefault(ch, {})
        node[""] = {}  # end of a word (a word may be the prefix of another)
    rules: list[str] = []

    def esc(text: str) -> str:
        return text.replace("\\", "\\\\").replace('"', '\\"')

    def emit(rule: str, node: dict) -> None:
        alts = []
        for ch, child in sorted(node.items()):
            if ch == "":
                alts.append('""')
                continue
            lit = ch
            while len(child) == 1 and "" not in child:
                (c2, child), = child.items()
                lit += c2
            if list(child) == [""]:
                alts.append(f'"{esc(lit)}"')
            else:
                sub = f"{name}{len(rules) + 1}"
                rules.append("")
                slot = len(rules) - 1
                alts.append(f'"{esc(lit)}" {sub}')
                before = len(rules)
                emit(sub, child)
                rules[slot] = rules.pop(before)
        rules.append(f"{rule} ::= " + " | ".join(alts))

    emit(name, trie)
    return rules


def grammar(s: Slots, max_sentences: int = MAX_SENTENCES, words: list[str] | None = None) -> str:
    """GBNF for the model's summary: sentences of words and placeholders ending with a period, ending with a
    newline. Digits, braces, underscores, slashes, colons inside words and brackets can only come from one
    of this roll-up's placeholders; with `words`, every word is one of them."""
    word = "w" if words else "free"
    rules = [
        f'root ::= " " sentence (" " sentence){{0,{max_sentences - 1}}} "\\n"',
        "sentence ::= item (gap item)* \".\"",
        'gap ::= " " | ", " | "; " | ": " | " - "',
        f"item ::= ph | {word}",
        "free ::= [a-zA-Z'()-]+",
    ]
    rules += _trie("ph", ["{" + n + "}" for n in (s.values or {"period": ""})])
    if words:
        rules += _trie("w", words)
    return "\n".join(rules)


# -- the grounding check -------------------------------------------------------------------------------
_NUMBER = re.compile(r"(?<![\w.])(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?(?![\w])")
_DATE = re.compile(r"\b\d{4}-\d{2}-\d{2}(?:T[\d:]+Z?)?\b")
_TEST_ID = re.compile(r"[\w./-]*(?:::|\.py\b)[\w./:\[\]-]*|\btests?/[\w./-]+|\btest_\w+")
_HEX_ID = re.compile(r"\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{7,40}\b")
_WORDS = {w: n for n, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty".split())}
_WORDS.update({"thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90,
               "hundred": 100, "thousand": 1000, "dozen": 12, "dozens": 24})
del _WORDS["one"], _WORDS["zero"]  # "one of the tests", "zero" is "no": too ambiguous to check
_NUMBER_WORD = re.compile(r"\b(" + "|".join(sorted(_WORDS, key=len, reverse=True)) + r")\b", re.I)


def _strings_and_numbers(value, key: str = "", strings=None, numbers=None):
    strings = set() if strings is None else strings
    numbers = set() if numbers is None else numbers
    if isinstance(value, dict):
        for k, v in value.items():
            _strings_and_numbers(v, k, strings, numbers)
    elif isinstance(value, list):
        numbers.add(float(len(value)))
        for v in value:
            _strings_and_numbers(v, key, strings, numbers)
    elif isinstance(value, bool) or value is None:
        pass
    elif isinstance(value, (int, float)):
        v = float(value)
        numbers.update((v, abs(v)))
        if "rate" in key or "share" in key:
            numbers.update((v * 100, abs(v) * 100))
        if key.endswith("_ms"):
            numbers.add(v / 1000)
    elif isinstance(value, str):
        strings.add(value)
        if _DATE.fullmatch(value) or re.fullmatch(r"\d{4}-\d{2}-\d{2}T.*", value):
            strings.add(value[:10])
    return strings, numbers


def _grounded(x: float, decimals: int, numbers: set) -> bool:
    return any(round(v, decimals) == x for v in numbers)


def check(text: str, facts: dict) -> list[str]:
    """Why a narrative is not grounded in its facts (an empty list: it is)."""
    problems = []
    left = re.findall(r"\{[a-z0-9_]+\}", text)
    if left:
        problems.append(f"unknown placeholder {left[0]}")
    strings, numbers = _strings_and_numbers(facts)
    rest = text
    for known in sorted((x for x in strings if len(x) >= 4), key=len, reverse=True):
        if known in rest:
            rest = rest.replace(known, " ")
    for m in _DATE.finditer(rest):
        problems.append(f"date not in the facts: {m.group(0)}")
    rest = _DATE.sub(" ", rest)
    parts = {p for s in strings if "::" in s or s.endswith(".py") for p in re.split(r"::|/|\[|\]", s) if p}
    for m in _TEST_ID.finditer(rest):
        token = m.group(0).strip(".,;:")
        if token and token not in parts:
            problems.append(f"test id not in the facts: {token}")
    rest = _TEST_ID.sub(" ", rest)
    for m in _HEX_ID.finditer(rest):
        problems.append(f"id not in the facts: {m.group(0)}")
    rest = _HEX_ID.sub(" ", rest)
    for m in _NUMBER.finditer(rest):
        whole, frac = m.group(1).replace(",", ""), m.group(2) or ""
        x = float(whole + frac)
        if not _grounded(x, len(frac) - 1 if frac else 0, numbers):
            problems.append(f"number not in the facts: {m.group(0)}")
    for m in _NUMBER_WORD.finditer(rest):
        if float(_WORDS[m.group(1).lower()]) not in numbers:
            problems.append(f"number not in the facts: {m.group(1)}")
    problems.extend(_contradictions(text.lower(), facts))
    return problems


def _contradictions(low: str, f: dict) -> list[str]:
    """Claims a small model likes to make that the facts can refute."""
    out = []
    failing = f.get("outcomes", {}).get("failing", f.get("occurrences", 0))
    if failing and re.search(r"\b(all|every) (of the )?(the )?tests? (passed|were green)|\bno (test )?failures\b|"
                             r"\bnothing failed\b|\bno tests? failed\b", low):
        out.append("claims nothing failed, but some outcomes failed")
    if f.get("new_failures", {}).get("count") and re.search(r"\bno new failures?\b|\bno tests? started failing", low):
        out.append("claims no new failures, but there are some")
    if f.get("fixed", {}).get("count") and re.search(r"\bnothing (was )?fixed\b|\bno tests? (was |were )?fixed\b", low):
        out.append("claims nothing was fixed, but some tests were")
    change = f.get("pass_rate_change_pts")
    if change is not None:
        up = re.search(r"pass rate (rose|improved|increased|went up|climbed)", low)
        down = re.search(r"pass rate (fell|dropped|decreased|went down|declined|worsened)", low)
        if change < 0 and up or change > 0 and down or change == 0 and (up or down):
            out.append("says the pass rate moved the wrong way")
    return out


_TOKEN = re.compile(r"\{[a-z0-9_]+\}|[A-Za-z][A-Za-z'-]*|[.,;:()]")


def _family(placeholder: str) -> str:
    return re.sub(r"_\d+", "_N", placeholder)


_BOUNDARY = {"^", ":", ";", ",", "and", "$", "."}
_BE = {"is", "was", "are", "were"}


def _near(tok: str) -> str:
    """What counts about a neighbour: clause boundaries are alike, and so are the tenses of "to be"."""
    low = tok.lower()
    return "|" if low in _BOUNDARY else "be" if low in _BE else low


def _contexts(texts) -> dict[str, tuple[set, set]]:
    """placeholder family -> (words seen right before it, words seen right after it) in com's own texts."""
    out: dict[str, tuple[set, set]] = {}
    for text in texts:
        toks = _TOKEN.findall(text)
        for i, tok in enumerate(toks):
            if tok.startswith("{"):
                before, after = out.setdefault(_family(tok), (set(), set()))
                before.add(_near(toks[i - 1]) if i else "|")
                after.add(_near(toks[i + 1]) if i + 1 < len(toks) else "|")
    return out


def check_usage(raw: str, facts: dict, s: Slots) -> list[str]:
    """Placeholders used where com never uses them ("{runs} failed" would put a true number under a false
    claim: each placeholder must sit between words that com's own wordings put around it), and sentences
    said twice."""
    texts = list(s.lines) + [w for key in _plan(facts, s) for w in _SAY[key]]
    allowed = _contexts(texts)
    problems = []
    # A small model that loops repeats a sentence, often with the next item of a list: true, and useless.
    seen: set = set()
    for sentence in re.split(r"(?<=\.)\s+", raw.strip()):
        key = _family(sentence.lower())
        if key in seen:
            problems.append(f"repeats a sentence: {sentence[:60]}")
        seen.add(key)
    toks = _TOKEN.findall(raw)
    for i, tok in enumerate(toks):
        if not tok.startswith("{"):
            continue
        before = _near(toks[i - 1]) if i else "|"
        after = _near(toks[i + 1]) if i + 1 < len(toks) else "|"
        seen = allowed.get(_family(tok))
        if seen is None:
            problems.append(f"placeholder used nowhere in com's wordings: {tok}")
        elif before not in seen[0] or after not in seen[1]:
            problems.append(f"placeholder in an unusual place: {before} {tok} {after}")
    return problems


# -- the fallback ----------------------------------------------------------------------------------------
FALLBACK_NOTE = "No language model was used: com wrote this summary from the facts."


def fallback(facts: dict, s: Slots | None = None) -> str:
    """A deterministic narrative from the facts alone (same facts, same text)."""
    s = s or slots(facts)
    v = s.values
    kind = facts["kind"]
    out = []
    if kind == "pattern":
        out.append(f"For {v['pattern']} over {v['period']}:")
        if not facts["occurrences"]:
            out.append("no failure matched in the period.")
            return " ".join(out)
        out.append(f"{v['occurrences']} in {v['runs']} on {v['days_hit']}, from {v['first_seen']} to {v['last_seen']}.")
        if facts["pattern"]["by"] != "test":
            out.append(f"It affected {v['affected']}" + (f", most often {v['affected_1']}" if "affected_1" in v else "")
                       + ".")
        if "top_error" in v:
            out.append(f"The most common error was {v['top_error']} ({v['top_error_count']}).")
        if "mixed_commits" in v:
            out.append(f"The same code passed and failed {v['mixed_commits']}.")
        out.append(f"{v['hypothesis']} (confidence {facts['hypothesis']['confidence']}).")
        if "healing" in v:
            out.append(f"Healing: {v['healing']}.")
        return " ".join(out)
    word = "On" if kind == "daily" else "In"
    if not facts["runs"]:
        return f"{word} {v['period']} no test runs were recorded."
    out.append(f"{word} {v['period']}, {v['runs']} on {v['commits']} recorded {v['results']} ({v['breakdown']}).")
    if "pass_rate" in v:
        out.append(f"The pass rate was {v['pass_rate']}, {v['pass_rate_change']}.")
    out.append(f"It brought {v['new_failures']}: " + _names(v, "new_failure", facts["new_failures"]["count"]) + "."
               if "new_failures" in v else "No new failures appeared.")
    if "still_failing" in v:
        out.append(f"{v['still_failing'][0].upper()}{v['still_failing'][1:]} kept failing: "
                   + _names(v, "still_failing", facts["still_failing"]["count"]) + ".")
    if "fixed" in v:
        out.append(f"{v['fixed'][0].upper()}{v['fixed'][1:]} passed again: "
                   + _names(v, "fixed", facts["fixed"]["count"]) + ".")
    if "flaky" in v:
        out.append(f"{v['flaky'][0].upper()}{v['flaky'][1:]} failed but also passed on the same code: "
                   + _names(v, "flaky", facts["flaky_failures"]["count"]) + ".")
    if "top_error" in v:
        out.append(f"The most common error was {v['top_error']} ({v['top_error_count']}).")
    if "slowest" in v:
        out.append(f"The slowest test was {v['slowest']} ({v['slowest_time']} median).")
    if "slower" in v:
        out.append(f"{v['slower']} ran {v['slower_change']}.")
    if "worst_day" in v:
        out.append(f"The worst day was {v['worst_day']}, the best {v['best_day']}.")
    if "recurring_error" in v:
        out.append(f"The error {v['recurring_error']} recurred on {v['recurring_error_days']}.")
    if "healing" in v:
        out.append(f"Healing: {v['healing']}.")
    if "became_flaky" in v:
        out.append(f"{v['became_flaky'][0].upper()}{v['became_flaky'][1:]} newly marked flaky.")
    if "healed" in v:
        out.append(f"{v['healed'][0].upper()}{v['healed'][1:]} marked healed.")
    return " ".join(out)


def _names(v: dict, prefix: str, count: int) -> str:
    names = [v[f"{prefix}_{i}"] for i in range(1, ITEMS + 1) if f"{prefix}_{i}" in v]
    more = count - len(names)
    return ", ".join(names) + (f" and {_count(more, 'other', 'others')}" if more > 0 else "")


# -- writing it --------------------------------------------------------------------------------------------
@dataclass
class Narrative:
    text: str  # the narrative, ending with the line that says who wrote it
    model: str | None  # the model that wrote it, None for com's own fallback
    attempts: list = field(default_factory=list)  # each model attempt: raw text, problems, timing
    fallback_reason: str | None = None
    seconds: float = 0.0

    def to_json(self) -> dict:
        return {"narrative": self.text, "model": self.model, "attempts": self.attempts,
                "fallback_reason": self.fallback_reason, "seconds": round(self.seconds, 3)}


def _tidy(raw: str) -> str:
    text = raw.strip()
    if text and not text.endswith("."):  # cut off by max_tokens: keep whole sentences
        text = text[: text.rfind(".") + 1] if "." in text else ""
    return re.sub(r"\s+", " ", text)


def _signed(text: str, model: str | None) -> str:
    if model is None:
        return f"{text}\n\n{FALLBACK_NOTE}"
    return f"{text}\n\nWritten by {model} from com's facts (com filled in every number and test id)."


def write(facts: dict, model=None, *, no_model_reason: str | None = None, max_tokens: int = MAX_TOKENS,
          retries: int = 1) -> Narrative:
    """The narrative of a roll-up's facts: the model's when it passes the grounding check, else com's own."""
    t0 = time.perf_counter()
    s = slots(facts)
    attempts = []
    if model is not None and (facts.get("runs") or facts.get("occurrences")):
        gbnf = grammar(s, words=vocabulary(facts, s))
        for variant in range(retries + 1):
            try:
                raw = model.complete(prompt(facts, s, variant), max_tokens=max_tokens, grammar=gbnf, stop=[END, "###"])
            except ComError as exc:
                attempts.append({"variant": variant, "error": str(exc)})
                no_model_reason = f"the model failed: {exc}"
                break
            text = fill(_tidy(raw), s.values)
            problems = check(text, facts) if text else ["the model wrote no complete sentence"]
            if text and getattr(model, "enforces_grammar", False):
                problems += check_usage(_tidy(raw), facts, s)
            gen = getattr(model, "last", None)
            attempts.append({"variant": variant, "raw": raw, "problems": problems,
                             **(gen.to_json() if gen is not None and hasattr(gen, "to_json") else {})})
            if not problems:
                return Narrative(_signed(text, model.name), model.name, attempts, None, time.perf_counter() - t0)
        else:
            no_model_reason = "the model's narratives did not pass the grounding check"
    elif model is not None:
        no_model_reason = "nothing happened in the period"
    text = fallback(facts, s)
    return Narrative(_signed(text, None), None, attempts, no_model_reason or "no model", time.perf_counter() - t0)
