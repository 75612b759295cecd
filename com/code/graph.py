"""A dependency model of a code repository at one revision: which tests use which names, files and modules.

Python is read at the level of NAMES. Every top-level function, class, constant and import of a module is
a node; a class's methods are nodes of their own (`C.m`), and the class depends on all of them. A node
depends on the names its body refers to, resolved statically: `from x import y`, `import x as z`,
attribute chains `x.y.z` through modules and packages, re-exports from `__init__.py` (including star
imports), `self.m` inside a class, pytest fixtures by parameter name (the test module, then conftest.py
files up to the root) and `usefixtures`. A test depends on its own function, its class's setup, the
fixtures it asks for, and transitively on everything those use, across modules. Where a name cannot be
resolved (a module used as an object, a name a module does not define) the edge goes to the whole module
(`all:` node): module level is the fallback, not the rule. String literals naming a repository file
(`"data/config.yaml"`) are edges to that file, so data reached by path counts. JS/TS files are read at
module level: `import`/`require`/`export from` of relative paths.

Files are summarised once per blob id (`SummaryCache`): an unchanged file is never parsed twice, across
revisions, worktrees and processes (when the cache is saved). Everything derived from the summaries
(module table, edges, reverse edges) is rebuilt per revision; that part is plain dictionary work.

`changed_nodes(change_set, graph)` maps a diff's hunks onto the AST of the old and the new file (the
innermost function/method/class/constant containing each changed line); `graph.affected(nodes)` walks the
reverse edges to the tests, keeping for each test the shortest path (the reason) and whether it is reached
by names or only at module level.
"""

from __future__ import annotations

import ast
import marshal
import os
import re
import tempfile
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from com.code import discover as disc

SUMMARY_VERSION = 4
GRAPH_VERSION = 1  # of CodeGraph.to_data
MODULE = "<module>"
SOURCE_ROOTS = ("src", "lib", "python")
SETUP_METHODS = frozenset({
    "setUp", "tearDown", "setUpClass", "tearDownClass", "asyncSetUp", "asyncTearDown", "setup_method",
    "teardown_method", "setup_class", "teardown_class", "setup", "teardown", "setUpTestData",
})
_PATHLIKE = re.compile(r"^[\w.\-/]+$")
_EXT = re.compile(r"\.[A-Za-z0-9]{1,8}$")
_JS_IMPORT = re.compile(
    r"""(?:\bimport\s+(?:[\w*{}\s,$]+?\s+from\s+)?|\bexport\s+[\w*{}\s,$]*?\s+from\s+|\brequire\s*\(\s*|\bimport\s*\(\s*)"""
    r"""['"]([^'"\n]+)['"]""")
JS_RESOLVE = ("", ".ts", ".tsx", ".js", ".jsx", ".mjs", ".cjs", ".mts", ".cts", ".json",
              "/index.ts", "/index.tsx", "/index.js", "/index.jsx", "/index.mjs")


# -- per-file summaries (what is cached by blob id) ---------------------------------------------------
def _chain(node) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


def _pathlike(text: str) -> bool:
    if not 2 < len(text) < 200 or "://" in text or not _PATHLIKE.match(text):
        return False
    return "/" in text or bool(_EXT.search(text))


class _Refs(ast.NodeVisitor):
    """Names (as attribute chains), path-like strings, nested imports and locals of one body."""

    def __init__(self):
        self.refs: set[str] = set()
        self.strings: set[str] = set()
        self.imports: list = []
        self.locals: set[str] = set()
        self.globals: set[str] = set()

    def visit_Attribute(self, node):
        c = _chain(node)
        if c is not None:
            self.refs.add(c)
        else:
            self.generic_visit(node)

    def visit_Name(self, node):
        if isinstance(node.ctx, ast.Load):
            self.refs.add(node.id)
        else:
            self.locals.add(node.id)

    def visit_Constant(self, node):
        if isinstance(node.value, str) and _pathlike(node.value):
            self.strings.add(node.value)

    def visit_Global(self, node):
        self.globals.update(node.names)

    def visit_Import(self, node):
        self.imports.extend(_imports_of(node))

    def visit_ImportFrom(self, node):
        self.imports.extend(_imports_of(node))

    def visit_arg(self, node):
        self.locals.add(node.arg)
        if node.annotation is not None:
            self.visit(node.annotation)

    def _scope(self, node):  # nested defs: their names are locals; their bodies count for the enclosing def
        self.locals.add(node.name)
        self.generic_visit(node)

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _scope


def _imports_of(node) -> list:
    """[(bound name, module, attribute or None, level, kind)] of one import statement."""
    out = []
    if isinstance(node, ast.Import):
        for a in node.names:
            if a.asname:
                out.append((a.asname, a.name, None, 0, "as"))
            else:
                out.append((a.name.split(".")[0], a.name, None, 0, "import"))
    else:
        for a in node.names:
            if a.name == "*":
                out.append(("*", node.module or "", None, node.level, "star"))
            else:
                out.append((a.asname or a.name, node.module or "", a.name, node.level, "from"))
    return out


def _decorators(node) -> list[str]:
    out = []
    for d in node.decorator_list:
        c = _chain(d.func if isinstance(d, ast.Call) else d)
        if c:
            out.append(c)
    return out


def _usefixtures(node) -> list[str]:
    names = []
    for d in getattr(node, "decorator_list", []):
        if isinstance(d, ast.Call) and (_chain(d.func) or "").endswith("usefixtures"):
            names += [a.value for a in d.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
    return names


def _first(node) -> int:
    return min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])


def _body_refs(nodes, exclude_locals: bool, self_name: str | None = None) -> dict:
    v = _Refs()
    for n in nodes:
        v.visit(n)
    refs = v.refs
    out = {}
    if exclude_locals:
        shadow = v.locals - v.globals
        if self_name:  # `self.helper()` in a method: resolved against the class, not dropped as a local
            out["self_refs"] = sorted(r for r in refs if r.split(".", 1)[0] == self_name)
        refs = {r for r in refs if r.split(".", 1)[0] not in shadow}
    return {"refs": sorted(refs), "strings": sorted(v.strings), "imports": v.imports, **out}


