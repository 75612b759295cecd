"""Result columns for flaky-detection tests: from outcome patterns (built in memory, for the rules one by one),
or from a generated history recorded in a real memory and read back through the test-results view."""

from __future__ import annotations

import sys

import numpy as np

from conftest import ROOT

from com.model.result import ResultColumns
from com.model.text import signature

sys.path.insert(0, str(ROOT / "scripts"))
import gen_history  # noqa: E402,F401  (re-exported for the tests)

T0_US = 1_767_600_000_000_000  # 2026-01-05


def columns(rows: list[tuple]) -> ResultColumns:
    """rows: (test, commit or None, run, status code, attempt, ts_us, message or None)."""
    tests, commits, runs, sigs = {}, {}, {}, {}

    def ix(table, key):
        return table.setdefault(key, len(table))

    cols = {k: [] for k in ("test", "commit", "run", "status", "attempt", "ts", "sig")}
    for test, commit, run, status, attempt, ts, message in rows:
        cols["test"].append(ix(tests, test))
        cols["commit"].append(-1 if commit is None else ix(commits, commit))
        cols["run"].append(ix(runs, run))
        cols["status"].append(status)
        cols["attempt"].append(attempt)
        cols["ts"].append(ts)
        sig = signature({"error_message": message}) if message and status in (1, 2) else None
        cols["sig"].append(-1 if sig is None else ix(sigs, sig))
    n = len(rows)
    return ResultColumns(
        np.array(cols["test"], np.int32), list(tests), np.array(cols["ts"], np.int64),
        np.array(cols["status"], np.int8), np.array(cols["attempt"], np.int16), np.full(n, np.nan),
        np.array(cols["run"], np.int32), list(runs), np.array(cols["commit"], np.int32), list(commits),
        np.array(cols["sig"], np.int32), list(sigs),
    )


def recorded_history(folder, **generator) -> tuple:
    """A generated history recorded in a memory of its own (one journal commit per CI run, as CI would), and
    its results read back from the test-results view: (history, memory, columns)."""
    from com.memory import Memory
    from com.settings import load

    history = gen_history.generate(folder / "gen", **generator)
    memory, _ = Memory.init(folder / "mem", settings=load(folder))
    gen_history.ingest(history, memory, warn=lambda message: None)
    snapshot = memory.snapshot()
    memory.follow(snapshot, [memory.results])
    return history, memory, memory.results.columns(snapshot)


def pattern_rows(patterns: dict[str, str], runs_per_commit: int = 2, message: str = "AssertionError: boom",
                 start_commit: int = 0) -> list[tuple]:
    """Rows from outcome strings, one character per run ('.' pass, 'x' fail, 's' skipped), grouped by
    `runs_per_commit` runs per commit; run n of every test is the same CI run at the same time."""
    rows = []
    for test, pattern in patterns.items():
        for n, ch in enumerate(pattern):
            c = start_commit + n // runs_per_commit
            status = {".": 0, "x": 1, "s": 3}[ch]
            rows.append((test, f"c{c:04d}", f"run-{n:05d}", status, 1, T0_US + n * 600_000_000,
                         message if status == 1 else None))
    return rows


def bernoulli(rate: float, n: int, seed: int) -> str:
    """n outcomes failing with probability `rate`, exactly round(rate * n) failures, shuffled."""
    k = round(rate * n)
    chars = np.array(["x"] * k + ["."] * (n - k))
    np.random.default_rng(seed).shuffle(chars)
    return "".join(chars)
