"""A seeded generator of a project's life with known ground truth: code repository, CI runs as JUnit XML, truth JSON.

Used by the tests (seconds), by `make demo` (about a minute of history) and by the benchmarks
(10,000 tests x 100 runs). Same seed, same bytes: the JUnit reports, the ground truth and the code
repository's commit shas are identical from one generation to the next.

    python scripts/gen_history.py OUT --seed 7 --tests 200 --commits 30 --runs-per-commit 2 [--ingest]

Layout of OUT: code/ (a real git repository), junit/<run-id>-junit.xml (pytest xunit1 reports),
ground_truth.json (what the generator decided; see `Truth` below for its keys).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

GENERATOR_VERSION = 1
PACKAGE = "shop"
PYTEST_HOST = "ci-runner"

AREAS = (
    "cart", "checkout", "auth", "search", "payments", "inventory", "shipping", "users",
    "catalog", "orders", "reports", "notify", "pricing", "reviews", "admin", "billing",
)
# Roles in import order: a module imports only modules of a lower layer, so the graph is a DAG.
ROLES = (("util", 0), ("models", 1), ("db", 2), ("cache", 2), ("validators", 2), ("service", 3), ("api", 4), ("views", 5))
CORE = ("config", "util", "logging")  # the shared area everything leans on
VERBS = (
    "add", "remove", "update", "compute", "validate", "parse", "render", "sync", "apply", "fetch", "merge",
    "export", "import", "refresh", "cancel", "retry", "lock", "index", "format", "resolve", "split", "rank",
)
NOUNS = (
    "item", "total", "discount", "token", "session", "order", "price", "stock", "label", "invoice", "refund",
    "address", "query", "filter", "page", "report", "email", "coupon", "currency", "cache", "rate", "batch",
    "user", "role", "review", "rating", "receipt", "tax", "limit", "quota",
)
DEVS = (
    ("Ada Moreau", "ada@shop.example"), ("Bo Lindqvist", "bo@shop.example"), ("Chen Wei", "chen@shop.example"),
    ("Dana Okafor", "dana@shop.example"), ("Eli Novak", "eli@shop.example"), ("Farah Haddad", "farah@shop.example"),
)
SKIP_REASONS = ("requires a GPU runner", "not implemented yet", "needs the staging database", "disabled until #412 lands")
SELECTORS = ("[data-test=checkout]", "#submit-order", "text=Add to cart", "[data-test=login-button]",
             "#search-results >> nth=0", "role=dialog[name='Confirm']", "[data-test=toast-success]")
API_HOST = "api.internal:8080"
# Fixtures of the sample project; a connection reset's trace points at these very lines.
CONFTEST = f'''"""Shared fixtures: an HTTP client of the app and a browser page (pytest-playwright's browser)."""

import socket

import pytest


class ApiClient:
    def __init__(self, host, timeout):
        self.sock = socket.create_connection(tuple(host.split(":")), timeout=timeout)

    def close(self):
        self.sock.close()


@pytest.fixture
def api_client():
    client = ApiClient("{API_HOST}", timeout=5)
    yield client
    client.close()


@pytest.fixture
def page(browser):
    yield browser.new_page()
'''

# Data files: changes to them reach tests by reading, not by import, so import analysis cannot see them.
DATA_FILES = {
    "data/config.yaml": "currency: EUR\ntimeout_s: 30\nretries: 3\nmax_items: 50\nfeature_new_checkout: true\n",
    "data/prices.csv": "sku,price\n" + "".join(f"SKU-{n:03d},{(n * 37) % 90 + 9}.99\n" for n in range(12)),
    "data/fixtures/users.json": json.dumps(
        [{"id": n, "name": f"user{n}", "role": ("admin", "staff", "customer")[n % 3]} for n in range(6)], indent=1
    ) + "\n",
}
DATA_BREAKS = {
    "data/config.yaml": ("KeyError: 'currency'", "AssertionError: assert 'USD' == 'EUR'", "AssertionError: assert 5 <= 3"),
    "data/prices.csv": ("ValueError: could not convert string to float: '12,50'", "AssertionError: assert 13.99 == 12.99"),
    "data/fixtures/users.json": ("KeyError: 'role'", "json.decoder.JSONDecodeError: Expecting ',' delimiter: line 4 column 3 (char 61)"),
}


@dataclass
class History:
    """Where a generation went, and its ground truth (the same dict as ground_truth.json)."""

    out_dir: Path
    truth: dict

    @property
    def code_repo(self) -> Path:
        return self.out_dir / "code"

    @property
    def junit_dir(self) -> Path:
        return self.out_dir / "junit"

    @property
    def ground_truth_path(self) -> Path:
        return self.out_dir / "ground_truth.json"

    @property
    def runs(self) -> list[dict]:
        return self.truth["runs"]

    def junit_paths(self) -> list[Path]:
        return [self.out_dir / r["junit"] for r in self.runs]


# -- XML and time helpers ----------------------------------------------------------------------
def _attr(text: str) -> str:
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;").replace("\n", "&#10;"))


def _text(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def _weighted_sample(rng: random.Random, items: list, weights: list[float], k: int) -> list:
    """k distinct items, heavier ones likelier (Efraimidis-Spirakis keys), in a deterministic order."""
    keyed = sorted(((rng.random() ** (1.0 / w), n) for n, w in enumerate(weights)), reverse=True)
    return [items[n] for _, n in keyed[:k]]


# -- the project's shape -----------------------------------------------------------------------
class _Module:
    def __init__(self, name: str, path: str, area: str, layer: int):
        self.name, self.path, self.area, self.layer = name, path, area, layer
        self.imports: list[str] = []
        self.functions: list[list] = []  # [name, calls (module name or None), constant]
        self.lines: dict[str, int] = {}  # function -> 1-based line of its return statement

    def alias_of(self, modules: dict) -> dict[str, str]:
        roles = [modules[m].name.rsplit(".", 1)[1] for m in self.imports]
        out = {}
        for m in self.imports:
            area, role = m.split(".")[1:]
            out[m] = role if roles.count(role) == 1 and role != self.name.rsplit(".", 1)[1] else f"{area}_{role}"
        return out

    def render(self, modules: dict) -> str:
        alias = self.alias_of(modules)
        area, role = self.name.split(".")[1:]
        lines = [f'"""{area.capitalize()} {role}: part of the {PACKAGE} sample project."""']
        if self.imports:
            lines.append("")
        for m in self.imports:
            parent, leaf = m.rsplit(".", 1)
            lines.append(f"from {parent} import {leaf}" + (f" as {alias[m]}" if alias[m] != leaf else ""))
        lines += ["", ""]
        for fn, calls, const in self.functions:
            lines.append(f"def {fn}(value):")
            self.lines[fn] = len(lines) + 1
            if calls:
                callee = modules[calls].functions[0][0]
                lines.append(f"    return {alias[calls]}.{callee}(value) + {const}")
            else:
                lines.append(f"    return value * 2 + {const}")
            lines += ["", ""]
        return "\n".join(lines[:-2]) + "\n"


class _Test:
    __slots__ = ("id", "file", "cls", "name", "base", "kind", "subject", "fn", "reads", "line", "assert_line",
                 "expected", "arg", "importance", "tags", "median_ms", "sigma", "skip", "flaky", "selector",
                 "index", "block", "args")


def _unique_names(rng: random.Random, n: int, taken: set) -> list[str]:
    out = []
    while len(out) < n:
        name = f"{rng.choice(VERBS)}_{rng.choice(NOUNS)}"
        if name in taken:
            name = f"{name}_{len(taken)}"
        taken.add(name)
        out.append(name)
    return out


class _Project:
    """Modules with an import graph, test files importing them, data files some tests read."""

    def __init__(self, rng: random.Random, n_tests: int, flaky_fraction: float):
        self.rng = rng
        n_files = max(2, round(n_tests / 7))
        n_modules = max(len(CORE) + 1, round(n_files * 0.9))
        self.modules: dict[str, _Module] = {}
        for role in CORE:
            self._add_module("core", role, 0)
        n_areas = max(1, math.ceil((n_modules - len(CORE)) / len(ROLES)))
        areas = [AREAS[i % len(AREAS)] + (str(i // len(AREAS) + 1) if i >= len(AREAS) else "") for i in range(n_areas)]
        k = 0
        while len(self.modules) < n_modules:
            area = areas[k % n_areas]
            role, layer = ROLES[(k // n_areas) % len(ROLES)]
            round_no = k // (n_areas * len(ROLES))
            self._add_module(area, role + (f"{round_no + 1}" if round_no else ""), layer + 1)
            k += 1
        self._wire_imports()
        self.closure = self._closures()
        self._make_tests(n_files, n_tests, flaky_fraction)

    def _add_module(self, area: str, role: str, layer: int) -> None:
        name = f"{PACKAGE}.{area}.{role}"
        self.modules[name] = _Module(name, f"src/{PACKAGE}/{area}/{role}.py", area, layer)

    def _wire_imports(self) -> None:
        rng = self.rng
        mods = list(self.modules.values())
        for mod in mods:
            lower = [m for m in mods if m.layer < mod.layer]
            if lower:
                same = [m for m in lower if m.area == mod.area]
                core = [m for m in lower if m.area == "core"]
                other = [m for m in lower if m.area not in (mod.area, "core")]
                chosen: list[_Module] = []
                for _ in range(rng.choice((1, 1, 2, 2, 3))):
                    pool = rng.choices((same, core, other), weights=(0.65, 0.25, 0.10))[0] or same or core or lower
                    pick = rng.choice(pool)
                    if pick not in chosen:
                        chosen.append(pick)
                mod.imports = sorted(m.name for m in chosen)
            # Every import is used by one function, so a trace can walk the chain through real lines.
            names = _unique_names(rng, max(len(mod.imports), rng.randint(2, 4)), set())
            mod.functions = [
                [fn, mod.imports[i] if i < len(mod.imports) else None, rng.randint(1, 9)] for i, fn in enumerate(names)
            ]

    def _closures(self) -> dict[str, set]:
        out: dict[str, set] = {}
        for mod in sorted(self.modules.values(), key=lambda m: m.layer):
            reach = {mod.name}
            for dep in mod.imports:
                reach |= out[dep]
            out[mod.name] = reach
        return out

    def import_path(self, starts: list[str], target: str) -> list[str]:
        """Modules from one of `starts` to `target` along imports (breadth-first: the shortest chain)."""
        prev, queue = {s: None for s in starts}, list(starts)
        while queue:
            cur = queue.pop(0)
            if cur == target:
                break
            for dep in self.modules[cur].imports:
                if dep not in prev:
                    prev[dep] = cur
                    queue.append(dep)
        chain, node = [], target
        while node is not None:
            chain.append(node)
            node = prev[node]
        return chain[::-1]

    def _make_tests(self, n_files: int, n_tests: int, flaky_fraction: float) -> None:
        rng = self.rng
        subjects = list(self.modules.values())
        rng.shuffle(subjects)
        # Heavy-tailed file sizes: most test files are small, a few are big.
        sizes = [1] * n_files
        file_weights = [rng.paretovariate(1.6) for _ in range(n_files)]
        for f in rng.choices(range(n_files), weights=file_weights, k=max(0, n_tests - n_files)):
            sizes[f] += 1
        self.test_files: list[dict] = []
        self.tests: list[_Test] = []
        self.groups: dict[str, list] = {}
        self.file_imports: dict[str, list[str]] = {}
        seen_paths: set = set()
        data_paths = list(DATA_FILES)
        for f in range(n_files):
            subject = subjects[f % len(subjects)]
            area, role = subject.name.split(".")[1:]
            stem = f"test_{area}_{role}"
            path, n = f"tests/{stem}.py", 2
            while path in seen_paths:
                path, n = f"tests/{stem}_{n}.py", n + 1
            seen_paths.add(path)
            extra = []
            if rng.random() < 0.3:
                other = rng.choice(subjects)
                if other is not subject:
                    extra = [other.name]
            # Every data file gets readers (so data breakages always have a victim), the rest by chance.
            reads = [data_paths[f]] if f < len(data_paths) else ([rng.choice(data_paths)] if rng.random() < 0.12 else [])
            kind = rng.choices(("unit", "integration", "e2e"), weights=(0.70, 0.22, 0.08))[0]
            tf = {"path": path, "subject": subject.name, "imports": sorted({subject.name, *extra}),
                  "reads": reads, "kind": kind, "size": sizes[f]}
            self.test_files.append(tf)
            self.file_imports[path] = tf["imports"]
            self._make_file_tests(tf)
        for i, t in enumerate(self.tests):
            t.index = i
        n_flaky = max(1, round(n_tests * flaky_fraction)) if flaky_fraction > 0 else 0
        candidates = [t for t in self.tests if not t.skip]
        for t in rng.sample(candidates, min(n_flaky, len(candidates))):
            t.flaky = self._flaky_profile(t)

    def _make_file_tests(self, tf: dict) -> None:
        """Tests of one file as groups (class, function, [tests]): parametrised cases share a function."""
        rng = self.rng
        taken: set = set()
        groups: list = []
        left, cls, n_classes = tf["size"], None, 0
        role = tf["subject"].rsplit(".", 1)[1]
        while left > 0:
            if cls is None and rng.random() < 0.1:
                n_classes += 1
                cls = f"Test{role.capitalize()}" + (str(n_classes) if n_classes > 1 else "")
            elif cls is not None and rng.random() < 0.3:
                cls = None
            params = min(rng.choice((2, 3, 4)), left) if rng.random() < 0.08 and left >= 2 else 0
            base = "test_" + _unique_names(rng, 1, taken)[0]
            names = [f"{base}[{c}-{n + 1}]" for n, c in zip(range(params), "abcd")] if params else [base]
            members = []
            skip = rng.choice(SKIP_REASONS) if rng.random() < 0.01 else None
            smoke = rng.random() < 0.08
            centre = {"unit": math.log(8), "integration": math.log(300), "e2e": math.log(3500)}[tf["kind"]]
            for name in names:
                t = _Test()
                t.file, t.cls, t.name, t.base, t.kind = tf["path"], cls, name, base, tf["kind"]
                t.subject, t.reads = tf["subject"], tf["reads"]
                t.fn = rng.choice(self.modules[t.subject].functions)[0]
                t.arg, t.expected = rng.randint(1, 9), rng.randint(10, 99)
                t.id = f"{t.file}::{cls}::{name}" if cls else f"{t.file}::{name}"
                t.skip = skip
                t.median_ms = round(math.exp(rng.gauss(centre, 1.1)), 1)
                t.sigma = {"unit": 0.15, "integration": 0.25, "e2e": 0.35}[t.kind]
                area = tf["subject"].split(".")[1]
                t.tags = [t.kind, area] + (["smoke"] if smoke else []) + (["slow"] if t.median_ms > 2000 else [])
                t.importance = 5 if smoke else max(1, min(5, {"unit": 2, "integration": 3, "e2e": 4}[t.kind]
                                                          + rng.choice((-1, 0, 0, 0, 1))))
                t.flaky, t.selector = None, rng.choice(SELECTORS)
                members.append(t)
                self.tests.append(t)
            groups.append((cls, base, members))
            left -= len(names)
        self.groups[tf["path"]] = groups

    def _flaky_profile(self, t: _Test) -> dict:
        rng = self.rng
        options = {
            "unit": (("timing", 0.7), ("timeout", 0.3)),
            "integration": (("connection_reset", 0.5), ("timeout", 0.25), ("timing", 0.25)),
            "e2e": (("selector", 0.6), ("timeout", 0.4)),
        }[t.kind]
        manifestation = rng.choices([o for o, _ in options], weights=[w for _, w in options])[0]
        rate = round(0.04 + 0.4 * rng.random() ** 2, 3)
        return {"rate": rate, "manifestation": manifestation,
                "status": "error" if manifestation == "connection_reset" else "failed"}

    # -- source text ---------------------------------------------------------------------------
    def render_test_file(self, tf: dict) -> str:
        """The test module's text; sets each test's def line (0-based, as pytest reports it) and assert line."""
        groups = self.groups[tf["path"]]
        every = [t for _, _, members in groups for t in members]
        lines = [f'"""Tests of {tf["subject"]}."""', ""]
        stdlib = (["import time"] if any(t.flaky and t.flaky["manifestation"] == "timing" for t in every) else []) + (
            ["from pathlib import Path"] if tf["reads"] else [])
        if stdlib:
            lines += stdlib + [""]
        lines.append("import pytest")
        lines.append("")
        for m in tf["imports"]:
            parent, leaf = m.rsplit(".", 1)
            lines.append(f"from {parent} import {leaf}")
        if tf["reads"]:
            lines += ["", f'DATA = Path(__file__).resolve().parents[1] / "{tf["reads"][0]}"']
        leaf = tf["subject"].rsplit(".", 1)[1]
        current_cls = None
        for cls, base, members in groups:
            first = members[0]
            if cls != current_cls and cls is not None:
                lines += ["", "", f"class {cls}:"]
            else:
                lines += ["", ""] if cls is None else [""]
            current_cls = cls
            block = []  # the function as pytest quotes it in a traceback: decorators, def, body
            if first.skip:
                block.append(f'@pytest.mark.skip(reason="{first.skip}")')
            if "smoke" in first.tags:
                block.append("@pytest.mark.smoke")
            if first.importance >= 4:
                block.append(f"@pytest.mark.importance({first.importance})")
            if first.flaky and first.flaky["manifestation"] == "timeout":
                block.append("@pytest.mark.timeout(30)")
            if len(members) > 1 or "[" in first.name:
                cases = [t.name.split("[", 1)[1][:-1] for t in members]
                block.append(f'@pytest.mark.parametrize("case", {cases!r})')
            fixture = {"integration": "api_client", "e2e": "page"}.get(first.kind)
            args = (["self"] if cls else []) + (["case"] if "[" in first.name else []) + ([fixture] if fixture else [])
            block.append(f"def {base}({', '.join(args)}):")
            block += ["    " + b for b in self._body(first, leaf, fixture)]
            first_line = len(lines)  # pytest's `line`: 0-based, at the first decorator
            indent = "    " if cls else ""
            lines += [indent + b for b in block]
            for t in members:
                t.line, t.assert_line, t.block, t.args = first_line, len(lines), block, args
        return "\n".join(lines) + "\n"

    def _body(self, t: _Test, leaf: str, fixture: str | None) -> list[str]:
        # A test of a file that reads data reads it first: a bad data edit fails it by reading, not importing.
        return (["settings = DATA.read_text()"] if t.reads else []) + self._steps(t, leaf, fixture)

    def _steps(self, t: _Test, leaf: str, fixture: str | None) -> list[str]:
        m = t.flaky["manifestation"] if t.flaky else None
        if m == "timing":
            return ["started = time.monotonic()", f"{leaf}.{t.fn}({t.arg})",
                    "elapsed = time.monotonic() - started", 'assert elapsed < 1.0, f"took {elapsed:.2f}s, budget 1.00s"']
        if fixture == "page":
            return [f'page.goto("/{t.subject.split(".")[1]}")', f'page.click("{t.selector}")',
                    f'assert page.inner_text("h1") == "{t.fn.replace("_", " ").title()}"']
        if fixture == "api_client":
            return [f'response = api_client.post("/{t.subject.split(".")[1]}/{t.fn}", json={{"value": {t.arg}}})',
                    "assert response.status_code == 200"]
        return [f"assert {leaf}.{t.fn}({t.arg}) == {t.expected}"]


# -- failure text: what pytest would print -----------------------------------------------------
def _addr(rng: random.Random) -> str:
    return f"0x7f{rng.randrange(16 ** 10):010x}"


_ARG_VALUES = {
    "api_client": "<tests.conftest.ApiClient object at 0x7f5c3e2b4410>",
    "page": "<Page url='http://localhost:8000/'>",
}


def _frame(t: _Test, error_lines: list[str], up: int = 0, cont: bool = False) -> list[str]:
    """pytest's long traceback entry for the test function, failing `up` lines above its last line
    (`cont`: the error is raised deeper down, in a module the test calls)."""
    values = []
    for arg in t.args:
        if arg == "self":
            values.append(f"self = <{t.file[:-3].replace('/', '.')}.{t.cls} object at 0x7f5c3e2a1d90>")
        elif arg == "case":
            values.append(f"case = '{t.name.split('[', 1)[1][:-1]}'")
        else:
            values.append(f"{arg} = {_ARG_VALUES[arg]}")
    out = [", ".join(values), ""] if values else []
    fail_at = len(t.block) - 1 - up
    out += [(">   " if n == fail_at else "    ") + line for n, line in enumerate(t.block[:fail_at + 1])]
    out += [f"E       {e}" for e in error_lines]
    where = f"{t.file}:{t.assert_line - up}: "
    if cont:
        return out + ["", where, "_ " * 20]
    return out + ["", where + error_lines[0].split(":")[0]]


def _trace(t: _Test, error_lines: list[str], **kw) -> str:
    return "\n".join(_frame(t, error_lines, **kw))


def flaky_failure(rng: random.Random, t: _Test) -> tuple[str, str, str, float | None]:
    """(status, message, trace, forced duration in seconds or None) for one flaky manifestation."""
    m = t.flaky["manifestation"]
    if m == "timeout":
        msg = "Failed: Timeout >30.0s"
        up = 1 if t.kind != "unit" else 0  # it hangs in the request or the page action, not in the assert
        trace = "\n".join([
            f"{'+' * 37} Timeout {'+' * 37}",
            f'  File "/home/runner/work/shop/shop/{t.file}", line {t.assert_line - up}, in {t.base}',
            f"    {t.block[-1 - up].strip()}",
            '  File "/usr/lib/python3.11/socket.py", line 706, in readinto',
            "    return self._sock.recv_into(b)",
            f"{'+' * 37} Timeout {'+' * 37}",
            "", f"{t.file}:{t.assert_line - up}: Failed",
        ])
        return "failed", msg, trace, 30.0 + rng.random() * 0.05
    if m == "selector":
        msg = (f"playwright._impl._errors.TimeoutError: Page.click: Timeout 30000ms exceeded.\n"
               f"Call log:\n  - waiting for locator(\"{t.selector}\")")
        trace = _trace(t, msg.splitlines(), up=1)
        return "failed", msg, trace, 30.0 + rng.random() * 0.4
    if m == "connection_reset":
        inner = "ConnectionResetError: [Errno 104] Connection reset by peer"
        trace = "\n".join([
            "@pytest.fixture", "    def api_client():",
            f'>       client = ApiClient("{API_HOST}", timeout=5)', "",
            "tests/conftest.py:18: ", "_ " * 20, "",
            f"self = <tests.conftest.ApiClient object at {_addr(rng)}>, host = '{API_HOST}', timeout = 5", "",
            "    def __init__(self, host, timeout):",
            '>       self.sock = socket.create_connection(tuple(host.split(":")), timeout=timeout)',
            f"E       {inner}", "", "tests/conftest.py:10: ConnectionResetError",
        ])
        return "error", f'failed on setup with "{inner}"', trace, None
    took = round(1.01 + rng.expovariate(3.0), 2)
    msg = f"AssertionError: took {took:.2f}s, budget 1.00s\nassert {took} < 1.0"
    return "failed", msg, _trace(t, msg.splitlines()), took


def breakage_failure(project: _Project, rng: random.Random, t: _Test, br: dict) -> tuple[str, str]:
    """(message, trace) of a test a breakage broke; the trace walks the import chain to the changed module."""
    if br["via"] == "data":
        msg = br["detail"]
        return msg, _trace(t, msg.splitlines())
    kind, target = br["kind"], br["module"]
    if kind == "assert" or t.kind != "unit":
        if t.kind == "integration":
            msg = "AssertionError: assert 500 == 200\n +  where 500 = <Response [500]>.status_code"
        elif t.kind == "e2e":
            title = t.fn.replace("_", " ").title()
            msg = f"AssertionError: assert 'Something went wrong' == '{title}'\n  - {title}\n  + Something went wrong"
        else:
            got = t.expected + rng.choice((-3, -2, -1, 1, 2, 5))
            msg = f"AssertionError: assert {got} == {t.expected}\n +  where {got} = <function {t.fn} at {_addr(rng)}>({t.arg})"
        return msg, _trace(t, msg.splitlines())
    chain = project.import_path(project.file_imports[t.file], target)
    # The test's own call fails when it calls the changed module itself; else a call inside the chain does.
    callee = t.fn if t.subject == target else project.modules[target].functions[0][0]
    if kind == "attribute":
        err = f"AttributeError: module '{target}' has no attribute '{callee}'"
    else:
        err = f"TypeError: {callee}() missing 1 required positional argument: 'currency'"
    if len(chain) < 2:  # the test imports the changed module itself
        return err, _trace(t, [err])
    caller = project.modules[chain[-2]]
    fn = next((f for f, calls, _ in caller.functions if calls == target), caller.functions[0][0])
    const = next(c for f, _, c in caller.functions if f == fn)
    lines = _frame(t, [], cont=True) + [
        "", f"value = {t.arg}", "", f"    def {fn}(value):",
        f">       return {caller.alias_of(project.modules)[target]}.{callee}(value) + {const}",
        f"E       {err}", "", f"{caller.path}:{caller.lines.get(fn, 1)}: {err.split(':')[0]}",
    ]
    return err, "\n".join(lines)


# -- the code repository -----------------------------------------------------------------------
class _CodeRepo:
    """A real git repository with a work tree, written through pygit2 with fixed names and dates."""

    def __init__(self, path: Path):
        import pygit2

        self.pygit2 = pygit2
        self.repo = pygit2.init_repository(str(path), bare=False, initial_head="main")
        self.path = path
        self.parent = None

    def commit(self, files: dict[str, str], message: str, author: tuple[str, str], when: datetime) -> str:
        index = self.repo.index
        for rel, text in files.items():
            target = self.path / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
            index.add(rel)
        index.write()
        tree = index.write_tree()
        sig = self.pygit2.Signature(author[0], author[1], int(when.timestamp()), 0)
        parents = [self.parent] if self.parent is not None else []
        self.parent = self.repo.create_commit("refs/heads/main", sig, sig, message + "\n", tree, parents)
        return str(self.parent)


def _static_files(proj: _Project, project: str) -> dict[str, str]:
    files = {
        "README.md": f"# {PACKAGE}\n\nA generated sample project: modules under src/{PACKAGE}/, tests under tests/.\n",
        "pyproject.toml": (f'[project]\nname = "{PACKAGE}"\nversion = "0.1.0"\n\n'
                           f'[tool.pytest.ini_options]\npythonpath = ["src"]\n\n[tool.com]\nproject = "{project}"\n'),
        ".gitignore": "__pycache__/\n.com/\n",
        f"src/{PACKAGE}/__init__.py": f'"""The {PACKAGE} sample package."""\n',
        "tests/__init__.py": "",
        "tests/conftest.py": CONFTEST,
    }
    for area in sorted({m.area for m in proj.modules.values()}):
        files[f"src/{PACKAGE}/{area}/__init__.py"] = ""
    files.update(DATA_FILES)
    return files


# -- the generation --------------------------------------------------------------------------------
def generate(out_dir, seed: int = 0, tests: int = 200, commits: int = 30, runs_per_commit: int = 2, *,
             project: str = PACKAGE, start: str = "2026-01-05T09:00:00Z", flaky_fraction: float = 0.04,
             break_rate: float = 0.15, commit_gap_hours: float = 3.0, victims: str = "importers") -> History:
    """Write the code repository, one JUnit report per CI run and ground_truth.json into out_dir.

    `victims` is how a breaking module change picks the tests it breaks. "importers" (generator version 1):
    among every test whose imports reach the module, direct importers three times likelier, whatever their
    code calls. "reach" (version 2, closer to a real project): among the tests whose calls reach the function
    the commit changed (the test's function calls one function of its subject module, which calls on down its
    imports), tests calling it themselves three times likelier; a change no test's calls reach breaks none."""
    if victims not in ("importers", "reach"):
        raise ValueError("victims must be 'importers' or 'reach'")
    if not 1 <= tests <= 100_000:
        raise ValueError("tests must be between 1 and 100000")
    if commits < 1 or runs_per_commit < 1:
        raise ValueError("commits and runs_per_commit must be at least 1")
    out = Path(out_dir)
    if (out / "code").exists() or (out / "ground_truth.json").exists():
        raise FileExistsError(f"{out} already holds a generated history")
    (out / "junit").mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    proj = _Project(rng, tests, flaky_fraction)
    by_file: dict[str, list[_Test]] = {}
    for t in proj.tests:
        by_file.setdefault(t.file, []).append(t)
    tf_by_path = {tf["path"]: tf for tf in proj.test_files}

    # File states: module function constants and test expectations change; text is rendered from state.
    texts = _static_files(proj, project)
    for mod in proj.modules.values():
        texts[mod.path] = mod.render(proj.modules)
    for tf in proj.test_files:
        texts[tf["path"]] = proj.render_test_file(tf)
    clusters = _clusters(rng, proj)
    weights = [1.0 / (rank + 1) ** 0.8 for rank in range(len(clusters))]
    module_of_path = {m.path: m for m in proj.modules.values()}
    importers = _importers(proj)
    readers: dict[str, list[_Test]] = {}
    for t in proj.tests:
        for d in t.reads:
            if not t.skip:
                readers.setdefault(d, []).append(t)

    # Commits: which files, which breakages start and end where.
    repo = _CodeRepo(out / "code")
    when = datetime.fromisoformat(start.replace("Z", "+00:00")).astimezone(timezone.utc)
    owner = {area: DEVS[n % len(DEVS)] for n, area in enumerate(sorted({m.area for m in proj.modules.values()}))}
    n_data_breaks = max(1, commits // 25) if commits >= 8 else 0
    data_break_at = set(rng.sample(range(1, commits), min(n_data_breaks, commits - 1))) if n_data_breaks else set()
    broken_until: dict[int, int] = {}  # test index -> commit index of its fix (or commits: never fixed)
    fixes_due: dict[int, list[dict]] = {}
    breakages: list[dict] = []
    commit_rows: list[dict] = []
    active: list[dict] = []
    runs: list[dict] = []
    statuses = []  # per run: {test index: (status, message, trace, duration in seconds)}
    counts = [[0, 0, 0, 0] for _ in proj.tests]  # passed, failed, error, skipped
    flaky_tests = [t for t in proj.tests if t.flaky]
    run_no = 0
    for c in range(commits):
        due = fixes_due.pop(c, [])
        mutated: dict[str, set] = {}  # module -> functions this commit changed
        if c == 0:
            touched = sorted(texts)
            message, author = "Initial import of the shop project", DEVS[0]
        else:
            cluster = rng.choices(clusters, weights=weights)[0]
            touched = [f for f in cluster if rng.random() < 0.8] or [cluster[0]]
            if rng.random() < 0.15:
                touched.append(rng.choice(sorted(module_of_path)))
            for br in due:
                touched.append(br["file"])
            if c in data_break_at and readers:
                touched.append(rng.choice(sorted(readers)))
            touched = sorted(set(touched))
            lead = next((f for f in touched if f in module_of_path), touched[0])
            area = _area_of(lead)
            author = owner.get(area, DEVS[c % len(DEVS)])
            if due:
                message = f"{area}: fix regression from {due[0]['commit'][:10]}"
            else:
                message = f"{area}: {rng.choice(VERBS)} {rng.choice(NOUNS)} handling"
            for f in touched:
                fn = _mutate(rng, proj, f, texts, module_of_path, by_file, tf_by_path)
                if fn is not None:
                    mutated.setdefault(module_of_path[f].name, set()).add(fn)
        files = {f: texts[f] for f in touched}
        sha = repo.commit(files, message, author, when)
        for br in due:
            br["fixed_by"], br["fix_index"] = sha, c
            active.remove(br)
        new = [] if c == 0 else _new_breakages(rng, proj, c, touched, due, module_of_path, importers,
                                               readers, broken_until, break_rate, c in data_break_at,
                                               mutated if victims == "reach" else None)
        for br in new:
            br["id"], br["commit"] = f"B{len(breakages) + 1}", sha
            breakages.append(br)
            active.append(br)
            if br["fix_index"] < commits:
                fixes_due.setdefault(br["fix_index"], []).append(br)
            br["fix_index"], br["fixed_by"] = None, None
        commit_rows.append({"index": c, "sha": sha, "time": _iso(when), "message": message, "author": author[0],
                            "files": touched, "breaks": [b["id"] for b in new], "fixes": [b["id"] for b in due]})
        broken = {}
        for br in active:
            for tid in br["tests"]:
                broken[tid] = br
        run_start = when + timedelta(minutes=4)
        for _ in range(runs_per_commit):
            run_no += 1
            run_id = f"run-{run_no:05d}"
            outcome = _ci_run(rng, proj.tests, broken, counts)
            dur_total = sum(o[3] for o in outcome.values())
            runs.append({"run_id": run_id, "commit": sha, "commit_index": c, "ts": run_start,
                         "junit": f"junit/{run_id}-junit.xml", "results": len(proj.tests)})
            statuses.append(outcome)
            run_start += timedelta(seconds=math.ceil(dur_total) + 120)
        gap = timedelta(minutes=max(10.0, rng.lognormvariate(math.log(commit_gap_hours * 60), 0.8)))
        when = run_start + gap

    _ensure_flaky_mixed(rng, flaky_tests, runs, statuses, counts, runs_per_commit)
    properties = _properties(proj.tests)
    for run, outcome in zip(runs, statuses):
        run["ts"], started = _iso(run["ts"]), run["ts"]
        failing = [proj.tests[i].id for i, o in outcome.items() if o[0] in ("failed", "error")]
        run["failing"] = failing
        run["end"] = _iso(started + timedelta(seconds=math.ceil(sum(o[3] for o in outcome.values())) + 1))
        _write_junit(out / run["junit"], proj.tests, properties, outcome, started, run["run_id"])
    for br in breakages:
        del br["failures"]
        br.pop("detail", None)

    truth = {
        "generator": {"version": GENERATOR_VERSION if victims == "importers" else 2, "seed": seed, "tests": tests,
                      "commits": commits, "runs_per_commit": runs_per_commit, "project": project, "start": start,
                      "flaky_fraction": flaky_fraction, "break_rate": break_rate,
                      **({"victims": victims} if victims != "importers" else {})},
        "code_repo": "code",
        "junit_dir": "junit",
        "modules": {m.name: {"path": m.path, "imports": m.imports} for m in proj.modules.values()},
        "data_files": sorted(DATA_FILES),
        "clusters": clusters,
        "tests": {t.id: {"file": t.file, "kind": t.kind, "imports": tf_by_path[t.file]["imports"],
                         "reads": t.reads, "tags": t.tags, "importance": t.importance,
                         "duration_ms": {"median": t.median_ms, "sigma": t.sigma},
                         "skipped": t.skip is not None} for t in proj.tests},
        "flaky": {t.id: t.flaky for t in flaky_tests},
        "breakages": breakages,
        "commits": commit_rows,
        "runs": runs,
        "expected": {t.id: dict(zip(("passed", "failed", "error", "skipped"), counts[t.index])) for t in proj.tests},
        "totals": {"tests": len(proj.tests), "runs": len(runs), "results": len(proj.tests) * len(runs),
                   "failed": sum(c[1] for c in counts), "error": sum(c[2] for c in counts)},
    }
    (out / "ground_truth.json").write_text(json.dumps(truth, indent=1) + "\n")
    return History(out, truth)


_COLUMN = {"passed": 0, "failed": 1, "error": 2, "skipped": 3}


def _ci_run(rng: random.Random, tests: list[_Test], broken: dict, counts: list) -> dict:
    """One CI run of every test: skipped, broken (fails every time), a flaky failure, or a pass."""
    outcome = {}
    for t in tests:
        if t.skip:
            result = ("skipped", t.skip, None, 0.0)
        else:
            dur = t.median_ms / 1000.0 * math.exp(rng.gauss(0.0, t.sigma))  # lognormal jitter per run
            br = broken.get(t.id)
            if br is not None:
                msg, trace = br["failures"][t.id]
                result = (br["status"], msg, trace, dur)
            elif t.flaky and rng.random() < t.flaky["rate"]:
                status, msg, trace, forced = flaky_failure(rng, t)
                result = (status, msg, trace, forced if forced is not None else dur)
            else:
                result = ("passed", None, None, dur)
        outcome[t.index] = result
        counts[t.index][_COLUMN[result[0]]] += 1
    return outcome


def _area_of(path: str) -> str:
    """The part of the project a file belongs to, as a commit message names it."""
    parts = path.split("/")
    if parts[0] == "src" and len(parts) > 3:
        return parts[2]
    if parts[0] == "tests":
        return parts[-1][len("test_"):].split("_")[0] if parts[-1].startswith("test_") else "tests"
    return parts[0]


def _clusters(rng: random.Random, proj: _Project) -> list[list[str]]:
    """Files that change together: a few modules of one area with their test files (and data with its readers)."""
    tests_of: dict[str, list[str]] = {}
    for tf in proj.test_files:
        tests_of.setdefault(tf["subject"], []).append(tf["path"])
    by_area: dict[str, list[_Module]] = {}
    for m in proj.modules.values():
        by_area.setdefault(m.area, []).append(m)
    clusters = []
    for area in sorted(by_area):
        mods = by_area[area][:]
        rng.shuffle(mods)
        while mods:
            size = rng.choice((1, 2, 2, 3))
            group, mods = mods[:size], mods[size:]
            files = []
            for m in group:
                files.append(m.path)
                files.extend(tests_of.get(m.name, [])[:2])
            clusters.append(sorted(files))
    for data in sorted(DATA_FILES):
        reader_files = sorted({tf["path"] for tf in proj.test_files if data in tf["reads"]})[:2]
        clusters.append(sorted([data, *reader_files]))
    rng.shuffle(clusters)  # which clusters are hot is random, not alphabetical
    return clusters


def _importers(proj: _Project) -> dict[str, list[tuple[_Test, bool]]]:
    """Module -> (test, imports it directly) for every test whose imports reach it."""
    out: dict[str, list] = {}
    file_reach: dict[str, set] = {}
    for tf in proj.test_files:
        reach = set()
        for m in tf["imports"]:
            reach |= proj.closure[m]
        file_reach[tf["path"]] = reach
    direct = {tf["path"]: set(tf["imports"]) for tf in proj.test_files}
    for t in proj.tests:
        if t.skip:
            continue
        for m in sorted(file_reach[t.file]):
            out.setdefault(m, []).append((t, m in direct[t.file]))
    return out


def _mutate(rng, proj, path, texts, module_of_path, by_file, tf_by_path) -> str | None:
    """Change one line of a file, the way a small real edit does; the module function it changed, if any."""
    if path in module_of_path:
        mod = module_of_path[path]
        fn = rng.choice(mod.functions)
        fn[2] = fn[2] + rng.choice((1, 2, 3, -1)) if fn[2] > 1 else fn[2] + 1
        texts[path] = mod.render(proj.modules)
        return fn[0]
    elif path in by_file:
        t = rng.choice(by_file[path])
        t.expected += 1
        texts[path] = proj.render_test_file(tf_by_path[path])
    elif path in DATA_FILES:
        texts[path] = _bump_a_number(rng, texts[path])


def _bump_a_number(rng: random.Random, text: str) -> str:
    """A data edit: one number on one line goes up (a price, a limit, an id)."""
    lines = text.splitlines()
    numbered = [n for n, line in enumerate(lines) if any(ch.isdigit() for ch in line)]
    n = rng.choice(numbered)
    line = lines[n]
    pos = max(i for i, ch in enumerate(line) if ch.isdigit())
    lines[n] = line[:pos] + str((int(line[pos]) + 1) % 10) + line[pos + 1:]
    return "\n".join(lines) + "\n"


def _calls(proj: _Project, module: str, fn: str) -> set[tuple[str, str]]:
    """(module, function) pairs a call of module.fn runs: itself, then down the one import each function calls."""
    out = set()
    while True:
        out.add((module, fn))
        spec = next(f for f in proj.modules[module].functions if f[0] == fn)
        if not spec[1]:
            return out
        module = spec[1]
        fn = proj.modules[module].functions[0][0]


def _new_breakages(rng, proj, c, touched, due, module_of_path, importers, readers, broken_until,
                   break_rate, force_data, mutated=None) -> list[dict]:
    """Breakages this commit starts: from a changed module to tests importing it (or, with `mutated`, to tests
    whose calls reach the changed function), or from a changed data file."""
    out = []
    fixing = {b["file"] for b in due}
    free = lambda t: broken_until.get(t.index, -1) <= c  # noqa: E731 - a test breaks only once at a time

    def fix_index():
        return c + rng.randint(1, 5)

    data_touched = [f for f in touched if f in DATA_FILES and f not in fixing]
    if data_touched and (force_data or rng.random() < break_rate):
        data = data_touched[0]
        victims = [t for t in readers.get(data, []) if free(t)]
        if victims:
            k = min(len(victims), 1 + int(rng.expovariate(0.9)))
            chosen = rng.sample(victims, k)
            detail = rng.choice(DATA_BREAKS[data])
            fix = fix_index()
            br = {"via": "data", "file": data, "module": None, "kind": "data", "status": "failed",
                  "tests": [t.id for t in chosen], "fix_index": fix, "detail": detail,
                  "failures": {t.id: (detail, _trace(t, detail.splitlines())) for t in chosen}}
            for t in chosen:
                broken_until[t.index] = fix
            out.append(br)
    changed = [module_of_path[f] for f in touched if f in module_of_path and f not in fixing]
    if changed and rng.random() < break_rate:
        mod = rng.choice(changed)
        pool = [(t, d) for t, d in importers.get(mod.name, []) if free(t)]
        if mutated is not None:  # version 2: the tests whose calls run a function this commit changed
            hit = {(mod.name, fn) for fn in mutated.get(mod.name, ())}
            pool = [(t, t.subject == mod.name and t.fn in mutated.get(mod.name, ())) for t, _ in pool
                    if _calls(proj, t.subject, t.fn) & hit]
        if pool:
            k = min(len(pool), 1 + int(rng.expovariate(0.6)), 12)
            chosen = [t for t, _ in _weighted_sample(rng, pool, [3.0 if d else 1.0 for _, d in pool], k)]
            kind = rng.choices(("assert", "attribute", "type"), weights=(0.6, 0.2, 0.2))[0]
            fix = fix_index()
            br = {"via": "import", "file": mod.path, "module": mod.name, "kind": kind, "status": "failed",
                  "tests": [t.id for t in chosen], "fix_index": fix}
            br["failures"] = {t.id: breakage_failure(proj, rng, t, br) for t in chosen}
            for t in chosen:
                broken_until[t.index] = fix
            out.append(br)
    return out


def _ensure_flaky_mixed(rng, flaky_tests, runs, statuses, counts, runs_per_commit) -> None:
    """Every flaky test both passes and fails on at least one commit (when a commit has two runs or more).

    A low flake rate over few runs may never show; then one passing run of a commit where the test is
    not broken becomes a flaky failure, so the truth never calls a test flaky without evidence."""
    if runs_per_commit < 2:
        return
    by_commit: dict[int, list[int]] = {}
    for n, run in enumerate(runs):
        by_commit.setdefault(run["commit_index"], []).append(n)
    for t in flaky_tests:
        all_passed, mixed = [], False
        for ns in by_commit.values():
            states = [statuses[n][t.index][0] for n in ns]
            passed = states.count("passed")
            mixed = mixed or 0 < passed < len(states)
            if passed == len(states):
                all_passed.append(ns)
        if mixed or not all_passed:
            continue
        n = rng.choice(all_passed)[0]
        status, msg, trace, forced = flaky_failure(rng, t)
        dur = statuses[n][t.index][3]
        statuses[n][t.index] = (status, msg, trace, forced if forced is not None else dur)
        counts[t.index][0] -= 1
        counts[t.index][_COLUMN[status]] += 1


def _properties(tests: list[_Test]) -> list[str]:
    """What the project's conftest records with record_property for marked tests: markers, importance."""
    out = []
    for t in tests:
        marks = [tag for tag in t.tags if tag in ("smoke", "slow")]
        props = ""
        if marks or t.importance >= 4:
            props = "<properties>"
            if marks:
                props += f'<property name="markers" value="{",".join(marks)}" />'
            if t.importance >= 4:
                props += f'<property name="importance" value="{t.importance}" />'
            props += "</properties>"
        out.append(props)
    return out


def _write_junit(path: Path, tests: list[_Test], properties: list[str], outcome: dict, started: datetime,
                 run_id: str) -> None:
    """One pytest (xunit1) report: <testsuites><testsuite><testcase .../>… as pytest writes it."""
    parts = []
    n_fail = n_err = n_skip = 0
    total = 0.0
    for t in tests:
        status, msg, trace, dur = outcome[t.index]
        classname = t.file[:-3].replace("/", ".") + (f".{t.cls}" if t.cls else "")
        head = (f'<testcase classname="{classname}" name="{_attr(t.name)}" file="{t.file}" '
                f'line="{t.line}" time="{dur:.3f}"')
        total += dur
        props = properties[t.index]
        if status == "passed":
            parts.append(f"{head}>{props}</testcase>" if props else head + " />")
        elif status == "skipped":
            n_skip += 1
            parts.append(f'{head}>{props}<skipped type="pytest.skip" message="{_attr(msg)}">'
                         f"{_text(f'{t.file}:{t.line + 1}: {msg}')}</skipped></testcase>")
        else:
            tag = "failure" if status == "failed" else "error"
            n_fail += status == "failed"
            n_err += status == "error"
            parts.append(f'{head}>{props}<{tag} message="{_attr(msg)}">{_text(trace.lstrip())}</{tag}></testcase>')
    stamp = started.replace(microsecond=int(run_id[4:]) * 7919 % 1_000_000).isoformat()
    header = (f'<?xml version="1.0" encoding="utf-8"?><testsuites name="pytest tests"><testsuite name="pytest" '
              f'errors="{n_err}" failures="{n_fail}" skipped="{n_skip}" tests="{len(tests)}" time="{total:.3f}" '
              f'timestamp="{stamp}" hostname="{PYTEST_HOST}-{int(run_id[4:]) % 4 + 1}">')
    path.write_text(header + "".join(parts) + "</testsuite></testsuites>", encoding="utf-8")


# -- ingesting into a memory -----------------------------------------------------------------------
@contextmanager
def _committer_date(ts: str):
    """Journal commits dated at the run's end, so `--at DATE` reads the history as it was then."""
    old = os.environ.get("GIT_COMMITTER_DATE")
    os.environ["GIT_COMMITTER_DATE"] = ts
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("GIT_COMMITTER_DATE", None)
        else:
            os.environ["GIT_COMMITTER_DATE"] = old


def ingest(history: History, memory, project: str | None = None, progress=None, warn=None) -> dict:
    """Record every run's report in the memory: one journal commit per CI run, dated when the run ended."""
    from com.ingest import junit as junit_mod

    project = project or history.truth["generator"]["project"]
    added = 0
    for n, run in enumerate(history.runs):
        events = junit_mod.events_from_reports(
            [str(history.out_dir / run["junit"])], project=project, commit=run["commit"], run_id=run["run_id"],
            branch="main", warn=warn or (lambda message: print(f"com: warning: {message}", file=sys.stderr)),
        )
        with _committer_date(run["end"]):
            result = memory.record(events, message=f"CI run {run['run_id']} on {run['commit'][:10]} (main)")
        added += result.added
        if progress:
            progress(n + 1, len(history.runs))
    return {"runs": len(history.runs), "added": added}


def load(out_dir) -> History:
    """A generated history from its folder (the ground truth file)."""
    out = Path(out_dir)
    return History(out, json.loads((out / "ground_truth.json").read_text()))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path, help="Folder to write code/, junit/ and ground_truth.json into")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tests", type=int, default=200, help="Number of tests (10 to 10,000 is the designed range)")
    ap.add_argument("--commits", type=int, default=30)
    ap.add_argument("--runs-per-commit", type=int, default=2)
    ap.add_argument("--project", default=PACKAGE)
    ap.add_argument("--flaky-fraction", type=float, default=0.04)
    ap.add_argument("--break-rate", type=float, default=0.15)
    ap.add_argument("--victims", default="importers", choices=("importers", "reach"),
                    help="Which tests a breaking module change breaks: any importer (version 1) or those whose "
                         "calls reach the changed function (version 2)")
    ap.add_argument("--ingest", action="store_true", help="Also record every run in a com memory")
    ap.add_argument("--memory", type=Path, help="Memory folder for --ingest (default: OUT/.com, created if needed)")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    try:
        history = generate(args.out, seed=args.seed, tests=args.tests, commits=args.commits,
                           runs_per_commit=args.runs_per_commit, project=args.project,
                           flaky_fraction=args.flaky_fraction, break_rate=args.break_rate, victims=args.victims)
    except (ValueError, FileExistsError) as exc:
        print(f"gen_history: error: {exc}", file=sys.stderr)
        return 2
    generated = time.perf_counter() - t0
    report = {"out": str(args.out), "ground_truth": str(history.ground_truth_path), "code_repo": str(history.code_repo),
              "generate_seconds": round(generated, 3), **history.truth["totals"],
              "flaky": len(history.truth["flaky"]), "breakages": len(history.truth["breakages"]),
              "junit_bytes": sum(p.stat().st_size for p in history.junit_paths())}
    if args.ingest:
        from com.memory import Memory

        memory, _ = Memory.init(args.memory or (args.out / ".com"))
        t1 = time.perf_counter()
        report.update(ingest(history, memory))
        report["memory"] = str(memory.root)
        report["ingest_seconds"] = round(time.perf_counter() - t1, 3)
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
