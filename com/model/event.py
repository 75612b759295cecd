"""The event: its validation with precise messages, deterministic ids, UTC timestamps, and its stored line.

An event is a plain dict (fast to build in bulk) with the keys
id, type, project, source, ts, importance, tags, data — stored one per line in a journal blob.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone

from com.model.errors import InvalidEvent

try:  # the hash alone: `hashlib` would also load OpenSSL, a few ms of every command's start-up
    from _blake2 import blake2b
except ImportError:  # another interpreter
    from hashlib import blake2b

# xfailed: an expected failure happened; xpassed: a test expected to fail passed (pytest's non-strict XPASS;
# a strict one is what pytest reports it as, a failure). Neither is failing.
STATUSES = ("passed", "failed", "error", "skipped", "xfailed", "xpassed")
FAILING = frozenset(("failed", "error"))

# The seed system wrote these types; they are read as test_result with that status.
SEED_TYPES = {"test_failure": "failed", "test_pass": "passed", "test_error": "error", "test_skip": "skipped"}

DEFAULT_IMPORTANCE = {
    "code_change": 2.0,
    "healing_attempt": 2.0,
    "rollup": 2.0,
    "note": 1.0,
}
RESULT_IMPORTANCE = {"passed": 1.0, "skipped": 0.5, "failed": 3.0, "error": 3.0, "xfailed": 0.5, "xpassed": 1.5}

FIELDS = ("id", "type", "project", "source", "ts", "importance", "tags", "data")

# Bounds every event keeps (README, "Limits"), so that every reader of the journal, on any machine, can read
# every event: JSON parsers recurse per level of nesting, SQLite, numpy and Arrow columns hold 64-bit integers.
MAX_DEPTH = 64  # levels of nesting in `data` (the data object itself is level 1)
MAX_INT = 2**63  # integers are within -2**63 .. 2**63-1 (bigger numbers can be stored as strings)
MAX_LINE = 1_000_000  # characters of an event's stored line
_FIELD_SET = frozenset(FIELDS)
ALIASES = {"timestamp": "ts"}

_TYPE_RE = re.compile(r"[a-z][a-z0-9_]*\Z")
# The project names a folder of the journal tree, so it must be a safe path component.
_PROJECT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\Z")
_ID_RE = re.compile(r"evt_[0-9a-f]{24}\Z")

# allow_nan=False: NaN and Infinity are not JSON, and every reader of the journal must parse it.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True, allow_nan=False)
try:
    # One C encoder made once: JSONEncoder.encode builds a new one per call, a third of bulk ingest's time.
    _c_encode = json.encoder.c_make_encoder(
        None, _ENCODER.default, json.encoder.encode_basestring, None, ":", ",", True, False, False
    )
except (AttributeError, TypeError):  # no C accelerator on this interpreter
    _c_encode = None


def canonical_json(value) -> str:
    """Compact JSON with sorted keys, as events are stored (one C encoder made once: fast in bulk)."""
    return _dumps_sorted(value)


def _dumps_sorted(value) -> str:
    if _c_encode is None:
        return _ENCODER.encode(value)
    try:
        return "".join(_c_encode(value, 0))
    except RecursionError:
        raise ValueError("data nests too deeply or refers to itself") from None

# The C string encoder: ingest encodes several strings per event, and this is the hot path of bulk ingest.
_str = json.encoder.encode_basestring


def _dumps(value) -> str:
    if type(value) is str:
        return _str(value)
    if type(value) is list and all(type(v) is str for v in value):
        return "[" + ",".join(map(_str, value)) + "]"
    return _dumps_sorted(value)


# Names already validated (a batch repeats a few): checking a set is cheaper than a regex.
_valid_types: set = set()
_valid_projects: set = set()

# Reports share timestamps (a JUnit suite has one), so parsing each distinct text once pays off.
_ts_cache: dict = {}


class Event(dict):
    """A stored event: a plain dict that remembers its encoded data, so bulk ingest encodes it once."""

    # line: the stored JSONL form, made while validating (an Event is not mutated after). id_given: the input
    # named its id (so the same id may come with other content: a conflict); ts_given: the input gave its time
    # (else it is the recording time, which is not part of the event's identity).
    __slots__ = ("line", "id_given", "ts_given")


def now_utc() -> datetime:
    return datetime.now(timezone.utc)


def format_ts(dt: datetime) -> str:
    dt = dt.astimezone(timezone.utc)
    if dt.microsecond:
        return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value, field: str = "ts") -> datetime:
    """ISO-8601 (naive means UTC) or a Unix epoch number -> aware UTC datetime."""
    if isinstance(value, bool):
        raise InvalidEvent(f"field '{field}': expected an ISO-8601 time, got {value!r}")
    if isinstance(value, (int, float)):
        try:
            dt = datetime.fromtimestamp(value, timezone.utc)
        except (OverflowError, OSError, ValueError):
            raise InvalidEvent(f"field '{field}': epoch {value!r} is out of range") from None
        if dt.year < 1000:
            raise InvalidEvent(f"field '{field}': epoch {value!r} is out of range (before year 1000)")
        return dt
    if not isinstance(value, str) or not value.strip():
        raise InvalidEvent(f"field '{field}': expected an ISO-8601 time, got {value!r}")
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidEvent(f"field '{field}': not an ISO-8601 time: {value!r}") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    try:
        dt = dt.astimezone(timezone.utc)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00
        raise InvalidEvent(f"field '{field}': {value!r} is out of range") from None
    if dt.year < 1000:  # strftime would not pad the year, and the day names a journal folder
        raise InvalidEvent(f"field '{field}': {value!r} is out of range (before year 1000)")
    return dt


def _fail(where: str, message: str):
    raise InvalidEvent(f"{where}{message}")


def validate(raw, *, where: str = "", default_ts: str | None = None, defaults: dict | None = None) -> dict:
    """Validate one incoming event (seed JSON accepted as-is) and return the stored form with its id.

    `where` prefixes messages (e.g. "line 3: "). `default_ts` is used when the input has no ts; a
    defaulted ts is not part of the event's identity, so re-ingesting the same JSON adds nothing.
    `defaults` fills missing top-level fields (e.g. source from the command line).
    """
    event = validate_common(raw, default_ts, defaults)
    if event is not None:
        return event
    return _validate(raw, where, default_ts, defaults)


def _validate(raw, where: str, default_ts: str | None, defaults: dict | None) -> dict:
    """`validate` for every input: each check in turn, with its message (the reference `validate_common`
    must agree with)."""
    if not isinstance(raw, dict):
        _fail(where, f"expected a JSON object, got {type(raw).__name__}")
    if raw.keys() <= _FIELD_SET:
        ev = raw  # read only below; copied before defaults are filled in
    else:
        ev = {}
        for key, value in raw.items():
            key = ALIASES.get(key, key)
            if key not in _FIELD_SET:
                _fail(where, f"unknown field {key!r} (expected one of: {', '.join(FIELDS)})")  # repr: one line
            ev[key] = value
    if defaults:
        for key, value in defaults.items():
            if ev.get(key) is None and value is not None:
                if ev is raw:
                    ev = dict(raw)
                ev[key] = value

    etype = ev.get("type")
    if type(etype) is not str or etype not in _valid_types:  # a list or dict cannot be looked up in a set
        if etype is None or etype == "":
            _fail(where, "field 'type': missing")
        if not isinstance(etype, str) or not _TYPE_RE.match(etype):
            _fail(where, f"field 'type': expected a lowercase word, got {etype!r}")
        _valid_types.add(etype)

    project = ev.get("project")
    if type(project) is not str or project not in _valid_projects:
        if project is None or project == "":
            _fail(where, "field 'project': missing")
        if not isinstance(project, str) or not _PROJECT_RE.match(project) or len(project) > 100:
            _fail(where, f"field 'project': expected a name of letters, digits, '.', '_' or '-', got {project!r}")
        _valid_projects.add(project)

    source = ev.get("source") or "cli"
    if not isinstance(source, str):
        _fail(where, f"field 'source': expected a string, got {source!r}")

    data = ev.get("data")
    if data is None:
        data = {}
    elif not isinstance(data, dict):
        _fail(where, f"field 'data': expected an object, got {type(data).__name__}")

    if etype in SEED_TYPES:
        etype, seed_status = read_type(etype)
        data = dict(data)
        data.setdefault("status", seed_status)

    if etype == "test_result":
        status = data.get("status")
        if status is None:
            _fail(where, f"field 'data.status': missing (a test_result needs one of {', '.join(STATUSES)})")
        if status not in STATUSES:
            _fail(where, f"field 'data.status': unknown status {status!r} (expected {', '.join(STATUSES)})")
        test_id = data.get("test_id")
        if test_id is not None and (not isinstance(test_id, str) or not test_id):
            _fail(where, f"field 'data.test_id': expected a non-empty string, got {test_id!r}")
        default_importance = RESULT_IMPORTANCE[status]
    else:
        default_importance = DEFAULT_IMPORTANCE.get(etype, 2.0)

    importance = ev.get("importance")
    if importance is None:
        importance = default_importance
    if type(importance) is not float:
        if isinstance(importance, bool) or not isinstance(importance, (int, float)):
            _fail(where, f"field 'importance': expected a number from 0 to 5, got {importance!r}")
        importance = float(importance)
    if not 0.0 <= importance <= 5.0:
        _fail(where, f"field 'importance': {importance:g} is outside 0 to 5")

    tags = ev.get("tags")
    if tags is None:
        tags = []
    elif isinstance(tags, str):
        tags = [t.strip() for t in tags.split(",") if t.strip()]
    elif not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        _fail(where, f"field 'tags': expected a list of strings, got {tags!r}")

    ts_given = ev.get("ts")
    if ts_given is not None:
        ts = _ts_cache.get(ts_given) if type(ts_given) is str else None
        if ts is None:
            try:
                ts = format_ts(parse_time(ts_given))
            except InvalidEvent as exc:
                raise InvalidEvent(f"{where}{exc}") from None
            if type(ts_given) is str:
                if len(_ts_cache) > 50_000:
                    _ts_cache.clear()
                _ts_cache[ts_given] = ts
    else:
        ts = default_ts or format_ts(now_utc())

    try:
        data_json = _dumps_sorted(data)
    except (TypeError, ValueError) as exc:
        if "integer string conversion" in str(exc):
            _fail(where, f"field 'data': a number is out of range (integers from {-MAX_INT} to {MAX_INT - 1})")
        _fail(where, f"field 'data': cannot be stored as JSON ({exc})")
    # Cheap tests on the encoded text first (brackets and long runs of digits are rare); the exact walk only
    # when one of them says it might be needed.
    if data_json.count("[") + data_json.count("{") > MAX_DEPTH or _LONG_DIGITS.search(data_json):
        problem = _bounds_problem(data, 1)
        if problem:
            _fail(where, f"field 'data': {problem}")
    tags_json = _dumps(tags) if tags else "[]"
    type_json, project_json, source_json = _name_json(etype), _name_json(project), _name_json(source)
    importance_json = repr(importance)
    head = f"{type_json}\x00{project_json}\x00{source_json}\x00{importance_json}\x00{tags_json}\x00{data_json}"

    given_id = ev.get("id")
    if given_id is not None:
        # An exported event keeps its id, so re-importing it is recognised as a duplicate.
        if not isinstance(given_id, str) or not _ID_RE.match(given_id):
            _fail(where, f"field 'id': expected evt_ followed by 24 hex digits, got {given_id!r}")
        event_id = given_id
        identity = head
    else:
        identity = head + ("\x00" + ts if ts_given is not None else "")
    try:
        identity_bytes = identity.encode("utf-8")
    except UnicodeEncodeError as exc:  # JSON's "\ud800" escapes decode to text that UTF-8 cannot store
        _fail(where, f"a lone surrogate {identity[exc.start]!r} is not valid text (field source, tags or data)")
    if given_id is None:
        event_id = "evt_" + blake2b(identity_bytes, digest_size=12).hexdigest()

    event = Event(
        id=event_id, type=etype, project=project, source=source, ts=ts, importance=importance, tags=tags, data=data
    )
    event.line = (
        f'{{"id":"{event_id}","type":{type_json},"project":{project_json},"source":{source_json},'
        f'"ts":"{ts}","importance":{importance_json},"tags":{tags_json},"data":{data_json}}}'
    )
    if len(event.line) > MAX_LINE:
        _fail(where, f"the event is {len(event.line):,} characters long as a stored line (at most {MAX_LINE:,}): "
                     "keep large output in a file and store its path")
    event.id_given = given_id is not None
    event.ts_given = ts_given is not None
    return event


_LONG_DIGITS = re.compile(r"\d{19}")

# The fast path: the event as producers write it (plain JSON types, data one level of objects or lists deep).
_PLAIN = frozenset((str, bool, type(None)))
_key_order: dict[tuple, bool] = {}  # the keys of an object -> whether they are in sorted order


def _in_order(obj: dict) -> bool:
    """Are a parsed object's keys in sorted order? Remembered per key tuple (a bulk ingest repeats a few)."""
    keys = tuple(obj)
    order = _key_order.get(keys)
    if order is None:
        try:
            order = list(keys) == sorted(keys)
        except TypeError:  # keys of several types (not from JSON)
            order = False
        if len(_key_order) > 10_000:
            _key_order.clear()
        _key_order[keys] = order
    return order


