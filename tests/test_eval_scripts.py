"""The evaluation replays run end to end on small inputs (their numbers are measured by the scripts)."""

from __future__ import annotations

import sys

from conftest import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
import eval_iofrol  # noqa: E402
import eval_select  # noqa: E402
import gen_history  # noqa: E402
from com.analysis import selection as sel  # noqa: E402


def test_napfd_definitions_differ_only_where_they_should():
    # 4 tests, the 2nd and 4th fail; at 50% of the time the long 3rd test is skipped, the 4th still runs
    durations, verdicts = [1.0, 1.0, 6.0, 2.0], [0, 1, 0, 1]
    full = eval_iofrol.napfd(durations, verdicts, 1.0, ranks_scheduled_only=False)
    assert full == eval_iofrol.napfd(durations, verdicts, 1.0, ranks_scheduled_only=True)
    assert abs(full - (1 - (2 + 4) / 8 + 1 / 8)) < 1e-12
    readme = eval_iofrol.napfd(durations, verdicts, 0.5, ranks_scheduled_only=False)
    retecs = eval_iofrol.napfd(durations, verdicts, 0.5, ranks_scheduled_only=True)
    assert abs(readme - (1 - (2 + 4) / 8 + 1 / 8)) < 1e-12  # both failures ran (ranks 2 and 4 of the order)
    assert abs(retecs - (1 - (2 + 3) / 8 + 1 / 8)) < 1e-12  # the skipped test takes no rank
    assert eval_iofrol.napfd([1.0, 1.0], [0, 0], 1.0, True) is None


def test_iofrol_replay_through_com_orders_from_earlier_cycles_only(tmp_path):
    csv = tmp_path / "c.csv"
    lines = ["Id;Name;Duration;LastRun;LastResults;Verdict;Cycle"]
    n = 0
    for cycle in range(1, 7):
        for t in range(5):
            n += 1
            verdict = 1 if t == 4 or (t == 3 and cycle % 2) else 0  # T4 always fails, T3 every other cycle
            lines.append(f"{n};T{t};{10 + t};2015-01-01 00:00:00;[];{verdict};{cycle}")
        n += 1
        lines.append(f"{n};T4;14;2015-01-01 00:00:00;[];1;{cycle}")  # T4 runs twice in each cycle
    csv.write_text("\n".join(lines) + "\n")
    cycles = eval_iofrol.load_cycles(csv)
    out = eval_iofrol.replay(cycles, budgets=(1.0, 0.5))
    orders = out.pop("_orders")
    assert orders[0] == ["T0", "T1", "T2", "T3", "T4"]  # no history: the given order
    assert set(orders[1][:2]) == {"T3", "T4"}  # both failed in the only earlier cycle (ties: shorter first)
    assert all(o[0] == "T4" for o in orders[2:])  # it failed in every earlier cycle
    assert out["cycles"] == 6 and out["executions"] == 36
    for d in ("readme", "retecs"):
        assert out["napfd"][d]["100%"] > out["reference_measured"]["random"][d]["100%"]
        assert out["napfd"][d]["100%"] <= out["reference_measured"]["optimal"][d]["100%"] + 1e-9
    assert eval_iofrol.cli_check(cycles, orders, 2) == {"cycles": 2, "same_order": 2}


def test_select_replay_through_a_memory(tmp_path):
    rp = eval_select.Replay(tmp_path / "h", seed=2, tests=60, commits=16, victims="reach", semantic=False)
    assert rp.cases
    rows = rp.evaluate("direct", sel.CALIBRATED, sel.parse_budget("100%"))
    # with the whole suite as the budget, the graph (names, then the import-closure tier) finds every breakage
    assert all(r["recall"] == 1.0 for r in rows)
    s = eval_select.summarise(rows)
    assert s["changes"] == len(rp.cases) and 0 < s["apfd_mean"] <= 1
    rp.memory.close()
    again = eval_select.Replay(tmp_path / "h", seed=2, tests=60, commits=16, victims="reach", semantic=False)
    assert again.cases == rp.cases  # a kept history (--keep) is reused, not generated again
    assert eval_select.summarise(again.evaluate("direct", sel.CALIBRATED, sel.parse_budget("100%"))) == s


def test_reach_victims_are_tests_whose_calls_reach_the_changed_function(tmp_path):
    import pygit2

    from com.code import diff as code_diff
    from com.code import graph as code_graph
    from com.ops.select import function_key

    history = gen_history.generate(tmp_path / "h", seed=5, tests=150, commits=40, victims="reach")
    truth = history.truth
    assert truth["generator"]["version"] == 2 and truth["generator"]["victims"] == "reach"
    repo = pygit2.Repository(str(history.code_repo))
    index = {c["sha"]: c["index"] for c in truth["commits"]}
    imports = [b for b in truth["breakages"] if b["via"] == "import"]
    assert imports
    checked = 0
    for b in imports:
        parent = truth["commits"][index[b["commit"]] - 1]["sha"]
        cs = code_diff.changes(repo, f"{parent}..{b['commit']}")
        graph = code_graph.build_graph(repo, b["commit"])
        named = {t for t, i in graph.affected(code_graph.changed_nodes(cs, graph).keys, module_level=False).items()
                 if i.level == "name"}
        for tid in b["tests"]:
            if truth["tests"][tid]["kind"] == "unit":  # e2e and API tests reach code through URLs, not names
                assert function_key(tid) in named, (b["id"], tid)
                checked += 1
    assert checked
    v1 = gen_history.generate(tmp_path / "v1", seed=5, tests=150, commits=40)
    assert v1.truth["generator"]["version"] == 1 and "victims" not in v1.truth["generator"]
