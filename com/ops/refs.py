"""Branches, tags and analysis commits of the journal (native git refs)."""

from __future__ import annotations

from dataclasses import dataclass

from com.journal.repo import TRAILER_EVENT
from com.memory import Memory
from com.model.errors import ComError, NotFound
from com.model.event import is_event_id
from com.ops.result import Result


@dataclass
class BranchList(Result):
    branches: list
    current: str


@dataclass
class TagList(Result):
    tags: list


@dataclass
class AnalysisCommit(Result):
    commit: str
    about: list


def branches(memory: Memory) -> BranchList:
    return BranchList(memory.journal.branches(), memory.journal.branch)


def create_branch(memory: Memory, name: str, rev: str | None = None) -> dict:
    return memory.journal.create_branch(name, rev)


def delete_branch(memory: Memory, name: str) -> None:
    memory.journal.delete_branch(name)


def switch(memory: Memory, name: str, create: bool = False) -> None:
    memory.journal.switch(name, create=create)


def tags(memory: Memory) -> TagList:
    return TagList(memory.journal.tags())


def create_tag(memory: Memory, name: str, rev: str | None = None, message: str | None = None) -> dict:
    return memory.journal.create_tag(name, rev, message)


def delete_tag(memory: Memory, name: str) -> None:
    memory.journal.delete_tag(name)


def commit_about(memory: Memory, message: str, event_ids: list[str]) -> AnalysisCommit:
    """An analysis commit: a message and `Com-Event:` trailers naming events of the snapshot, no new events."""
    if not message.strip():
        raise ComError("the commit message is empty", param="message")
    for eid in event_ids:
        if not is_event_id(eid):
            raise ComError(f"'{eid}' is not an event id (evt_ and 24 hex digits, as 'com events --json' "
                           "shows them)", param="event")
    with memory.journal.writing() as tx:
        if tx.tip is None:
            raise NotFound(f"the journal branch '{tx.branch}' has no commits yet (ingest something first)")
        if event_ids:
            missing = sorted(set(event_ids) - memory.known_ids(tx.tip, event_ids))
            if missing:
                raise NotFound(f"unknown event id '{missing[0]}' (not in {tx.branch})", param="event")
        body = message.rstrip() + "\n"
        if event_ids:
            body += "\n" + "".join(f"{TRAILER_EVENT}{eid}\n" for eid in event_ids)
        sha = tx.commit(body, tree=tx.tip.tree.id)
    return AnalysisCommit(sha, list(event_ids))
