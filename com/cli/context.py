"""What every command of one `com` process shares: the memory the user means (`--memory`, `$COM_DIR`, the
nearest `.com/` upwards), found once and opened lazily."""

from __future__ import annotations

from pathlib import Path

_state: dict = {"memory_option": None, "memory": None}


def set_memory_option(path: Path | None) -> None:
    _state["memory_option"] = path
    _state["memory"] = None


def memory_option() -> Path | None:
    """The --memory value, for the commands that create a memory (init, clone)."""
    return _state["memory_option"]


def memory():
    """The memory, found on first use (the settings with it, read once)."""
    if _state["memory"] is None:
        from com.memory import Memory

        _state["memory"] = Memory.find(_state["memory_option"])
    return _state["memory"]


def opened():
    """The memory if this process has opened it already (None otherwise: nothing is looked up)."""
    return _state["memory"]
