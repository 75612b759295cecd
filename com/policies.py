"""Policies: what a context pack is for and what goes in it. The schema (every key typed and range-checked, one
precise error naming the file and the key), the shipped policies (the repository's top-level `policies/`, carried
inside the wheel as `com/_policies/`), the user's own (`.com/policies/*.yaml`, which override or extend them) and
the EventFilter a policy decides (the same object the CLI builds from flags).

A user file whose id is a shipped policy's changes only the keys it sets (weights key by key); any other id is a
new policy, whose unset keys take the defaults below.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from dataclasses import dataclass
from pathlib import Path

from com.model.errors import CheckFailed, ComError, NotFound
from com.model.event import SEED_TYPES
from com.model.filter import EventFilter
from com.model.result import STATUS_CODES

# Result statuses a policy may name: every status the test-results view knows (pytest's xfailed/xpassed too).
KNOWN_STATUSES = STATUS_CODES
WEIGHT_KEYS = ("semantic", "keyword", "importance", "recency", "diversity", "pinned")
MIN_BUDGET, MAX_BUDGET = 256, 200_000
MAX_WEIGHT = 10.0
MAX_EVENTS = 1000
MAX_HALF_LIFE_DAYS = 3650.0

_NAME = re.compile(r"[a-z][a-z0-9_]*\Z")
_TYPE = re.compile(r"[a-z][a-z0-9_]*\Z")
_SHIPPED_IN_WHEEL = Path(__file__).resolve().parent / "_policies"
_SHIPPED_IN_CHECKOUT = Path(__file__).resolve().parent.parent / "policies"


class PolicyError(ComError):
    """A policy file is unreadable or invalid; the message names the file and the key."""

    def __init__(self, path, key: str | None, problem: str):
        self.path = str(path)
        self.key = key
        super().__init__(f"{path}: key '{key}': {problem}" if key else f"{path}: {problem}")


@dataclass(frozen=True)
class Weights:
    """How much each part of a candidate's score counts (0 to 10); `diversity` is the MMR penalty instead."""

    semantic: float = 1.0
    keyword: float = 1.0
    importance: float = 1.0
    recency: float = 1.0
    diversity: float = 0.5
    pinned: float = 1.0

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Policy:
    id: str
    task: str
    description: str = ""
    weights: Weights = Weights()
    recency_half_life_days: float = 7.0
    budget_tokens: int = 4096
    event_types: tuple[str, ...] = ()  # empty: every type
    statuses: tuple[str, ...] = ()  # empty: every status; restricts test results only
    min_importance: float = 0.0
    tags_include: tuple[str, ...] = ()  # an event must carry at least one of these
    tags_exclude: tuple[str, ...] = ()  # an event carrying any of these is left out
    max_events: int = 50
    include_rollups: bool = False
    origin: str = "shipped"  # "shipped" or "user"
    path: str = ""  # the file it was read from (for a user override: the user's file)
    overrides: str | None = None  # the shipped file a user policy changes

    def to_json(self) -> dict:
        return {
            "id": self.id, "task": self.task, "description": self.description, "weights": self.weights.to_json(),
            "recency_half_life_days": self.recency_half_life_days, "budget_tokens": self.budget_tokens,
            "event_types": list(self.event_types), "statuses": list(self.statuses),
            "min_importance": self.min_importance, "tags_include": list(self.tags_include),
            "tags_exclude": list(self.tags_exclude), "max_events": self.max_events,
            "include_rollups": self.include_rollups, "origin": self.origin, "path": self.path,
            "overrides": self.overrides,
        }

    def with_budget(self, budget: int | None) -> "Policy":
        """This policy with a budget override for one call (checked like the file's key)."""
        if budget is None:
            return self
        if isinstance(budget, bool) or not isinstance(budget, int) or not MIN_BUDGET <= budget <= MAX_BUDGET:
            raise ComError(f"expected a whole number of tokens from {MIN_BUDGET} to {MAX_BUDGET}, got {budget!r}",
                           param="budget")
        return dataclasses.replace(self, budget_tokens=budget)


KEYS = tuple(f.name for f in dataclasses.fields(Policy) if f.name not in ("origin", "path", "overrides"))


# -- checks, one per kind of value -----------------------------------------------------------------------------
def _kind(value) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list",
            dict: "a mapping", type(None): "nothing"}.get(type(value), type(value).__name__)


def _number(path, key, value, low, high) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PolicyError(path, key, f"expected a number from {low:g} to {high:g}, got {_kind(value)} ({value!r})")
    if not low <= value <= high:
        raise PolicyError(path, key, f"{value:g} is outside {low:g} to {high:g}")
    return float(value)


