"""`com retrieve`: context packs from a real journal, the real MiniLM and a real LanceDB index.

What a pack must show: each shipped policy changes it the way its weights say; near-duplicate failures do not
crowd out different evidence (MMR); the budget is never exceeded and is filled to within the smallest item
left out; `--at` packs only what existed then; a user policy overrides a shipped one; a bad policy file is one
precise error; the evidence beyond text similarity (the test's history, code changes of its failing commits,
healing attempts, roll-ups, analysis commits) is there; the CLI prints the same pack as JSON and Markdown."""

from __future__ import annotations

import json

import pytest

from com.models.tokens import count_tokens
from com.model.event import validate
from com.ops.refs import commit_about
from com.ops.retrieve import retrieve
from com.policies import WEIGHT_KEYS, load_policies

T = "tests/test_pay.py::test_card"
SHIPPED = ("qa_root_cause", "qa_flaky_triage", "qa_regression_select", "qa_healing", "qa_code_review_py")
C = {n: f"{n}" * 40 for n in "123456789"}  # code commits: "1111…", "2222…"


def ev(etype, day, hour=10, importance=None, tags=(), project="shop", **data):
    event = {"type": etype, "project": project, "ts": f"2026-11-{day:02d}T{hour:02d}:00:00Z", "data": data,
             "tags": list(tags)}
    if importance is not None:
        event["importance"] = importance
    return validate(event)


def result(test, status, day, commit, message=None, hour=10, **extra):
    data = {"test_id": test, "status": status, "commit": C[commit], "run_id": f"run-{day}-{hour}", **extra}
    if message:
        data["error_message"] = message
    return ev("test_result", day, hour, **data)


def first_batch():
    return [
        result(T, "passed", 1, "1"),
        result(T, "passed", 2, "2"),
        result(T, "failed", 3, "3", "TimeoutError: Timed out after 30000ms waiting for the card iframe"),
        result("tests/test_wallet.py::test_apple_pay", "failed", 2, "2", "Timeout waiting for the wallet iframe to load"),
        result("tests/test_auth.py::test_login", "failed", 1, "1", "AssertionError: assert 401 == 200"),
        result("tests/test_auth.py::test_login", "passed", 3, "3"),
        ev("code_change", 3, 9, sha=C["3"], message="Load the card iframe lazily", author="ann",
           files=["src/pay/card.py"]),
        ev("code_change", 2, 9, sha=C["2"], message="Docs: the README's set-up section", author="bob"),
    ]


def second_batch():
    return [
        result(T, "failed", 4, "4", "TimeoutError: Timed out after 31000ms waiting for the card iframe"),
        result(T, "failed", 5, "5", "TimeoutError: Timed out after 30500ms waiting for the card iframe"),
        result("tests/test_checkout.py::test_pay_paypal", "failed", 4, "4",
               "TimeoutError: Timed out after 30000ms waiting for the paypal frame"),
        result("tests/test_db.py::test_orders", "error", 5, "5", "OperationalError: connection refused by db:5432",
               ),
        ev("healing_attempt", 4, 12, test_id=T, strategy="raise the iframe timeout to 60 s", outcome="failed"),
        ev("note", 4, 15, text="The payment sandbox was slow all afternoon"),
        ev("rollup", 5, 23, kind="daily", period="2026-11-05",
           narrative="Card payment tests fail with iframe timeouts since the lazy-loading change"),
    ]


@pytest.fixture
def history(memory, monkeypatch):
    """Two ingests (commit times just after their events) and an analysis commit naming T's failure of Nov 4."""
    monkeypatch.setenv("GIT_COMMITTER_DATE", "2026-11-03T23:00:00Z")
    first = memory.record(first_batch()).commit
    monkeypatch.setenv("GIT_COMMITTER_DATE", "2026-11-05T23:30:00Z")
    second = memory.record(second_batch()).commit
    failure = next(e for e in second_batch() if e["data"].get("test_id") == T and e["ts"].startswith("2026-11-04"))
    monkeypatch.setenv("GIT_COMMITTER_DATE", "2026-11-06T09:00:00Z")
    analysis = commit_about(memory, "Root cause: the card iframe loads lazily since 3333333", [failure["id"]]).commit
    return {"first": first, "second": second, "analysis": analysis, "failure": failure["id"]}


def items(pack):
    return pack.to_json()["items"]


def user_policy(memory, name, text):
    folder = memory.root / "policies"
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(text)