def _data_text(text: str, prefix: str, keys: int) -> str | None:
    """The stored text of an event's data, cut from the input line `text` it was parsed from, when that line is
    the event's stored line but for the id (`prefix` is the stored line's part from type to `"data":`); None
    when it may not be. The caller has checked what the text cannot show: the data holds no floats (their text
    may differ from repr's), its objects' keys are in sorted order, and `keys` counts them all. Then the cut is
    the encoder's text exactly when it is an object (not null) with no backslash (so every string is as the
    encoder writes it: the parser admits no raw control character in a string), no whitespace (none between
    tokens), no integer written -0, and one `":` per key (no key twice, nothing after the data: each key ends
    in `":`, and any other `":` is a string starting with a colon, which only makes the count too high)."""
    if not text.startswith(prefix):
        return None
    if text.endswith("}\n"):
        cut = text[len(prefix):-2]
    elif text.endswith("}"):
        cut = text[len(prefix):-1]
    else:
        return None
    if (not cut.startswith("{") or "\\" in cut or " " in cut or "\n" in cut or "\r" in cut or "\t" in cut
            or ":-0" in cut or ",-0" in cut or "[-0" in cut or cut.count('":') != keys):
        return None
    return cut


def validate_common(raw, default_ts: str | None = None, defaults: dict | None = None) -> "Event | None":
    """`validate` of the common event, cheaper: exactly the Event `validate` makes of `raw`, or None when `raw`
    is not of the common shape or would be refused (then `validate` decides, with its message). Common: plain
    JSON types; a type and project of the right form (each name checked once); no id, or a whole one; the data's
    values scalars, or objects or lists of scalars; integers in range. Its bounds are checked on the values
    (not on the encoded text), so nothing is refused here: a refusal is `validate`'s, with its message."""
    project = source = None
    if defaults:
        for key, value in defaults.items():
            if key == "project":
                project = value
            elif key == "source":
                source = value
            elif value is not None:
                return None  # another default: left to `validate`
    return common_event(raw, default_ts, project, source)


