"""Policies: the shipped files, the schema's precise errors, the user's overrides, lookup, the filter a policy
decides, `com policies`, and an installed wheel that finds the shipped policies."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from com import policies as P
from com.model.errors import CheckFailed, ComError
from com.model.filter import EventFilter

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ("qa_root_cause", "qa_flaky_triage", "qa_regression_select", "qa_healing", "qa_code_review_py")


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


def event(etype="test_result", status="failed", importance=3.0, tags=(), **data):
    if etype == "test_result":
        data = {"test_id": "tests/test_a.py::test_x", "status": status, **data}
    return {"id": "evt_" + "1" * 24, "type": etype, "project": "shop", "source": "t", "ts": "2026-11-27T10:00:00Z",
            "importance": importance, "tags": list(tags), "data": data}


# -- the shipped policies ----------------------------------------------------------------------------------------
def test_the_five_shipped_policies_load_from_the_top_level_folder():
    assert P.shipped_dir() in (ROOT / "policies", ROOT / "com" / "_policies")
    policies = P.load_policies()
    assert sorted(policies) == sorted(SHIPPED)
    assert all(p.origin == "shipped" for p in policies.values())


@pytest.mark.parametrize("policy_id", SHIPPED)
def test_each_shipped_file_sets_every_key_and_validates(policy_id):
    path = P.shipped_dir() / f"{policy_id}.yaml"
    raw = P.read_yaml(path)
    assert list(raw) == list(P.KEYS)  # every key, in the documented order
    assert list(raw["weights"]) == list(P.WEIGHT_KEYS)
    policy = P.validate(raw, path)
    assert policy.id == policy_id and policy.description
    assert P.validate_file(path)["valid"] is True


def test_the_shipped_starting_values_are_the_issue_s():
    p = P.load_policies()
    assert (p["qa_root_cause"].weights.semantic, p["qa_root_cause"].weights.importance) == (2.5, 3.5)
    assert p["qa_root_cause"].budget_tokens == 6144
    assert (p["qa_flaky_triage"].weights.semantic, p["qa_flaky_triage"].weights.diversity) == (3.0, 1.2)
    assert p["qa_flaky_triage"].budget_tokens == 5120
    assert (p["qa_regression_select"].weights.semantic, p["qa_regression_select"].weights.recency) == (3.5, 2.5)
    assert p["qa_regression_select"].budget_tokens == 8192
    assert p["qa_healing"].weights.semantic == 4.0 and p["qa_healing"].budget_tokens == 4096
    balanced = p["qa_code_review_py"].weights
    assert len(set(dataclasses.asdict(balanced).values())) == 1 and p["qa_code_review_py"].budget_tokens == 4096
    assert {q.task for q in p.values()} == {"root_cause", "flaky_triage", "regression_select", "healing",
                                            "code_review"}


# -- lookup ------------------------------------------------------------------------------------------------------
def test_a_policy_is_found_by_id_or_by_task_name():
    policies = P.load_policies()
    assert P.find_policy(policies, policy="qa_healing").id == "qa_healing"
    assert P.find_policy(policies, task="root_cause").id == "qa_root_cause"
    assert P.find_policy(policies, task="Root-Cause").id == "qa_root_cause"
    with pytest.raises(ComError, match=r"unknown policy 'qa_rootcause' \(did you mean 'qa_root_cause'\?\)"):
        P.find_policy(policies, policy="qa_rootcause")
    with pytest.raises(ComError, match=r"no policy for task 'healng' \(did you mean 'healing'\?\)"):
        P.find_policy(policies, task="healng")
    with pytest.raises(ComError, match="by its id or by a task name, not both"):
        P.find_policy(policies, policy="qa_healing", task="healing")


# -- the user's policies -----------------------------------------------------------------------------------------
def test_a_user_file_with_a_shipped_id_changes_only_the_keys_it_sets(tmp_path):
    user = tmp_path / "policies"
    write(user, "root.yaml", "id: qa_root_cause\nbudget_tokens: 3000\nweights:\n  recency: 4.0\n")
    policies = P.load_policies(user)
    mine = policies["qa_root_cause"]
    assert list(policies)[0] == "qa_root_cause"  # the user's first
    assert mine.origin == "user" and mine.path == str(user / "root.yaml")
    assert mine.overrides.endswith("qa_root_cause.yaml")
    assert mine.budget_tokens == 3000 and mine.weights.recency == 4.0
    shipped = P.load_policies()["qa_root_cause"]
    assert mine.weights.semantic == shipped.weights.semantic == 2.5  # unset keys stay the shipped ones
    assert mine.statuses == shipped.statuses and mine.task == "root_cause"
    assert P.find_policy(policies, task="root_cause") is mine


def test_a_user_file_with_a_new_id_extends_and_may_take_a_shipped_task(tmp_path):
    user = tmp_path / "policies"
    write(user, "triage.yml", "id: team_triage\ntask: flaky_triage\nbudget_tokens: 2048\n")
    policies = P.load_policies(user)
    assert len(policies) == 6 and list(policies)[0] == "team_triage"
    assert P.find_policy(policies, task="flaky_triage").id == "team_triage"  # user first
    assert P.find_policy(policies, policy="qa_flaky_triage").origin == "shipped"
    mine = policies["team_triage"]
    assert mine.overrides is None and mine.weights == P.Weights() and mine.max_events == 50  # the defaults


def test_a_missing_user_folder_is_no_error(tmp_path):
    assert sorted(P.load_policies(tmp_path / "nowhere")) == sorted(SHIPPED)


# -- precise errors ----------------------------------------------------------------------------------------------
BAD = [
    ("budget_tokns: 3000\n", "key 'budget_tokns': unknown key (did you mean 'budget_tokens'?"),
    ("weights: {semantc: 2}\n", "key 'weights.semantc': unknown key (did you mean 'semantic'?"),
    ("weights: [1, 2]\n", "key 'weights': expected a mapping"),
    ("weights: {recency: high}\n", "key 'weights.recency': expected a number from 0 to 10, got a string ('high')"),
    ("weights: {recency: 11}\n", "key 'weights.recency': 11 is outside 0 to 10"),
    ("weights: {semantic: 0, keyword: 0, importance: 0, recency: 0, pinned: 0}\n", "key 'weights': every score"),
    ("budget_tokens: big\n", "key 'budget_tokens': expected a whole number from 256 to 200000, got a string"),
    ("budget_tokens: 4096.5\n", "key 'budget_tokens': expected a whole number"),
    ("budget_tokens: 100\n", "key 'budget_tokens': 100 is outside 256 to 200000"),
    ("min_importance: true\n", "key 'min_importance': expected a number from 0 to 5, got a boolean"),
    ("min_importance: 7\n", "key 'min_importance': 7 is outside 0 to 5"),
    ("recency_half_life_days: 0\n", "key 'recency_half_life_days': 0 is outside 0.01 to 3650"),
    ("max_events: 0\n", "key 'max_events': 0 is outside 1 to 1000"),
    ("include_rollups: 'no'\n", "key 'include_rollups': expected true or false, got a string ('no')"),
    ("statuses: [failed, broken]\n", "key 'statuses[1]': unknown status 'broken'"),
    ("event_types: [test_failure]\n", "key 'event_types[0]': 'test_failure' is the seed's name"),
    ("event_types: [Test Result]\n", "key 'event_types[0]': expected an event type"),
    ("event_types: {a: 1}\n", "key 'event_types': expected a list, got a mapping"),
    ("tags_include: [slow, 3]\n", "key 'tags_include[1]': expected a non-empty string, got an integer"),
    ("tags_include: [slow]\ntags_exclude: [slow]\n", "key 'tags_exclude': slow also in tags_include"),
    ("event_types: [test_result, rollup]\ninclude_rollups: false\n", "key 'include_rollups': false, but"),
    ("event_types: [code_change]\nstatuses: [failed]\n", "key 'statuses': applies to test results"),
    ("task: Root Cause\n", "key 'task': expected a lowercase name"),
    ("description: [a]\n", "key 'description': expected text"),
]


@pytest.mark.parametrize("body, message", BAD, ids=[b.split(":")[0] for b, _ in BAD])
def test_a_bad_policy_gets_one_error_naming_the_file_and_the_key(tmp_path, body, message):
    path = write(tmp_path, "mine.yaml", "id: mine\n" + body)
    with pytest.raises(P.PolicyError) as caught:
        P.read_policy(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert message in str(caught.value)
    # The same from a memory's folder, where load_policies reads it.
    with pytest.raises(P.PolicyError, match="mine.yaml"):
        P.load_policies(tmp_path)


@pytest.mark.parametrize("text, message", [
    ("id: mine\nweights: {semantic: 1\n", "line 3: invalid YAML"),
    ("id: mine\nbudget_tokens: 1000\nbudget_tokens: 2000\n", "line 3: invalid YAML: key 'budget_tokens' appears twice"),
    ("", "empty"),
    ("- id: mine\n", "expected a mapping of policy keys at the top level, got a list"),
    ("task: mine\n", "key 'id': missing"),
    ("id: 3\n", "key 'id': expected a lowercase name"),
])
def test_unreadable_files_name_the_line_or_the_key(tmp_path, text, message):
    path = write(tmp_path, "mine.yaml", text)
    with pytest.raises(P.PolicyError) as caught:
        P.read_policy(path)
    assert str(caught.value).startswith(str(path)) and message in str(caught.value)


def test_two_user_files_may_not_share_an_id_or_a_task(tmp_path):
    write(tmp_path / "a", "one.yaml", "id: mine\n")
    write(tmp_path / "a", "two.yaml", "id: mine\n")
    with pytest.raises(P.PolicyError, match=r"two.yaml: key 'id': 'mine' is also the id of .*one.yaml"):
        P.load_policies(tmp_path / "a")
    write(tmp_path / "b", "one.yaml", "id: one\ntask: triage\n")
    write(tmp_path / "b", "two.yaml", "id: two\ntask: triage\n")
    with pytest.raises(P.PolicyError, match=r"two.yaml: key 'task': 'triage' is also the task of .*one.yaml"):
        P.load_policies(tmp_path / "b")


def test_a_budget_override_is_checked_like_the_key():
    policy = P.load_policies()["qa_healing"]
    assert policy.with_budget(None) is policy
    assert policy.with_budget(1000).budget_tokens == 1000 and policy.budget_tokens == 4096
    with pytest.raises(ComError, match=r"^expected a whole number of tokens from 256 to 200000, got 10$") as caught:
        policy.with_budget(10)
    assert caught.value.param == "budget"


# -- the filter a policy decides ---------------------------------------------------------------------------------
def test_a_policy_decides_an_event_filter_and_each_filter_key_changes_it():
    base = P.Policy(id="p", task="p")
    assert P.event_filter(base) == EventFilter()
    assert P.event_filter(base).matches(event())
    cases = {
        "event_types": (("code_change",), event(), event("code_change")),
        "statuses": (("failed",), event(status="passed"), event(status="failed")),
        "min_importance": (2.0, event(importance=1.0), event(importance=2.0)),
        "tags_include": (("nightly",), event(), event(tags=["nightly"])),
        "tags_exclude": (("quarantined",), event(tags=["quarantined"]), event()),
    }
    for key, (value, left_out, kept) in cases.items():
        where = P.event_filter(dataclasses.replace(base, **{key: value}))
        assert where != P.event_filter(base), key
        assert not where.matches(left_out), key
        assert where.matches(kept), key


def test_statuses_restrict_test_results_only_and_include_rollups_adds_the_type():
    policy = P.load_policies()["qa_root_cause"]
    where = P.event_filter(policy)
    assert where.matches(event("code_change", importance=2.0, sha="abc"))  # no status: kept
    assert not where.matches(event(status="passed"))
    assert "rollup" not in where.types
    with_rollups = P.event_filter(dataclasses.replace(policy, include_rollups=True))
    assert with_rollups.types[-1] == "rollup"
    assert with_rollups.matches(event("rollup", importance=2.0)) and not where.matches(event("rollup"))


def test_the_policy_s_filter_goes_on_top_of_the_caller_s():
    policy = P.load_policies()["qa_root_cause"]
    base = EventFilter.create(projects=["web"], until="2026-11-01", tags_exclude=["quarantined"], min_importance=2)
    where = P.event_filter(policy, base)
    assert where.projects == ("web",) and where.until_us == base.until_us
    assert where.result_statuses == ("failed", "error") and where.min_importance == 2.0
    assert where.tags_exclude == ("quarantined",)
    assert not where.matches(event(importance=3.0))  # project shop


# -- validate and the command ------------------------------------------------------------------------------------
def test_validate_file_returns_the_policy_or_fails_the_check(tmp_path):
    good = write(tmp_path, "good.yaml", "id: qa_healing\nmax_events: 5\n")
    result = P.validate_file(good)
    assert result["valid"] and result["policy"]["max_events"] == 5 and result["overrides"].endswith("qa_healing.yaml")
    bad = write(tmp_path, "bad.yaml", "id: mine\nmax_events: many\n")
    with pytest.raises(CheckFailed) as caught:
        P.validate_file(bad)
    assert caught.value.exit_code == 1 and f"{bad}: key 'max_events'" in str(caught.value)
    with pytest.raises(ComError, match="no such file"):
        P.validate_file(tmp_path / "nope.yaml")


def test_com_policies_lists_shows_and_validates(com, memory, tmp_path):
    listed = com("policies", "--json")
    assert listed.exit_code == 0, listed.stderr
    rows = json.loads(listed.stdout)["policies"]
    assert [r["id"] for r in rows] == sorted(SHIPPED)
    assert set(rows[0]) >= {"id", "task", "budget_tokens", "description"}
    write(memory.root / "policies", "mine.yaml", "id: qa_healing\nbudget_tokens: 1024\n")
    table = com("policies", "list")
    assert table.exit_code == 0 and table.stdout.splitlines()[1].split()[:4] == ["qa_healing", "healing", "1024", "user"]
    shown = com("policies", "show", "healing", "--json")
    assert json.loads(shown.stdout)["policy"]["budget_tokens"] == 1024
    assert "budget_tokens: 1024" in com("policies", "show", "qa_healing").stdout
    missing = com("policies", "show", "qa_nope")
    assert missing.exit_code == 2 and "unknown policy 'qa_nope'" in missing.stderr
    bad = write(tmp_path, "bad.yaml", "id: x\nweights: {recency: -1}\n")
    checked = com("policies", "validate", bad)
    assert checked.exit_code == 1 and f"{bad}: key 'weights.recency': -1 is outside 0 to 10" in checked.stderr
    assert com("policies", "validate", memory.root / "policies" / "mine.yaml").exit_code == 0


def test_com_policies_without_a_memory_lists_the_shipped_ones(com):
    result = com("policies")
    assert result.exit_code == 0 and "qa_root_cause" in result.stdout


# -- packaging ---------------------------------------------------------------------------------------------------
def _pyproject() -> dict:
    import tomllib

    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_the_package_list_names_every_package_of_the_checkout():
    setuptools = _pyproject()["tool"]["setuptools"]
    listed = set(setuptools["packages"])
    found = {".".join(p.relative_to(ROOT).parts[:-1]) for p in (ROOT / "com").rglob("__init__.py")}
    assert found <= listed, f"add {sorted(found - listed)} to [tool.setuptools] packages"
    assert setuptools["package-dir"]["com._policies"] == "policies"


def test_an_installed_wheel_finds_the_shipped_policies(tmp_path):
    setuptools = pytest.importorskip("setuptools")
    if tuple(int(x) for x in setuptools.__version__.split(".")[:2]) < (70, 1):  # no bdist_wheel of its own
        pytest.skip(f"setuptools {setuptools.__version__} cannot build a wheel offline (the [dev] extra has >= 70.1)")
    # Build from a clean copy: an in-tree build/ can carry files deleted since.
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        (src / name).write_bytes((ROOT / name).read_bytes())
    for folder in ("com", "policies"):
        subprocess.run(["cp", "-r", str(ROOT / folder), str(src / folder)], check=True)
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path / "dist"),
         str(src)], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "dist").glob("com-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {f"com/_policies/{p}.yaml" for p in SHIPPED} <= set(names)
    assert "com/analysis/packing.py" in names and "com/cli/commands/policies.py" in names
    # A wheel of pure Python is its site-packages layout: unpacked, it is what pip installs.
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    probe = ("import com, com.policies as p; print(com.__file__); print(p.shipped_dir()); "
             "print(','.join(sorted(p.load_policies())))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True,
                         env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    module, folder, ids = out.stdout.split()
    assert module.startswith(str(site)) and folder == str(site / "com" / "_policies")
    assert ids.split(",") == sorted(SHIPPED)