# -- evidence ----------------------------------------------------------------------------------------------------
def test_a_root_cause_pack_holds_the_test_s_history_its_code_change_healing_and_the_analysis(history, memory):
    pack = retrieve(memory, policy="qa_root_cause", test=T)
    got = pack.to_json()
    assert got["at"] == history["analysis"] and got["test"] == T and got["budget"] == 6144
    facts = dict((f["name"], f["value"]) for f in got["facts"])
    # The flaky registry's verdict (its detection over the test's results; its lifecycle, which the healing
    # attempt moved), then the plain history.
    assert facts["flaky status"].startswith(("flaky (", "broken, not flaky"))
    assert facts["flaky status"].endswith("; registry: healing_attempted since 2026-11-04 12:00 "
                                          "(healing attempt: raise the iframe timeout to 60 s (failure))")
    assert facts["history"].startswith("failing since 2026-11-03 10:00 on commit 3333333333 (the last 3 runs)")
    assert "last passed 2026-11-02 10:00 on commit 2222222222" in facts["history"]
    assert facts["results"] == "5 runs from 2026-11-01 10:00 to 2026-11-05 10:00: 2 passed, 3 failed"
    assert facts["failed on code commits"].startswith("5555555555 (1 run")
    by_group = {}
    for it in got["items"]:
        by_group.setdefault(it["why"]["group"], []).append(it)
    # This test's failures (the policy keeps failures; passes are in the facts), folded into one line.
    (own,) = by_group["test"]
    assert own["event"]["data"]["status"] == "failed" and len(own["also"]) == 2
    assert {e["event"]["data"]["test_id"] for e in by_group["similar"]} >= {"tests/test_checkout.py::test_pay_paypal"}
    # The code change of a failing commit, found by its sha; the unrelated docs change is not evidence for it.
    code = [it["event"]["data"]["sha"] for it in by_group["code"]]
    assert C["3"] in code and [it["why"]["relation"] for it in by_group["code"]][code.index(C["3"])] == "code"
    assert by_group["healing"][0]["event"]["data"]["strategy"].startswith("raise the iframe timeout")
    notes = {it["event"]["type"]: it for it in by_group["notes"]}
    analysis = notes["analysis"]
    assert analysis["event"]["id"] == f"analysis_{history['analysis']}"
    assert analysis["event"]["data"]["message"] == "Root cause: the card iframe loads lazily since 3333333"
    assert analysis["event"]["data"]["about"] == [history["failure"]] and analysis["why"]["parts"]["pinned"] == 1.0
    # The analysed failure is pinned wherever it sits (here: folded into this test's line, or its own).
    pinned = [it for it in got["items"] if history["failure"] in [it["event"]["id"], *it["also"]]]
    assert pinned and pinned[0]["why"]["parts"]["pinned"] == 1.0
    assert "rollup" not in by_group  # qa_root_cause leaves roll-ups out


def test_the_flaky_status_comes_from_the_flaky_registry(memory, monkeypatch):
    from com.ops.flaky import mark

    flaky = "tests/test_cart.py::test_total"
    events = []
    for day in range(1, 9):  # fails on the first attempt every other run and passes on the retry
        events.append(result(flaky, "failed" if day % 2 else "passed", day, str(day), "AssertionError: 9.99 != 10.0",
                             attempt=1))
        if day % 2:
            events.append(result(flaky, "passed", day, str(day), hour=11, attempt=2, run_id=f"run-{day}-10"))
    memory.record(events)
    mark(memory, flaky, "quarantined", reason="blocks the release train")
    facts = {f["name"]: f["value"] for f in retrieve(memory, policy="qa_flaky_triage", test=flaky).to_json()["facts"]}
    assert facts["flaky status"].startswith("flaky (")
    assert "retry passes 4" in facts["flaky status"] and "failed 4 of 8 runs" in facts["flaky status"]
    assert facts["flaky status"].endswith(", quarantined (blocks the release train)") or \
        "registry: quarantined since" in facts["flaky status"]
    assert facts["history"].startswith("flaky: failed 4 of 8 runs; passed on retry in 4 runs")


def test_roll_ups_come_in_when_the_policy_includes_them(history, memory):
    pack = retrieve(memory, policy="qa_flaky_triage", test=T)
    rollups = [it for it in items(pack) if it["event"]["type"] == "rollup"]
    assert rollups and rollups[0]["why"]["group"] == "rollup"
    assert "## Summaries" in pack.to_markdown()