def _integer(path, key, value, low, high) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise PolicyError(path, key, f"expected a whole number from {low} to {high}, got {_kind(value)} ({value!r})")
    if not low <= value <= high:
        raise PolicyError(path, key, f"{value} is outside {low} to {high}")
    return value


def _budget(path, value) -> int:
    return _integer(path, "budget_tokens", value, MIN_BUDGET, MAX_BUDGET)


def _name(path, key, value) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise PolicyError(path, key, f"expected a lowercase name of letters, digits and '_', got {value!r}")
    return value


def _words(path, key, value, check) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):  # `statuses: failed` means the one-item list
        value = [value]
    if not isinstance(value, list):
        raise PolicyError(path, key, f"expected a list, got {_kind(value)} ({value!r})")
    out = []
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item.strip():
            raise PolicyError(path, f"{key}[{i}]", f"expected a non-empty string, got {_kind(item)} ({item!r})")
        check(f"{key}[{i}]", item)
        if item not in out:
            out.append(item)
    return tuple(out)


def _check_type(path):
    def check(key, item):
        if item in SEED_TYPES:
            raise PolicyError(path, key, f"'{item}' is the seed's name: use test_result and statuses: "
                                         f"[{SEED_TYPES[item]}]")
        if not _TYPE.match(item):
            raise PolicyError(path, key, f"expected an event type (a lowercase word), got {item!r}")
    return check


def _check_status(path):
    def check(key, item):
        if item not in KNOWN_STATUSES:
            raise PolicyError(path, key, f"unknown status {item!r} (expected {', '.join(KNOWN_STATUSES)})")
    return check


