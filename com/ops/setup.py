"""Creating a memory and showing the settings in effect."""

from __future__ import annotations

from dataclasses import dataclass

from com.memory import Memory
from com.ops.result import Result
from com.settings import Settings


@dataclass
class InitResult(Result):
    memory: str
    journal: str
    created: bool


@dataclass
class SettingsReport(Result):
    settings: list
    unknown: list  # keys and variables com does not know: [{"key", "value", "source"}]


def init(path=None) -> InitResult:
    memory, created = Memory.init(path)
    return InitResult(str(memory.root), str(memory.journal_path), created)


def settings_report(settings: Settings) -> SettingsReport:
    return SettingsReport([{"key": s.key, "value": s.value, "source": s.source} for s in settings.all()],
                          [{"key": s.key, "value": s.value, "source": s.source} for s in settings.unknown])