def common_event(raw, default_ts: str | None, project_default=None, source_default=None,
                 text: str | None = None) -> "Event | None":
    """`validate_common` with the defaults of a project and a source (the JSONL stream's, called per line).
    `text`: the JSON line `raw` was parsed from (its data's text is stored as it is when it is the stored one)."""
    if type(raw) is not dict or not raw.keys() <= _FIELD_SET:
        return None
    get = raw.get
    etype, project, source = get("type"), get("project"), get("source")
    if project is None:
        project = project_default
    if source is None:
        source = source_default
    if type(etype) is not str or etype not in _valid_types:
        if type(etype) is not str or not _TYPE_RE.match(etype):
            return None
        _valid_types.add(etype)
    if type(project) is not str or project not in _valid_projects:
        if type(project) is not str or not _PROJECT_RE.match(project) or len(project) > 100:
            return None
        _valid_projects.add(project)
    source = source or "cli"
    if type(source) is not str:
        return None
    data = get("data")
    if data is None:
        data = {}
    elif type(data) is not dict:
        return None

    if etype == "test_result":
        status = data.get("status")
        if type(status) is not str or status not in RESULT_IMPORTANCE:
            return None
        test_id = data.get("test_id")
        if test_id is not None and (type(test_id) is not str or not test_id):
            return None
        default_importance = RESULT_IMPORTANCE[status]
    elif etype in SEED_TYPES:
        return None
    else:
        default_importance = DEFAULT_IMPORTANCE.get(etype, 2.0)

    importance = get("importance")
    if importance is None:
        importance = default_importance
    elif type(importance) is not float:
        return None
    if not 0.0 <= importance <= 5.0:
        return None

    tags = get("tags")
    if tags is None:
        tags, tags_json = [], "[]"
    elif type(tags) is not list:
        return None
    elif tags:
        for tag in tags:
            if type(tag) is not str:
                return None
        tags_json = "[" + ",".join(map(_str, tags)) + "]"
    else:
        tags_json = "[]"

    ts_given = get("ts")
    if ts_given is not None:
        if type(ts_given) is not str:
            return None
        ts = _ts_cache.get(ts_given)
        if ts is None:
            try:
                ts = format_ts(parse_time(ts_given))
            except InvalidEvent:
                return None
            if len(_ts_cache) > 50_000:
                _ts_cache.clear()
            _ts_cache[ts_given] = ts
    else:
        ts = default_ts or format_ts(now_utc())

    # The data's values: what `_bounds_problem` would walk (nesting, integers), in one pass; and whether the
    # input's own text of the data may be its stored text (see `_data_text`).
    keys = len(data)
    exact = text is not None
    for value in data.values():
        kind = type(value)
        if kind in _PLAIN:
            continue
        if kind is int:
            if -MAX_INT <= value < MAX_INT:
                continue
            return None
        if kind is float:
            exact = False
            continue
        if kind is dict:
            keys += len(value)
            if exact and not _in_order(value):
                exact = False
            value = value.values()
        elif kind is not list:
            return None
        for item in value:
            kind = type(item)
            if kind in _PLAIN:
                continue
            if kind is float:
                exact = False
            elif kind is not int or not -MAX_INT <= item < MAX_INT:
                return None

    type_json = _names_json.get(etype) or _name_json(etype)
    project_json = _names_json.get(project) or _name_json(project)
    source_json = _names_json.get(source) or _name_json(source)
    importance_json = repr(importance)
    data_json = None
    if exact and ts_given is not None and _in_order(data):
        data_json = _data_text(text, f'{{"type":{type_json},"project":{project_json},"source":{source_json},"ts":"{ts}",'
                                     f'"importance":{importance_json},"tags":{tags_json},"data":', keys)
    if data_json is None:
        try:
            data_json = _ENCODER.encode(data) if _c_encode is None else "".join(_c_encode(data, 0))
        except (TypeError, ValueError):  # NaN or Infinity; keys of several types (not comparable when sorted)
            return None
    head = f"{type_json}\x00{project_json}\x00{source_json}\x00{importance_json}\x00{tags_json}\x00{data_json}"
    given_id = get("id")
    if given_id is not None:
        if type(given_id) is not str or not _ID_RE.match(given_id):
            return None
        event_id = given_id
        identity = head
    elif ts_given is not None:
        identity = head + "\x00" + ts
    else:
        identity = head
    try:
        identity_bytes = identity.encode("utf-8")
    except UnicodeEncodeError:
        return None
    if given_id is None:
        event_id = "evt_" + blake2b(identity_bytes, digest_size=12).hexdigest()
    line = (
        f'{{"id":"{event_id}","type":{type_json},"project":{project_json},"source":{source_json},'
        f'"ts":"{ts}","importance":{importance_json},"tags":{tags_json},"data":{data_json}}}'
    )
    if len(line) > MAX_LINE:
        return None
    event = Event({"id": event_id, "type": etype, "project": project, "source": source, "ts": ts,
                   "importance": importance, "tags": tags, "data": data})
    event.line = line
    event.id_given = given_id is not None
    event.ts_given = ts_given is not None
    return event


