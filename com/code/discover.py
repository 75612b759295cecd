"""Test discovery from source files, statically (the project is never imported).

Python, as pytest collects it with its defaults: `test*` functions, `Test*` classes without `__init__`
(nested `Test*` classes too), and unittest.TestCase subclasses of any name; files `test_*.py`,
`*_test.py`, nose-style `tests_*.py` and `tests.py`. Ids are pytest node ids (`path::Class::test`).
A parametrised test is discovered once, by its function: pytest accepts the id without its parameters,
and `function_id` maps a recorded `test_x[a-1]` back to it. JS/TS test files (jest, vitest, mocha,
Playwright naming) are discovered at file level: their id is the path.
"""

from __future__ import annotations

import ast
import fnmatch
import re
from dataclasses import dataclass
from pathlib import PurePosixPath

PY_TEST_FILES = ("test_*.py", "*_test.py", "tests_*.py", "tests.py")
JS_EXTENSIONS = (".js", ".jsx", ".ts", ".tsx", ".mjs", ".cjs", ".mts", ".cts")
_JS_TEST = re.compile(r"(?:[._-](?:test|spec|e2e|e2e-spec)|^test)\.(?:[cm]?[jt]sx?)$")
# Base classes that make a class a unittest test case wherever they come from (last dotted part).
TESTCASE_BASES = frozenset({
    "TestCase", "IsolatedAsyncioTestCase", "FunctionTestCase", "SimpleTestCase", "TransactionTestCase",
    "LiveServerTestCase", "StaticLiveServerTestCase", "APITestCase", "APISimpleTestCase", "AsyncTestCase",
    "AioHTTPTestCase", "AsyncHTTPTestCase", "TestBase",
})


@dataclass(frozen=True)
class DiscoveredTest:
    id: str  # pytest node id (Python) or the path (JS/TS)
    path: str
    function: str | None  # the test's def name; None for a file-level JS/TS test
    classes: tuple[str, ...] = ()  # enclosing classes, outermost first
    line: int = 0  # 1-based line of the def (its first decorator), 0 at file level
    end_line: int = 0
    framework: str = "pytest"  # pytest | unittest | js
    parametrized: bool = False

    def to_json(self) -> dict:
        return {"id": self.id, "path": self.path, "function": self.function, "classes": list(self.classes),
                "line": self.line, "end_line": self.end_line, "framework": self.framework,
                "parametrized": self.parametrized}


def function_id(test_id: str) -> str:
    """The id without its parameters: `tests/t.py::test_x[a-1]` -> `tests/t.py::test_x` (pytest runs every case)."""
    if test_id.endswith("]"):
        head, sep, rest = test_id.partition("::")
        cut = rest.find("[") if sep else -1
        if cut > 0:  # a Python name never holds "[": the first one opens the parameters
            return f"{head}::{rest[:cut]}"
    return test_id


def test_file_of(test_id: str) -> str:
    """The file part of a test id (`tests/t.py::C::test` -> `tests/t.py`)."""
    return test_id.split("::", 1)[0]


def is_python_test_file(path: str, patterns=PY_TEST_FILES) -> bool:
    name = PurePosixPath(path).name
    return name.endswith(".py") and any(fnmatch.fnmatchcase(name, p) for p in patterns)


def is_js_test_file(path: str) -> bool:
    p = PurePosixPath(path)
    if not p.name.endswith(JS_EXTENSIONS) or "node_modules" in p.parts or p.name.endswith(".d.ts"):
        return False
    return bool(_JS_TEST.search(p.name)) or "__tests__" in p.parts


def is_test_file(path: str) -> bool:
    return is_python_test_file(path) or is_js_test_file(path)


def _last_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Subscript):  # Generic[T]-style bases
        return _last_name(node.value)
    return None


def _decorator_names(fn) -> set[str]:
    out = set()
    for d in fn.decorator_list:
        target = d.func if isinstance(d, ast.Call) else d
        parts = []
        while isinstance(target, ast.Attribute):
            parts.append(target.attr)
            target = target.value
        if isinstance(target, ast.Name):
            parts.append(target.id)
        out.add(".".join(reversed(parts)))
    return out


