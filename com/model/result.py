"""A test result as typed data: one `TestResult` per `test_result` event, and `ResultColumns`, many results as
numpy columns (what the test-results view hands to flaky detection, selection and roll-ups)."""

from __future__ import annotations

from dataclasses import dataclass


# Stable small integers for statuses in derived stores; the order never changes (new statuses go at the end).
STATUS_CODES = ("passed", "failed", "error", "skipped", "xfailed", "xpassed")
STATUS_CODE = {name: code for code, name in enumerate(STATUS_CODES)}
FAILING_CODES = (STATUS_CODE["failed"], STATUS_CODE["error"])


@dataclass(frozen=True)
class TestResult:
    """What a `test_result` event says about one attempt of one test."""

    __test__ = False  # not a pytest test class, whatever its name

    event_id: str
    test_id: str
    status: str
    ts: str
    attempt: int | None
    duration_ms: float | None
    commit: str | None  # the code revision it ran against
    run_id: str | None
    signature: str | None  # the normalised error, for failures

    @classmethod
    def from_event(cls, event: dict) -> "TestResult | None":
        """The typed view of a stored event, or None for other events and results without a test id."""
        if event.get("type") != "test_result":
            return None
        data = event.get("data") or {}
        test_id = data.get("test_id")
        if not isinstance(test_id, str) or not test_id:
            return None
        attempt = data.get("attempt")
        duration = data.get("duration_ms")
        status = data.get("status")
        return cls(
            event_id=event["id"],
            test_id=test_id,
            status=status,
            ts=event["ts"],
            attempt=attempt if type(attempt) is int else None,
            duration_ms=float(duration) if type(duration) in (int, float) else None,
            commit=_text(data.get("commit")),
            run_id=_text(data.get("run_id")),
            signature=_signature(data) if status in ("failed", "error", "xpassed") else None,
        )


def _text(value) -> str | None:
    return value if isinstance(value, str) and value else None


@dataclass
class ResultColumns:
    """Many results as columns, one row per recorded attempt, in no particular order. Codes index the lists."""

    test: object  # np.ndarray int32 -> tests
    tests: list[str]
    ts_us: object  # int64 microseconds since the epoch, UTC
    status: object  # int8 -> STATUS_CODES
    attempt: object  # int16, 1-based; 0 when unknown
    duration_ms: object  # float64, NaN when unknown
    run: object  # int32 -> runs
    runs: list[str]
    commit: object  # int32 -> commits, -1 when the result names no code commit
    commits: list[str]
    signature: object  # int32 -> signatures, -1 for results without an error
    signatures: list[str]

    def __len__(self) -> int:
        return len(self.test)

    def take(self, rows) -> "ResultColumns":
        """The same results restricted to `rows` (a boolean mask or positions); the string lists are shared."""
        return ResultColumns(
            self.test[rows], self.tests, self.ts_us[rows], self.status[rows], self.attempt[rows],
            self.duration_ms[rows], self.run[rows], self.runs, self.commit[rows], self.commits,
            self.signature[rows], self.signatures,
        )


def _signature(data: dict) -> str | None:
    from com.model.text import signature

    return signature(data)


def distinct(values):
    """The sorted distinct values of a numpy array: `np.unique` without its import of numpy.ma (numpy 2 imports
    it to ask whether the array is masked, 20-50 ms of a command's start)."""
    import numpy as np

    ordered = np.sort(values, kind="stable")
    if len(ordered) < 2:
        return ordered
    return ordered[np.concatenate(([True], ordered[1:] != ordered[:-1]))]