def test_without_a_query_the_test_s_failure_is_what_similar_evidence_resembles(history, memory):
    pack = retrieve(memory, policy="qa_healing", test=T)
    semantic = {it["event"]["data"]["test_id"]: it["why"]["parts"]["semantic"]
                for it in items(pack) if it["why"]["group"] == "similar"}
    # The paypal iframe timeout resembles the card iframe timeout more than the database error does (MMR may
    # still put the database error first among them: it is the more different evidence).
    assert semantic["tests/test_checkout.py::test_pay_paypal"] > semantic["tests/test_db.py::test_orders"] + 0.2
    assert pack.query is None and "query" not in pack.to_markdown().split("\n")[1]


def test_a_query_alone_packs_matching_results_of_any_test(history, memory):
    pack = retrieve(memory, policy="qa_healing", query="database connection refused")
    got = pack.to_json()
    assert got["test"] is None and got["query"] == "database connection refused"
    assert got["items"][0]["event"]["data"]["test_id"] == "tests/test_db.py::test_orders"
    assert "## Matching test results" in pack.to_markdown()


# -- policies change the pack the way their weights say --------------------------------------------------------
@pytest.mark.parametrize("policy_id", SHIPPED)
def test_each_shipped_policy_packs_what_its_filter_allows_within_its_budget(history, memory, policy_id):
    policy = load_policies()[policy_id]
    pack = retrieve(memory, policy=policy_id, test=T)
    got = pack.to_json()
    assert got["policy"] == policy_id and got["budget"] == policy.budget_tokens
    assert got["tokens_used"] == count_tokens(pack.to_markdown()) <= policy.budget_tokens
    assert 0 < len(got["items"]) <= policy.max_events
    types = set(policy.event_types) | ({"rollup"} if policy.include_rollups else set()) | {"analysis"}
    for it in got["items"]:
        event = it["event"]
        assert event["type"] in types, (policy_id, event["type"])
        if event["type"] == "test_result":
            assert event["data"]["status"] in policy.statuses
        assert event["importance"] >= policy.min_importance or event["type"] == "analysis"
        assert it["score"] == pytest.approx(sum(it["why"][k] for k in ("semantic", "keyword", "importance",
                                                                          "recency", "pinned")), abs=1e-3)
        for part, value in it["why"]["parts"].items():
            assert it["why"][part] == pytest.approx(getattr(policy.weights, part) * value, abs=1e-3)


@pytest.mark.parametrize("policy_id", SHIPPED)
@pytest.mark.parametrize("weight", [w for w in WEIGHT_KEYS if w != "diversity"])
def test_raising_a_weight_puts_an_item_strong_in_that_part_first(history, memory, policy_id, weight):
    """With one weight raised to the maximum, the item packed first is at least as strong in that part as the
    policy's own first item (its score grew by the raise times that part; the old first's by less)."""
    before = items(retrieve(memory, policy=policy_id, test=T))[0]
    user_policy(memory, "raised.yaml", f"id: {policy_id}\nweights:\n  {weight}: 10\n")
    after = items(retrieve(memory, policy=policy_id, test=T))[0]
    assert after["why"]["parts"][weight] >= before["why"]["parts"][weight] - 1e-9


def test_raising_the_recency_weight_moves_recent_events_up(history, memory):
    user_policy(memory, "old.yaml", "id: qa_healing\nweights: {recency: 0}\nmax_events: 3\n")
    old = items(retrieve(memory, policy="qa_healing", query="iframe timeout"))
    user_policy(memory, "old.yaml", "id: qa_healing\nweights: {recency: 10, semantic: 0.5}\n"
                                    "recency_half_life_days: 0.5\nmax_events: 3\n")
    new = items(retrieve(memory, policy="qa_healing", query="iframe timeout"))
    age = lambda its: sum(it["why"]["age_days"] for it in its) / len(its)  # noqa: E731
    assert age(new) < age(old)
    assert new[0]["event"]["ts"] == max(it["event"]["ts"] for it in new)