def _unknown(path, key, known, where="") -> PolicyError:
    close = difflib.get_close_matches(key, known, n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return PolicyError(path, f"{where}{key}", f"unknown key ({hint}known keys: {', '.join(known)})")


def _weights(path, value, base: Weights) -> Weights:
    if not isinstance(value, dict):
        raise PolicyError(path, "weights", f"expected a mapping of {', '.join(WEIGHT_KEYS)}, got {_kind(value)}")
    got = {}
    for key, number in value.items():
        if key not in WEIGHT_KEYS:
            raise _unknown(path, str(key), WEIGHT_KEYS, "weights.")
        got[key] = _number(path, f"weights.{key}", number, 0.0, MAX_WEIGHT)
    return dataclasses.replace(base, **got)


def validate(raw, path, base: Policy | None = None) -> Policy:
    """The policy a parsed YAML document describes; `base` is the shipped policy a user file changes."""
    if not isinstance(raw, dict):
        raise PolicyError(path, None, f"expected a mapping of policy keys at the top level, got {_kind(raw)}")
    for key in raw:
        if key not in KEYS:
            raise _unknown(path, str(key), KEYS)
    if "id" not in raw:
        raise PolicyError(path, "id", "missing (every policy names itself: id: my_policy)")
    policy_id = _name(path, "id", raw["id"])
    if base is not None and base.id != policy_id:
        raise ComError(f"{path}: internal: base policy {base.id} given for {policy_id}")
    start = base or Policy(id=policy_id, task=policy_id)
    values: dict = {"id": policy_id}
    for key, value in raw.items():
        if key == "id":
            continue
        if key == "task":
            values[key] = _name(path, key, value)
        elif key == "description":
            if not isinstance(value, str):
                raise PolicyError(path, key, f"expected text, got {_kind(value)} ({value!r})")
            values[key] = " ".join(value.split())
        elif key == "weights":
            values[key] = _weights(path, value, start.weights)
        elif key == "recency_half_life_days":
            values[key] = _number(path, key, value, 0.01, MAX_HALF_LIFE_DAYS)
        elif key == "budget_tokens":
            values[key] = _budget(path, value)
        elif key == "event_types":
            values[key] = _words(path, key, value, _check_type(path))
        elif key == "statuses":
            values[key] = _words(path, key, value, _check_status(path))
        elif key == "min_importance":
            values[key] = _number(path, key, value, 0.0, 5.0)
        elif key in ("tags_include", "tags_exclude"):
            values[key] = _words(path, key, value, lambda k, v: None)
        elif key == "max_events":
            values[key] = _integer(path, key, value, 1, MAX_EVENTS)
        elif key == "include_rollups":
            if not isinstance(value, bool):
                raise PolicyError(path, key, f"expected true or false, got {_kind(value)} ({value!r})")
            values[key] = value
    policy = dataclasses.replace(start, **values)
    # Contradictions between keys: name the key that the reader must change.
    w = policy.weights
    if max(w.semantic, w.keyword, w.importance, w.recency, w.pinned) <= 0:
        raise PolicyError(path, "weights", "every score weight is 0: nothing would rank the candidates "
                                           "(give semantic, keyword, importance, recency or pinned a weight)")
    both = sorted(set(policy.tags_include) & set(policy.tags_exclude))
    if both:
        raise PolicyError(path, "tags_exclude", f"{', '.join(both)} also in tags_include")
    if "rollup" in policy.event_types and not policy.include_rollups:
        raise PolicyError(path, "include_rollups", "false, but event_types lists rollup (set include_rollups: "
                                                   "true, or drop rollup from event_types)")
    if policy.statuses and policy.event_types and "test_result" not in policy.event_types:
        raise PolicyError(path, "statuses", "applies to test results, but event_types leaves test_result out")
    return policy


# -- files -----------------------------------------------------------------------------------------------------
def _loader():
    import yaml

    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class Loader(base):  # a key given twice is an error, not the last one silently winning
        pass

    def mapping(loader, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            key = loader.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key '{key}' appears twice (also on line {seen[key] + 1})", key_node.start_mark)
            seen[key] = key_node.start_mark.line
        return loader.construct_mapping(node, deep=deep)

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    return yaml, Loader


def read_yaml(path: Path):
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(path, None, f"cannot read: {exc}") from None
    key = (str(path), text)
    if key in _parsed:  # a process that packs many times (a server, the bench) parses each file once
        return _parsed[key]
    yaml, loader = _loader()
    try:
        raw = yaml.load(text, Loader=loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise PolicyError(path, None, f"{where}invalid YAML: {problem}") from None
    if raw is None:
        raise PolicyError(path, None, "empty (a policy needs at least an id)")
    if len(_parsed) > 256:
        _parsed.clear()
    _parsed[key] = raw
    return raw


_parsed: dict = {}  # (path, text) -> the parsed document (never changed by its readers)


def read_policy(path, shipped: dict[str, Policy] | None = None, origin: str = "user") -> Policy:
    """The policy in one file; a user file whose id is in `shipped` changes that policy's keys."""
    raw = read_yaml(Path(path))
    base = None
    if shipped and isinstance(raw, dict) and isinstance(raw.get("id"), str):
        base = shipped.get(raw["id"])
    policy = validate(raw, path, base)
    return dataclasses.replace(policy, origin=origin, path=str(path), overrides=base.path if base else None)


def shipped_dir() -> Path:
    """The shipped policies: inside the installed package (a wheel), else the checkout's top-level policies/."""
    for folder in (_SHIPPED_IN_WHEEL, _SHIPPED_IN_CHECKOUT):
        if folder.is_dir() and any(folder.glob("*.yaml")):
            return folder
    raise ComError(f"the shipped policies are missing (looked in {_SHIPPED_IN_WHEEL} and {_SHIPPED_IN_CHECKOUT}): "
                   "reinstall com")


def user_dir(memory_root) -> Path:
    """Where a memory keeps its user's policies."""
    return Path(memory_root) / "policies"


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in (*folder.glob("*.yaml"), *folder.glob("*.yml")) if not p.name.startswith("."))


def _read_folder(folder: Path, origin: str, shipped: dict | None) -> dict[str, Policy]:
    found: dict[str, Policy] = {}
    for path in _files(folder):
        policy = read_policy(path, shipped, origin)
        if policy.id in found:
            raise PolicyError(path, "id", f"'{policy.id}' is also the id of {found[policy.id].path}")
        found[policy.id] = policy
    _check_tasks(found.values())
    return found


def _check_tasks(policies) -> None:
    by_task: dict[str, Policy] = {}
    for p in policies:
        if p.task in by_task:
            raise PolicyError(p.path, "task", f"'{p.task}' is also the task of {by_task[p.task].path} "
                                              f"(policy {by_task[p.task].id}): a task names one policy")
        by_task[p.task] = p


def load_policies(user: Path | None = None, shipped: Path | None = None) -> dict[str, Policy]:
    """Every policy by id, the user's first: shipped ones from `shipped` (default: shipped_dir()), then the
    user's files in `user` (a missing folder is no error), which override shipped ids key by key."""
    shipped = Path(shipped) if shipped else shipped_dir()
    user = Path(user) if user and Path(user).is_dir() else None
    # The same files say the same thing: a process that packs many times reads them, but validates them once.
    key = tuple(_contents(p) for p in (*_files(shipped), *(_files(user) if user else ())))
    found = _loaded.get((shipped, user, key))
    if found is None:
        shipped_policies = _read_folder(shipped, "shipped", None)
        user_policies = _read_folder(user, "user", shipped_policies) if user else {}
        # User policies first: a task a user policy takes is theirs (find_policy looks in this order).
        found = {**user_policies, **{k: v for k, v in shipped_policies.items() if k not in user_policies}}
        if len(_loaded) > 32:
            _loaded.clear()
        _loaded[(shipped, user, key)] = found
    return dict(found)


_loaded: dict = {}


def _contents(path: Path) -> tuple[str, bytes | None]:
    try:
        return str(path), path.read_bytes()
    except OSError:
        return str(path), None  # unreadable: reading it again says why


def _task_key(name: str) -> str:
    return name.strip().lower().replace("-", "_").replace(" ", "_")


def find_policy(policies: dict[str, Policy], policy: str | None = None, task: str | None = None) -> Policy:
    """The policy named by id, or by task name (a user policy first); one clear error otherwise."""
    if policy is not None and task is not None:
        raise ComError("name one policy: by its id or by a task name, not both", param="policy")
    if policy is None and task is None:
        raise ComError("name a policy, by its id or by a task name", param="policy")
    if policy is not None:
        if policy in policies:
            return policies[policy]
        close = difflib.get_close_matches(policy, list(policies), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise NotFound(f"unknown policy '{policy}'{hint}; known: {', '.join(sorted(policies))}", param="policy")
    wanted = _task_key(task)
    for p in policies.values():  # user policies come first
        if p.task == wanted:
            return p
    tasks = sorted({p.task for p in policies.values()})
    close = difflib.get_close_matches(wanted, tasks, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    raise NotFound(f"no policy for task '{task}'{hint}; tasks: {', '.join(tasks)}", param="task")


# -- the filter a policy decides -------------------------------------------------------------------------------
def event_filter(policy: Policy, base: EventFilter | None = None) -> EventFilter:
    """The EventFilter `policy` decides, on top of `base` (the caller's projects, test and time window): the
    policy's event types, statuses (which restrict test results only: a code change has no status and stays in),
    tags and least importance. Where the policy leaves a key empty, base's value stands.

    Roll-ups: a policy that lists its types gets `rollup` added when include_rollups is true; a policy of every
    type has roll-ups left out by the pack instead (a filter has no "every type but")."""
    types = list(policy.event_types)
    if types and policy.include_rollups and "rollup" not in types:
        types.append("rollup")
    base = base or EventFilter()
    least = max(policy.min_importance, base.min_importance or 0.0)
    return base.but(
        types=tuple(types) or base.types,
        result_statuses=tuple(policy.statuses) or base.result_statuses,
        tags_include=tuple(policy.tags_include) or base.tags_include,
        tags_exclude=tuple(dict.fromkeys((*base.tags_exclude, *policy.tags_exclude))),
        min_importance=least if least > 0 else None,
    )


# -- `com policies list | show | validate` ---------------------------------------------------------------------
def list_policies(user: Path | None = None) -> dict:
    """{"policies": [{"id", "task", "budget_tokens", "description", "origin", "path"}]}, the user's first."""
    return {"policies": [
        {"id": p.id, "task": p.task, "budget_tokens": p.budget_tokens, "description": p.description,
         "origin": p.origin, "path": p.path}
        for p in load_policies(user).values()
    ]}


def show_policy(name: str, user: Path | None = None) -> dict:
    """One policy, every key, by id or else by task name; with the EventFilter fields it decides."""
    policies = load_policies(user)
    policy = policies.get(name) or next((p for p in policies.values() if p.task == _task_key(name)), None)
    if policy is None:
        find_policy(policies, policy=name)  # raises with the known ids
    return {"policy": policy.to_json(), "filter": event_filter(policy).to_json()}


def validate_file(path, user: Path | None = None) -> dict:
    """Check one policy file as com would read it (as a change to the shipped policy of the same id).
    Returns {"valid": true, "path", "policy", "overrides"}; an invalid file raises CheckFailed (exit 1)
    with the file and the key in its message."""
    path = Path(path)
    if not path.is_file():
        raise ComError(f"{path}: no such file")
    shipped = _read_folder(shipped_dir(), "shipped", None)
    try:
        policy = read_policy(path, shipped, origin="user")
        if user and Path(user).is_dir():  # beside the user's other files: one id, one task each
            others = [read_policy(p, shipped) for p in _files(Path(user)) if p.resolve() != path.resolve()]
            for other in others:
                if other.id == policy.id:
                    raise PolicyError(path, "id", f"'{policy.id}' is also the id of {other.path}")
            _check_tasks([policy, *others])
    except PolicyError as exc:
        raise CheckFailed(str(exc)) from None
    return {"valid": True, "path": str(path), "policy": policy.to_json(), "overrides": policy.overrides}
