"""`com retrieve`."""

from __future__ import annotations

from typing import Optional

import typer

from com.cli import context
from com.cli.options import at_option
from com.cli.output import emit, handled, progress
from com.model.errors import ComError

app = typer.Typer()

FORMATS = ("markdown", "json")


@app.command("retrieve")
@handled
def retrieve_cmd(
    policy: Optional[str] = typer.Option(None, "--policy", help="The policy's id (com policies lists them)."),
    task: Optional[str] = typer.Option(None, "--task", help="Or the task it is for: root_cause, flaky_triage, "
                                                          "regression_select, healing, code_review."),
    test: Optional[str] = typer.Option(None, "--test", help="The test the pack is about: a node id (or a file or "
                                                          "class prefix, or a glob)."),
    query: Optional[str] = typer.Option(None, "--query", "-q", help="What the pack is about, in words (default: "
                                                                   "the test's newest failure)."),
    project: Optional[str] = typer.Option(None, "--project", "-p", help="Only events of this project."),
    budget: Optional[int] = typer.Option(None, "--budget", help="Tokens for this call (default: the policy's "
                                                                "budget_tokens)."),
    at: Optional[str] = at_option(),
    output: str = typer.Option("markdown", "--format", "-f", help="markdown (for a person or an LLM prompt) or json."),
    as_json: bool = typer.Option(False, "--json", help="The same as --format json."),
):
    """A context pack for a task: the evidence a policy picks, within a token budget, as Markdown or JSON.

    Candidates come from the hybrid index (filtered by the policy) and from what the memory knows about the test: its flaky status and recent results, the code changes its failures ran against, healing attempts, roll-ups, and analysis commits naming the evidence (pinned). --at packs only what existed at REV. See docs/retrieve.md."""
    from com.ops.retrieve import retrieve
    from com.render.retrieve import markdown

    if output not in FORMATS:
        raise ComError(f"unknown format '{output}' (expected {' or '.join(FORMATS)})", param="output")
    found = retrieve(context.memory(), policy=policy, task=task, test=test, query=query, project=project,
                     budget=budget, at=at, progress=progress("com retrieve"))
    emit(found, as_json or output == "json", markdown)