# -- diversity -------------------------------------------------------------------------------------------------
def test_mmr_keeps_near_duplicate_failures_from_crowding_out_different_evidence(memory):
    browsers = ["chrome", "firefox", "webkit", "edge", "chrome-mobile", "safari"]
    events = [result(f"tests/e2e/test_checkout.py::test_pay[{b}]", "failed", 3, "3",
                     f"TimeoutError: Timed out after 30000ms waiting for the payment iframe on shop-{i}")
              for i, b in enumerate(browsers)]
    events.append(result("tests/e2e/test_checkout.py::test_pay_card", "failed", 3, "3",
                         "ConnectionRefusedError: payment service refused the connection"))
    memory.record(events)
    query = "payment iframe timeout"
    user_policy(memory, "p.yaml", "id: qa_healing\nmax_events: 3\nweights: {diversity: 0}\n")
    plain = items(retrieve(memory, policy="qa_healing", query=query))
    assert all("iframe" in it["event"]["data"]["error_message"] for it in plain)
    user_policy(memory, "p.yaml", "id: qa_healing\nmax_events: 3\nweights: {diversity: 1.5}\n")
    diverse = items(retrieve(memory, policy="qa_healing", query=query))
    messages = [it["event"]["data"]["error_message"] for it in diverse]
    assert any("refused" in m for m in messages)
    near_duplicates = lambda its: sum(it["why"]["redundancy"] >= 0.9 for it in its)  # noqa: E731
    assert near_duplicates(plain) == 2 and near_duplicates(diverse) < 2


# -- the budget --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("budget", [256, 300, 420, 640, 1000])
def test_the_budget_is_never_exceeded_and_filled_to_within_the_smallest_item_left_out(history, memory, budget):
    pack = retrieve(memory, policy="qa_flaky_triage", test=T, budget=budget)
    assert pack.budget == budget and pack.tokens_used == count_tokens(pack.to_markdown()) <= budget
    left = budget - pack.tokens_used
    for skipped in pack.skipped:
        if skipped.reason == "budget":  # it did not fit what was left when it came, nor does it fit now
            assert skipped.needed > left
    if budget <= 420:
        assert any(s.reason == "budget" for s in pack.skipped)  # small budgets really are full


def test_a_budget_override_applies_to_that_call_only(history, memory, com):
    small = json.loads(com("retrieve", "--policy", "qa_root_cause", "--test", T, "--budget", "512", "--json").stdout)
    again = json.loads(com("retrieve", "--policy", "qa_root_cause", "--test", T, "--json").stdout)
    assert small["budget"] == 512 and small["tokens_used"] <= 512
    assert again["budget"] == 6144 and again["tokens_used"] > small["tokens_used"]


# -- time travel -------------------------------------------------------------------------------------------------
def test_at_packs_only_what_existed_at_rev(history, memory, com):
    before = memory.snapshot(history["first"])
    existed = {e["id"] for e in before.events()}
    for policy in SHIPPED:
        pack = retrieve(memory, policy=policy, test=T, at=history["first"])
        got = pack.to_json()
        assert got["at"] == history["first"]
        shown = [i for it in got["items"] for i in (it["event"]["id"], *it["also"])]
        assert shown and set(shown) <= existed, policy
        assert got["window"]["until"] == "2026-11-03T23:00:00Z"  # recency from the snapshot's own time
    facts = {f["name"]: f["value"] for f in retrieve(memory, policy="qa_root_cause", test=T,
                                                     at=history["first"]).to_json()["facts"]}
    assert facts["results"] == "3 runs from 2026-11-01 10:00 to 2026-11-03 10:00: 2 passed, 1 failed"
    # The analysis came later: at the second ingest it is not there, at HEAD it is.
    at_second = json.loads(com("retrieve", "--task", "root_cause", "--test", T, "--at", history["second"],
                               "--json").stdout)
    assert not [it for it in at_second["items"] if it["event"]["type"] == "analysis"]
    assert all(it["why"]["parts"]["pinned"] == 0 for it in at_second["items"])


def test_an_analysis_on_another_branch_is_not_evidence_here(history, memory, com):
    com("branch", "side", history["second"])
    com("switch", "side")
    got = json.loads(com("retrieve", "--policy", "qa_root_cause", "--test", T, "--json").stdout)
    assert got["at"] == history["second"]
    assert not [it for it in got["items"] if it["event"]["type"] == "analysis"]


# -- user policies and bad files ---------------------------------------------------------------------------------
def test_a_user_policy_overrides_a_shipped_one_and_can_take_its_task(history, memory, com):
    user_policy(memory, "rc.yaml", "id: qa_root_cause\nbudget_tokens: 700\nmax_events: 2\n")
    got = json.loads(com("retrieve", "--policy", "qa_root_cause", "--test", T, "--json").stdout)
    assert got["budget"] == 700 and len(got["items"]) <= 2 and got["tokens_used"] <= 700
    user_policy(memory, "ours.yaml", "id: our_triage\ntask: root_cause\nbudget_tokens: 512\n")
    (memory.root / "policies" / "rc.yaml").unlink()
    by_task = json.loads(com("retrieve", "--task", "root-cause", "--test", T, "--json").stdout)
    assert by_task["policy"] == "our_triage" and by_task["budget"] == 512