def _bounds_problem(value, depth: int) -> str | None:
    """What breaks the nesting or number bounds in `value` (at nesting level `depth`), or None."""
    if type(value) is int:
        if -MAX_INT <= value < MAX_INT:
            return None
        return f"a number is out of range (integers from {-MAX_INT} to {MAX_INT - 1}; store bigger ones as strings)"
    if depth > MAX_DEPTH:
        return f"nests more than {MAX_DEPTH} levels deep"
    if isinstance(value, dict):
        value = value.values()
    elif not isinstance(value, list):
        return None
    for item in value:
        if isinstance(item, (dict, list)) or type(item) is int:
            problem = _bounds_problem(item, depth + 1)
            if problem:
                return problem
    return None


_names_json: dict[str, str] = {}


def _name_json(name: str) -> str:
    """The JSON text of a type, project or source: a bulk ingest repeats a few, so each is encoded once."""
    text = _names_json.get(name)
    if text is None:
        text = _str(name)
        if len(_names_json) < 10_000:
            _names_json[name] = text
    return text


def is_event_id(value) -> bool:
    """Is `value` a whole event id (evt_ and 24 lowercase hex digits)?"""
    return isinstance(value, str) and _ID_RE.match(value) is not None


def id_key(event_id: str) -> tuple[int, int]:
    """A whole event id as two integers (hi: its first 12 hex digits, lo: the last 12), how the derived stores
    key it; the stored ids are validated to have the form evt_ + 24 hex digits."""
    return int(event_id[4:16], 16), int(event_id[16:28], 16)


