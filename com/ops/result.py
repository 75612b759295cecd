"""What every use-case returns: a dataclass whose `to_json()` is the stable `--json` shape."""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass
class Result:
    """Fields are the JSON keys, in order (a trailing underscore, as in `from_`, is dropped)."""

    def to_json(self) -> dict:
        return {f.name.rstrip("_"): plain(getattr(self, f.name)) for f in fields(self) if not f.name.startswith("_")}


def plain(value):
    if hasattr(value, "to_json"):
        return value.to_json()
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value
