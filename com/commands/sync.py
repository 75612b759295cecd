"""Commands that share the memory: `com remote`, `com fetch`, `com pull`, `com push`, `com clone`, `com fsck`.

Thin glue over com.sync and com.doctor (imported inside each command, so `com --help` stays fast)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from com.cli import JSON_HELP, _memory, _state, app, command
from com.output import emit, note, short, table

remote_app = typer.Typer(
    help="Remotes the journal is shared through (any git URL: file, ssh, https, git).",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(remote_app, name="remote")


def _remote_command(name: str):
    return command(name, group=remote_app)


@_remote_command("add")
def remote_add_cmd(
    name: str = typer.Argument(..., help="A short name, e.g. origin."),
    url: str = typer.Argument(..., help="Any URL git can push to (the code's own remote works)."),
    mirror: bool = typer.Option(False, "--mirror", help="Use refs/heads/* and refs/tags/* on the remote as they are, "
                                                         "instead of the refs/com/* namespace."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
):
    """Add a remote to share the journal through."""
    from com.sync import add_remote

    remote = add_remote(_memory().journal(), name, url, mirror)
    emit(remote.to_json(), as_json, lambda o: f"Added remote {o['name']} {o['url']} (branches at {o['branches']})")


@_remote_command("remove")
def remote_remove_cmd(
    name: str = typer.Argument(..., help="The remote to forget (its tracking refs go with it)."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
):
    """Remove a remote; nothing on the remote is touched."""
    from com.sync import remove_remote

    remove_remote(_memory().journal(), name)
    emit({"removed": name}, as_json, lambda o: f"Removed remote {name}")


@_remote_command("list")
def remote_list_cmd(as_json: bool = typer.Option(False, "--json", help=JSON_HELP)):
    """List remotes."""
    from com.sync import list_remotes

    remotes = [r.to_json() for r in list_remotes(_memory().journal())]
    emit({"remotes": remotes}, as_json,
         lambda o: table([[r["name"], r["url"], "mirror" if r["mirror"] else r["branches"]] for r in o["remotes"]]))


def _tag_conflicts(tags: dict) -> int:
    """Warn about tags that differ between the sides; the exit code says whether there were any."""
    for c in tags["conflicts"]:
        note(f"com: warning: tag '{c['name']}' is {short(c['local'])} here but {short(c['remote'])} on the remote; "
             "kept as it is on each side")
    return 1 if tags["conflicts"] else 0


@command("fetch")
def fetch_cmd(
    remote: Optional[str] = typer.Argument(None, help="The remote (default: origin, or the only one)."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
):
    """Download the remote's journal branches and tags without changing local ones."""
    from com.sync import fetch

    result = fetch(_memory().journal(), remote)

    def human(o):
        rows = [[b["name"], short(b["sha"]), b["state"]] for b in o["branches"]]
        rows += [[f"tag {t['name']}", short(t["sha"]), t["state"]] for t in o["tags"]]
        return table(rows) or f"{o['remote']} has no journal yet"

    emit(result, as_json, human)


@command("pull")
def pull_cmd(
    remote: Optional[str] = typer.Argument(None, help="The remote (default: origin, or the only one)."),
    branch: Optional[str] = typer.Argument(None, help="The journal branch (default: the current one)."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
):
    """Fetch and bring the remote's batches in: fast-forward, or a merge commit holding both sides' batches.

    New tags are adopted; a tag that names another commit on the remote is reported (exit 1) and kept."""
    from com.sync import pull

    result = pull(_memory().journal(), remote, branch)

    def human(o):
        src = f"{o['remote']}/{o['branch']}"
        if o["status"] == "no-remote-branch":
            line = f"{src}: the remote has no such journal branch yet"
        elif o["status"] == "up-to-date":
            line = f"{src}: already up to date"
        elif o["status"] == "merged":
            line = f"{src}: merged into {o['branch']} ({short(o['merge'])})"
        else:
            line = f"{src}: {o['status']} {short(o['from'])}..{short(o['to'])}"
        lines = [line] + [f"new tag {t}" for t in o["tags"]["adopted"]]
        return "\n".join(lines)

    emit(result, as_json, human)
    raise typer.Exit(_tag_conflicts(result["tags"]))


@command("push")
def push_cmd(
    remote: Optional[str] = typer.Argument(None, help="The remote (default: origin, or the only one)."),
    branch: Optional[str] = typer.Argument(None, help="The journal branch (default: the current one)."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
):
    """Push the journal branch and new tags. If others pushed first: fetch, merge, retry (bounded, jittered)."""
    from com.sync import push

    result = push(_memory().journal(), remote, branch)

    def human(o):
        what = "already up to date" if o["status"] == "up-to-date" else f"pushed {short(o['commit'])}"
        lines = [f"{o['branch']} -> {o['remote']} {o['remote_ref']}: {what}"]
        if o["merges"]:
            lines.append(f"merged the remote's new batches first ({len(o['merges'])} merge commit(s))")
        lines += [f"new tag {t}" for t in o["tags"]["pushed"]]
        return "\n".join(lines)

    emit(result, as_json, human)
    raise typer.Exit(_tag_conflicts(result["tags"]))


@command("clone")
def clone_cmd(
    url: str = typer.Argument(..., help="The remote holding a shared journal."),
    path: Optional[Path] = typer.Argument(None, help="Memory folder to create (default: --memory, $COM_DIR or ./.com)."),
    branch: Optional[str] = typer.Option(None, "--branch", "-b", help="The journal branch to check out."),
    mirror: bool = typer.Option(False, "--mirror", help="The remote is a plain mirror (see 'com remote add')."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
):
    """Create a memory from a shared journal: init, add the remote as 'origin', pull."""
    from com.sync import clone

    result = clone(url, path or _state["memory"], mirror=mirror, branch=branch)
    emit(result, as_json,
         lambda o: f"Cloned {o['url']} into {o['memory']} (branch {o['branch']} at {short(o['commit'])})")


@command("fsck")
def fsck_cmd(
    repair: bool = typer.Option(False, "--repair", help="Rebuild derived data (catalog, search index) and remove "
                                                         "leftovers of killed processes."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
):
    """Check the journal (git fsck, every batch, duplicate ids) and the derived data; exit 1 if a problem remains."""
    from com.doctor import fsck

    report = fsck(_memory(), repair=repair)

    def human(o):
        c = o["counts"]
        lines = [f"{c.get('events', 0)} events in {c.get('batches', 0)} batches, {c.get('branches', 0)} branch(es), "
                 f"{c.get('tags', 0)} tag(s)"]
        lines += [f"problem: {p['message']}" for p in o["problems"] if not p["repaired"]]
        lines += [f"repaired: {r}" for r in o["repaired"]]
        lines += [f"note: {i}" for i in o["info"]]
        fixable = any(p["repairable"] and not p["repaired"] for p in o["problems"])
        lines.append("ok" if o["ok"] else "problems found" + (" (try 'com fsck --repair')" if fixable else ""))
        return "\n".join(lines)

    emit(report, as_json, human)
    raise typer.Exit(0 if report["ok"] else 1)