def _first_line(node) -> int:
    return min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])


def testcase_classes(tree: ast.Module, known: frozenset[str] | set[str] = frozenset()) -> set[str]:
    """Names of the module's top-level classes that derive from unittest.TestCase (through `known` names too)."""
    bases = set(TESTCASE_BASES) | set(known)
    found: set[str] = set()
    classes = [n for n in tree.body if isinstance(n, ast.ClassDef)]
    changed = True
    while changed:  # a class deriving from another class of the file that is a test case
        changed = False
        for cls in classes:
            if cls.name in found:
                continue
            names = {_last_name(b) for b in cls.bases}
            if names & bases or names & found or any(n and n.endswith("TestCase") for n in names):
                found.add(cls.name)
                changed = True
    return found


def _disabled(cls: ast.ClassDef) -> bool:
    """`__test__ = False` in the class body: pytest does not collect it."""
    for stmt in cls.body:
        if isinstance(stmt, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__test__" for t in stmt.targets):
            return isinstance(stmt.value, ast.Constant) and stmt.value.value is False
    return False


def discover_python(path: str, source: str | bytes | ast.Module, known_testcases=frozenset()) -> list[DiscoveredTest]:
    """The tests pytest would collect from one Python test file (an unparsable file has none)."""
    if isinstance(source, ast.Module):
        tree = source
    else:
        try:
            tree = ast.parse(source, filename=path)
        except (SyntaxError, ValueError):
            return []
    unit = testcase_classes(tree, known_testcases)
    out: list[DiscoveredTest] = []

    def test_fn(node, classes: tuple[str, ...], framework: str) -> None:
        parametrized = any(n.endswith("parametrize") for n in _decorator_names(node))
        node_id = "::".join((path, *classes, node.name))
        out.append(DiscoveredTest(node_id, path, node.name, classes, _first_line(node), node.end_lineno or node.lineno,
                                  framework, parametrized))

    def walk_class(cls: ast.ClassDef, classes: tuple[str, ...], is_unit: bool) -> None:
        if _disabled(cls):
            return
        if not is_unit and any(isinstance(s, ast.FunctionDef) and s.name == "__init__" for s in cls.body):
            return  # pytest refuses classes with a constructor
        chain = (*classes, cls.name)
        for stmt in cls.body:
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)) and stmt.name.startswith("test"):
                test_fn(stmt, chain, "unittest" if is_unit else "pytest")
            elif isinstance(stmt, ast.ClassDef) and not is_unit and stmt.name.startswith("Test"):
                walk_class(stmt, chain, False)

    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test"):
            test_fn(node, (), "pytest")
        elif isinstance(node, ast.ClassDef):
            if node.name in unit:
                walk_class(node, (), True)
            elif node.name.startswith("Test"):
                walk_class(node, (), False)
    return out


def discover_js(path: str) -> list[DiscoveredTest]:
    """A JS/TS test file as one test (jest, vitest and Playwright all run a file by its path)."""
    return [DiscoveredTest(path, path, None, (), 0, 0, "js")] if is_js_test_file(path) else []


def discover(files, read) -> list[DiscoveredTest]:
    """Every test of the repository files `files` (paths); `read(path) -> bytes` gives a Python file's text.

    unittest base classes defined in one file and used in another (`class Base(TestCase)` in a helper) are
    recognised: a first pass collects every TestCase subclass name of the Python files given."""
    py = sorted(p for p in files if p.endswith(".py"))
    trees = {}
    known: set[str] = set()
    for p in py:
        if is_python_test_file(p) or "test" in p.lower():
            try:
                trees[p] = ast.parse(read(p), filename=p)
            except (SyntaxError, ValueError):
                continue
            known |= testcase_classes(trees[p])
    out = []
    for p in py:
        if is_python_test_file(p) and p in trees:
            out.extend(discover_python(p, trees[p], frozenset(known)))
    for p in sorted(files):
        out.extend(discover_js(p))
    return out