def _function(node) -> dict:
    args = node.args
    params = [a.arg for a in args.posonlyargs + args.args + args.kwonlyargs]
    decos = _decorators(node)
    rec = {"kind": "function", "ranges": [(_first(node), node.end_lineno)],
           **_body_refs(node.decorator_list + [node.args] + node.body, True, params[0] if params else None),
           "params": params + _usefixtures(node), "decorators": decos}
    fixture = next((d for d in node.decorator_list if (_chain(d.func if isinstance(d, ast.Call) else d) or "")
                    .split(".")[-1] == "fixture"), None)
    if fixture is not None:
        rec["fixture"] = True
        if isinstance(fixture, ast.Call):
            for kw in fixture.keywords:
                if kw.arg == "autouse" and isinstance(kw.value, ast.Constant) and kw.value.value:
                    rec["autouse"] = True
                if kw.arg == "name" and isinstance(kw.value, ast.Constant) and isinstance(kw.value.value, str):
                    rec["fixture_name"] = kw.value.value
    return rec


def _class(node) -> dict:
    members, head = {}, []
    for stmt in node.body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
            members[stmt.name] = _function(stmt)
        elif isinstance(stmt, ast.ClassDef):
            members[stmt.name] = _class(stmt)
        elif not (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)):
            head.append(stmt)
    decos = node.decorator_list
    top = node.bases[-1].end_lineno if node.bases else node.lineno
    for kw in node.keywords:
        top = max(top, kw.value.end_lineno)
    head_ranges = [(_first(node), top)] + [(s.lineno, s.end_lineno) for s in head]
    rec = {"kind": "class", "ranges": [(_first(node), node.end_lineno)], "head_ranges": head_ranges,
           **_body_refs(decos + node.bases + [k.value for k in node.keywords] + head, True),
           "members": members, "bases": [b for b in (disc._last_name(b) for b in node.bases) if b],
           "decorators": _decorators(node), "params": _usefixtures(node)}
    return rec


def _is_main_guard(stmt) -> bool:
    t = stmt.test if isinstance(stmt, ast.If) else None
    return (isinstance(t, ast.Compare) and isinstance(t.left, ast.Name) and t.left.id == "__name__"
            and len(t.comparators) == 1 and isinstance(t.comparators[0], ast.Constant)
            and t.comparators[0].value == "__main__")


def summarize_python(source: bytes | str) -> dict:
    """Everything the graph needs from one Python file, as plain data (marshal-able, path independent)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return {"v": SUMMARY_VERSION, "ok": False}
    defs: dict[str, dict] = {}
    imports: list = []
    module_stmts: list = []
    all_names = None

    def add_var(name, stmt):
        rec = defs.get(name)
        part = _body_refs([stmt], False)
        if rec is None or rec["kind"] != "var":
            defs[name] = {"kind": "var", "ranges": [(stmt.lineno, stmt.end_lineno)], **part}
        else:
            rec["ranges"].append((stmt.lineno, stmt.end_lineno))
            rec["refs"] = sorted(set(rec["refs"]) | set(part["refs"]))
            rec["strings"] = sorted(set(rec["strings"]) | set(part["strings"]))

    def top(stmts, nested: bool):
        nonlocal all_names
        for n, stmt in enumerate(stmts):
            if not nested and n == 0 and isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
                continue  # the module docstring
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                defs[stmt.name] = _function(stmt)
            elif isinstance(stmt, ast.ClassDef):
                defs[stmt.name] = _class(stmt)
            elif isinstance(stmt, (ast.Import, ast.ImportFrom)):
                for imp in _imports_of(stmt):
                    imports.append((*imp, stmt.lineno, stmt.end_lineno))
            elif isinstance(stmt, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
                names = [t.id for t in targets if isinstance(t, ast.Name)]
                for t in targets:
                    if isinstance(t, (ast.Tuple, ast.List)):
                        names += [e.id for e in t.elts if isinstance(e, ast.Name)]
                if "__all__" in names and isinstance(stmt.value, (ast.List, ast.Tuple)):
                    all_names = [e.value for e in stmt.value.elts if isinstance(e, ast.Constant)]
                for name in names:
                    add_var(name, stmt)
                if not names:
                    module_stmts.append(stmt)
            elif _is_main_guard(stmt):
                continue
            elif isinstance(stmt, (ast.If, ast.Try)) or type(stmt).__name__ == "TryStar":
                # try: import x / except ImportError: x = None -- the bodies bind module names
                module_stmts.append(("head", stmt))
                for block in ("body", "orelse", "finalbody"):
                    top(getattr(stmt, block, []), True)
                for h in getattr(stmt, "handlers", []):
                    top(h.body, True)
            else:
                module_stmts.append(stmt)

    top(tree.body, False)
    mod_nodes, mod_ranges = [], []
    for s in module_stmts:
        if isinstance(s, tuple):  # only the test of an if / the try line itself
            stmt = s[1]
            if isinstance(stmt, ast.If):
                mod_nodes.append(stmt.test)
                mod_ranges.append((stmt.lineno, stmt.test.end_lineno))
            else:
                mod_ranges.append((stmt.lineno, stmt.lineno))
        else:
            mod_nodes.append(s)
            mod_ranges.append((s.lineno, s.end_lineno))
    tests = disc.discover_python("", tree)
    unit_bases = {name: rec["bases"] for name, rec in defs.items() if rec["kind"] == "class"}
    return {"v": SUMMARY_VERSION, "ok": True, "defs": defs, "imports": imports, "all": all_names,
            "module": {"ranges": mod_ranges, **_body_refs(mod_nodes, False)},
            "tests": [(t.classes, t.function, t.line, t.end_line, t.framework, t.parametrized) for t in tests],
            "class_bases": unit_bases,
            "testcases": sorted(disc.testcase_classes(tree))}


def summarize_js(source: bytes | str) -> dict:
    text = source.decode("utf-8", "replace") if isinstance(source, bytes) else source
    return {"v": SUMMARY_VERSION, "ok": True, "js_imports": sorted(set(_JS_IMPORT.findall(text)))}


class SummaryCache:
    """File summaries by blob id, in memory, optionally loaded from and saved to one file (marshal).

    The store location is the caller's choice (e.g. `.com/cache/code-summaries.bin`); a stale version
    or an unreadable file is simply ignored. Summaries depend only on a file's bytes, never its path."""

    def __init__(self, path: str | os.PathLike | None = None):
        self.path = Path(path) if path is not None else None
        self._data: dict[str, dict] | None = None  # read from the file on first use
        self.dirty = False
        self.hits = self.misses = 0

    @property
    def data(self) -> dict[str, dict]:
        if self._data is None:
            self._data = {}
            if self.path is not None and self.path.exists():
                try:
                    loaded = marshal.loads(self.path.read_bytes())
                    if isinstance(loaded, dict) and loaded.get("v") == SUMMARY_VERSION:
                        self._data = loaded["summaries"]
                except (ValueError, EOFError, TypeError, OSError):
                    self._data = {}
        return self._data

    def get(self, blob_id: str, kind: str, read) -> dict:
        key = f"{kind}:{blob_id}"
        s = self.data.get(key)
        if s is not None:
            self.hits += 1
            return s
        self.misses += 1
        s = summarize_python(read()) if kind == "py" else summarize_js(read())
        self.data[key] = s
        self.dirty = True
        return s

    def save(self) -> None:
        if self.path is None or not self.dirty:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".summaries-")
        with os.fdopen(fd, "wb") as fh:
            fh.write(marshal.dumps({"v": SUMMARY_VERSION, "summaries": self.data}))
        os.replace(tmp, self.path)
        self.dirty = False


