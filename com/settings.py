"""Settings: defaults, then [tool.com] in the code repository's pyproject.toml, then COM_* variables; loaded once
per Memory. A key or a COM_* variable com does not know is not an error (an older com reading a newer
config must work) but is kept aside, so front ends can warn about it: a typo must not pass silently."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from com.model.errors import ComError

# key -> (default, what it is for). Every key can be set as [tool.com] key or COM_<KEY>.
SETTINGS: dict[str, tuple[object, str]] = {
    "project": (None, "default project for events ingested without a project of their own"),
    "source": ("cli", "default source of events ingested from flags"),
    "branch": ("main", "journal branch created by com init"),
    "embedding_model": ("all-MiniLM-L6-v2", "packaged model name or a sentence-transformers folder (never downloaded)"),
    "embedding_dim": (384, "vector size of the embedding model"),
    "index_uri": (None, "LanceDB location of the index (default: .com/index; s3:// and gs:// work)"),
    "select": ("run", "run: com select and --com-select skip what the selection skips; observe: run everything, record what it would skip"),
    "select_global": (None, "more global files for com select (globs; a list, or comma-separated): a change to one selects every test"),
    "select_semantic": (False, "com select adds semantic similarity of the change to tests and past failures (the index)"),
    "push_tries": (8, "attempts of com push while others keep pushing first (each: fetch, merge, retry with jitter)"),
    "max_input_mb": (1024, "most MiB com ingest reads from a file, stdin or one JUnit report"),
    "llm_model": (None, "text model of com rollup: a .gguf file or a packaged model's name (default: the packaged Gemma 3 270M)"),
    "llm_url": (None, "an OpenAI-compatible server com rollup asks instead (llama-server, LM Studio, Ollama)"),
}


# COM_* variables that are not settings: what they are for (`com config` and docs/cli.md list them).
ENVIRONMENT: dict[str, str] = {
    "COM_DIR": "the memory folder (instead of the nearest .com/ upwards)",
    "COM_RECORD": "1: the pytest plugin records the session as if --com were given",
    "COM_DEBUG": "1: an internal error prints its traceback",
    "COM_PAGER": "the pager for long output in a terminal (before $PAGER; '' or cat: none)",
    "COM_SELECTED": "set by com's pre-push hook for its test runner: a file of the selected test ids, one a line",
}


@dataclass(frozen=True)
class Setting:
    key: str
    value: object
    source: str  # "default", "<path>/pyproject.toml", or "COM_<KEY>"


def _find_pyproject(start: Path) -> Path | None:
    start = start.resolve()
    for folder in (start, *start.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            return candidate
        if (folder / ".git").exists():  # the code repository's root ends the search
            return None
    return None


def _read_tool_com(path: Path) -> dict:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    try:
        with path.open("rb") as fh:
            doc = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ComError(f"{path}: cannot read [tool.com]: {exc}") from None
    section = doc.get("tool", {}).get("com", {})
    if not isinstance(section, dict):
        raise ComError(f"{path}: [tool.com] must be a table")
    return {k.replace("-", "_"): v for k, v in section.items()}


def _coerce(key: str, raw: str):
    default = SETTINGS[key][0] if key in SETTINGS else None
    if isinstance(default, int) and not isinstance(default, bool):
        try:
            return int(raw)
        except ValueError:
            raise ComError(f"COM_{key.upper()}: expected an integer, got {raw!r}") from None
    return raw


class Settings:
    """Every known setting with its effective value and where it came from, read once."""

    def __init__(self, values: dict[str, Setting], unknown: list[Setting] | None = None):
        self._values = values
        self.unknown = list(unknown or [])  # keys com does not know, with where they were found

    def get(self, key: str):
        setting = self._values.get(key)
        return setting.value if setting else None

    def all(self) -> list[Setting]:
        return list(self._values.values())

    def warnings(self) -> list[str]:
        """One line per unknown key or variable, naming it and where it is, with the closest known name."""
        if not self.unknown:
            return []
        import difflib

        out = []
        for s in self.unknown:
            if s.source.startswith("COM_"):
                known = [f"COM_{k.upper()}" for k in SETTINGS] + list(ENVIRONMENT)
                close = difflib.get_close_matches(s.source, known, n=1, cutoff=0.6)
                hint = f" (did you mean {close[0]}?)" if close else ""
                out.append(f"unknown environment variable {s.source} ignored{hint}")
            else:
                close = difflib.get_close_matches(s.key, list(SETTINGS), n=1, cutoff=0.6)
                hint = f" (did you mean '{close[0]}'?)" if close else f" (known: {', '.join(SETTINGS)})"
                out.append(f"unknown setting '{s.key}' in [tool.com] of {s.source} ignored{hint}")
        return out


def load(cwd: Path | None = None) -> Settings:
    """The settings in effect for a command run in `cwd` (default: the working directory)."""
    settings = {key: Setting(key, default, "default") for key, (default, _) in SETTINGS.items()}
    unknown: list[Setting] = []
    pyproject = _find_pyproject(cwd or Path.cwd())
    if pyproject is not None:
        for key, value in _read_tool_com(pyproject).items():
            if key in SETTINGS:
                settings[key] = Setting(key, value, str(pyproject))
            else:
                unknown.append(Setting(key, value, str(pyproject)))
    for name, raw in sorted(os.environ.items()):
        if name.startswith("COM_") and name not in ENVIRONMENT:
            key = name[4:].lower()
            if key in SETTINGS:
                settings[key] = Setting(key, _coerce(key, raw), name)
            else:
                unknown.append(Setting(key, raw, name))
    return Settings(settings, unknown)
