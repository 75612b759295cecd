"""Text of a selection (`com select`): the runnable ids, a one-paragraph summary, a table with reasons, and
the observation report."""

from __future__ import annotations

from com.render.text import clip, short, table


def _ms(ms: float) -> str:
    s = ms / 1000.0
    if s < 60:
        return f"{s:.1f}s"
    if s < 3600:
        return f"{s / 60:.1f}m"
    return f"{s / 3600:.1f}h"


def ids(o: dict) -> str:
    """One runnable id per line, in run order (what `pytest $(com select ...)` takes)."""
    return "\n".join(t["test_id"] for t in o["selected"])


def summary(o: dict) -> str:
    """What was selected and why, for stderr."""
    n, total = len(o["selected"]), o["candidates"]
    what = {"diff": "for the change", "all": "for the change", "history": "by history",
            "observe": "(observation mode)"}.get(o["mode"], "")
    diff = o.get("diff") or {}
    where = ""
    if diff.get("base"):
        head = short(diff.get("head")) if diff.get("head") else "the working tree"
        where = f" {short(diff['base'])}..{head} ({len(diff.get('files') or [])} files)"
    lines = [f"com select: {n} of {total} tests {what}{where}, {_ms(o['selected_ms'])} of "
             f"{_ms(o['suite_ms'])} ({o['time_share']:.0%} of the suite's time)"]
    if o.get("fallback"):
        lines.append(f"  every test: {o['fallback']}")
    if o.get("observe") and o.get("would_select") is not None:
        lines.append(f"  a real selection would run {len(o['would_select'])} of them"
                     + (f"; recorded in journal commit {short(o['recorded'])}" if o.get("recorded") else ""))
    for m in o.get("messages") or []:
        if o.get("fallback") and m.startswith("global change:"):
            continue
        lines.append(f"  {m}")
    unmapped = diff.get("unmapped") or []
    if unmapped:
        lines.append(f"  changed files no test depends on: {', '.join(unmapped[:5])}{' ...' if len(unmapped) > 5 else ''}")
    return "\n".join(lines)


def explain(o: dict, limit: int | None = None) -> str:
    """Every selected test with its reasons, then the skipped ones closest to being selected."""
    rows = []
    for t in o["selected"][:limit]:
        rows.append(["run", f"{t['score']:.3f}", _ms(t["duration_ms"]), t["test_id"], clip("; ".join(t["reasons"]) or "-", 90)])
    shown = o["skipped_tests"][: (limit or 20)]
    for t in shown:
        rows.append(["skip", f"{t['score']:.3f}", _ms(t["duration_ms"]), t["test_id"],
                     clip("; ".join(t["reasons"]) or "nothing in the change reaches it", 90)])
    more = len(o["skipped_tests"]) - len(shown)
    text = table(rows, ["", "score", "time", "test", "why"]) if rows else ""
    if more > 0:
        text += f"\n... and {more} more skipped"
    return text


def human(o: dict) -> str:
    return summary(o) + ("\n\n" + explain(o) if o["selected"] or o["skipped_tests"] else "")


def report(o: dict) -> str:
    if not o["selections"]:
        return "no observed selections yet (run with --observe, or [tool.com] select = \"observe\")"
    lines = [f"{o['matched']} of {o['selections']} observed selections matched a recorded run of their code commit"]
    if o["matched"]:
        recall = "-" if o["recall"] is None else f"{o['recall']:.1%}"
        lines.append(f"failures: {o['failures']}, a real selection would have missed {o['missed']} "
                     f"(recall {recall}; {o['changes_missed']} of {o['changes_with_failures']} failing changes "
                     "would have missed one)")
        share = "-" if o["saved_share"] is None else f"{o['saved_share']:.0%}"
        lines.append(f"time: {_ms(o['saved_ms'])} of {_ms(o['total_ms'])} would have been saved ({share})")
        rows = [[short(r["commit"]), r["run"], r["tests"], r["would_run"], r["failures"], r["missed"],
                 _ms(r["saved_ms"]), clip(", ".join(r["missed_tests"]), 60)] for r in o["runs"][-20:]]
        lines += ["", table(rows, ["commit", "run", "tests", "would run", "failed", "missed", "saved", "missed tests"])]
    return "\n".join(lines)