# -- module names -------------------------------------------------------------------------------------
def module_names(py_paths) -> dict[str, list[str]]:
    """{path: [importable dotted names]}: through __init__.py packages, and from src/, lib/ or the root."""
    paths = set(py_paths)
    dirs_with_init = {str(PurePosixPath(p).parent) for p in paths if p.endswith("/__init__.py") or p == "__init__.py"}
    out: dict[str, list[str]] = {}
    for p in paths:
        pp = PurePosixPath(p)
        parts = list(pp.with_suffix("").parts)
        is_init = parts[-1] == "__init__"
        if is_init:
            parts = parts[:-1]
        names = []
        # package walk: the highest directory chain with __init__.py
        d = pp.parent
        top = len(pp.parts) - 1
        while str(d) in dirs_with_init and str(d) != ".":
            top -= 1
            d = d.parent
        pkg_parts = parts[top:] if not (is_init and top >= len(parts)) else parts[top:]
        if pkg_parts:
            names.append(".".join(pkg_parts))
        if parts and parts[0] in SOURCE_ROOTS and len(parts) > 1:
            names.append(".".join(parts[1:]))
        if parts:
            names.append(".".join(parts))
        seen, uniq = set(), []
        for n in names:
            if n and n not in seen:
                seen.add(n)
                uniq.append(n)
        out[p] = uniq
    return out


# -- the graph ----------------------------------------------------------------------------------------
@dataclass
class Impact:
    """Why a test is affected: `level` "name" (reached by names, files or its own change), "module" (through
    a whole module, where names could not be resolved) or "import" (only the test file's import closure holds
    a changed file); `path` from the test to a changed node."""

    test: str
    level: str
    distance: int
    path: list[str]
    changed: str  # the changed node's key

    def reason(self) -> str:
        target = _describe(self.changed)
        if self.level == "import":
            if self.distance == 0:
                return f"its file changed ({self.changed.partition(':')[2]})"
            return f"its file imports {target}"
        if self.distance == 0 or len(self.path) <= 1:
            return f"the test itself changed ({target})"
        via = [_describe(k) for k in self.path[1:-1] if not k.startswith(("test:", "all:"))]
        how = "imports" if self.level == "module" else "uses"
        return f"{how} {target}" + (f" via {' -> '.join(via[:3])}" if via else "")


def _describe(key: str) -> str:
    kind, _, rest = key.partition(":")
    if kind == "sym":
        mod, _, qual = rest.partition(":")
        return f"{mod}:{qual}" if qual != MODULE else f"{mod} (module code)"
    if kind == "file":
        return rest
    if kind == "all":
        return f"module {rest}"
    if kind == "mod":
        return f"module {rest}"
    return rest


