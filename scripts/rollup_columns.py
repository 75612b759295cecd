"""TEMPORARY ADAPTER (remove when the test-results view lands): journal events -> ResultColumns.

The roll-up analyses take result columns from the test-results view (issue 9). Until that view exists,
the evaluation, the benchmark and the tests build the columns here from every event of a snapshot.
It reads only the fields the view will hold: data.test_id/status/attempt/duration_ms/run_id/commit and the
first line of data.error_message, normalised as a signature (numbers, ids, paths masked).
"""

from __future__ import annotations

import numpy as np

from com.analysis.rollup import STATUS_NAMES, ResultColumns, to_us
from com.embed import normalise
from com.events import SEED_TYPES

_CODE = {name: i for i, name in enumerate(STATUS_NAMES)}


def signature_of(message: str | None) -> str | None:
    if not message or not message.strip():
        return None
    return normalise(message.strip().splitlines()[0])[:200]


def columns_from_events(events) -> tuple[ResultColumns, dict[str, list[str]]]:
    """(columns, test id -> tags) from an iterable of events; non-result events are ignored."""
    tests: dict[str, int] = {}
    runs: dict[str, int] = {}
    commits: dict[str, int] = {}
    sigs: dict[str, int] = {}
    tags: dict[str, set] = {}
    cols = {k: [] for k in ("test", "ts", "status", "attempt", "duration", "run", "commit", "signature")}
    for event in events:
        etype = event["type"]
        data = event.get("data") or {}
        if etype in SEED_TYPES:
            status = SEED_TYPES[etype]
        elif etype == "test_result":
            status = data.get("status")
        else:
            continue
        test_id = data.get("test_id")
        if not test_id or status not in _CODE:
            continue
        t = tests.setdefault(test_id, len(tests))
        tag_set = tags.setdefault(test_id, set())
        tag_set.update(event.get("tags") or ())
        markers = (data.get("properties") or {}).get("markers")
        if isinstance(markers, str):
            tag_set.update(m.strip() for m in markers.split(",") if m.strip())
        cols["test"].append(t)
        cols["ts"].append(to_us(event["ts"]))
        cols["status"].append(_CODE[status])
        attempt = data.get("attempt")
        cols["attempt"].append(attempt if isinstance(attempt, int) and not isinstance(attempt, bool) else 0)
        d = data.get("duration_ms")
        cols["duration"].append(float(d) if isinstance(d, (int, float)) and not isinstance(d, bool) else np.nan)
        cols["run"].append(runs.setdefault(str(data.get("run_id") or f"event:{event['id']}"), len(runs)))
        sha = data.get("commit")
        cols["commit"].append(commits.setdefault(sha, len(commits)) if sha else -1)
        sig = signature_of(data.get("error_message")) if status in ("failed", "error") else None
        cols["signature"].append(sigs.setdefault(sig, len(sigs)) if sig else -1)
    columns = ResultColumns(
        test=np.array(cols["test"], dtype=np.int32), tests=list(tests),
        ts_us=np.array(cols["ts"], dtype=np.int64), status=np.array(cols["status"], dtype=np.int8),
        attempt=np.array(cols["attempt"], dtype=np.int16), duration_ms=np.array(cols["duration"], dtype=np.float64),
        run=np.array(cols["run"], dtype=np.int32), runs=list(runs),
        commit=np.array(cols["commit"], dtype=np.int32), commits=list(commits),
        signature=np.array(cols["signature"], dtype=np.int32), signatures=list(sigs),
    )
    return columns, {t: sorted(v) for t, v in tags.items()}


def columns_from_memory(memory, at: str | None = None):
    """(columns, tags, healing attempts, registry changes) of the memory's snapshot at `at`."""
    from com.history import snapshot_events

    events = list(snapshot_events(memory.journal(), at))
    cols, tags = columns_from_events(events)
    healing = [{"test_id": e["data"].get("test_id"), "ts": e["ts"], "strategy": e["data"].get("strategy"),
                "outcome": e["data"].get("outcome")}
               for e in events if e["type"] == "healing_attempt" and e["data"].get("test_id")
               and e["data"].get("outcome") in ("success", "failure")]
    registry = [{"test_id": e["data"].get("test_id"), "ts": e["ts"], "status": e["data"].get("status")}
                for e in events if e["type"] == "flaky_status" and e["data"].get("test_id") and e["data"].get("status")]
    return cols, tags, healing, registry
