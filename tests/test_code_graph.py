"""com.code: diffs, test discovery and the name-level dependency graph, on real git repositories."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pygit2
import pytest

from conftest import git
from com.code import diff as code_diff
from com.code import discover as disc
from com.code import graph as code_graph
from com.model.errors import ComError


def write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text).lstrip("\n"))


def commit(root: Path, files: dict[str, str] | None = None, msg: str = "change") -> str:
    if files:
        write(root, files)
    git("add", "-A", cwd=root)
    git("commit", "-q", "-m", msg, cwd=root)
    return git("rev-parse", "HEAD", cwd=root).strip()


@pytest.fixture
def repo(tmp_path):
    root = tmp_path / "proj"
    root.mkdir()
    git("init", "-q", "-b", "main", cwd=root)
    return root


# A package that re-exports everything from __init__.py, a helper chain, a data file read by path.
PROJECT = {
    "src/pkg/__init__.py": """
        from .core import add, mul
        from .shapes import *
        VERSION = "1"
        """,
    "src/pkg/core.py": """
        def add(a, b):
            return a + b


        def mul(a, b):
            return a * b
        """,
    "src/pkg/shapes.py": """
        from .core import mul

        __all__ = ["Square", "area"]


        class Square:
            def __init__(self, side):
                self.side = side

            def area(self):
                return mul(self.side, self.side)


        def area(side):
            return Square(side).area()
        """,
    "data/prices.csv": "sku,price\nA,1\n",
    "tests/__init__.py": "",
    "tests/helpers.py": """
        import pkg


        def double(x):
            return pkg.mul(x, 2)
        """,
    "tests/test_add.py": """
        import pkg


        def test_add():
            assert pkg.add(1, 2) == 3


        class TestMore:
            def test_add_again(self):
                assert pkg.add(2, 2) == 4
        """,
    "tests/test_helper.py": """
        from tests.helpers import double


        def test_double():
            assert double(3) == 6
        """,
    "tests/test_shapes.py": """
        import pytest

        from pkg import area


        @pytest.mark.parametrize("side", [1, 2])
        def test_area(side):
            assert area(side) == side * side
        """,
    "tests/test_prices.py": """
        from pathlib import Path

        PRICES = Path(__file__).resolve().parents[1] / "data/prices.csv"


        def test_prices():
            assert "sku" in PRICES.read_text()
        """,
}


def affected(root: Path, spec: str, worktree: bool = False):
    r = pygit2.Repository(str(root))
    cs = code_diff.changes(r, spec, worktree=worktree)
    g = code_graph.build_graph(r, "HEAD", worktree=worktree)
    ch = code_graph.changed_nodes(cs, g)
    return cs, g, ch, g.affected(ch.keys)


def names(impacts, level="name"):
    return {t for t, i in impacts.items() if i.level == level}


def test_name_level_resolves_through_reexports_and_helpers(repo):
    commit(repo, PROJECT, "initial")
    commit(repo, {"src/pkg/core.py": PROJECT["src/pkg/core.py"].replace("return a * b", "return b * a")})
    cs, g, ch, imp = affected(repo, "HEAD~1")
    assert [f.path for f in cs.files] == ["src/pkg/core.py"]
    assert "sym:pkg.core:mul" in ch.keys and "sym:pkg.core:add" not in ch.keys
    # mul is reached by test_double through a helper function, and by test_area through a star
    # re-export, a function, a class and its method; the add tests are untouched at name level.
    assert names(imp) == {"tests/test_helper.py::test_double", "tests/test_shapes.py::test_area"}
    # Module level would select every test that imports pkg (it imports core): the add tests too.
    module = g.module_level({"src/pkg/core.py"})
    assert {"tests/test_add.py::test_add", "tests/test_add.py::TestMore::test_add_again"} <= set(module)
    assert "via" in imp["tests/test_helper.py::test_double"].reason()
    assert "pkg.core:mul" in imp["tests/test_helper.py::test_double"].reason()


def test_changing_add_selects_only_its_tests_even_in_a_class(repo):
    commit(repo, PROJECT, "initial")
    commit(repo, {"src/pkg/core.py": PROJECT["src/pkg/core.py"].replace("return a + b", "return b + a")})
    _, _, _, imp = affected(repo, "HEAD~1")
    assert names(imp) == {"tests/test_add.py::test_add", "tests/test_add.py::TestMore::test_add_again"}


def test_a_comment_or_blank_line_change_selects_nothing_at_name_level(repo):
    commit(repo, PROJECT, "initial")
    text = PROJECT["src/pkg/core.py"]
    commit(repo, {"src/pkg/core.py": "# arithmetic\n" + textwrap.dedent(text).lstrip("\n")})
    _, _, ch, imp = affected(repo, "HEAD~1")
    assert not [k for k in ch.keys if k.startswith("sym:")]
    assert names(imp) == set()


def test_data_file_reached_by_path(repo):
    commit(repo, PROJECT, "initial")
    commit(repo, {"data/prices.csv": "sku,price\nA,2\n"})
    _, _, ch, imp = affected(repo, "HEAD~1")
    assert ch.unmapped == []
    assert set(imp) == {"tests/test_prices.py::test_prices"}
    assert imp["tests/test_prices.py::test_prices"].level == "name"
    assert "data/prices.csv" in imp["tests/test_prices.py::test_prices"].reason()


def test_a_test_edit_selects_that_test_only(repo):
    commit(repo, PROJECT, "initial")
    commit(repo, {"tests/test_add.py": PROJECT["tests/test_add.py"].replace("== 4", "== 2 + 2")})
    _, _, _, imp = affected(repo, "HEAD~1")
    assert names(imp) == {"tests/test_add.py::TestMore::test_add_again"}
    assert imp["tests/test_add.py::TestMore::test_add_again"].distance == 0
    assert "itself changed" in imp["tests/test_add.py::TestMore::test_add_again"].reason()


def test_rename_is_reported_with_its_old_path(repo):
    commit(repo, PROJECT, "initial")
    git("mv", "src/pkg/core.py", "src/pkg/arith.py", cwd=repo)
    for rel in ("src/pkg/__init__.py", "src/pkg/shapes.py"):
        p = repo / rel
        p.write_text(p.read_text().replace(".core", ".arith"))
    commit(repo, msg="rename")
    cs, _, ch, imp = affected(repo, "HEAD~1")
    renamed = [f for f in cs.files if f.status == "renamed"]
    assert len(renamed) == 1
    assert (renamed[0].old_path, renamed[0].path) == ("src/pkg/core.py", "src/pkg/arith.py")
    assert "all:pkg.core" in ch.keys and "all:pkg.arith" in ch.keys
    assert "tests/test_shapes.py::test_area" in imp


def test_worktree_changes_staged_unstaged_and_untracked(repo):
    base = commit(repo, PROJECT, "initial")
    write(repo, {"src/pkg/core.py": PROJECT["src/pkg/core.py"].replace("return a + b", "return a + b + 0")})
    write(repo, {"tests/test_new.py": """
        from pkg.core import mul


        def test_mul():
            assert mul(2, 3) == 6
        """})
    git("add", "src/pkg/core.py", cwd=repo)  # one staged, one untracked
    cs = code_diff.changes(repo, "HEAD", worktree=True)
    assert {(f.path, f.status) for f in cs.files} == {("src/pkg/core.py", "modified"), ("tests/test_new.py", "added")}
    assert cs.head is None and cs.base == base
    hunk = next(f for f in cs.files if f.path == "src/pkg/core.py").hunks
    assert [(h.old_start, h.old_lines, h.new_start, h.new_lines) for h in hunk] == [(2, 1, 2, 1)]
    _, g, _, imp = affected(repo, "HEAD", worktree=True)
    assert "tests/test_new.py::test_mul" in g.tests  # discovered before it ever ran or was committed
    assert "tests/test_new.py::test_mul" in imp  # new test: its own lines are the change
    assert "tests/test_add.py::test_add" in names(imp)


def test_range_specs_and_unknown_revisions(repo):
    a = commit(repo, PROJECT, "initial")
    b = commit(repo, {"README.md": "hi\n"})
    cs = code_diff.changes(repo, f"{a}..{b}")
    assert [f.path for f in cs.files] == ["README.md"] and cs.base == a and cs.head == b
    assert code_diff.changes(repo, f"{a}...{b}").base == a
    with pytest.raises(code_diff.RevisionNotFound) as e:
        code_diff.changes(repo, "no-such-rev")
    assert "shallow clone" in str(e.value)
    with pytest.raises(ComError):
        code_diff.changes(repo, f"{a}..{b}", worktree=True)


def test_changed_files_by_commit(repo):
    a = commit(repo, PROJECT, "initial")
    b = commit(repo, {"README.md": "hi\n"})
    by = code_diff.changed_files_by_commit(pygit2.Repository(str(repo)))
    assert by[b] == ("README.md",)
    assert "src/pkg/core.py" in by[a]


def test_summary_cache_parses_each_blob_once_and_persists(repo, tmp_path):
    commit(repo, PROJECT, "initial")
    commit(repo, {"src/pkg/core.py": PROJECT["src/pkg/core.py"].replace("a * b", "b * a")})
    r = pygit2.Repository(str(repo))
    cache = code_graph.SummaryCache(tmp_path / "cache.bin")
    code_graph.build_graph(r, "HEAD~1", cache=cache)
    first = cache.misses
    code_graph.build_graph(r, "HEAD", cache=cache)
    assert cache.misses == first + 1  # only the changed file is parsed again
    cache.save()
    again = code_graph.SummaryCache(tmp_path / "cache.bin")
    code_graph.build_graph(r, "HEAD", cache=again)
    assert again.misses == 0


def test_fixtures_and_self_methods(repo):
    commit(repo, {
        "tests/conftest.py": """
            import pytest

            from app import make_db


            @pytest.fixture
            def db():
                return make_db()
            """,
        "app.py": """
            def make_db():
                return {}


            def other():
                return 1
            """,
        "tests/test_db.py": """
            from app import other


            class TestDb:
                def helper(self):
                    return other()

                def test_uses_fixture(self, db):
                    assert db == {}

                def test_uses_helper(self):
                    assert self.helper() == 1
            """,
    }, "initial")
    commit(repo, {"app.py": "def make_db():\n    return dict()\n\n\ndef other():\n    return 1\n"})
    _, _, _, imp = affected(repo, "HEAD~1")
    assert names(imp) == {"tests/test_db.py::TestDb::test_uses_fixture"}
    commit(repo, {"app.py": "def make_db():\n    return dict()\n\n\ndef other():\n    return 2 - 1\n"})
    _, _, _, imp = affected(repo, "HEAD~1")
    assert names(imp) == {"tests/test_db.py::TestDb::test_uses_helper"}


def test_js_import_graph_at_module_level(repo):
    commit(repo, {
        "src/cart.ts": "export function total(xs: number[]) { return xs.reduce((a, b) => a + b, 0) }\n",
        "src/util/index.js": "const { total } = require('../cart')\nmodule.exports = { total }\n",
        "tests/cart.test.ts": "import { total } from '../src/cart'\ntest('t', () => expect(total([1])).toBe(1))\n",
        "tests/util.spec.js": "const u = require('../src/util')\n",
        "tests/other.test.js": "test('x', () => {})\n",
    }, "initial")
    commit(repo, {"src/cart.ts": "export function total(xs: number[]) { return xs.reduce((a, b) => b + a, 0) }\n"})
    _, g, _, imp = affected(repo, "HEAD~1")
    assert set(g.tests) == {"tests/cart.test.ts", "tests/util.spec.js", "tests/other.test.js"}
    assert set(imp) == {"tests/cart.test.ts", "tests/util.spec.js"}


# -- discovery -------------------------------------------------------------------------------------------
def test_discovery_pytest_unittest_nose_nested_and_parametrised():
    src = textwrap.dedent('''
        import unittest
        import pytest


        def test_plain():
            pass


        @pytest.mark.parametrize("x", [1, 2])
        def test_param(x):
            pass


        class TestOuter:
            def test_a(self):
                pass

            class TestInner:
                def test_b(self):
                    pass


        class WithInit:
            def __init__(self):
                pass

            def test_never(self):
                pass


        class TestHasInit:
            def __init__(self):
                pass

            def test_never(self):
                pass


        class Disabled:
            __test__ = False


        class CheckoutChecks(unittest.TestCase):
            def test_c(self):
                pass

            def helper(self):
                pass


        class MoreChecks(CheckoutChecks):
            def test_d(self):
                pass


        def helper_test():
            pass
        ''')
    ids = {t.id: t for t in disc.discover_python("tests/test_x.py", src)}
    assert set(ids) == {
        "tests/test_x.py::test_plain", "tests/test_x.py::test_param", "tests/test_x.py::TestOuter::test_a",
        "tests/test_x.py::TestOuter::TestInner::test_b", "tests/test_x.py::CheckoutChecks::test_c",
        "tests/test_x.py::MoreChecks::test_d",
    }
    assert ids["tests/test_x.py::test_param"].parametrized
    assert ids["tests/test_x.py::CheckoutChecks::test_c"].framework == "unittest"
    assert disc.function_id("tests/test_x.py::test_param[1-a]") == "tests/test_x.py::test_param"
    assert disc.function_id("tests/test_x.py::C::test_p[a::b]") == "tests/test_x.py::C::test_p"
    assert disc.function_id("tests/test_x.py::test_plain") == "tests/test_x.py::test_plain"


def test_discovery_file_patterns_and_cross_file_testcase_bases():
    assert disc.is_python_test_file("pkg/tests_checkout.py")  # nose style
    assert disc.is_python_test_file("tests/tests.py")
    assert disc.is_python_test_file("a/b_test.py")
    assert not disc.is_python_test_file("tests/helpers.py")
    for js in ("src/a.test.ts", "web/b.spec.tsx", "e2e/login.spec.ts", "src/__tests__/c.js", "x/app.e2e-spec.ts"):
        assert disc.is_js_test_file(js), js
    assert not disc.is_js_test_file("src/app.ts") and not disc.is_js_test_file("node_modules/x/a.test.js")
    files = {
        "tests/base.py": "import unittest\n\nclass BaseCase(unittest.TestCase):\n    pass\n",
        "tests/tests.py": "from tests.base import BaseCase\n\nclass Orders(BaseCase):\n    def test_o(self):\n        pass\n",
    }
    found = disc.discover(files, lambda p: files[p])
    assert [t.id for t in found] == ["tests/tests.py::Orders::test_o"]


def test_graph_discovers_unittest_subclass_of_a_base_in_another_file(repo):
    commit(repo, {
        "tests/base.py": "import unittest\n\n\nclass BaseCase(unittest.TestCase):\n    pass\n",
        "tests/tests_orders.py": "from tests.base import BaseCase\n\n\nclass Orders(BaseCase):\n    def test_o(self):\n        pass\n",
    }, "initial")
    g = code_graph.build_graph(pygit2.Repository(str(repo)), "HEAD")
    assert set(g.tests) == {"tests/tests_orders.py::Orders::test_o"}


def test_a_graph_from_the_cache_answers_like_the_built_one(repo, tmp_path):
    from com.code.cache import CodeCache

    commit(repo, PROJECT, "initial")
    head = commit(repo, {"src/pkg/core.py": PROJECT["src/pkg/core.py"].replace("return a * b", "return b * a"),
                         "data/prices.csv": "sku,price\nb,2\n"})
    r = pygit2.Repository(str(repo))
    cache = CodeCache(tmp_path / "code")
    built = cache.graph(r, head)
    assert cache.graph_source == "built" and (tmp_path / "code" / "graphs" / f"{head}.bin").is_file()
    again = CodeCache(tmp_path / "code")
    loaded = again.graph(r, head)
    assert again.graph_source == "cache" and not again.summaries._data  # the summary file was never read
    cs = code_diff.changes(r, "HEAD~1")
    for g in (built, loaded):
        ch = code_graph.changed_nodes(cs, g)
        imp = g.affected(ch.keys)
        assert names(imp) == {"tests/test_helper.py::test_double", "tests/test_shapes.py::test_area",
                              "tests/test_prices.py::test_prices"}
        assert set(g.tests) == set(built.tests) and ch.unmapped == []
    # changed paths per commit are read once and kept
    files = cache.commit_files(r, head)
    assert files[head] == ("data/prices.csv", "src/pkg/core.py") and len(files) == 2
    cache.save()
    assert CodeCache(tmp_path / "code")._commit_table()[head] == ("data/prices.csv", "src/pkg/core.py")
