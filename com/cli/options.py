"""Options shared by commands, declared once: `--json`, `--at`, and the filter options that build an
`EventFilter` (so every command filters alike, and a policy or a server builds the same object)."""

from __future__ import annotations

import functools
import inspect
from typing import List, Optional

import click
import typer

from com.model.event import STATUSES
from com.model.filter import EventFilter

JSON_HELP = "Print one JSON object with stable keys."
AT_HELP = "Read the journal as of REV: a sha, branch, tag, HEAD~N, or an ISO date/time."


class Count(click.ParamType):
    """A whole number of at least `minimum`; `zero` says what 0 means (e.g. "all"), shown in errors."""

    name = "count"

    def __init__(self, minimum: int = 0, zero: str | None = None):
        self.minimum = minimum
        self.zero = zero

    def get_metavar(self, param, ctx=None) -> str:
        return "N"

    def convert(self, value, param, ctx):
        if isinstance(value, int) and not isinstance(value, bool):
            n = value
        else:
            try:
                n = int(str(value).strip())
            except ValueError:
                self.fail(f"expected a whole number, got '{value}'", param, ctx)
        if n < self.minimum:
            meaning = f" (0: {self.zero})" if self.zero and self.minimum == 0 else ""
            self.fail(f"must be {self.minimum} or more{meaning}, got {n}", param, ctx)
        return n


def count_option(default, *names: str, help: str, minimum: int = 0, zero: str | None = None):
    return typer.Option(default, *names, help=help, click_type=Count(minimum, zero))


def choice(values) -> click.Choice:
    return click.Choice(list(values))


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
        ("status", Optional[str], typer.Option(None, "--status", click_type=choice(STATUSES),
                                               help="passed, failed, error or skipped.")),
        ("since", Optional[str], typer.Option(None, "--since", help="Only events at or after this ISO date/time.")),
        ("until", Optional[str], typer.Option(None, "--until", help="Only events at or before this ISO date/time "
                                                                   "(a date: the end of that day).")),
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
        values = {name: kwargs.pop(name, None) for name in names}
        kwargs["where"] = EventFilter.create(
            types=values["type"], projects=values["project"], test=values["test"], statuses=values["status"],
            since=values["since"], until=values["until"], tags_include=values["tag"] or (),
        )
        return fn(*args, **kwargs)

    params = [p for p in sig.parameters.values() if p.name != "where"]
    wrapper.__signature__ = sig.replace(parameters=params + extra)
    wrapper.__annotations__ = {**{k: v for k, v in fn.__annotations__.items() if k != "where"},
                               **{p.name: p.annotation for p in extra}}
    return wrapper
