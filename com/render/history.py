"""Text of the journal's history: events, log, show, diff, branches and tags, ingest results."""

from __future__ import annotations

import json

from com.render.flaky import diff_flaky
from com.render.text import clip, short, table, when


def event_rows(events) -> list[list]:
    return [
        [
            when(e["ts"]),
            e["type"],
            e["project"],
            e["data"].get("status", ""),
            clip(e["data"].get("test_id") or e["data"].get("error_message") or _said(e), 70),
        ]
        for e in events
    ]


def _said(event: dict) -> str:
    """What an event other than a test result says, in one cell: its text, else its data as JSON."""
    data = event["data"]
    if event["type"] == "rollup" and isinstance(data.get("narrative"), str):
        return f"{data.get('kind')} {data.get('period')}: {data['narrative']}"
    for key in ("text", "message", "narrative", "summary"):
        if isinstance(data.get(key), str) and data[key].strip():
            return data[key]
    return json.dumps(data)


def events(o: dict) -> str:
    return table(event_rows(o["events"]), ["time", "type", "project", "status", "what"]) if o["events"] else ""


def log(o: dict) -> str:
    return table(
        [[short(c["sha"]), when(c["time"]), f"+{c['added']}", clip(c["message"].splitlines()[0], 70)]
         for c in o["commits"]]
    )


def show(o: dict) -> str:
    head = [f"commit {o['sha']}", f"Date:  {o['time']}", "", *("    " + line for line in o["message"].splitlines()), ""]
    if o["events"]:
        head.append(f"{o['added']} event(s) added:")
        head.append(table(event_rows(o["events"][:50])))
        if len(o["events"]) > 50:
            head.append(f"… and {len(o['events']) - 50} more")
    return "\n".join(head)


def diff(o: dict) -> str:
    s = o["summary"]
    lines = [f"{short(o['from'])}..{short(o['to'])}: +{len(o['added'])} -{len(o['removed'])} events"]
    if s["newly_failing"]:
        lines.append(f"newly failing ({len(s['newly_failing'])}):")
        lines.extend("  " + t for t in s["newly_failing"][:30])
    if s["fixed"]:
        lines.append(f"fixed ({len(s['fixed'])}):")
        lines.extend("  " + t for t in s["fixed"][:30])
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
    return "\n".join(f"{'*' if b['current'] else ' '} {b['name']}  {short(b['sha'])}" for b in o["branches"])


def tags(o: dict) -> str:
    return table([[t["name"], short(t["sha"]), clip(t["message"], 60)] for t in o["tags"]])
