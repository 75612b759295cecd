"""The flaky registry's events: what a person or a detection run records about flaky tests, as ordinary journal
events (so they are versioned, merged, diffed and read at any revision like every other event).

    flaky_status     data: test_id, status (detected | investigating | healing_attempted | healed | quarantined |
                     false_positive), reason?, previous? (the status it replaced), by? ("mark" or "detect")
    healing_attempt  data: test_id, strategy, outcome (success | failure), notes?, category? (the manifestation
                     category of the test's failures when the attempt was recorded)
    flaky_registry   data: a detection committed with `com flaky detect --commit`: flaky [{test_id, flake_rate,
                     severity, runs, fail_rate, confidence}], broken [{test_id, since_commit, fixed_commit}],
                     as_of, since, min_runs, days, project, tests, runs

A test's status is the replay of its `flaky_status` events and healing attempts in time order
(`com.analysis.lifecycle.replay`); the registry at a revision is its newest `flaky_registry` event.
"""

from __future__ import annotations

FLAKY_STATUS = "flaky_status"
HEALING_ATTEMPT = "healing_attempt"
FLAKY_REGISTRY = "flaky_registry"
TYPES = (FLAKY_STATUS, HEALING_ATTEMPT, FLAKY_REGISTRY)
TYPE_SET = frozenset(TYPES)
