"""Options shared by commands, declared once: `--json`, `--at`, and the filter options that build an
`EventFilter` (so every command filters alike, and a policy or a server builds the same object)."""

from __future__ import annotations

import functools
import inspect
from typing import List, Optional

import typer

from com.model.filter import EventFilter

JSON_HELP = "Print one JSON object with stable keys."
AT_HELP = ("Read the journal as of REV: a sha, branch, tag, HEAD~N, or a date as git reads one (2026-11-01, "
           "'2026-11-01 10:00', yesterday, 2.weeks.ago; UTC unless a zone is given).")


def json_option():
    return typer.Option(False, "--json", help=JSON_HELP)


def at_option(help: str = AT_HELP):
    return typer.Option(None, "--at", help=help)


def _filter_params() -> list[inspect.Parameter]:
    kw = inspect.Parameter.KEYWORD_ONLY
    spec = [
        ("type", Optional[str], typer.Option(None, "--type", "-t", help="Only events of this type.")),
        ("project", Optional[str], typer.Option(None, "--project", "-p", help="Only events of this project.")),
        ("test", Optional[str], typer.Option(None, "--test", help="Only results of this test: a node id, a file or "
                                                                 "class prefix, or a glob.")),
        ("status", Optional[str], typer.Option(None, "--status", help="passed, failed, error or skipped.")),
        ("since", Optional[str], typer.Option(None, "--since", help="Only events at or after this date/time (ISO, or "
                                                                   "as git reads dates: yesterday, 2.weeks.ago).")),
        ("until", Optional[str], typer.Option(None, "--until", help="Only events at or before this date/time "
                                                                   "(a bare date: the end of that day).")),
        ("tag", Optional[List[str]], typer.Option(None, "--tag", help="Only events with this tag (repeatable: any).")),
    ]
    return [inspect.Parameter(name, kw, default=default, annotation=annotation) for name, annotation, default in spec]


def filter_options(fn):
    """Add the filter options to a command; it receives them as one `where: EventFilter`."""
    sig = inspect.signature(fn)
    extra = _filter_params()
    names = [p.name for p in extra]

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from com.journal.dates import instant_us

        values = {name: kwargs.pop(name, None) for name in names}
        kwargs["where"] = EventFilter.create(
            types=values["type"], projects=values["project"], test=values["test"], statuses=values["status"],
            since=values["since"], until=values["until"], tags_include=values["tag"] or (), dates=instant_us,
        )
        return fn(*args, **kwargs)

    params = [p for p in sig.parameters.values() if p.name != "where"]
    wrapper.__signature__ = sig.replace(parameters=params + extra)
    wrapper.__annotations__ = {**{k: v for k, v in fn.__annotations__.items() if k != "where"},
                               **{p.name: p.annotation for p in extra}}
    return wrapper
