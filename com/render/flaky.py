"""Text of the flaky registry: detection tables, one test's page, the report in markdown, the quarantine list."""

from __future__ import annotations

from com.render.text import clip, short, table, when

SHOWN = 30


def _rate(x) -> str:
    return "-" if x is None else f"{x:.2f}"


def _more(rows: list, limit: int = SHOWN) -> list[str]:
    return [f"… and {len(rows) - limit} more (--json for all)"] if len(rows) > limit else []


def _status(f: dict) -> str:
    status = f.get("status") or "detected"
    return status + (" (quarantined)" if f.get("quarantined") and status != "quarantined" else "")


def detect(o: dict) -> str:
    lines = []
    head = f"{len(o['flaky'])} flaky, {len(o['broken'])} broken of {o['tests']} tests ({o['runs']} runs"
    head += f", as of {when(o['as_of'])})" if o.get("as_of") else ")"
    if o.get("since"):
        head += f", since {when(o['since'])}"
    lines.append(head)
    if o["flaky"]:
        rows = [[f["test_id"], _rate(f["flake_rate"]), f["severity"], f"{f['failures']}/{f['runs']}",
                 _rate(f["confidence"]), f["evidence"]["strongest"], _status(f)] for f in o["flaky"][:SHOWN]]
        lines += ["", table(rows, ["flaky test", "flake", "severity", "failed", "conf", "evidence", "status"])]
        lines += _more(o["flaky"])
    if o["broken"]:
        rows = [[b["test_id"], short(b["since_commit"]), short(b["fixed_commit"]) if b["fixed_commit"] else "still failing",
                 b["runs"]] for b in o["broken"][:SHOWN]]
        lines += ["", table(rows, ["broken test", "since", "fixed by", "failed runs"])]
        lines += _more(o["broken"])
    if o.get("too_few_runs"):
        lines.append(f"\n{len(o['too_few_runs'])} more test(s) failed now and then with fewer than {o['min_runs']} runs")
    if o.get("excluded_runs"):
        lines.append(f"{len(o['excluded_runs'])} run(s) left out: most of their tests failed (the machine, not the tests)")
    if o.get("commit"):
        lines.append(f"recorded as journal commit {short(o['commit'])}")
    return "\n".join(lines)


def show(o: dict) -> str:
    lines = [o["test_id"]]
    f = o.get("flaky")
    st = o["status"]
    if f:
        lines.append(f"  flaky: flake rate {_rate(f['flake_rate'])} ({f['severity']}), failed {f['failures']} of "
                     f"{f['runs']} runs, confidence {_rate(f['confidence'])}, evidence: "
                     f"{f['evidence']['retry_passes']} pass(es) on retry, {f['evidence']['same_commit']} commit(s) "
                     f"passing and failing, {f['evidence']['flips']} flip(s)")
    else:
        lines.append("  not flaky by detection")
    for b in o["broken"]:
        fixed = f"fixed by {short(b['fixed_commit'])}" if b["fixed_commit"] else "still failing"
        lines.append(f"  broken since {short(b['since_commit'])} ({b['runs']} failed runs), {fixed}")
    status = st["status"] or ("detected" if f else "not in the registry")
    if st["quarantined"] and status != "quarantined":
        status += ", quarantined"
    lines.append(f"  status: {status}" + (f" (since {when(st['since'])})" if st.get("since") else "")
                 + (f": {st['reason']}" if st.get("reason") else ""))
    h = o["history"]
    lines.append(f"  history: {h['runs']} runs, {h['failures']} failed, over {h.get('commits_total', 0)} code commit(s)")
    if h["commits"]:
        rows = [[short(c["commit"]), f"{c['failures']}/{c['runs']}", when(c["last_seen"])] for c in h["commits"][:10]]
        lines += ["", table(rows, ["commit", "failed", "last run"])]
    if o["manifestations"]:
        lines.append("\nmanifestations:")
        rows = [[f"{m['count']}", f"{m['share']:.0%}", m["category"], when(m["last_seen"]), clip(m["signature"], 70)]
                for m in o["manifestations"]]
        lines.append(table(rows, ["count", "share", "category", "last seen", "signature"]))
    if o["status_history"]:
        lines.append("\nstatus changes:")
        lines += [f"  {when(c['ts'])}  {c['status']}" + (f": {c['reason']}" if c.get("reason") else "")
                  for c in o["status_history"]]
    if o["attempts"]:
        lines.append("\nhealing attempts:")
        lines += [f"  {when(a['ts'])}  {a['strategy']}: {a['outcome']}" + (f" ({a['notes']})" if a.get("notes") else "")
                  for a in o["attempts"]]
    if o["recommendations"]:
        lines.append("\nrecommended strategies:")
        rows = [[r["strategy"], f"{r['score']:.2f}", f"{r['successes']}/{r['attempts']} here",
                 f"{r['successes_overall']}/{r['attempts_overall']} overall"] for r in o["recommendations"]]
        lines.append(table(rows))
    if o["similar_healed"]:
        lines.append("\nsimilar failures that were healed:")
        lines += [f"  {s['similarity']:.2f}  {s['test_id']}" + (f" by {s['strategy']}" if s.get("strategy") else "")
                  + (f": {clip(s['error_message'], 60)}" if s.get("error_message") else "") for s in o["similar_healed"]]
    lines += [f"note: {n}" for n in o.get("notes", [])]
    return "\n".join(lines)