@dataclass
class CodeGraph:
    root: str | None
    rev: str | None
    files: dict[str, str]  # path -> blob id
    tests: dict[str, disc.DiscoveredTest] = field(default_factory=dict)
    keys: list[str] = field(default_factory=list)
    index: dict[str, int] = field(default_factory=dict)
    edges: list[set] = field(default_factory=list)  # forward: node -> nodes it depends on
    module_of_path: dict[str, str] = field(default_factory=dict)  # path -> primary module name
    path_of_module: dict[str, str] = field(default_factory=dict)
    module_imports: dict[str, set] = field(default_factory=dict)  # path -> paths it imports (module level)
    summaries: dict[str, dict] = field(default_factory=dict)  # path -> summary (empty in a graph from_data)
    _reverse: list | None = None
    _known_files: set | None = None  # from_data: files some node depends on

    # nodes
    def node(self, key: str) -> int:
        n = self.index.get(key)
        if n is None:
            n = self.index[key] = len(self.keys)
            self.keys.append(key)
            self.edges.append(set())
        return n

    def edge(self, a: str | int, b: str | int) -> None:
        ia = a if isinstance(a, int) else self.node(a)
        ib = b if isinstance(b, int) else self.node(b)
        if ia != ib:
            self.edges[ia].add(ib)

    def reverse(self) -> list[list[int]]:
        if self._reverse is None:
            rev = [[] for _ in self.keys]
            for a, outs in enumerate(self.edges):
                for b in outs:
                    rev[b].append(a)
            self._reverse = rev
        return self._reverse

    def affected(self, changed_keys, *, module_level: bool = True) -> dict[str, Impact]:
        """{test id: Impact} of every test that depends on one of `changed_keys` (shortest path first).

        With module_level, tests that name-level analysis does not reach but whose import closure contains
        a changed module are added at level "import" (the fallback tier)."""
        rev = self.reverse()
        parent: dict[int, int] = {}
        dist: dict[int, int] = {}
        origin: dict[int, int] = {}
        queue = deque()
        for k in changed_keys:
            n = self.index.get(k)
            if n is not None and n not in dist:
                dist[n], origin[n], parent[n] = 0, n, -1
                queue.append(n)
        while queue:
            n = queue.popleft()
            for m in rev[n]:
                if m not in dist:
                    dist[m], origin[m], parent[m] = dist[n] + 1, origin[n], n
                    queue.append(m)
        out: dict[str, Impact] = {}
        for tid in self.tests:
            n = self.index.get("test:" + tid)
            if n is None or n not in dist:
                continue
            path, cur = [], n
            while cur != -1:
                path.append(self.keys[cur])
                cur = parent[cur]
            level = "module" if any(k.startswith("all:") for k in path[1:]) else "name"
            # a test whose own function changed is at distance 0 (the test node is one hop from it)
            own = bool(path[1:2]) and self._own(tid, path[1])
            d = dist[n] - 1 if own else dist[n]
            if own and len(path) > 2:  # "uses X via Y": Y never names the test's own function
                path = [path[0], *path[2:]]
            out[tid] = Impact(tid, level, d, path, self.keys[origin[n]])
        if module_level:
            changed_paths = {self._path_of_key(k) for k in changed_keys} - {None}
            for tid, impact in self.module_level(changed_paths).items():
                if tid not in out:
                    out[tid] = impact
        return out

    def _own(self, tid: str, key: str) -> bool:
        t = self.tests[tid]
        if t.function is None:
            return key == "file:" + t.path
        mod = self.module_of_path.get(t.path)
        return key == f"sym:{mod}:{'.'.join((*t.classes, t.function))}"

    def _path_of_key(self, key: str) -> str | None:
        kind, _, rest = key.partition(":")
        if kind == "file":
            return rest
        if kind in ("sym", "all"):
            return self.path_of_module.get(rest.partition(":")[0])
        return None

    def reached_names(self, changed_keys, limit: int = 40) -> list[tuple[str, str | None]]:
        """(name, file) of the code a change reaches (functions, classes, constants that use a changed node,
        nearest first), tests left out: how the change is named where it is used, and where that is."""
        rev = self.reverse()
        seen = {n for k in changed_keys if (n := self.index.get(k)) is not None}
        queue = deque(seen)
        out: list[tuple[str, str | None]] = []
        named: set[tuple[str, str | None]] = set()
        while queue and len(out) < limit:
            n = queue.popleft()
            key = self.keys[n]
            if key.startswith("sym:"):
                mod, _, qual = key[4:].partition(":")
                name = qual.rsplit(".", 1)[-1].rstrip("#")
                entry = (name, self.path_of_module.get(mod))
                if name and name != MODULE and not name.startswith(("test", "Test")) and entry not in named:
                    named.add(entry)
                    out.append(entry)
            for m in rev[n]:
                if m not in seen:
                    seen.add(m)
                    queue.append(m)
        return out

    def module_closure(self, path: str) -> set[str]:
        """Every repository file `path` imports, transitively (module-level import graph, Python and JS/TS)."""
        seen, stack = {path}, [path]
        while stack:
            p = stack.pop()
            for q in self.module_imports.get(p, ()):
                if q not in seen:
                    seen.add(q)
                    stack.append(q)
        return seen

    def module_level(self, changed_paths) -> dict[str, Impact]:
        """Tests whose file's import closure contains a changed file (what module-level analysis selects)."""
        changed = set(changed_paths)
        if not changed:
            return {}
        rev: dict[str, set] = {}
        for a, outs in self.module_imports.items():
            for b in outs:
                rev.setdefault(b, set()).add(a)
        reach: dict[str, tuple[int, str]] = {}
        queue = deque()
        for p in changed:
            reach[p] = (0, p)
            queue.append(p)
        while queue:
            p = queue.popleft()
            for q in rev.get(p, ()):
                if q not in reach:
                    reach[q] = (reach[p][0] + 1, reach[p][1])
                    queue.append(q)
        out = {}
        for tid, t in self.tests.items():
            hit = reach.get(t.path)
            if hit is not None:
                out[tid] = Impact(tid, "import", hit[0], [f"test:{tid}", f"mod:{hit[1]}"], f"mod:{hit[1]}")
        return out

    def to_data(self) -> dict:
        """The graph as plain data (marshal-able) for a cache by revision; summaries are left out (they are
        cached by blob id) and `from_data` gives back a graph that answers `affected` and `changed_nodes` alike."""
        return {"v": GRAPH_VERSION, "root": self.root, "rev": self.rev, "files": self.files,
                "tests": [(t.id, t.path, t.function, t.classes, t.line, t.end_line, t.framework, t.parametrized)
                          for t in self.tests.values()],
                "keys": self.keys, "edges": [list(e) for e in self.edges], "module_of_path": self.module_of_path,
                "path_of_module": self.path_of_module,
                "module_imports": {p: list(q) for p, q in self.module_imports.items()},
                "known_files": sorted(p for p in self.files if self._file_known(p))}

    @classmethod
    def from_data(cls, data: dict) -> "CodeGraph":
        g = cls(data["root"], data["rev"], data["files"])
        g.tests = {t[0]: disc.DiscoveredTest(t[0], t[1], t[2], tuple(t[3]), t[4], t[5], t[6], t[7])
                   for t in data["tests"]}
        g.keys = data["keys"]
        g.index = {k: n for n, k in enumerate(g.keys)}
        g.edges = data["edges"]
        g.module_of_path = data["module_of_path"]
        g.path_of_module = data["path_of_module"]
        g.module_imports = {p: set(q) for p, q in data["module_imports"].items()}
        g._known_files = set(data["known_files"])
        return g

    def _file_known(self, path: str) -> bool:
        n = self.index.get(f"file:{path}")
        return n is not None and bool(self.reverse()[n])



