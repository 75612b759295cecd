"""TEMPORARY: the result columns the test-results view will hand to analyses (HELPERS.md, issue 9).

The lead moves this dataclass to `com.model`; until then analyses and scripts import it from here, and
`from_events` builds it from journal events (what the view will do once it exists)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

STATUS_CODES = {"passed": 0, "failed": 1, "error": 2, "skipped": 3, "xfailed": 4, "xpassed": 5}


@dataclass
class ResultColumns:
    test: np.ndarray  # int32, index into tests
    tests: list[str]
    ts_us: np.ndarray  # int64
    status: np.ndarray  # int8: 0 passed, 1 failed, 2 error, 3 skipped, 4 xfailed, 5 xpassed
    attempt: np.ndarray  # int16, 1-based, 0 unknown
    duration_ms: np.ndarray  # float64, NaN unknown
    run: np.ndarray  # int32, index into runs
    runs: list[str]
    commit: np.ndarray  # int32, index into commits, -1 none
    commits: list[str]
    signature: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    signatures: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.test)


def _ts_us(ts: str) -> int:
    return int(datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp() * 1_000_000)


def from_rows(rows) -> ResultColumns:
    """Columns from dicts with test_id, status, and optionally ts, attempt, duration_ms, run_id, commit."""
    tests: dict[str, int] = {}
    runs: dict[str, int] = {}
    commits: dict[str, int] = {}
    t, ts, st, at, du, ru, co = [], [], [], [], [], [], []
    for n, r in enumerate(rows):
        t.append(tests.setdefault(r["test_id"], len(tests)))
        ts.append(_ts_us(r["ts"]) if isinstance(r.get("ts"), str) else int(r.get("ts") or n))
        st.append(STATUS_CODES[r["status"]] if isinstance(r["status"], str) else int(r["status"]))
        at.append(int(r.get("attempt") or 0))
        d = r.get("duration_ms")
        du.append(float("nan") if d is None else float(d))
        ru.append(runs.setdefault(str(r.get("run_id") or f"run-{n}"), len(runs)))
        c = r.get("commit")
        co.append(commits.setdefault(c, len(commits)) if c else -1)
    return ResultColumns(np.array(t, np.int32), list(tests), np.array(ts, np.int64), np.array(st, np.int8),
                         np.array(at, np.int16), np.array(du, np.float64), np.array(ru, np.int32), list(runs),
                         np.array(co, np.int32), list(commits))


def from_events(events) -> ResultColumns:
    """Columns from journal events (`com.history.snapshot_events(journal)`): test results only."""
    rows = []
    for e in events:
        if e.get("type") not in ("test_result", "test_failure", "test_pass"):
            continue
        d = e.get("data", {})
        status = d.get("status") or ("failed" if e["type"] == "test_failure" else "passed")
        rows.append({"test_id": d["test_id"], "status": status, "ts": e.get("ts"), "attempt": d.get("attempt"),
                     "duration_ms": d.get("duration_ms"), "run_id": d.get("run_id"), "commit": d.get("commit")})
    return from_rows(rows)
