"""Test results as numpy columns: what the test-results view hands to analyses (one row per recorded attempt).

To move to `com.model` with the layers (issue 9); analyses import it from here until then.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np

# Status codes of the `status` column.
PASSED, FAILED, ERROR, SKIPPED, XFAILED, XPASSED = 0, 1, 2, 3, 4, 5
STATUS_CODES = {"passed": PASSED, "failed": FAILED, "error": ERROR, "skipped": SKIPPED,
                "xfailed": XFAILED, "xpassed": XPASSED}


@dataclass
class ResultColumns:
    """One row per recorded attempt, in no particular order; the string lists are indexed by the int columns."""

    test: np.ndarray          # int32, index into tests
    tests: list[str]          # test ids (pytest node ids where known)
    ts_us: np.ndarray         # int64, microseconds since the epoch (UTC) of the result
    status: np.ndarray        # int8 codes above
    attempt: np.ndarray       # int16, 1-based attempt within its run; 0 when unknown
    duration_ms: np.ndarray   # float64, NaN when unknown
    run: np.ndarray           # int32, index into runs
    runs: list[str]           # run ids (data.run_id)
    commit: np.ndarray        # int32, index into commits, -1 when the result has no code commit
    commits: list[str]        # code commit shas (data.commit)
    signature: np.ndarray     # int32, index into signatures, -1 for results without an error
    signatures: list[str]     # normalised error signature (first error line, numbers/ids/paths masked)
    # Optional: the project of each row (int16 index into projects); None when the view already filtered.
    project: np.ndarray | None = None
    projects: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.test.shape[0])

    def take(self, rows: np.ndarray) -> "ResultColumns":
        """The same columns restricted to `rows` (a boolean mask or indices); the string lists are shared."""
        return ResultColumns(
            self.test[rows], self.tests, self.ts_us[rows], self.status[rows], self.attempt[rows],
            self.duration_ms[rows], self.run[rows], self.runs, self.commit[rows], self.commits,
            self.signature[rows], self.signatures,
            None if self.project is None else self.project[rows], self.projects,
        )


def iso(us: int | None) -> str | None:
    """Microseconds since the epoch as an ISO 8601 UTC time (None stays None)."""
    if us is None:
        return None
    return datetime.fromtimestamp(us / 1e6, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
