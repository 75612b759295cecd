"""The filter that makes `--at REV` exact in the index: a snapshot's rows are the rows of its batches.

A journal snapshot is exactly the set of batch paths in its tree (batch paths are content-derived and never
rewritten), so a query at REV keeps the rows whose batch is in REV's tree. That holds on any branch, after
merges, and after a rebuild on a fresh clone, because it depends on the journal alone (Lance versions or a
commit->version map would not survive a rebuild or describe a second branch). The filter is written in its
shortest form: none when REV's tree holds every indexed batch (HEAD of the only branch: the common case);
`batch_no NOT IN (...)` for the few batches of later commits or other branches; BETWEEN ranges for long runs
(batches are numbered in history order, so an old revision is one range). It is a prefilter on the event rows
for both the vector and the keyword side, so no later event can come back from either.
"""

from __future__ import annotations

from dataclasses import dataclass

RANGE_COST = 50  # measured: one BETWEEN range filters about as fast as an IN list of ~50 numbers


def _runs(numbers: list[int]) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for n in numbers:
        if runs and n == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], n)
        else:
            runs.append((n, n))
    return runs


def _set_expr(numbers: list[int], negate: bool) -> tuple[int, str]:
    """(cost, SQL) selecting batch_no in `numbers` (or not in, if negate): long runs as ranges, the rest listed."""
    ranges, singles = [], []
    for lo, hi in _runs(sorted(numbers)):
        if hi - lo + 1 > RANGE_COST:
            ranges.append((lo, hi))
        else:
            singles.extend(range(lo, hi + 1))
    terms = [f"(batch_no BETWEEN {lo} AND {hi})" for lo, hi in ranges]
    if singles:
        terms.append(f"batch_no {'NOT IN' if negate and not ranges else 'IN'} ({','.join(map(str, singles))})")
    expr = " OR ".join(terms) if terms else "FALSE"
    if negate and ranges:
        expr = f"NOT ({expr})"
    return len(ranges) * RANGE_COST + len(singles), expr


def snapshot_expr(included: set[int], universe: set[int]) -> str | None:
    """The shortest prefilter keeping exactly the batch numbers `included` out of `universe`."""
    if len(included) == len(universe):
        return None
    if not included:
        return "FALSE"
    excluded = universe - included
    cost_in, expr_in = _set_expr(sorted(included), negate=False)
    cost_out, expr_out = _set_expr(sorted(excluded), negate=True)
    return expr_out if cost_out < cost_in else expr_in


@dataclass(frozen=True)
class BatchFilter:
    sql: str | None  # the prefilter keeping its rows, None for every row
    batches: frozenset | None  # its batch numbers, None for every batch


