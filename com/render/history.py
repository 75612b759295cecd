"""Text of the journal's history: events, one event whole, log, show, diff, branches and tags, ingest results."""

from __future__ import annotations

import json

from com.render.flaky import diff_flaky
from com.render.text import clip, duration, first_line, paint, short, status_colour, table, when

EVENT_HEADERS = ["id", "time", "type", "project", "status", "took", "what"]


def short_id(event_id: str) -> str:
    """An event id as tables show it: enough to `com show` it (evt_ and 8 hex digits)."""
    return event_id[:12]


def what(event: dict) -> str:
    """One line saying what an event is about: a test and, when it failed, the first line of its error."""
    data = event.get("data") or {}
    test = data.get("test_id")
    error = first_line(data.get("error_message") or data.get("message") or "")
    if test:
        return f"{test}: {error}" if error and data.get("status") in ("failed", "error", "skipped") else test
    if error:
        return error
    text = data.get("text") or data.get("summary")
    return first_line(text) if isinstance(text, str) and text else json.dumps(data, ensure_ascii=False)


def event_rows(events) -> list[list]:
    return [
        [short_id(e["id"]), when(e["ts"]), e["type"], e["project"], (e.get("data") or {}).get("status", ""),
         duration((e.get("data") or {}).get("duration_ms")), clip(what(e), 200)]
        for e in events
    ]


def event_table(events) -> str:
    return table(event_rows(events), EVENT_HEADERS, colours={0: lambda _: "yellow", 4: status_colour},
                 optional=(2, 3))


def events(o: dict) -> str:
    return event_table(o["events"]) if o["events"] else ""


def events_footer(o: dict, limit: int | None) -> str | None:
    """What the table leaves out, for stderr: 'showing 50 of 1,234 (--limit 0 for all)'."""
    shown = len(o["events"])
    if o.get("total") is not None and o["total"] > shown:
        return f"showing {shown:,} of {o['total']:,} (--limit 0 for all)"
    if o.get("more"):
        return f"showing the newest {shown:,}; more match (--limit 0 for all)"
    return None


def event(o: dict) -> str:
    """One event whole: its fields, its data (messages and trace in full), where it is stored."""
    e = o["event"]
    data = dict(e.get("data") or {})
    rows = [["event", paint(e["id"], "yellow")], ["type", e["type"]], ["project", e["project"]],
            ["source", e.get("source", "")], ["time", e["ts"]], ["importance", e.get("importance", "")]]
    if e.get("tags"):
        rows.append(["tags", ", ".join(e["tags"])])
    rows.append(["batch", o["batch"] + (f" (journal commit {short(o['commit'])})" if o.get("commit") else "")])
    lines = [f"{k:<11} {v}" for k, v in rows]
    long_keys = ("error_message", "trace", "stdout", "stderr", "text", "message")
    first = ["test_id", "status", "attempt", "duration_ms", "commit", "branch", "run_id"]
    if data:
        lines.append("")
    for key in first + sorted(k for k in data if k not in first and k not in long_keys):
        if key not in data:
            continue
        value = data[key]
        if key == "status":
            value = paint(str(value), status_colour(str(value)))
        elif key == "duration_ms":
            key, value = "duration", duration(value)
        elif not isinstance(value, str):
            value = json.dumps(value, ensure_ascii=False)
        lines.append(f"{key:<11} {value}")
    for key in long_keys:
        value = data.get(key)
        if value in (None, ""):
            continue
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, indent=2)
        if "\n" in text or len(text) > 60 or key == "trace":
            lines.append("")
            lines.append(f"{key}:")
            lines.extend("    " + line for line in text.rstrip("\n").splitlines())
        else:
            lines.append(f"{key:<11} {text}")
    return "\n".join(lines)


def log(o: dict) -> str:
    return table(
        [[short(c["commit"]), when(c["ts"]), f"+{c['added']}", clip(first_line(c["message"]), 200)]
         for c in o["commits"]],
        colours={0: lambda _: "yellow"},
    )


def show(o: dict) -> str:
    if "event" in o and "batch" in o:
        return event(o)
    head = [paint(f"commit {o['commit']}", "yellow"), f"Date:  {o['ts']}", "",
            *("    " + line for line in o["message"].splitlines()), ""]
    if o["events"]:
        head.append(f"{o['added']} event(s) added:")
        head.append(event_table(o["events"][:50]))
        if len(o["events"]) > 50:
            head.append(f"… and {len(o['events']) - 50} more (--json for all)")
    if o.get("about"):
        found = {e["id"] for e in o.get("about_events") or []}
        head.append(f"about {len(o['about'])} event(s):")
        if o.get("about_events"):
            head.append(event_table(o["about_events"]))
        head.extend(f"{i}  (not in this snapshot)" for i in o["about"] if i not in found)
    return "\n".join(head)


def diff(o: dict) -> str:
    s = o["summary"]
    lines = [f"{short(o['from'])}..{short(o['to'])}: +{len(o['added'])} -{len(o['removed'])} events"]
    if s["newly_failing"]:
        lines.append(paint(f"newly failing ({len(s['newly_failing'])}):", "red"))
        lines.extend("  " + t for t in s["newly_failing"][:30])
        if len(s["newly_failing"]) > 30:
            lines.append(f"  … and {len(s['newly_failing']) - 30} more (--json for all)")
    if s["fixed"]:
        lines.append(paint(f"fixed ({len(s['fixed'])}):", "green"))
        lines.extend("  " + t for t in s["fixed"][:30])
        if len(s["fixed"]) > 30:
            lines.append(f"  … and {len(s['fixed']) - 30} more (--json for all)")
    lines.extend(diff_flaky(s))
    return "\n".join(lines)


def ingest(o: dict) -> str:
    lines = [f"added {o['added']} event(s), {o['duplicates']} already known"]
    lines.append(f"commit {o['commit']}" if o["commit"] else "nothing new: no commit")
    lines.extend(o["ids"][:20])
    if len(o["ids"]) > 20:
        lines.append(f"… and {len(o['ids']) - 20} more")
    return "\n".join(lines)


def branches(o: dict) -> str:
    return "\n".join(f"{'*' if b['current'] else ' '} {paint(b['name'], 'green') if b['current'] else b['name']}  "
                     f"{short(b['commit'])}" for b in o["branches"])


def tags(o: dict) -> str:
    return table([[t["name"], short(t["commit"]), clip(t["message"], 60)] for t in o["tags"]])
