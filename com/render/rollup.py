"""Text of a roll-up: the narrative (which says who wrote it), then the facts behind it in a few lines."""

from __future__ import annotations

import textwrap

from com.render.text import clip, short, table

SHOWN = 5


def _pct(rate) -> str:
    return "-" if rate is None else f"{rate * 100:.1f}%"


def _wrap(text: str, width: int = 100) -> str:
    return "\n\n".join(textwrap.fill(p, width, break_long_words=False, break_on_hyphens=False)
                       for p in text.split("\n\n"))


def _tests(title: str, capped: dict, cols) -> list[str]:
    if not capped["count"]:
        return []
    rows = [[item[c] if not callable(c) else c(item) for c in cols] for item in capped["items"][:SHOWN]]
    more = f" (first {SHOWN})" if capped["count"] > SHOWN else ""
    return ["", f"{title}: {capped['count']}{more}", textwrap.indent(table(rows), "  ")]


def _period_lines(f: dict) -> list[str]:
    res = f["results"]
    change = f.get("pass_rate_change_pts")
    lines = [f"{f['runs']} runs on {f['commits']} commits, {res['total']} results ({res['passed']} passed, "
             f"{res['failed']} failed, {res['error']} errors, {res['skipped']} skipped), pass rate "
             f"{_pct(f['pass_rate'])}" + (f" ({change:+.1f} pts)" if change is not None else "")]
    sig = lambda i: clip(i.get("signature") or "", 60)  # noqa: E731
    lines += _tests("new failures", f["new_failures"], ("test_id", "failures", sig))
    lines += _tests("still failing", f["still_failing"], ("test_id", "failures", sig))
    lines += _tests("fixed", f["fixed"], ("test_id", lambda i: short(i.get("commit"))))
    lines += _tests("flaky failures", f["flaky_failures"],
                    ("test_id", "failures", lambda i: ",".join(i.get("evidence") or ())))
    if f["top_signatures"]:
        rows = [[s["count"], s["category"], clip(s["signature"], 70)] for s in f["top_signatures"]]
        lines += ["", "top errors:", textwrap.indent(table(rows), "  ")]
    if f["duration_regressions"]:
        rows = [[r["test_id"], f"{r['ratio']:.2f}x", f"{r['median_ms']:.0f} ms"] for r in f["duration_regressions"]]
        lines += ["", "slower than the week before:", textwrap.indent(table(rows), "  ")]
    reg, heal = f["registry"], f["healing"]
    if reg["changes"] or reg.get("detections") or heal["attempts"]:
        lines += ["", f"flaky registry: {reg['became_flaky']['count']} became flaky, {reg['healed']['count']} "
                      f"healed, {reg['quarantined']['count']} quarantined; healing attempts: {heal['attempts']} "
                      f"({heal['succeeded']} succeeded)"]
    if f["kind"] == "weekly":
        rows = [[d["date"], d["runs"], d["results"], d["failing"], _pct(d["pass_rate"])] for d in f["trend"]]
        lines += ["", textwrap.indent(table(rows, ["day", "runs", "results", "failing", "pass rate"]), "  ")]
    return lines


def _pattern_lines(f: dict) -> list[str]:
    p = f["pattern"]
    lines = [f"{f['occurrences']} failures of {p['by']} {p['value']!r} in {f['runs']} runs on "
             f"{f['days_with_occurrences']} days"
             + (f", {f['first_seen'][:10]} to {f['last_seen'][:10]}" if f["first_seen"] else "")]
    lines += _tests("affected tests", f["affected_tests"], ("test_id", "failures", "results"))
    if f["signatures"]:
        rows = [[s["count"], s["category"], clip(s["signature"], 70)] for s in f["signatures"]]
        lines += ["", "errors:", textwrap.indent(table(rows), "  ")]
    h = f["hypothesis"]
    lines += ["", f"hypothesis ({h['cause']}, confidence {h['confidence']}, rule {h['rule']}): {h['statement']}"]
    return lines


def rollup(o: dict) -> str:
    f = o["facts"]
    title = {"daily": "Daily roll-up", "weekly": "Weekly roll-up", "pattern": "Pattern roll-up"}[o["kind"]]
    head = f"{title} {o['period']['label']}" + (f" ({o['project']})" if o.get("project") else "")
    lines = [head, "", _wrap(o["narrative"]), ""]
    lines += _pattern_lines(f) if o["kind"] == "pattern" else _period_lines(f)
    lines.append("")
    if o["model"] is None and o.get("fallback_reason"):
        lines.append(f"written by com: {o['fallback_reason']}")
    if o["commit"]:
        lines.append(f"saved as journal commit {short(o['commit'])} (event {o['event_id']})")
    elif o["saved"]:
        lines.append(f"already saved (event {o['event_id']})")
    else:
        lines.append("not saved")
    return "\n".join(lines)