class _Builder:
    def __init__(self, graph: CodeGraph):
        self.g = graph
        self.modules: dict[str, str] = {}  # dotted name -> path
        self.summ = graph.summaries
        self.resolved: dict[tuple, list] = {}
        self.project_tops: set[str] = set()
        self._imaps: dict[str, dict] = {}
        self._chains: dict[str, list] = {}
        self._fixtures: dict[str, dict] = {}

    # module lookup
    def module_path(self, name: str, importer: str | None = None) -> str | None:
        if importer is not None and "." not in name:  # rootdir-inserted sibling (tests/helpers.py)
            d = importer.rpartition("/")[0]
            sib = f"{d}/{name}.py" if d else f"{name}.py"
            if sib in self.summ:
                return sib
        return self.modules.get(name)

    def absolute(self, path: str, module: str, level: int) -> str:
        if level == 0:
            return module
        base = self.g.module_of_path[path].split(".")
        if not path.endswith("__init__.py"):
            base = base[:-1]
        base = base[: len(base) - (level - 1)] if level > 1 else base
        return ".".join([*base, module] if module else base)

    def sym(self, path: str, qual: str) -> str:
        return f"sym:{self.g.module_of_path[path]}:{qual}"

    def export(self, path: str, name: str, depth: int = 0) -> list[str]:
        """Keys a reference to `name` of the module at `path` reaches: the defining symbol, through re-exports."""
        key = (path, name)
        if key in self.resolved:
            return self.resolved[key]
        self.resolved[key] = []  # cycle guard
        s = self.summ.get(path)
        out: list[str] = []
        if s is None or not s.get("ok") or depth > 20:
            out = [f"all:{self.g.module_of_path.get(path, path)}"]
        elif name in s["defs"]:
            out = [self.sym(path, name)]
        else:
            imp = self.import_map(path).get(name)
            if imp is not None:
                out = [self.sym(path, name)]  # the import line itself is a node users depend on
            else:
                sub = self.module_path(f"{self.g.module_of_path[path]}.{name}")
                if sub is not None:
                    out = [f"all:{self.g.module_of_path[sub]}"]
                else:
                    for i in s["imports"]:
                        if i[4] == "star":
                            target = self.module_path(self.absolute(path, i[1], i[3]), path)
                            if target is not None:
                                got = self.export(target, name, depth + 1)
                                if got and not all(k.startswith("all:") for k in got):
                                    out = [self.sym(path, MODULE), *got]
                                    break
                    if not out:
                        # unresolved: fall back to the whole module
                        out = [f"all:{self.g.module_of_path[path]}"]
        self.resolved[key] = out
        return out

    def import_target(self, path: str, imp) -> tuple[str | None, str | None]:
        """(module path, attribute or None) an import binding refers to (None path: outside the repository)."""
        bound, module, attr, level, kind = imp[:5]
        absmod = self.absolute(path, module, level)
        if kind == "import":
            return self.module_path(bound, path), None
        if kind == "as":
            return self.module_path(absmod, path), None
        if kind == "from":
            sub = self.module_path(f"{absmod}.{attr}" if absmod else attr, path if not absmod else None)
            if sub is not None:
                return sub, None
            return self.module_path(absmod, path) if absmod else None, attr
        return None, None

    def resolve_chain(self, path: str, chain: str, local_imports, cls: str | None, selfname: str | None) -> list[str]:
        s = self.summ[path]
        parts = chain.split(".")
        head = parts[0]
        if selfname and head == selfname and cls is not None:
            if len(parts) > 1 and self._member(s, cls, parts[1]):
                return [self.sym(path, f"{cls}.{parts[1]}")]
            return [self.sym(path, f"{cls}#")]
        imp = next((i for i in reversed(local_imports) if i[0] == head), None) if local_imports else None
        own_import = False
        if imp is None and head in s["defs"]:
            if len(parts) > 1 and s["defs"][head]["kind"] == "class" and parts[1] in s["defs"][head]["members"]:
                return [self.sym(path, f"{head}.{parts[1]}")]
            return [self.sym(path, head)]
        if imp is None:
            imp = self.import_map(path).get(head)
            own_import = imp is not None
        if imp is None:
            # a star import may bind it
            for i in s["imports"]:
                if i[4] == "star":
                    target = self.module_path(self.absolute(path, i[1], i[3]), path)
                    if target is not None:
                        got = self.export(target, head)
                        if got and not got[0].startswith("all:"):
                            return [self.sym(path, MODULE), *got]
            return []
        out = [self.sym(path, head)] if own_import else []
        target, attr = self.import_target(path, imp)
        if target is None:
            return out
        if imp[4] == "import":
            # `import a.b.c` binds a; walk the chain through submodules
            rest = parts[1:]
            mod = self.g.module_of_path[target]
            while rest and self.module_path(f"{mod}.{rest[0]}") is not None:
                mod = f"{mod}.{rest[0]}"
                rest = rest[1:]
            target = self.modules[mod]
        else:
            rest = ([attr] if attr else []) + parts[1:]
            mod = self.g.module_of_path[target]
            while rest and self.module_path(f"{mod}.{rest[0]}") is not None:
                mod = f"{mod}.{rest[0]}"
                rest = rest[1:]
                target = self.modules[mod]
        if not rest:
            return out + [f"all:{self.g.module_of_path[target]}"]  # the module object itself
        got = self.export(target, rest[0])
        if len(rest) > 1 and got and got[-1].startswith("sym:"):
            # Class.member through the export
            mod2, _, qual = got[-1][4:].partition(":")
            p2 = self.modules.get(mod2)
            if p2 is not None and "." not in qual and self._member(self.summ[p2], qual, rest[1]):
                got = [*got[:-1], f"sym:{mod2}:{qual}.{rest[1]}"]
        return out + got

    def import_map(self, path: str) -> dict:
        m = self._imaps.get(path)
        if m is None:
            m = self._imaps[path] = {i[0]: i for i in self.summ[path].get("imports", []) if i[4] != "star"}
        return m

    def conftest_chain(self, path: str) -> list[str]:
        """conftest.py files that apply to `path`, nearest first (its own folder up to the root)."""
        d = path.rpartition("/")[0]
        chain = self._chains.get(d)
        if chain is None:
            chain, cur = [], d
            while True:
                c = self.conftests.get(cur or ".")
                if c is not None:
                    chain.append(c)
                if not cur:
                    break
                cur = cur.rpartition("/")[0]
            self._chains[d] = chain
        return [c for c in chain if c != path]

    def fixtures_in(self, path: str) -> dict[str, str]:
        f = self._fixtures.get(path)
        if f is None:
            f = self._fixtures[path] = {(rec.get("fixture_name") or q): q for q, rec in
                                        self.summ[path].get("defs", {}).items() if rec.get("fixture")}
        return f

    @staticmethod
    def _member(s, cls_qual: str, name: str) -> bool:
        rec = {"members": s["defs"]}
        for part in cls_qual.split("."):
            rec = rec.get("members", {}).get(part)
            if rec is None:
                return False
        return name in rec.get("members", {})

    def strings_to_files(self, path: str, strings) -> list[str]:
        out = []
        files = self.g.files
        here = path.rpartition("/")[0]
        for lit in strings:
            norm = lit.lstrip("./") if lit.startswith("./") else lit.lstrip("/")
            hits = []
            for cand in (norm, f"{here}/{norm}" if here else norm):
                if cand in files:
                    hits.append(cand)
            if not hits and self._dirs.get(norm.rstrip("/")):
                hits = self._dirs[norm.rstrip("/")][:200]
            if not hits and "/" not in norm and _EXT.search(norm):
                hits = self._basenames.get(norm, [])[:3]
            elif not hits and "/" in norm:
                hits = [f for f in self._basenames.get(norm.rsplit("/", 1)[1], []) if f.endswith("/" + norm)][:3]
            out += hits
        return out

    def build(self) -> None:
        g = self.g
        names = module_names([p for p in g.summaries if p.endswith(".py")])
        for p in sorted(names, key=lambda p: (p.count("/"), p)):
            for n in names[p]:
                self.modules.setdefault(n, p)
        for p, ns in names.items():
            g.module_of_path[p] = ns[0] if ns else p
        g.path_of_module = {m: p for m, p in self.modules.items()}
        for p in names:
            g.path_of_module.setdefault(g.module_of_path[p], p)
        self._dirs: dict[str, list] = {}
        self._basenames: dict[str, list] = {}
        for f in g.files:
            parts = f.split("/")
            for i in range(1, len(parts)):
                self._dirs.setdefault("/".join(parts[:i]), []).append(f)
            self._basenames.setdefault(parts[-1], []).append(f)
        conftests = {str(PurePosixPath(p).parent): p for p in g.summaries if PurePosixPath(p).name == "conftest.py"}
        self.conftests = conftests
        for path, s in g.summaries.items():
            if path.endswith(".py"):
                self.python_file(path, s)
            else:
                self.js_file(path, s)
        self.discover()

    def python_file(self, path: str, s: dict) -> None:
        g = self.g
        modname = g.module_of_path[path]
        all_key = f"all:{modname}"
        mod_key = self.sym(path, MODULE)
        g.edge(all_key, mod_key)
        imports_mod = g.module_imports.setdefault(path, set())
        if not s.get("ok"):
            g.edge(all_key, f"file:{path}")
            return
        # packages a module's import runs: its parents' __init__.py
        parts = modname.split(".")
        for i in range(1, len(parts)):
            parent = self.modules.get(".".join(parts[:i]))
            if parent is not None and parent != path:
                imports_mod.add(parent)
        for imp in s["imports"]:
            if imp[4] == "star":
                target = self.module_path(self.absolute(path, imp[1], imp[3]), path)
                if target is not None:
                    imports_mod.add(target)
                continue
            target, attr = self.import_target(path, imp)
            if imp[4] == "import":  # `import a.b.c` runs a.b.c (and its parents)
                full = self.module_path(self.absolute(path, imp[1], 0), path)
                target = full or target
            if target is None:
                continue
            imports_mod.add(target)
            key = self.sym(path, imp[0])
            g.edge(all_key, key)
            tmod = g.module_of_path[target]
            # Importing runs the target's module code (not its functions); a from-import of a name
            # depends on that name, through re-exports.
            g.edge(key, f"sym:{tmod}:{MODULE}")
            g.edge(mod_key, f"sym:{tmod}:{MODULE}")
            if attr:
                for k in self.export(target, attr):
                    g.edge(key, k)
        for k in self.resolve_refs(path, s["module"], None):
            g.edge(mod_key, k)

        def add(qual: str, rec: dict, cls: str | None):
            key = self.sym(path, qual)
            g.edge(all_key, key)
            selfname = None
            if cls is not None and rec["kind"] == "function" and rec.get("params") and "staticmethod" not in rec.get("decorators", []):
                selfname = rec["params"][0]
            for k in self.resolve_refs(path, rec, cls, selfname):
                g.edge(key, k)
            if rec.get("fixture") or rec["kind"] == "function":
                for k in self.fixtures_of(path, rec, cls):
                    g.edge(key, k)
            if rec["kind"] == "class":
                head = self.sym(path, f"{qual}#")
                g.edge(key, head)
                for k in self.resolve_refs(path, rec, qual, None):
                    g.edge(head, k)
                for b in rec.get("params", []):
                    for k in self.fixture_defs(path, b, qual):
                        g.edge(head, k)
                for mname, mrec in rec["members"].items():
                    mq = f"{qual}.{mname}"
                    g.edge(key, self.sym(path, mq))
                    add(mq, mrec, qual)

        for name, rec in s["defs"].items():
            add(name, rec, None)

    def resolve_refs(self, path: str, rec: dict, cls: str | None, selfname: str | None = None) -> list[str]:
        local = [(*i, 0, 0) for i in rec.get("imports", [])]
        out = []
        for chain in rec.get("refs", []):
            out += self.resolve_chain(path, chain, local, cls, selfname)
        if cls is not None and selfname:
            for chain in rec.get("self_refs", []):
                out += self.resolve_chain(path, chain, local, cls, selfname)
        for f in self.strings_to_files(path, rec.get("strings", [])):
            out.append(f"file:{f}")
        for i in rec.get("imports", []):  # nested imports run when the function runs
            target, attr = self.import_target(path, (*i, 0, 0))
            if target is not None:
                self.g.module_imports.setdefault(path, set()).add(target)
        return out

    def fixture_defs(self, path: str, name: str, cls: str | None = None) -> list[str]:
        """Keys of the fixture `name` as a test at `path` (in class `cls`) sees it: class, module, conftests."""
        s = self.summ.get(path)
        if s and s.get("ok"):
            if cls is not None:
                rec = {"members": s["defs"]}
                for part in cls.split("."):
                    rec = rec.get("members", {}).get(part, {})
                m = rec.get("members", {}).get(name)
                if m is not None and m.get("fixture"):
                    return [self.sym(path, f"{cls}.{name}")]
            q = self.fixtures_in(path).get(name)
            if q is not None:
                return [self.sym(path, q)]
        for c in self.conftest_chain(path):
            q = self.fixtures_in(c).get(name)
            if q is not None:
                return [self.sym(c, q)]
        return []

    def fixtures_of(self, path: str, rec: dict, cls: str | None) -> list[str]:
        out = []
        params = rec.get("params", [])
        skip_first = cls is not None and "staticmethod" not in rec.get("decorators", [])
        for n, p in enumerate(params):
            if skip_first and n == 0:
                continue
            out += self.fixture_defs(path, p, cls)
        return out

    def autouse(self, path: str) -> list[str]:
        out = []
        s = self.summ.get(path, {})
        for q, rec in s.get("defs", {}).items():
            if rec.get("autouse"):
                out.append(self.sym(path, q))
        for c in self.conftest_chain(path):
            for q, rec in self.summ[c].get("defs", {}).items():
                if rec.get("autouse"):
                    out.append(self.sym(c, q))
        return out

    def js_file(self, path: str, s: dict) -> None:
        g = self.g
        key = f"file:{path}"
        deps = g.module_imports.setdefault(path, set())
        base = PurePosixPath(path).parent
        for spec in s.get("js_imports", []):
            if not spec.startswith("."):
                continue
            target = os.path.normpath(str(base / spec)).replace(os.sep, "/")
            for ext in JS_RESOLVE:
                if target + ext in g.files:
                    deps.add(target + ext)
                    g.edge(key, f"file:{target + ext}")
                    break

    def discover(self) -> None:
        g = self.g
        known: set[str] = set()
        for p, s in g.summaries.items():
            if p.endswith(".py") and s.get("ok"):
                known |= set(s.get("testcases", []))
        # classes of other files deriving from a known TestCase subclass, to a fixpoint
        changed = True
        while changed:
            changed = False
            for p, s in g.summaries.items():
                if p.endswith(".py") and s.get("ok"):
                    for name, bases in s.get("class_bases", {}).items():
                        if name not in known and set(bases) & known:
                            known.add(name)
                            changed = True
        for p in sorted(g.summaries):
            s = g.summaries[p]
            if p.endswith(".py"):
                if not disc.is_python_test_file(p) or not s.get("ok"):
                    continue
                tests = [disc.DiscoveredTest("::".join((p, *c, f)), p, f, tuple(c), line, end, fw, par)
                         for c, f, line, end, fw, par in s["tests"]]
                extra_unit = {n for n, b in s.get("class_bases", {}).items() if n in known} - set(s.get("testcases", []))
                for cname in sorted(extra_unit):
                    rec = s["defs"][cname]
                    if any(t.classes[:1] == (cname,) for t in tests):
                        continue
                    for mname, m in rec["members"].items():
                        if mname.startswith("test") and m["kind"] == "function":
                            tests.append(disc.DiscoveredTest(f"{p}::{cname}::{mname}", p, mname, (cname,),
                                                             m["ranges"][0][0], m["ranges"][0][1], "unittest", False))
                auto = self.autouse(p)
                for t in tests:
                    self.add_test(t, s, auto)
            elif disc.is_js_test_file(p):
                t = disc.DiscoveredTest(p, p, None, (), 0, 0, "js")
                g.tests[t.id] = t
                g.edge(f"test:{t.id}", f"file:{p}")

    def add_test(self, t: disc.DiscoveredTest, s: dict, auto: list[str]) -> None:
        g = self.g
        g.tests[t.id] = t
        key = f"test:{t.id}"
        g.edge(key, self.sym(t.path, ".".join((*t.classes, t.function))))
        g.edge(key, self.sym(t.path, MODULE))
        rec = {"members": s["defs"]}
        for n, c in enumerate(t.classes):
            rec = rec["members"][c]
            qual = ".".join(t.classes[: n + 1])
            g.edge(key, self.sym(t.path, f"{qual}#"))
            for mname, m in rec["members"].items():  # setUp/tearDown and autouse fixtures; helpers via self.x
                if m["kind"] == "function" and (mname in SETUP_METHODS or m.get("autouse")):
                    g.edge(key, self.sym(t.path, f"{qual}.{mname}"))
        for k in auto:
            g.edge(key, k)


