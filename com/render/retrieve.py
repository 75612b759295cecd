"""Text of `com retrieve`: the context pack as Markdown, from its JSON form (exactly the pieces whose tokens
were counted, so `tokens_used` holds for what is printed)."""

from __future__ import annotations


def markdown(o: dict) -> str:
    from com.analysis.packing import to_markdown

    return to_markdown(o)
