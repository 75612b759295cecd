"""The lifecycle of a flaky test in the registry: its status, which changes are allowed, and what a status
means for quarantine. Pure: the journal records each change as an event; `replay` folds them.

    detected ──> investigating ──> healing_attempted ──> healed
        │              │                  │   ^             │
        └──────────────┴──> quarantined <─┘   └─────────────┘ (a healed test detected again -> detected)
    any open status ──> false_positive (a person says it is not flaky) ──> detected (new evidence)

Quarantine: a quarantined test still runs and is recorded, but its failures do not fail CI. It enters
quarantine with the status `quarantined`, stays there while it is investigated or a fix is tried
(investigating, healing_attempted), and leaves it when it is healed or found a false positive.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from com.model.errors import ComError

STATUSES = ("detected", "investigating", "healing_attempted", "healed", "quarantined", "false_positive")
OPEN = frozenset(("detected", "investigating", "healing_attempted", "quarantined"))

# status -> statuses it may change to (None: a test the registry has no status for yet).
TRANSITIONS: dict[str | None, frozenset] = {
    None: frozenset(("detected", "investigating", "healing_attempted", "quarantined", "false_positive")),
    "detected": frozenset(("investigating", "healing_attempted", "healed", "quarantined", "false_positive")),
    "investigating": frozenset(("healing_attempted", "healed", "quarantined", "false_positive", "detected")),
    # Another attempt after a failed one is a change too (healing_attempted -> healing_attempted).
    "healing_attempted": frozenset(("healing_attempted", "healed", "investigating", "quarantined", "detected")),
    "healed": frozenset(("detected", "investigating")),
    "quarantined": frozenset(("investigating", "healing_attempted", "healed", "false_positive")),
    "false_positive": frozenset(("detected", "investigating")),
}
KEEPS_QUARANTINE = frozenset(("investigating", "healing_attempted"))


@dataclass(frozen=True)
class LifecycleState:
    status: str | None = None
    quarantined: bool = False
    since_us: int | None = None          # when the status was set
    quarantined_since_us: int | None = None
    reason: str | None = None

    @property
    def open(self) -> bool:
        """Still a flaky test to deal with (not healed, not a false positive)."""
        return self.status in OPEN

    def to_json(self) -> dict:
        return {"status": self.status, "quarantined": self.quarantined, "since_us": self.since_us,
                "quarantined_since_us": self.quarantined_since_us, "reason": self.reason}


def allowed(old: str | None, new: str) -> bool:
    return new in TRANSITIONS.get(old, frozenset())


def transition(state: LifecycleState, new: str, *, at_us: int | None = None, reason: str | None = None) -> LifecycleState:
    """The state after changing to `new`; ComError (exit 2) naming the allowed changes when it is not allowed."""
    if state.status is None and not allowed(None, new) and allowed("detected", new):
        # A test with no status yet is, to the registry, a detected one (detection lists it so).
        state = transition(state, "detected", at_us=at_us, reason=reason)
    if new not in STATUSES:
        raise ComError(f"unknown flaky status '{new}': use one of {', '.join(STATUSES)}", param="status")
    if not allowed(state.status, new):
        reachable = TRANSITIONS.get(state.status, frozenset())
        if state.status is None:
            reachable = reachable | TRANSITIONS["detected"]
        options = ", ".join(s for s in STATUSES if s in reachable)
        raise ComError(f"cannot change a test from {state.status or 'no status'} to {new} (allowed: {options})",
                       param="status")
    if new == "quarantined":
        quarantined = True
        q_since = state.quarantined_since_us if state.quarantined else at_us
    elif new in KEEPS_QUARANTINE:
        quarantined, q_since = state.quarantined, state.quarantined_since_us
    else:
        quarantined, q_since = False, None
    return LifecycleState(new, quarantined, at_us, q_since if quarantined else None, reason)


@dataclass
class Replay:
    state: LifecycleState = field(default_factory=LifecycleState)
    rejected: list[dict] = field(default_factory=list)  # changes not allowed where they fell (e.g. after a merge)


def replay(changes: Iterable[dict]) -> Replay:
    """Fold status changes ({"status", "ts_us", "reason"?, "implied"?}, in any order: sorted by time here, stably)
    into the current state. A change that is not allowed where it falls (two branches merged) is skipped and
    listed. An implied change (what a healing attempt says: healing_attempted after a failed one, healed after a
    success) is skipped quietly where it is not allowed."""
    out = Replay()
    for change in sorted(changes, key=lambda c: (c.get("ts_us") or 0)):
        at, reason = change.get("ts_us"), change.get("reason")
        if change.get("implied"):
            if out.state.status is None:
                out.state = transition(out.state, "detected", at_us=at, reason=reason)
            if allowed(out.state.status, change["status"]):
                out.state = transition(out.state, change["status"], at_us=at, reason=reason)
            continue
        try:
            out.state = transition(out.state, change["status"], at_us=at, reason=reason)
        except ComError:
            out.rejected.append(change)
    return out


def on_detection(state: LifecycleState, flaky: bool, *, at_us: int | None = None,
                 last_failure_us: int | None = None) -> LifecycleState:
    """What a detection run does to a test's status: a flaky test with no status becomes detected, a healed
    one that failed again after it was healed is reopened (its failures from before count for nothing);
    everything else (a person's decision) stays."""
    if (flaky and state.status == "healed" and last_failure_us is not None and state.since_us is not None
            and last_failure_us <= state.since_us):
        return state
    if flaky and state.status in (None, "healed"):
        return transition(state, "detected", at_us=at_us, reason="detected" if state.status is None else "flaky again")
    return state


def quarantine(states: dict[str, LifecycleState]) -> list[str]:
    """Test ids whose failures should not fail CI, sorted."""
    return sorted(t for t, s in states.items() if s.quarantined)