def build_graph(repo=None, rev: str | None = "HEAD", *, files: dict[str, str] | None = None, read=None,
                cache: SummaryCache | None = None, worktree: bool = False, changes=None) -> CodeGraph:
    """The dependency graph of the repository at `rev` (or its working tree).

    Either give a pygit2 repository (`repo`, with `rev`, or `worktree=True` for the files on disk as
    the working tree has them: tracked, modified and untracked, not ignored), or `files` ({path: blob id})
    with `read(path) -> bytes` for any other source. `cache` keeps file summaries by blob id. `changes`: the
    working tree's changes against `rev`, when the caller has them already (`code.diff.changes`)."""
    from com.code import diff as code_diff

    cache = cache if cache is not None else SummaryCache()
    root = None
    if files is None:
        root = repo.workdir
        files = code_diff.files_at(repo, rev or "HEAD")
        if worktree:
            cs = changes if changes is not None else code_diff.changes(repo, rev or "HEAD", worktree=True)
            for fc in cs.files:
                if fc.status == "deleted" or (fc.status == "renamed" and fc.old_path):
                    files.pop(fc.old_path or fc.path, None)
                if fc.status != "deleted":
                    files[fc.path] = fc.new_id
            rev_read = {fc.path for fc in cs.files if fc.status != "deleted"}
            base = Path(repo.workdir)

            def read(path, _ids=dict(files)):
                if path in rev_read:
                    return (base / path).read_bytes()
                return repo[_ids[path]].data
        else:
            def read(path, _ids=files):
                return repo[_ids[path]].data
    g = CodeGraph(root, None if worktree else rev, dict(files))
    for path, blob in files.items():
        if path.endswith(".py"):
            g.summaries[path] = cache.get(blob, "py", lambda p=path: read(p))
        elif path.endswith(disc.JS_EXTENSIONS) and "node_modules/" not in path:
            g.summaries[path] = cache.get(blob, "js", lambda p=path: read(p))
    _Builder(g).build()
    return g


