"""TEMPORARY ADAPTER, until the test-results view (issue 9) hands analyses their columns: builds
`ResultColumns` from events (a journal snapshot's, or a generated history's JUnit reports read through
com's own JUnit parser). Used by tests/test_flaky*.py, scripts/eval_flaky.py and scripts/bench_flaky.py;
delete it when the view exists.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np

from com.analysis.manifest import error_signature
from com.analysis.results import STATUS_CODES, ResultColumns
from com.events import SEED_TYPES


class ColumnsBuilder:
    """Appends test-result events one by one; `columns()` freezes them into numpy columns."""

    def __init__(self):
        self.tests, self.runs, self.commits, self.signatures = {}, {}, {}, {}
        self.examples: dict[int, str] = {}  # signature index -> its latest raw message
        self._ts: dict[str, int] = {}
        self._sig_of: dict[str, int] = {}
        self.cols = {k: [] for k in ("test", "ts_us", "status", "attempt", "duration_ms", "run", "commit", "signature")}

    @staticmethod
    def _intern(table: dict, key: str) -> int:
        ix = table.get(key)
        if ix is None:
            ix = table[key] = len(table)
        return ix

    def _ts_us(self, ts: str) -> int:
        us = self._ts.get(ts)
        if us is None:
            us = self._ts[ts] = int(datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp() * 1_000_000)
        return us

    def add(self, event: dict) -> None:
        kind = event.get("type")
        data = event.get("data") or {}
        if kind in SEED_TYPES:
            status = data.get("status") or SEED_TYPES[kind]
        elif kind == "test_result":
            status = data.get("status")
        else:
            return
        test_id = data.get("test_id") or data.get("name")
        if not test_id or status not in STATUS_CODES:
            return
        c = self.cols
        c["test"].append(self._intern(self.tests, test_id))
        c["ts_us"].append(self._ts_us(event["ts"]))
        c["status"].append(STATUS_CODES[status])
        c["attempt"].append(int(data.get("attempt") or 0))
        dur = data.get("duration_ms")
        c["duration_ms"].append(float(dur) if isinstance(dur, (int, float)) else float("nan"))
        c["run"].append(self._intern(self.runs, str(data.get("run_id") or event["id"])))
        commit = data.get("commit")
        c["commit"].append(self._intern(self.commits, commit) if commit else -1)
        message = data.get("error_message")
        sig = -1
        if message and status in ("failed", "error"):
            sig = self._sig_of.get(message)
            if sig is None:
                text = error_signature(message)
                sig = -1 if text is None else self._intern(self.signatures, text)
                self._sig_of[message] = sig
            if sig >= 0:
                self.examples[sig] = message
        c["signature"].append(sig)

    def columns(self) -> ResultColumns:
        c = self.cols
        return ResultColumns(
            test=np.array(c["test"], np.int32), tests=list(self.tests),
            ts_us=np.array(c["ts_us"], np.int64), status=np.array(c["status"], np.int8),
            attempt=np.array(c["attempt"], np.int16), duration_ms=np.array(c["duration_ms"], np.float64),
            run=np.array(c["run"], np.int32), runs=list(self.runs),
            commit=np.array(c["commit"], np.int32), commits=list(self.commits),
            signature=np.array(c["signature"], np.int32), signatures=list(self.signatures),
        )


def columns_from_events(events) -> tuple[ResultColumns, dict[int, str]]:
    """Columns of every test result among `events` (e.g. `com.history.snapshot_events(journal)`), and an
    example raw message per signature."""
    b = ColumnsBuilder()
    for event in events:
        b.add(event)
    return b.columns(), b.examples


def columns_from_history(history) -> tuple[ResultColumns, dict[int, str]]:
    """Columns straight from a generated history's JUnit reports (no journal), one report at a time."""
    from com.ingest import junit

    b = ColumnsBuilder()
    project = history.truth["generator"]["project"]
    for run in history.runs:
        for event in junit.events_from_reports([str(Path(history.out_dir) / run["junit"])], project=project,
                                               commit=run["commit"], run_id=run["run_id"], branch="main"):
            b.add(event)
    return b.columns(), b.examples