def test_a_bad_policy_file_is_one_precise_error(history, memory, com):
    user_policy(memory, "bad.yaml", "id: qa_root_cause\nweights:\n  recncy: 2\n")
    r = com("retrieve", "--policy", "qa_healing", "--test", T)
    path = memory.root / "policies" / "bad.yaml"
    assert r.exit_code == 2 and r.stdout == ""
    assert r.stderr.strip() == (f"com: error: {path}: key 'weights.recncy': unknown key (did you mean 'recency'? "
                                "known keys: semantic, keyword, importance, recency, diversity, pinned)")
    user_policy(memory, "bad.yaml", "id: qa_root_cause\nbudget_tokens: lots\n")
    r = com("retrieve", "--policy", "qa_healing", "--test", T)
    assert r.exit_code == 2 and "bad.yaml: key 'budget_tokens': expected a whole number from 256 to 200000" in r.stderr


def test_usage_errors_name_their_flag(history, memory, com):
    cases = [
        (["--test", T], "--policy: name a policy, by its id or by a task name"),
        (["--policy", "qa_healing", "--task", "healing", "--test", T], "--policy: name one policy"),
        (["--policy", "qa_rootcause", "--test", T], "--policy: unknown policy 'qa_rootcause' (did you mean 'qa_root_cause'?)"),
        (["--task", "triage", "--test", T], "--task: no policy for task 'triage'"),
        (["--policy", "qa_healing"], "--query: say what the pack is about"),
        (["--policy", "qa_healing", "--test", T, "--budget", "10"], "--budget: expected a whole number of tokens"),
        (["--policy", "qa_healing", "--test", T, "--format", "yaml"], "--format: unknown format 'yaml'"),
        (["--policy", "qa_healing", "--test", T, "--at", "nope"], "nope"),
    ]
    for args, message in cases:
        r = com("retrieve", *args)
        assert r.exit_code == 2 and message in r.stderr, (args, r.stderr)


# -- the command end to end --------------------------------------------------------------------------------------
def test_com_retrieve_prints_the_same_pack_as_markdown_and_json(history, memory, com):
    md = com("retrieve", "--policy", "qa_root_cause", "--test", T)
    js = com("retrieve", "--policy", "qa_root_cause", "--test", T, "--format", "json")
    assert md.exit_code == 0 and js.exit_code == 0, md.stderr + js.stderr
    got = json.loads(js.stdout)
    assert json.loads(com("retrieve", "--policy", "qa_root_cause", "--test", T, "--json").stdout) == got
    assert set(got) >= {"policy", "budget", "tokens_used", "items"}
    assert all(set(it) >= {"event", "score", "why"} for it in got["items"])
    text = md.stdout
    assert count_tokens(text) == got["tokens_used"]  # what is printed is what was counted
    assert text.startswith(f"# Context pack: root cause\nPolicy qa_root_cause · test `{T}` · events from ")
    for heading in ("## Status of this test", "## Recent results of this test", "## Similar failures in other tests",
                    "## Related code changes", "## Healing attempts and their outcomes", "## Notes and analyses"):
        assert heading in text
    assert text.index("## Status of this test") < text.index("## Recent results of this test")
    assert "analysis " + history["analysis"][:10] + ": Root cause: the card iframe loads lazily" in text
    assert "Com-Event" not in text


def test_an_empty_journal_packs_nothing_and_says_so(memory, com):
    r = com("retrieve", "--policy", "qa_root_cause", "--test", T)
    assert r.exit_code == 0 and "No events matched" in r.stdout


def test_com_retrieve_is_listed_by_com_help(com):
    r = com("--help")
    assert "retrieve" in r.stdout and "policies" in r.stdout