# -- from a diff to changed nodes -----------------------------------------------------------------------
def _symbols_at(s: dict, lines) -> set[str]:
    """Qualified names (innermost) owning the given lines of a summarised file; MODULE for unnamed code."""
    out: set[str] = set()
    if not s.get("ok"):
        return {MODULE} if lines else set()
    lines = sorted(set(lines))
    if not lines:
        return out

    def inside(ranges, n):
        return any(a <= n <= b for a, b in ranges)

    def visit(defs: dict, prefix: str, n: int) -> str | None:
        for name, rec in defs.items():
            if inside(rec["ranges"], n):
                q = f"{prefix}{name}"
                if rec["kind"] == "class":
                    inner = visit(rec["members"], q + ".", n)
                    if inner:
                        return inner
                    return f"{q}#" if inside(rec["head_ranges"], n) else None
                return q
        return None

    for n in lines:
        q = visit(s["defs"], "", n)
        if q is not None:
            out.add(q)
        elif inside(s["module"]["ranges"], n):
            out.add(MODULE)
        else:
            for imp in s["imports"]:
                if imp[5] <= n <= imp[6]:
                    out.add(imp[0] if imp[4] != "star" else MODULE)
    return out


@dataclass
class ChangedNodes:
    keys: set[str]
    by_file: dict[str, list[str]]  # path -> changed node keys (for reasons)
    unmapped: list[str]  # changed paths no node of the graph knows (candidates for the global rule)

    def to_json(self) -> dict:
        return {"keys": sorted(self.keys), "by_file": self.by_file, "unmapped": self.unmapped}


