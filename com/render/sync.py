"""Text of sharing: remotes, fetch, pull, push, clone, fsck, the index."""

from __future__ import annotations

from com.render.text import short, table


def remotes(o: dict) -> str:
    return table([[r["name"], r["url"], "mirror" if r["mirror"] else r["branches"]] for r in o["remotes"]])


def fetch(o: dict) -> str:
    rows = [[b["name"], short(b["commit"]), b["state"]] for b in o["branches"]]
    rows += [[f"tag {t['name']}", short(t["commit"]), t["state"]] for t in o["tags"]]
    return table(rows) or f"{o['remote']} has no journal yet"


def pull(o: dict) -> str:
    src = f"{o['remote']}/{o['branch']}"
    if o["status"] == "no-remote-branch":
        line = f"{src}: the remote has no such journal branch yet"
    elif o["status"] == "up-to-date":
        line = f"{src}: already up to date"
    elif o["status"] == "merged":
        line = f"{src}: merged into {o['branch']} ({short(o['merge'])})"
    else:
        line = f"{src}: {o['status']} {short(o['from'])}..{short(o['to'])}"
    return "\n".join([line] + [f"new tag {t}" for t in o["tags"]["adopted"]])


def push(o: dict) -> str:
    what = "already up to date" if o["status"] == "up-to-date" else f"pushed {short(o['commit'])}"
    lines = [f"{o['branch']} -> {o['remote']} {o['remote_ref']}: {what}"]
    if o["merges"]:
        lines.append(f"merged the remote's new batches first ({len(o['merges'])} merge commit(s))")
    lines += [f"new tag {t}" for t in o["tags"]["pushed"]]
    return "\n".join(lines)


def clone(o: dict) -> str:
    return f"Cloned {o['url']} into {o['memory']} (branch {o['branch']} at {short(o['commit'])})"


def fsck(o: dict) -> str:
    c = o["counts"]
    lines = [f"{c.get('events', 0)} events in {c.get('batches', 0)} batches, {c.get('branches', 0)} branch(es), "
             f"{c.get('tags', 0)} tag(s)"]
    lines += [f"problem: {p['message']}" for p in o["problems"] if not p["repaired"]]
    lines += [f"repaired: {r}" for r in o["repaired"]]
    lines += [f"note: {i}" for i in o["info"]]
    fixable = any(p["repairable"] and not p["repaired"] for p in o["problems"])
    lines.append("ok" if o["ok"] else "problems found" + (" (try 'com fsck --repair')" if fixable else ""))
    return "\n".join(lines)


def index(o: dict) -> str:
    head = f"rebuilt ({o['reason']}): " if o["rebuilt"] else ""
    return (f"{head}indexed {o['rows']} event row(s) from {o['batches']} batch(es) and {o['commits']} commit(s); "
            f"{o['texts']} new text(s), {o['embedded']} embedded; {o['total_rows']} row(s), "
            f"{o['total_texts']} distinct text(s) in {o['uri']}")
