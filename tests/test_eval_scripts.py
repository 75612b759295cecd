"""The evaluation replays run end to end on small inputs (their numbers are measured by the scripts)."""

from __future__ import annotations

import sys

from conftest import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
import eval_iofrol  # noqa: E402
import eval_select  # noqa: E402
from com.analysis import selection as sel  # noqa: E402


def test_iofrol_replay_orders_from_earlier_cycles_only(tmp_path):
    csv = tmp_path / "c.csv"
    lines = ["Id;Name;Duration;LastRun;LastResults;Verdict;Cycle"]
    n = 0
    for cycle in range(1, 9):
        for t in range(6):
            n += 1
            verdict = 1 if t == 0 or (t == 1 and cycle % 2) else 0  # t0 always fails, t1 every other cycle
            lines.append(f"{n};T{t};{10 + t};2015-01-01 00:00:00;[];{verdict};{cycle}")
    csv.write_text("\n".join(lines) + "\n")
    cycles = eval_iofrol.load_cycles(csv)
    out = eval_iofrol.replay(cycles, budgets=(1.0, 0.5), grid={"half_life_runs": (1.0,), "duration_power": (0.0,),
                                                              "new_test_prior": (0.5,)})
    assert out["cycles"] == 8 and out["cycles_with_failures"] == 8
    assert out["napfd"]["100%"] > out["reference_measured"]["random"]["100%"]
    assert out["napfd"]["100%"] <= out["reference_measured"]["optimal"]["100%"] + 1e-9


def test_select_replay_catches_breakages_of_a_small_history(tmp_path):
    rp = eval_select.Replay(tmp_path / "h", seed=2, tests=60, commits=16)
    assert rp.cases
    rows = rp.evaluate("direct", sel.CALIBRATED, sel.parse_budget("100%"))
    # with the whole suite as budget the graph (name level + module-level tier) finds every breakage
    assert all(r["recall"] == 1.0 for r in rows)
    s = eval_select.summarise(rows)
    assert s["changes"] == len(rp.cases) and 0 < s["apfd_mean"] <= 1
