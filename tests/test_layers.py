"""The layering of com/, read from the source: imports point down only and no module imports itself back.

    front ends (cli, pytest plugin)  ->  render, the quarantine gate  ->  ops  ->  memory  ->  views, models, ingest parsers
        ->  journal, code, settings, analysis  ->  model, files

Every import counts, including the ones inside functions (those keep start-up fast; they are still
dependencies). A module may import a lower layer, or its own package at the same layer; never a higher layer,
never another package of its own layer.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

COM = Path(__file__).resolve().parent.parent / "com"

# (module prefix, layer), most specific first.
LAYERS = [
    ("com.__main__", 7),  # `python -m com`: the entry point, above the front end it starts
    ("com.ingest.pytest_plugin", 6), ("com.cli", 6), ("com.serve", 6),
    ("com.render", 5), ("com.ingest.quarantine", 5),
    ("com.ops", 4), ("com.policies", 4),
    ("com.memory", 3),
    ("com.views", 2), ("com.models", 2), ("com.ingest", 2),
    ("com.journal", 1), ("com.code", 1), ("com.settings", 1), ("com.analysis", 1),
    ("com.model", 0), ("com.files", 0),
]


def layer_of(module: str) -> tuple[str, int]:
    for prefix, layer in LAYERS:
        if module == prefix or module.startswith(prefix + "."):
            return prefix, layer
    if module == "com":
        return "com", 0
    raise AssertionError(f"{module} is in no layer: add it to LAYERS (and to docs/architecture.md)")


def modules() -> dict[str, Path]:
    out = {}
    for path in sorted(COM.rglob("*.py")):
        parts = list(path.relative_to(COM.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def imports(path: Path, known: dict[str, Path]) -> set[str]:
    """The com modules a file imports, anywhere in it (`from a import b` counts as a.b when that is a module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                found.add(candidate if candidate in known else node.module)
    return {m for m in found if m == "com" or m.startswith("com.")}


def violations(graph: dict[str, set[str]]) -> list[str]:
    wrong = []
    for name, targets in graph.items():
        package, layer = layer_of(name)
        for target in targets:
            their_package, their_layer = layer_of(target)
            if their_layer > layer or (their_layer == layer and their_package != package):
                wrong.append(f"{name} (layer {layer}) imports {target} (layer {their_layer})")
    return wrong


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components: any component of more than one module is a cycle."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph.get(v, ()):
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(path, known) for name, path in known.items()}


def test_every_module_has_a_layer(graph):
    for name in graph:
        layer_of(name)


def test_imports_point_down_only(graph):
    assert violations(graph) == []


def test_the_model_imports_nothing_else_of_com(graph):
    for name, targets in graph.items():
        if name == "com.model" or name.startswith("com.model."):
            assert {t for t in targets if not t.startswith("com.model.")} == set(), name


def test_no_import_cycles(graph):
    assert cycles(graph) == []


def test_the_checks_catch_an_upward_import_and_a_cycle(tmp_path):
    """The checks above can fail: an import inside a function of the journal reaching the CLI, and two ops
    modules importing each other, read from real files."""
    journal, ops_a, ops_b = tmp_path / "journal.py", tmp_path / "a.py", tmp_path / "b.py"
    journal.write_text("def f():\n    from com.cli.app import app\n")
    ops_a.write_text("import com.ops.b\n")
    ops_b.write_text("from com.ops import a\n")
    known = {"com.journal.repo": journal, "com.ops.a": ops_a, "com.ops.b": ops_b, "com.cli.app": journal}
    graph = {name: imports(path, known) for name, path in known.items() if name != "com.cli.app"}
    assert violations(graph) == ["com.journal.repo (layer 1) imports com.cli.app (layer 6)"]
    assert cycles(graph) == [["com.ops.a", "com.ops.b"]]