# -- the test's pass/fail history (the stand-in for the flaky registry) -----------------------------------------
def columns(rows):
    """ResultColumns of (run, status, commit, hour[, attempt]) rows of one test (or (test, run, ...) for several)."""
    import numpy as np

    from com.model.result import STATUS_CODE, ResultColumns

    rows = [r if len(r) >= 6 else ("t", *r) for r in rows]
    rows = [r if len(r) == 6 else (*r, 1) for r in rows]
    tests = sorted({r[0] for r in rows})
    runs = sorted({r[1] for r in rows})
    commits = sorted({r[3] for r in rows if r[3]})
    n = len(rows)
    return ResultColumns(
        test=np.array([tests.index(r[0]) for r in rows], np.int32), tests=tests,
        ts_us=np.array([r[4] * 3_600_000_000 for r in rows], np.int64),
        status=np.array([STATUS_CODE[r[2]] for r in rows], np.int8),
        attempt=np.array([r[5] for r in rows], np.int16), duration_ms=np.full(n, np.nan),
        run=np.array([runs.index(r[1]) for r in rows], np.int32), runs=runs,
        commit=np.array([commits.index(r[3]) if r[3] else -1 for r in rows], np.int32), commits=commits,
        signature=np.full(n, -1, np.int32), signatures=[])


def test_history_says_passing_failing_intermittent_or_flaky():
    from com.analysis.test_history import facts, history

    a, b, c = "a" * 40, "b" * 40, "c" * 40
    passing = history(columns([("r1", "passed", a, 1), ("r2", "passed", b, 2), ("r3", "skipped", c, 3)]))
    assert passing.verdict == "passing" and passing.runs == 2
    assert facts(passing)[0] == ("history", "passing: never failed in 2 runs")

    failing = history(columns([("r1", "passed", a, 1), ("r2", "failed", b, 2), ("r3", "error", c, 3)]))
    assert failing.verdict == "failing" and failing.streak == 2
    assert facts(failing)[0][1] == ("failing since 1970-01-01 02:00 on commit bbbbbbbbbb (the last 2 runs); "
                                    "last passed 1970-01-01 01:00 on commit aaaaaaaaaa")
    assert facts(failing)[2] == ("failed on code commits", "cccccccccc (1 run, last 1970-01-01 03:00), "
                                                            "bbbbbbbbbb (1 run, last 1970-01-01 02:00)")
    always = history(columns([("r1", "failed", a, 1), ("r2", "failed", b, 2)]))
    assert facts(always)[0][1].startswith("failing in every run (2) since 1970-01-01 01:00 on commit aaaaaaaaaa")

    intermittent = history(columns([("r1", "failed", a, 1), ("r2", "passed", b, 2), ("r3", "passed", c, 3)]))
    assert intermittent.verdict == "intermittent"
    assert facts(intermittent)[0][1] == ("intermittent: failed 1 of 3 runs, last 1970-01-01 01:00 on commit "
                                         "aaaaaaaaaa; passing since")

    # Passed on retry (a run's verdict is its first attempt), and both outcomes on one code commit.
    retried = history(columns([("r1", "failed", a, 1, 1), ("r1", "passed", a, 1, 2), ("r2", "passed", b, 2)]))
    assert retried.verdict == "flaky" and retried.runs == 2 and retried.failed == 1 and retried.retried_passes == 1
    same_code = history(columns([("r1", "failed", a, 1), ("r2", "passed", a, 2), ("r3", "failed", a, 3)]))
    assert same_code.verdict == "flaky" and same_code.disagreeing == [a]
    assert facts(same_code)[0][1] == "flaky: failed 2 of 3 runs; passed and failed on the same code (aaaaaaaaaa)"

    several = history(columns([("t1", "r1", "failed", a, 1, 1), ("t2", "r1", "passed", a, 1, 1)]))
    assert several.tests == 2 and several.streak == 0
    assert facts(several)[1][1].startswith("2 runs of 2 tests")
    assert facts(history(columns([])))[0] == ("history", "no results of this test in this snapshot")


# -- the analyses view -------------------------------------------------------------------------------------------
def test_the_analyses_view_follows_the_journal_and_is_rebuilt_from_it(history, memory):
    view = memory.analyses
    memory.follow(memory.snapshot(), [view])
    (found,) = view.about([history["failure"], "evt_" + "0" * 24])
    assert found["sha"] == history["analysis"] and found["about"] == [history["failure"]]
    assert found["message"] == "Root cause: the card iframe loads lazily since 3333333"
    assert view.about(["evt_" + "0" * 24]) == []
    view.reset()
    assert view.about([history["failure"]]) == []  # forgotten until it follows the journal again
    memory.follow(memory.snapshot(), [view])
    assert [a["sha"] for a in view.about([history["failure"]])] == [history["analysis"]]
    assert view.health() is None
