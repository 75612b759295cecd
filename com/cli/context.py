"""What every command of one `com` process shares: the memory the user means (`--memory`, `$COM_DIR`, the
nearest `.com/` upwards), found once and opened lazily; whether output may be paged; whether errors are JSON."""

from __future__ import annotations

from pathlib import Path

_state: dict = {"memory_option": None, "memory": None, "warned": False}


def reset(as_json: bool = False) -> None:
    """A new run of the command line (one process, or one in-process test invocation)."""
    from com.cli import output

    _state.update(memory_option=None, memory=None, warned=False)
    output.start_run(as_json)


def finish() -> None:
    memory = _state.get("memory")
    if memory is not None:
        memory.close()
    _state["memory"] = None


def set_memory_option(path: Path | None) -> None:
    _state["memory_option"] = path
    _state["memory"] = None


def memory_option() -> Path | None:
    """The --memory value, for the commands that create a memory (init, clone)."""
    return _state["memory_option"]


def settings_checked(settings) -> None:
    """Warn once per run about settings com does not know (a typo in [tool.com], a stray COM_* variable)."""
    if _state["warned"]:
        return
    _state["warned"] = True
    from com.cli.output import warn

    for line in settings.warnings():
        warn(line)


def memory():
    """The memory, found on first use (the settings with it, read once)."""
    if _state["memory"] is None:
        from com.memory import Memory

        _state["memory"] = Memory.find(_state["memory_option"])
        settings_checked(_state["memory"].settings)
    return _state["memory"]