def changed_nodes(change_set, graph: CodeGraph, cache: SummaryCache | None = None) -> ChangedNodes:
    """The graph nodes a change touched: Python names from its hunks (old and new side), files otherwise."""
    cache = cache if cache is not None else SummaryCache()
    keys: set[str] = set()
    by_file: dict[str, list[str]] = {}
    names: dict | None = None

    def module_of(path: str) -> str:
        nonlocal names
        found = graph.module_of_path.get(path)
        if found:
            return found
        if names is None:  # a file the graph does not hold (deleted, renamed away): name it as the old tree did
            names = module_names([p for p in {*graph.files, *(f.old_path for f in change_set.files if f.old_path)}
                                  if p.endswith(".py")])
        return (names.get(path) or [path])[0]

    for fc in change_set.files:
        got: set[str] = set()
        for p in fc.paths:
            got.add(f"file:{p}")
        if fc.path.endswith(".py") or (fc.old_path or "").endswith(".py"):
            if fc.old_id and (fc.old_path or "").endswith(".py"):
                mod = module_of(fc.old_path)
                old = cache.get(fc.old_id, "py", lambda: change_set.old_text(fc))
                quals = _symbols_at(old, fc.old_lines()) if fc.status != "deleted" else {MODULE} | set(old.get("defs", {}))
                if fc.status in ("deleted", "renamed"):
                    got.add(f"all:{mod}")
                got |= {f"sym:{mod}:{q}" for q in quals}
            if fc.new_id and fc.path.endswith(".py"):
                mod = module_of(fc.path)
                new = cache.get(fc.new_id, "py", lambda: change_set.new_text(fc) or b"")  # read on a miss only
                quals = _symbols_at(new, fc.new_lines())
                got |= {f"sym:{mod}:{q}" for q in quals}
                if fc.status == "renamed":
                    got.add(f"all:{mod}")
        by_file[fc.path] = sorted(got)
        keys |= got
    unmapped = sorted(p for p in change_set.paths if not _known(graph, p))
    return ChangedNodes(keys, by_file, unmapped)


def _known(graph: CodeGraph, path: str) -> bool:
    """Whether a change of `path` maps to the graph: a Python module, or a file some node depends on."""
    if path.endswith(".py") or path in graph.module_of_path:
        return True
    if graph._known_files is not None:
        return path in graph._known_files
    return graph._file_known(path)
