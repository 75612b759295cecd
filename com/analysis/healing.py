"""Healing statistics: success rates of healing attempts by strategy and by manifestation category, and the
strategies to try on a test, ranked by success rate smoothed towards what is known more broadly.

An attempt is a dict: test_id, strategy, outcome ("success" or "failure"), category (a manifestation
category, see `com.analysis.manifest.CATEGORIES`; missing means "other"), ts (optional).

Smoothing (a Beta prior at each level, `strength` pseudo-attempts):
    overall      g        = (successes + 1) / (attempts + 2)
    strategy     r_s      = (successes_s + strength * g) / (attempts_s + strength)
    in category  r_{c,s}  = (successes_{c,s} + strength * r_s) / (attempts_{c,s} + strength)
so one lucky success does not outrank a strategy that worked 9 times in 10, a strategy never tried in this
category starts from how it does elsewhere, and nothing is ever 0 just for lack of attempts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from com.model.errors import ComError

OUTCOMES = {"success": True, "succeeded": True, "healed": True, "failure": False, "failed": False}
DEFAULT_STRENGTH = 4.0

# What to try first for each manifestation category when nothing has been tried yet.
DEFAULT_STRATEGIES = {
    "timeout": ("increase_timeout", "wait_for_condition", "mock_slow_dependency", "retry_with_backoff"),
    "element_not_found": ("wait_for_selector", "stable_selector", "wait_for_network_idle", "retry_with_backoff"),
    "network": ("retry_with_backoff", "mock_network", "health_check_before_test", "increase_timeout"),
    "timing_order": ("fake_clock", "remove_wall_clock_assertion", "explicit_synchronisation", "isolate_state"),
    "resource_environment": ("isolate_resources", "clean_up_fixtures", "pin_environment", "run_serially"),
    "other": ("isolate_state", "retry_with_backoff", "investigate_root_cause"),
}


@dataclass
class Rate:
    attempts: int = 0
    successes: int = 0

    @property
    def success_rate(self) -> float | None:
        return self.successes / self.attempts if self.attempts else None

    def to_json(self) -> dict:
        rate = self.success_rate
        return {"attempts": self.attempts, "successes": self.successes,
                "success_rate": None if rate is None else round(rate, 4)}


@dataclass
class Recommendation:
    strategy: str
    score: float            # smoothed success rate in the category
    attempts: int           # in this category
    successes: int
    attempts_overall: int   # in every category
    successes_overall: int
    tried_on_test: int      # attempts of this strategy on the test itself (0 without a test)

    def to_json(self) -> dict:
        return {"strategy": self.strategy, "score": round(self.score, 4), "attempts": self.attempts,
                "successes": self.successes, "attempts_overall": self.attempts_overall,
                "successes_overall": self.successes_overall, "tried_on_test": self.tried_on_test}


def _outcome(attempt: dict, n: int) -> bool:
    value = attempt.get("outcome")
    ok = OUTCOMES.get(value.lower() if isinstance(value, str) else value)
    if ok is None:
        raise ComError(f"healing attempt {n}: outcome must be success or failure, not {value!r}", param="outcome")
    if not attempt.get("strategy"):
        raise ComError(f"healing attempt {n}: strategy is missing", param="strategy")
    return ok


def success_rates(attempts: Iterable[dict]) -> dict:
    """{"overall": Rate, "by_strategy": {strategy: Rate}, "by_category": {category: Rate},
    "by_category_strategy": {category: {strategy: Rate}}} (raw rates; `to_json()` each for output)."""
    overall = Rate()
    by_strategy: dict[str, Rate] = {}
    by_category: dict[str, Rate] = {}
    by_both: dict[str, dict[str, Rate]] = {}
    for n, a in enumerate(attempts):
        ok = _outcome(a, n)
        strategy, category = a["strategy"], a.get("category") or "other"
        for rate in (overall, by_strategy.setdefault(strategy, Rate()), by_category.setdefault(category, Rate()),
                     by_both.setdefault(category, {}).setdefault(strategy, Rate())):
            rate.attempts += 1
            rate.successes += ok
    return {"overall": overall, "by_strategy": dict(sorted(by_strategy.items())),
            "by_category": dict(sorted(by_category.items())),
            "by_category_strategy": {c: dict(sorted(v.items())) for c, v in sorted(by_both.items())}}


def recommend(attempts: Iterable[dict], category: str, *, test_id: str | None = None,
              strategies: Iterable[str] | None = None, strength: float = DEFAULT_STRENGTH,
              limit: int | None = None) -> list[Recommendation]:
    """Strategies for a test whose failures are of `category`, best first by smoothed success rate.

    Candidates: every strategy attempted anywhere, the category's defaults and `strategies`. Strategies
    that already failed on this very test (`test_id`) and never succeeded there go last."""
    if strength <= 0:
        raise ComError("strength must be above 0", param="strength")
    attempts = list(attempts)
    stats = success_rates(attempts)
    overall = stats["overall"]
    g = (overall.successes + 1.0) / (overall.attempts + 2.0)
    in_category = stats["by_category_strategy"].get(category, {})
    on_test: dict[str, list[bool]] = {}
    if test_id is not None:
        for n, a in enumerate(attempts):
            if a.get("test_id") == test_id:
                on_test.setdefault(a["strategy"], []).append(_outcome(a, n))
    names = set(stats["by_strategy"]) | set(DEFAULT_STRATEGIES.get(category, DEFAULT_STRATEGIES["other"]))
    names |= set(strategies or ())
    out = []
    for name in names:
        s_all = stats["by_strategy"].get(name, Rate())
        r_s = (s_all.successes + strength * g) / (s_all.attempts + strength)
        s_cat = in_category.get(name, Rate())
        score = (s_cat.successes + strength * r_s) / (s_cat.attempts + strength)
        tried = on_test.get(name, [])
        out.append(Recommendation(name, score, s_cat.attempts, s_cat.successes, s_all.attempts, s_all.successes,
                                  len(tried)))
    failed_here = {name for name, oks in on_test.items() if not any(oks)}
    out.sort(key=lambda r: (r.strategy in failed_here, -r.score, -r.attempts, r.strategy))
    return out[:limit] if limit else out