def to_line(event: dict) -> str:
    """The stored JSONL form: fixed key order, compact, data keys sorted."""
    line = getattr(event, "line", None)
    if line is not None:
        return line
    return (
        f'{{"id":{_dumps(event["id"])},"type":{_dumps(event["type"])},"project":{_dumps(event["project"])},'
        f'"source":{_dumps(event["source"])},"ts":{_dumps(event["ts"])},"importance":{event["importance"]!r},'
        f'"tags":{_dumps(event["tags"])},"data":{_dumps_sorted(event["data"])}}}'
    )


def same_event(stored: dict, event: dict) -> bool:
    """Is `event` (just validated) the event already stored? The same line, or, when its time was not given
    (the recording time), the same line but for the time."""
    if to_line(stored) == to_line(event):
        return True
    return not getattr(event, "ts_given", True) and to_line({**stored, "ts": event["ts"]}) == to_line(event)


def difference(old: dict, new: dict) -> str:
    """How two versions of an event differ, data first, with both values: `data.status 'passed' vs 'failed'`."""
    found = []
    a, b = old.get("data"), new.get("data")
    if isinstance(a, dict) and isinstance(b, dict):
        found += [f"data.{k} {_short(a.get(k))} vs {_short(b.get(k))}" for k in sorted(set(a) | set(b))
                  if a.get(k) != b.get(k)]
    elif a != b:
        found.append(f"data {_short(a)} vs {_short(b)}")
    found += [f"{k} {_short(old.get(k))} vs {_short(new.get(k))}" for k in FIELDS
              if k != "data" and old.get(k) != new.get(k)]
    return ", ".join(found[:2]) + (f" and {len(found) - 2} more" if len(found) > 2 else "") if found else "no field"