def mark(o: dict) -> str:
    moved = f"{o['test_id']}: {o['previous'] or 'unregistered'} -> {o['status']}"
    if o["quarantined"]:
        moved += " (quarantined)"
    return moved + (f"\ncommit {o['commit']}" if o["commit"] else "")


def heal(o: dict) -> str:
    line = f"{o['test_id']}: {o['strategy']} ({o['category']}): {o['outcome']}; status {o['status'] or '-'}"
    if o["quarantined"]:
        line += " (quarantined)"
    return line + (f"\ncommit {o['commit']}" if o["commit"] else "")


def _rates(rates: dict) -> list[list]:
    return [[name, r["attempts"], r["successes"], "-" if r["success_rate"] is None else f"{r['success_rate']:.0%}"]
            for name, r in rates.items()]


def stats(o: dict) -> str:
    if not o["attempts"]:
        return "no healing attempts recorded (com flaky heal TEST --strategy S --outcome success|failure)"
    lines = [f"{o['attempts']} healing attempt(s), {o['overall']['successes']} succeeded", ""]
    lines.append(table(_rates(o["by_strategy"]), ["strategy", "attempts", "succeeded", "rate"]))
    lines.append("")
    lines.append(table(_rates(o["by_category"]), ["category", "attempts", "succeeded", "rate"]))
    return "\n".join(lines)


def _md_table(headers: list[str], rows: list[list]) -> list[str]:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return out


def report(o: dict) -> str:
    s = o["summary"]
    lines = ["# Flaky test report", ""]
    scope = f"as of {when(o['as_of'])}" if o.get("as_of") else "no results"
    if o.get("since"):
        scope += f", since {when(o['since'])}"
    if o.get("project"):
        scope += f", project {o['project']}"
    lines += [f"{s['flaky']} flaky and {s['broken']} broken test(s) among {s['tests']} ({s['runs']} runs), {scope}; "
              f"{s['quarantined']} quarantined.", ""]
    lines += ["## By severity", ""] + _md_table(["severity", "tests"], [[k, v] for k, v in s["by_severity"].items()])
    lines += ["", "## By status", ""] + _md_table(["status", "tests"], [[k, v] for k, v in s["by_status"].items() if v])
    if o["top"]:
        lines += ["", "## Flakiest tests", ""]
        lines += _md_table(["test", "flake rate", "severity", "failed", "evidence", "status"],
                           [[f"`{f['test_id']}`", _rate(f["flake_rate"]), f["severity"], f"{f['failures']}/{f['runs']}",
                             f["evidence"]["strongest"], _status(f)] for f in o["top"]])
    if o["broken"]:
        lines += ["", "## Broken (still failing)", ""]
        lines += _md_table(["test", "since", "failed runs"],
                           [[f"`{b['test_id']}`", f"`{short(b['since_commit'])}`", b["runs"]] for b in o["broken"]])
    h = o["healing"]
    lines += ["", "## Healing", ""]
    if h["attempts"]:
        lines.append(f"{h['attempts']} attempt(s), {h['overall']['successes']} succeeded.")
        lines += [""] + _md_table(["strategy", "attempts", "succeeded", "rate"], _rates(h["by_strategy"]))
        lines += [""] + _md_table(["category", "attempts", "succeeded", "rate"], _rates(h["by_category"]))
    else:
        lines.append("No healing attempts recorded.")
    return "\n".join(lines)


def quarantine_ids(o: dict) -> str:
    return "\n".join(q["test_id"] for q in o["quarantined"])


def diff_flaky(summary: dict) -> list[str]:
    """The lines `com diff` adds for flaky flips and registry changes."""
    lines = []
    flips = summary.get("flaky") or []
    if flips:
        lines.append(f"flaky ({len(flips)}), not counted as failing or fixed:")
        rows = [["  " + f["test_id"], f"now {f['now']}", f"flake {_rate(f['flake_rate'])}", f["severity"] or "",
                 f"({f['why']})"] for f in flips[:SHOWN]]
        lines.append(table(rows))
        lines += ["  " + m for m in _more(flips)]
    reg = summary.get("registry") or {}
    if reg.get("became_flaky"):
        lines.append(f"became flaky ({len(reg['became_flaky'])}):")
        lines += [f"  {f['test_id']}  flake {_rate(f['flake_rate'])} {f['severity']}" for f in reg["became_flaky"][:SHOWN]]
    if reg.get("no_longer_flaky"):
        lines.append(f"no longer flaky ({len(reg['no_longer_flaky'])}):")
        lines += ["  " + t for t in reg["no_longer_flaky"][:SHOWN]]
    if reg.get("status"):
        lines.append(f"registry status changes ({len(reg['status'])}):")
        lines += [f"  {c['test_id']}: {c['from'] or 'unregistered'} -> {c['to']}" for c in reg["status"][:SHOWN]]
    return lines
