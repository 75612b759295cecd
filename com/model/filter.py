"""Which events a question is about, as data: `EventFilter`, built the same way from CLI flags, policy YAML and
(later) HTTP query parameters, and interpreted per backend: `matches(event)` for journal scans and `to_sql()`
for the derived stores."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from functools import lru_cache

from com.model.errors import ComError
from com.model.event import STATUSES, read_type, ts_us
from com.model.result import STATUS_CODES

_TYPE_RE = re.compile(r"[a-z][a-z0-9_]*\Z")
# Only '*' and '?' make a glob: brackets are everywhere in parametrised test ids (`test_x[a-1]`) and match
# themselves.
_GLOB_CHARS = frozenset("*?")


@dataclass(frozen=True)
class TestMatch:
    """A test selector: `exact` (the whole id), `prefix` (a file, folder or class: `tests/test_x.py`,
    `tests/test_x.py::TestC`; matches the id itself and ids below it) or `glob` (`*login*`: '*' any run of
    characters, '?' one; everything else, brackets included, matches itself)."""

    __test__ = False

    pattern: str
    kind: str = "prefix"  # exact | prefix | glob

    @property
    def _glob(self) -> re.Pattern:
        return _glob_re(self.pattern)

    @classmethod
    def parse(cls, text: str) -> "TestMatch":
        """What a user typed: a glob when it has glob characters, else a node id or a prefix of one."""
        if not text:
            raise ComError("the test id is empty", param="test")
        return cls(text, "glob" if _GLOB_CHARS & set(text) else "prefix")

    def matches(self, test_id: str) -> bool:
        if self.kind == "exact":
            return test_id == self.pattern
        if self.kind == "glob":
            return self._glob.match(test_id) is not None
        p = self.pattern
        if test_id == p:
            return True
        if not test_id.startswith(p):
            return False
        # A prefix ends at a boundary: a folder ('/'), a file or class ('::'), never in the middle of a name.
        rest = test_id[len(p):]
        return p.endswith(("/", "::")) or rest.startswith(("::", "/"))


@dataclass(frozen=True)
class EventFilter:
    """A conjunction of conditions on events; an empty field does not constrain. Times are microseconds.

    `statuses` keeps test results alone, those with one of the statuses (`com events --status failed`);
    `result_statuses` restricts test results to those statuses and lets every other event through (a policy's
    `statuses`: failed results, and the code changes and notes beside them)."""

    types: tuple[str, ...] = ()
    projects: tuple[str, ...] = ()
    test: TestMatch | None = None
    statuses: tuple[str, ...] = ()
    since_us: int | None = None
    until_us: int | None = None
    tags_include: tuple[str, ...] = ()  # at least one of these
    tags_exclude: tuple[str, ...] = ()  # none of these
    min_importance: float | None = None
    result_statuses: tuple[str, ...] = ()  # test results must have one of these; other events pass
    _status_set: frozenset = field(default=frozenset(), repr=False, compare=False)
    _result_status_set: frozenset = field(default=frozenset(), repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "_status_set", frozenset(self.statuses))
        object.__setattr__(self, "_result_status_set", frozenset(self.result_statuses))

    @classmethod
    def create(cls, *, types=(), projects=(), test: str | TestMatch | None = None, statuses=(), since=None,
               until=None, tags_include=(), tags_exclude=(), min_importance=None,
               result_statuses=()) -> "EventFilter":
        """A validated filter from user values (strings, lists); a bad value is a ComError naming its parameter.

        The seed's types (`test_failure` ...) are read as `test_result` with that status, unless a status is
        given. `since`/`until` take ISO times (or microseconds); a bare date as `until` means the end of it."""
        types, statuses, result_statuses = _tuple(types), _tuple(statuses), _tuple(result_statuses)
        for status in statuses:
            if status not in STATUSES:
                raise ComError(f"unknown status '{status}' (expected {', '.join(STATUSES)})", param="status")
        for status in result_statuses:
            if status not in STATUS_CODES:
                raise ComError(f"unknown status '{status}' (expected {', '.join(STATUS_CODES)})",
                               param="result_statuses")
        read = []
        for t in types:
            if not _TYPE_RE.match(t):
                raise ComError(f"'{t}' is not an event type (a lowercase word)", param="type")
            etype, seed_status = read_type(t)
            if seed_status and not statuses:
                statuses = (seed_status,)
            read.append(etype)
        if min_importance is not None and not 0 <= float(min_importance) <= 5:
            raise ComError(f"importance {min_importance} is outside 0 to 5", param="min_importance")
        if isinstance(test, str):
            test = TestMatch.parse(test)
        return cls(
            types=tuple(dict.fromkeys(read)), projects=_tuple(projects), test=test, statuses=statuses,
            since_us=_instant(since, "since", end_of_day=False), until_us=_instant(until, "until", end_of_day=True),
            tags_include=_tuple(tags_include), tags_exclude=_tuple(tags_exclude),
            min_importance=float(min_importance) if min_importance is not None else None,
            result_statuses=tuple(dict.fromkeys(result_statuses)),
        )

    def but(self, **changes) -> "EventFilter":
        return replace(self, **changes)

    @property
    def empty(self) -> bool:
        return self == EventFilter()

    @property
    def result_status_set(self) -> frozenset:
        """The statuses a matching test result may have (empty: any): `statuses` and `result_statuses` both."""
        if self._status_set and self._result_status_set:
            return self._status_set & self._result_status_set or frozenset(("",))
        return self._status_set or self._result_status_set

    @property
    def results_only(self) -> bool:
        """Only test results can match (a test or status condition, or the type test_result alone)."""
        return self.test is not None or bool(self.statuses) or self.types == ("test_result",)

    def matches(self, event: dict) -> bool:
        if self.types and event["type"] not in self.types:
            return False
        if self.projects and event["project"] not in self.projects:
            return False
        if self.test is not None or self._status_set:
            if event["type"] != "test_result":
                return False
            data = event["data"]
            if self._status_set and data.get("status") not in self._status_set:
                return False
            if self.test is not None:
                test_id = data.get("test_id")
                if not isinstance(test_id, str) or not self.test.matches(test_id):
                    return False
        if self._result_status_set and event["type"] == "test_result" \
                and event["data"].get("status") not in self._result_status_set:
            return False
        if self.since_us is not None or self.until_us is not None:
            when = ts_us(event["ts"])
            if self.since_us is not None and when < self.since_us:
                return False
            if self.until_us is not None and when > self.until_us:
                return False
        if self.min_importance is not None and event["importance"] < self.min_importance:
            return False
        if self.tags_include and not set(self.tags_include) & set(event["tags"]):
            return False
        if self.tags_exclude and set(self.tags_exclude) & set(event["tags"]):
            return False
        return True

    def to_sql(self) -> str | None:
        """A SQL condition (SQLite and LanceDB/DataFusion alike, values as literals) over the columns type,
        project, test_id, status, ts_us and importance; None when nothing is constrained there.

        It may match more than `matches` (tags are not expressed, a glob becomes a LIKE that may over-match):
        readers apply `matches` to the rows they keep."""
        conds = []
        results = f"type = 'test_result' AND {_in('status', self.result_statuses)}" if self.result_statuses else None
        if self.types:
            others = tuple(t for t in self.types if t != "test_result")
            if results is None or "test_result" not in self.types:
                conds.append(_in("type", self.types))
            else:  # one condition per side, each served by the type and status indexes
                conds.append(" OR ".join([*([_in("type", others)] if others else []), f"({results})"]))
        elif results is not None:
            conds.append(f"type <> 'test_result' OR ({results})")
        if self.projects:
            conds.append(_in("project", self.projects))
        if self.statuses:
            conds.append(_in("status", self.statuses))
        if self.test is not None:
            conds.append(_test_sql(self.test))
        if self.since_us is not None:
            conds.append(f"ts_us >= {int(self.since_us)}")
        if self.until_us is not None:
            conds.append(f"ts_us <= {int(self.until_us)}")
        if self.min_importance is not None:
            conds.append(f"importance >= {float(self.min_importance)!r}")
        return " AND ".join(f"({c})" for c in conds) or None

    def to_json(self) -> dict:
        out = {}
        for key in ("types", "projects", "statuses", "result_statuses", "tags_include", "tags_exclude"):
            if getattr(self, key):
                out[key] = list(getattr(self, key))
        if self.test is not None:
            out["test"] = {"pattern": self.test.pattern, "kind": self.test.kind}
        for key in ("since_us", "until_us", "min_importance"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out


def _tuple(value) -> tuple:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(v for v in value if v is not None)


def _instant(value, param: str, end_of_day: bool) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    from com.model.event import parse_time

    text = str(value).strip()
    try:
        when = parse_time(text, param)
    except ComError as exc:
        raise ComError(f"not a date or time: {text!r}", param=param) from exc
    if end_of_day and len(text) == 10:  # a bare date as an upper bound means the whole of that day
        when = when.replace(hour=23, minute=59, second=59, microsecond=999999)
    return ts_us(when.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))


def sql_text(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def _in(column: str, values) -> str:
    if len(values) == 1:
        return f"{column} = {sql_text(values[0])}"
    return f"{column} IN ({', '.join(sql_text(v) for v in values)})"


def _test_sql(test: TestMatch) -> str:
    p = test.pattern
    if test.kind == "exact":
        return f"test_id = {sql_text(p)}"
    if test.kind == "prefix":
        # A prefix as a range of strings: exact in any SQL dialect, and served by an index on test_id.
        return f"test_id = {sql_text(p)} OR (test_id >= {sql_text(p)} AND test_id < {sql_text(_after_prefix(p))})"
    # A glob as LIKE: '*' -> '%', '?' -> '_'; a literal '_' or '%' in the pattern over-matches (see to_sql).
    like = "".join("%" if ch == "*" else "_" if ch == "?" else ch for ch in p)
    return f"test_id LIKE {sql_text(like)}"


@lru_cache(maxsize=256)
def _glob_re(pattern: str) -> re.Pattern:
    return re.compile("".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern) + r"\Z",
                      re.S)


def _after_prefix(prefix: str) -> str:
    """The smallest string greater than every string that starts with `prefix`."""
    last = ord(prefix[-1])
    return prefix[:-1] + chr(last + 1) if last < 0x10FFFF else prefix + "\U0010ffff"