def _short(value, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def read_type(etype: str) -> tuple[str, str | None]:
    """The one place the seed's types are read: `test_failure` is (`test_result`, `failed`); others unchanged."""
    status = SEED_TYPES.get(etype)
    return ("test_result", status) if status is not None else (etype, None)


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
EARLIEST_US = -62_135_596_800 * 1_000_000  # 0001-01-01T00:00:00Z from the epoch: the earliest time a ts can name
_us_cache: dict[str, int] = {}


def ts_us(ts: str) -> int:
    """A stored `ts` as integer microseconds since the epoch: the one representation times are compared in
    (as text, `10:00:00Z` would sort after `10:00:00.250Z`)."""
    us = _us_cache.get(ts)
    if us is None:
        delta = parse_time(ts) - _EPOCH
        us = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
        if len(_us_cache) > 100_000:
            _us_cache.clear()
        _us_cache[ts] = us
    return us


def iso_instant_us(text: str, end_of_day: bool = False) -> int:
    """Microseconds of an ISO-8601 date or time (naive: UTC); with end_of_day a bare date means its last
    microsecond. InvalidEvent if it is not one. (Other forms of dates are the front end's: see journal.dates.)"""
    when = parse_time(text.strip(), "date")
    if end_of_day and len(text.strip()) == 10:
        when = when.replace(hour=23, minute=59, second=59, microsecond=999999)
    delta = when - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def format_us(us: int) -> str:
    """The stored `ts` text of integer microseconds (the inverse of ts_us)."""
    from datetime import timedelta

    return format_ts(_EPOCH + timedelta(microseconds=us))


def event_test_id(event: dict) -> str | None:
    return event["data"].get("test_id") if event["type"] == "test_result" else None


def event_status(event: dict) -> str | None:
    return event["data"].get("status") if event["type"] == "test_result" else None
