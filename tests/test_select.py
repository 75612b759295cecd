"""`com select` end to end: a real code repository, a memory with its recorded runs, the CLI and the pytest plugin."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import ROOT, git

PYTEST = [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider"]


def write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))


def commit(root: Path, message: str) -> str:
    git("add", "-A", cwd=root)
    git("commit", "-q", "-m", message, cwd=root)
    return git("rev-parse", "HEAD", cwd=root).strip()


def record(root: Path, *args) -> subprocess.CompletedProcess:
    """Run the project's tests with the plugin recording them (what CI and the hook do)."""
    return subprocess.run([*PYTEST, "--com", *args], cwd=root, capture_output=True, text=True)


@pytest.fixture
def shop(isolated, monkeypatch):
    """A package re-exporting everything from __init__.py, parametrised tests, a data file read by path."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    root = isolated / "shop"
    root.mkdir()
    git("init", "-q", "-b", "main", cwd=root)
    write(root, "pyproject.toml", """\
        [tool.pytest.ini_options]
        pythonpath = ["src"]
        """)
    write(root, "src/shop/__init__.py", "from .prices import *\nfrom .cart import *\n")
    write(root, "src/shop/prices.py", """\
        __all__ = ["price", "discount"]


        def price(item):
            return {"apple": 3, "pear": 4}[item]


        def discount(total):
            return total * 0.9 if total > 10 else total
        """)
    write(root, "src/shop/cart.py", """\
        from .prices import price

        __all__ = ["total"]


        def total(items):
            return sum(price(i) for i in items)
        """)
    write(root, "data/rates.txt", "vat=20\n")
    write(root, "tests/test_prices.py", """\
        import pytest

        from shop import price, discount


        @pytest.mark.parametrize("item,expected", [("apple", 3), ("pear", 4)])
        def test_price(item, expected):
            assert price(item) == expected


        def test_discount():
            assert discount(20) == 18
        """)
    write(root, "tests/test_cart.py", """\
        from shop import total


        def test_total():
            assert total(["apple", "pear"]) == 7
        """)
    write(root, "tests/test_rates.py", """\
        from pathlib import Path


        def test_vat():
            assert Path(__file__).parents[1].joinpath("data/rates.txt").read_text().startswith("vat=")
        """)
    commit(root, "shop")
    memory = isolated / "mem"
    monkeypatch.setenv("COM_DIR", str(memory))
    from com.memory import Memory

    Memory.init(memory)
    out = record(root)
    assert out.returncode == 0, out.stdout + out.stderr
    monkeypatch.chdir(root)
    return root


def select_json(com, *args) -> dict:
    r = com("select", *args, "--json")
    assert r.exit_code == 0, r.stderr
    return json.loads(r.stdout)


def test_ids_on_stdout_summary_on_stderr_and_pytest_runs_them(shop, com):
    write(shop, "src/shop/prices.py", """\
        __all__ = ["price", "discount"]


        def price(item):
            return {"apple": 3, "pear": 4}[item]


        def discount(total):
            return total * 0.8 if total > 10 else total
        """)
    commit(shop, "bigger discount")
    r = com("select", "--diff", "HEAD~1")
    assert r.exit_code == 0, r.stderr
    # name level through the package's star re-exports: discount's test only, not price's or total's
    assert r.stdout.split() == ["tests/test_prices.py::test_discount"]
    assert "1 of 4 tests for the change" in r.stderr
    out = subprocess.run([*PYTEST, *r.stdout.split()], cwd=shop, capture_output=True, text=True)
    assert out.returncode == 1 and "1 failed" in out.stdout  # the selected test catches the regression


def test_json_shape_reasons_and_parametrised_tests_by_function(shop, com):
    write(shop, "src/shop/prices.py", """\
        __all__ = ["price", "discount"]


        def price(item):
            return {"apple": 3, "pear": 5}[item]


        def discount(total):
            return total * 0.9 if total > 10 else total
        """)
    commit(shop, "pears cost more")
    o = select_json(com, "--diff", "HEAD~1")
    assert {"selected", "skipped", "fallback", "diff", "candidates", "time_share", "history"} <= set(o)
    ids = [t["test_id"] for t in o["selected"]]
    assert set(ids) == {"tests/test_prices.py::test_price", "tests/test_cart.py::test_total"}
    for t in o["selected"]:
        assert {"test_id", "score", "reasons", "signals"} <= set(t) and t["reasons"]
    assert any("shop.prices:price" in reason for t in o["selected"] for reason in t["reasons"])
    assert o["fallback"] is None and sorted(o["skipped"]) == ["tests/test_prices.py::test_discount",
                                                              "tests/test_rates.py::test_vat"]
    out = subprocess.run([*PYTEST, *ids], cwd=shop, capture_output=True, text=True)
    assert "2 failed, 1 passed" in out.stdout  # both cases of test_price ran from the function's id


def test_data_file_reached_by_path_and_a_new_test_always_runs(shop, com):
    write(shop, "data/rates.txt", "vat=21\n")
    write(shop, "tests/test_new.py", "def test_new():\n    assert True\n")
    commit(shop, "rates and a new test")
    o = select_json(com, "--diff", "HEAD~1")
    by = {t["test_id"]: t for t in o["selected"]}
    assert set(by) == {"tests/test_rates.py::test_vat", "tests/test_new.py::test_new"}
    assert by["tests/test_new.py::test_new"]["reasons"][0].startswith("never run before")
    assert any("data/rates.txt" in r for r in by["tests/test_rates.py::test_vat"]["reasons"])


def test_global_change_selects_everything_unless_no_fallback(shop, com):
    write(shop, "pyproject.toml", '[tool.pytest.ini_options]\npythonpath = ["src"]\naddopts = "-ra"\n')
    commit(shop, "pytest options")
    o = select_json(com, "--diff", "HEAD~1")
    assert o["fallback"] and "pyproject.toml" in o["fallback"] and len(o["selected"]) == 4
    o = select_json(com, "--diff", "HEAD~1", "--no-fallback")
    assert o["fallback"] is None and o["selected"] == []
    r = com("select", "--diff", "HEAD~1", "--no-fallback")
    assert r.stdout == "" and "no test selected" in r.stderr  # an empty selection is said, never silent


def test_conftest_fixture_change_maps_to_its_users_a_hook_change_is_global(shop, com):
    write(shop, "tests/conftest.py", """\
        import pytest


        @pytest.fixture
        def basket():
            return ["apple"]


        def pytest_configure(config):
            config.addinivalue_line("markers", "slow: slow tests")
        """)
    write(shop, "tests/test_basket.py", "def test_basket(basket):\n    assert basket\n")
    commit(shop, "basket fixture")
    assert record(shop).returncode == 0
    write(shop, "tests/conftest.py", """\
        import pytest


        @pytest.fixture
        def basket():
            return ["apple", "pear"]


        def pytest_configure(config):
            config.addinivalue_line("markers", "slow: slow tests")
        """)
    commit(shop, "bigger basket")
    o = select_json(com, "--diff", "HEAD~1")
    assert o["fallback"] is None and [t["test_id"] for t in o["selected"]] == ["tests/test_basket.py::test_basket"]
    write(shop, "tests/conftest.py", """\
        import pytest


        @pytest.fixture
        def basket():
            return ["apple", "pear"]


        def pytest_configure(config):
            config.addinivalue_line("markers", "slow: very slow tests")
        """)
    commit(shop, "marker text")
    o = select_json(com, "--diff", "HEAD~1")
    assert o["fallback"] and "conftest.py" in o["fallback"]


def test_unknown_revision_and_no_history_select_everything_with_a_reason(shop, com, tmp_path, monkeypatch):
    o = select_json(com, "--diff", "deadbeef")
    assert "unknown revision 'deadbeef'" in o["fallback"] and len(o["selected"]) == 4
    from com.memory import Memory

    Memory.init(tmp_path / "empty")
    monkeypatch.setenv("COM_DIR", str(tmp_path / "empty"))
    write(shop, "src/shop/cart.py", "from .prices import price\n\n__all__ = ['total']\n\n\ndef total(items):\n"
                                    "    return sum(price(i) for i in items) + 0\n")
    commit(shop, "cart")
    o = select_json(com, "--diff", "HEAD~1")
    assert o["fallback"] == "no test history: every test is selected" and len(o["selected"]) == 4


def test_failed_in_latest_run_always_runs_and_budgets_cut(shop, com):
    write(shop, "src/shop/cart.py", "from .prices import price\n\n__all__ = ['total']\n\n\ndef total(items):\n"
                                    "    return sum(price(i) for i in items) + 1\n")
    commit(shop, "off by one")
    assert record(shop).returncode == 1  # test_total fails and is recorded
    write(shop, "README.md", "docs\n")
    commit(shop, "docs")
    o = select_json(com, "--diff", "HEAD~1")
    assert [t["test_id"] for t in o["selected"]] == ["tests/test_cart.py::test_total"]
    assert o["selected"][0]["reasons"][0].startswith("failed in the latest run")
    assert "README.md" in o["diff"]["unmapped"]
    o = select_json(com, "--diff", "HEAD~2", "--max", "0")
    assert [t["test_id"] for t in o["selected"]] == ["tests/test_cart.py::test_total"]  # must-run, over budget
    assert any("kept over the budget" in m for m in o["messages"])


def test_worktree_rest_and_explain(shop, com, tmp_path):
    write(shop, "src/shop/cart.py", "from .prices import price\n\n__all__ = ['total']\n\n\ndef total(items):\n"
                                    "    return sum(price(i) for i in items) * 1\n")
    rest = tmp_path / "rest.txt"
    r = com("select", "--diff", "HEAD", "--worktree", "--rest", rest, "--explain")
    assert r.exit_code == 0, r.stderr
    assert r.stdout.split() == ["tests/test_cart.py::test_total"]
    assert sorted(rest.read_text().split()) == ["tests/test_prices.py::test_discount", "tests/test_prices.py::test_price",
                                                 "tests/test_rates.py::test_vat"]
    assert "uses shop.cart:total" in r.stderr and "skip" in r.stderr


def test_history_only_order_of_given_tests(shop, com):
    write(shop, "src/shop/prices.py", "__all__ = ['price', 'discount']\n\n\ndef price(item):\n    return 0\n\n\n"
                                      "def discount(total):\n    return total\n")
    commit(shop, "broken prices")
    assert record(shop).returncode == 1
    tests = "tests/test_rates.py::test_vat\ntests/test_prices.py::test_discount\ntests/test_unknown.py::test_x\n"
    r = com("select", "--tests", "-", "--json", input=tests)
    o = json.loads(r.stdout)
    order = [t["test_id"] for t in o["selected"]]
    assert order[0] == "tests/test_prices.py::test_discount" and order[-1] == "tests/test_rates.py::test_vat"
    assert o["mode"] == "history" and o["diff"] is None
    r = com("select")
    assert r.exit_code == 2 and "--diff" in r.stderr


def test_observation_mode_runs_everything_and_the_report_counts_misses(shop, com):
    write(shop, "src/shop/cart.py", "from .prices import price\n\n__all__ = ['total']\n\n\ndef total(items):\n"
                                    "    return sum(price(i) for i in items) + 1\n")
    write(shop, "data/rates.txt", "tax=20\n")  # breaks test_vat, which reads it by path
    commit(shop, "two breakages")
    o = select_json(com, "--diff", "HEAD~1", "--observe")
    assert o["observe"] and len(o["selected"]) == 4 and o["skipped"] == [] and o["recorded"]
    assert sorted(o["would_select"]) == ["tests/test_cart.py::test_total", "tests/test_rates.py::test_vat"]
    assert record(shop).returncode == 1
    r = com("select", "report", "--json")
    rep = json.loads(r.stdout)
    assert rep["selections"] == 1 and rep["matched"] == 1
    assert rep["failures"] == 2 and rep["missed"] == 0 and rep["recall"] == 1.0
    assert 0 < rep["saved_ms"] < rep["total_ms"]
    r = com("select", "report")
    assert "would have missed 0" in r.stdout


def test_pytest_plugin_com_select_deselects_what_a_selection_skips(shop, com):
    write(shop, "src/shop/prices.py", """\
        __all__ = ["price", "discount"]


        def price(item):
            return {"apple": 3, "pear": 4}[item]


        def discount(total):
            return total * 0.5 if total > 10 else total
        """)
    commit(shop, "half price")
    out = subprocess.run([*PYTEST, "--com-select", "HEAD~1"], cwd=shop, capture_output=True, text=True)
    assert "1 failed, 4 deselected" in out.stdout, out.stdout + out.stderr
    assert "com: --com-select HEAD~1: 1 of 5 tests selected" in out.stdout
    out = subprocess.run([*PYTEST, "--com-select", "nosuchrev"], cwd=shop, capture_output=True, text=True)
    assert "1 failed, 4 passed" in out.stdout and "every test is selected" in out.stdout


def test_criticality_from_importance_and_tags_of_the_newest_run(shop, com):
    from com.analysis import selection as sel
    from com.memory import Memory
    from com.ops.select import SelectOptions, prepare

    lines = [
        {"type": "test_result", "project": "shop", "importance": 2, "tags": ["smoke"], "ts": "2030-01-01T00:00:00Z",
         "data": {"test_id": "tests/test_rates.py::test_vat", "status": "passed", "run_id": "nightly"}},
        {"type": "test_result", "project": "shop", "importance": 5, "ts": "2030-01-01T00:00:01Z",
         "data": {"test_id": "tests/test_cart.py::test_total", "status": "passed", "run_id": "nightly"}},
        {"type": "test_result", "project": "shop", "importance": 1, "ts": "2030-01-01T00:00:02Z",
         "data": {"test_id": "tests/test_prices.py::test_discount", "status": "passed", "run_id": "nightly"}},
    ]
    r = com("ingest", "-", input="\n".join(json.dumps(e) for e in lines) + "\n")
    assert r.exit_code == 0, r.stderr
    mem = Memory.find()
    on = prepare(mem, SelectOptions(diff="HEAD", weights=sel.Weights(criticality=0.15)))
    assert on.signals["tests/test_rates.py::test_vat"].criticality == 1.0  # the smoke tag
    assert on.signals["tests/test_cart.py::test_total"].criticality == 1.0  # importance 5
    assert on.signals["tests/test_prices.py::test_discount"].criticality == 0.0
    off = prepare(mem, SelectOptions(diff="HEAD"))  # the calibrated weights do not read it
    assert all(s.criticality == 0.0 for s in off.signals.values())


def test_recorded_tests_no_longer_in_the_code_are_left_out(shop, com):
    (shop / "tests" / "test_rates.py").unlink()
    write(shop, "tests/test_cart.py", """\
        from shop import total


        def test_total_renamed():
            assert total(["apple", "pear"]) == 7
        """)
    commit(shop, "tests moved")
    o = select_json(com, "--diff", "HEAD~1")
    ids = [t["test_id"] for t in o["selected"]] + o["skipped"]
    assert "tests/test_rates.py::test_vat" not in ids and "tests/test_cart.py::test_total" not in ids
    assert "tests/test_cart.py::test_total_renamed" in [t["test_id"] for t in o["selected"]]  # new: always runs
    assert any("2 recorded test(s) no longer in the code" in m for m in o["messages"])


def test_a_test_that_reaches_code_through_a_url_is_selected_by_the_name_in_its_text(shop, com):
    write(shop, "src/shop/views.py", """\
        from .cart import total


        def cart_total(request):
            return {"total": total(request["items"])}
        """)
    write(shop, "tests/test_api.py", """\
        import shop.views  # noqa: F401 - the app whose routes the tests call


        def get(path):  # stands for an HTTP client: the route is a string, no name reaches the view
            return {"status": 200, "path": path}


        def test_cart_total_page():
            assert get("/api/cart-total")["status"] == 200


        def test_health():
            assert get("/api/health")["status"] == 200
        """)
    commit(shop, "api")
    assert record(shop).returncode == 0
    write(shop, "src/shop/cart.py", "from .prices import price\n\n__all__ = ['total']\n\n\ndef total(items):\n"
                                    "    return sum(price(i) for i in items) + 0\n")
    commit(shop, "cart")
    o = select_json(com, "--diff", "HEAD~1")
    by = {t["test_id"]: t for t in o["selected"]}
    assert set(by) == {"tests/test_cart.py::test_total", "tests/test_api.py::test_cart_total_page"}
    assert "names cart_total" in by["tests/test_api.py::test_cart_total_page"]["reasons"][0]
    assert by["tests/test_api.py::test_cart_total_page"]["signals"]["tier"] == "mention"


def test_words_of_identifiers_and_prose():
    from com.ops.select import words

    assert words('client.post("/cart/remove-report")')[-2:] == ["remove", "report"]
    assert words("Remove Report") == words("removeReport") == words("remove_report") == ["remove", "report"]
    assert words("HTTPServer2") == ["http", "server", "2"]
