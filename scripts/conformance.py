"""Conformance of com's test records with pytest's own reports, on real projects' test suites.

Installs the released sdists of click, attrs and more-itertools (they carry their test suites) into a
venv of its own (under --cache, made once), with pytest, pytest-xdist, pytest-rerunfailures,
pytest-reportlog and pytest-randomly, and runs each suite:

  plain        without the plugin                          (pytest's verdict and line, for comparison)
  com          --com, the same run otherwise               (pytest-randomly on: its seed is recorded)
  xdist-reruns --com -n 2 --reruns 2
  injected     --com -n 2 --reruns 2 with a test file added: a flaky test, a failing fixture subtest, a
               failing unittest subTest, a test that crashes its xdist worker

Every --com run also writes pytest's own reports of the same run: --junitxml and --report-log. The
script asserts, for each run, that com's record
  - equals what pytest's report log says, test for test and attempt for attempt (status, phase, subtests),
    folded by an implementation of its own (expected_from_report_log), not by com's code;
  - equals what `com ingest --junit` records from the run's --junitxml (com.ingest.outcome.junit_differences);
  - gives the counts of pytest's own summary line (the plugin's summary, "[pytest counts ...]" or its tests);
and that --com changed neither pytest's exit code nor its summary line. Then it times the suites with and
without --com (median of interleaved pairs). Prints one JSON document; exit 1 when anything disagrees.

    python scripts/conformance.py [--cache .cache/conformance] [--pairs 15] [--projects click,attrs,more-itertools]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from com.ingest.outcome import junit_differences, parse_pytest_summary  # noqa: E402

PROJECTS = {  # the released sdists; each carries its tests
    "click": {"sdist": "click==8.5.1", "deps": []},
    "attrs": {"sdist": "attrs==26.1.0", "deps": ["hypothesis", "pympler", "cloudpickle"]},
    "more-itertools": {"sdist": "more-itertools==11.2.1", "deps": []},
}
SEED = 12345
TOOLS = ["pytest==9.2.0", "pytest-xdist==3.8.0", "pytest-rerunfailures==16.7", "pytest-reportlog==1.0.0",
         "pytest-randomly==5.1.0"]

INJECTED = '''"""Injected by com's conformance script: failures whose record must match pytest's reports."""
import os
import unittest
from pathlib import Path

COUNTER = Path(os.environ["COM_INJECT_COUNTER"])


def test_com_flaky():
    runs = int(COUNTER.read_text()) if COUNTER.exists() else 0
    COUNTER.write_text(str(runs + 1))
    assert runs >= 1, "injected: fails on its first run"


def test_com_fixture_subtest(subtests):
    for i in range(3):
        with subtests.test("injected", i=i):
            assert i != 1, "injected subtest failure"


class ComUnitSubtests(unittest.TestCase):
    def test_com_subtest(self):
        for i in range(3):
            with self.subTest(i=i):
                self.assertNotEqual(i, 2, "injected unittest subTest failure")


def test_com_crash():
    if os.environ.get("COM_INJECT_CRASH"):
        os._exit(3)  # kills the pytest-xdist worker running it
'''


# -- the environment ---------------------------------------------------------------------------
def run(cmd, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, errors="replace", **kw)


def make_venv(cache: Path) -> Path:
    venv = cache / "venv"
    stamp = venv / ".installed"
    want = json.dumps({"tools": TOOLS, "projects": PROJECTS})
    if stamp.exists() and stamp.read_text() == want:
        return venv
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    deps = sorted({d for p in PROJECTS.values() for d in p["deps"]})
    subprocess.run(pip + TOOLS + deps, check=True)
    subprocess.run(pip + ["-e", str(ROOT)], check=True)  # com itself, with the plugin's entry point
    stamp.write_text(want)
    return venv


def fetch_sources(cache: Path, venv: Path) -> dict[str, Path]:
    """Each project's sdist, downloaded once and unpacked; the project installed from it."""
    out = {}
    sdists = cache / "sdists"
    sdists.mkdir(parents=True, exist_ok=True)
    for name, spec in PROJECTS.items():
        dist, version = spec["sdist"].split("==")
        pattern = re.sub(r"[-_.]", "[-_.]", dist) + f"-{version}.tar.gz"
        archive = next(iter(sdists.glob(pattern)), None)
        if archive is None:
            subprocess.run([venv / "bin" / "python", "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
                            "--disable-pip-version-check", "-d", sdists, spec["sdist"]], check=True)
            archive = next(iter(sdists.glob(pattern)))
        src = cache / "src" / archive.name[: -len(".tar.gz")]
        if not src.exists():
            src.parent.mkdir(parents=True, exist_ok=True)
            with tarfile.open(archive) as tar:
                tar.extractall(src.parent, filter="data")
            subprocess.run([venv / "bin" / "python", "-m", "pip", "install", "-q", "--no-deps",
                            "--disable-pip-version-check", str(src)], check=True)
        out[name] = src
    return out


# -- one run -------------------------------------------------------------------------------------
def init_memory(venv: Path, folder: Path) -> Path:
    """A fresh com memory at folder/.com."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("COM_")}
    r = run([venv / "bin" / "com", "init"], cwd=folder, env=env)
    if r.returncode != 0:
        raise SystemExit(f"com init failed: {r.stderr}")
    return folder / ".com"


def pytest_run(venv: Path, project: Path, work: Path, name: str, args: list[str], env: dict) -> dict:
    """pytest in a fresh copy of the project, with its reports; com's memory beside it."""
    tree = work / name
    shutil.rmtree(tree, ignore_errors=True)
    shutil.copytree(project, tree)
    memory = init_memory(venv, work / f"{name}-memory")
    reports = {"junit": work / f"{name}-junit.xml", "log": work / f"{name}-report-log.jsonl"}
    counter = work / f"{name}-counter"  # the flaky test's: it fails on its first run of each session
    counter.unlink(missing_ok=True)
    full_env = {**os.environ, **env, "COM_INJECT_COUNTER": str(counter)}
    full_env.pop("COM_DIR", None)
    if "--com" in args:
        args = [*args, f"--com-memory={memory}", f"--junitxml={reports['junit']}",
                "-o", "junit_family=xunit1", f"--report-log={reports['log']}"]
    t0 = time.perf_counter()
    r = run([venv / "bin" / "python", "-m", "pytest", "-q", *args], cwd=tree, env=full_env, timeout=3600)
    seconds = time.perf_counter() - t0
    return {"result": r, "seconds": seconds, "memory": memory, "reports": reports, "tree": tree}


def events_of(venv: Path, memory: Path) -> list[dict]:
    r = run([venv / "bin" / "com", "events", "--json", "-n", "0"], env={**os.environ, "COM_DIR": str(memory)})
    if r.returncode != 0:
        raise SystemExit(f"com events failed: {r.stderr}")
    return json.loads(r.stdout)["events"]


def junit_events(venv: Path, report: Path, work: Path, name: str) -> list[dict]:
    memory = init_memory(venv, work / f"{name}-junit-memory")
    env = {**os.environ, "COM_DIR": str(memory)}
    r = run([venv / "bin" / "com", "ingest", "--junit", report, "-p", "conformance", "--json"], env=env, cwd=work)
    if r.returncode != 0:
        raise SystemExit(f"com ingest --junit failed: {r.stderr}")
    return events_of(venv, memory)


def last_line(output: str) -> str:
    lines = [l for l in output.strip().splitlines() if l.startswith("=") or re.match(r"\d+ \w+", l)]
    return lines[-1] if lines else ""


# -- pytest's report log, folded on its own --------------------------------------------------------
def expected_from_report_log(path: Path) -> dict[tuple[str, int], dict]:
    """Attempts as pytest's report log gives them, folded here without com's code: a test's reports are
    cut into attempts at each teardown (or a crashed worker's "???" report); subtest reports belong to
    the attempt they precede the end of. Status by the first phase that did not pass."""
    streams: dict[str, list] = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        rep = json.loads(line)
        kind = rep.get("$report_type")
        if kind == "CollectReport" and rep.get("outcome") == "failed" and rep.get("nodeid"):
            streams.setdefault(rep["nodeid"], []).append(("collect", rep))
        elif kind in ("TestReport", "SubTestReport"):
            streams.setdefault(rep["nodeid"], []).append(("sub" if kind == "SubTestReport" else rep["when"], rep))
    out = {}
    for nodeid, reps in streams.items():
        attempt, current = 0, []
        for when, rep in reps:
            current.append((when, rep))
            if when in ("teardown", "???", "collect"):
                attempt += 1
                out[(nodeid, attempt)] = _fold(current)
                current = []
        if current and any(w == "call" or r["outcome"] in ("failed", "rerun") for w, r in current):
            attempt += 1
            out[(nodeid, attempt)] = _fold(current)
    return out


def _fold(reports: list) -> dict:
    phases = {w: r for w, r in reports if w != "sub"}
    subs = [r for w, r in reports if w == "sub"]
    bad = lambda r: r is not None and r["outcome"] in ("failed", "rerun")  # noqa: E731
    xfail = lambda r: "wasxfail" in r  # noqa: E731
    setup, call, teardown = phases.get("setup"), phases.get("call"), phases.get("teardown")
    failed_subs = sum(1 for r in subs if r["outcome"] == "failed")
    own_failure = bad(call) and not re.match(r"contains \d+ failed subtests?\Z", str(call.get("longrepr") or ""))
    if "collect" in phases:
        status, phase = "error", "collect"
    elif bad(setup):
        status, phase = "error", "setup"
    elif setup is not None and setup["outcome"] == "skipped":
        status, phase = ("xfailed" if xfail(setup) else "skipped"), None
    elif "???" in phases:
        status, phase = "failed", "crash"
    elif own_failure or (bad(call) and not failed_subs):
        status, phase = "failed", None
    elif failed_subs:
        status, phase = "failed", "subtest"
    elif bad(teardown):
        status, phase = "error", "teardown"
    elif call is None:
        status, phase = None, None
    elif call["outcome"] == "skipped":
        status, phase = ("xfailed" if xfail(call) else "skipped"), None
    else:
        status, phase = ("xpassed" if xfail(call) else "passed"), None
    return {"status": status, "phase": phase, "failed_subtests": failed_subs,
            "rerun": any(r["outcome"] == "rerun" for _, r in reports),
            "teardown_error": bad(teardown) and phase != "teardown"}


def log_differences(events: list[dict], expected: dict) -> list[str]:
    ours = {(e["data"]["test_id"], e["data"]["attempt"]): e["data"] for e in events}
    problems = []
    for key in sorted(set(ours) | set(expected)):
        a, b = ours.get(key), expected.get(key)
        where = f"{key[0]} attempt {key[1]}"
        if a is None or b is None:
            problems.append(f"{where}: only in {'the report log' if a is None else 'com'}")
            continue
        failed = [s for s in a.get("subtests") or () if s.get("status") == "failed"]
        mine = {"status": a["status"], "phase": a.get("phase"), "failed_subtests": len(failed),
                "rerun": bool(a.get("rerun")), "teardown_error": bool(a.get("teardown_error"))}
        if mine != b:
            problems.append(f"{where}: com {mine} vs report log {b}")
    return problems


def said_counts(output: str) -> dict:
    """The counts the plugin's summary line gives in pytest's terms."""
    lines = [l for l in output.splitlines() if l.startswith("com: recorded")]
    if not lines:
        return {}
    line = lines[-1]
    m = re.search(r"\[pytest counts (.*)\]", line)
    if m:
        return parse_pytest_summary(m.group(1))
    head = line[len("com: recorded "):].split(" in journal commit")[0].split(" in no new")[0]
    counts = {}
    for part in re.split(r"[;:,] ", head.split(": ", 1)[1]):
        m = re.match(r"([\d,]+) (passed|failed|errors?|skipped|xfailed|xpassed|reruns?)\b", part)
        if m:
            word = m.group(2)
            key = "rerun" if word.startswith("rerun") else "error" if word.startswith("error") else word
            counts[key] = int(m.group(1).replace(",", ""))
    return counts


def check_run(venv: Path, work: Path, name: str, got: dict, plain: dict | None, seed: int | None = None) -> dict:
    r = got["result"]
    out = r.stdout
    line = last_line(out)
    events = events_of(venv, got["memory"])
    expected = expected_from_report_log(got["reports"]["log"])
    from_junit = junit_events(venv, got["reports"]["junit"], work, name)
    problems = []
    problems += [f"report log: {p}" for p in log_differences(events, expected)]
    problems += [f"junit: {p}" for p in junit_differences(events, from_junit)]
    pytest_counts = parse_pytest_summary(line)
    if said_counts(out) != pytest_counts:
        problems.append(f"summary: com says {said_counts(out)}, pytest says {pytest_counts}")
    if plain is not None:
        if plain["result"].returncode != r.returncode:
            problems.append(f"exit code {r.returncode} with --com, {plain['result'].returncode} without")
        if parse_pytest_summary(last_line(plain["result"].stdout)) != pytest_counts:
            problems.append(f"pytest's line with --com {line!r}, without {last_line(plain['result'].stdout)!r}")
    if seed is not None and {e["data"].get("random_seed") for e in events} != {seed}:
        problems.append(f"pytest-randomly's seed {seed} not recorded on every result: "
                        f"{sorted({str(e['data'].get('random_seed')) for e in events})}")
    warnings = [l for l in out.splitlines() if l.startswith("com: warning")]
    return {
        "pytest": line.strip("= "),
        "com": next((l for l in out.splitlines() if l.startswith("com: recorded")), None),
        "results": len(events),
        "tests": len({e["data"]["test_id"] for e in events}),
        "junit_results": len(from_junit),
        "report_log_attempts": len(expected),
        "random_seed": events[0]["data"].get("random_seed") if events else None,
        "seconds": round(got["seconds"], 1),
        "warnings": warnings,
        "problems": problems[:20] + ([f"... {len(problems) - 20} more"] if len(problems) > 20 else []),
        "agrees": not problems,
    }


def overhead(venv: Path, project: Path, work: Path, pairs: int) -> dict:
    """Median of interleaved pairs: the same suite without and with --com (pytest-randomly off), timed as
    bench_ingest times the 2,000-test session (alternating order, the writer's tail waited for, load average)."""
    from bench_ingest import time_pairs

    tree = work / "timing"
    shutil.rmtree(tree, ignore_errors=True)
    shutil.copytree(project, tree)
    memory = init_memory(venv, work / "timing-memory")
    base = [str(venv / "bin" / "python"), "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("COM_")}
    run(base, cwd=tree, env=env, timeout=3600)  # warm caches and byte code
    run(base + ["--com", f"--com-memory={memory}"], cwd=tree, env=env, timeout=3600)
    return time_pairs({"off": base, "com": base + ["--com", f"--com-memory={memory}"]}, tree, env, pairs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=ROOT / ".cache" / "conformance")
    parser.add_argument("--pairs", type=int, default=15, help="interleaved timing pairs per suite (0: no timing)")
    parser.add_argument("--projects", default=",".join(PROJECTS))
    args = parser.parse_args()
    cache = args.cache.resolve()
    cache.mkdir(parents=True, exist_ok=True)
    venv = make_venv(cache)
    sources = fetch_sources(cache, venv)
    report = {"python": sys.version.split()[0], "tools": TOOLS, "cpus": os.cpu_count(),
              "loadavg_before": [round(x, 2) for x in os.getloadavg()], "projects": {}}
    ok = True
    for name in args.projects.split(","):
        project = sources[name]
        work = cache / "runs" / name
        work.mkdir(parents=True, exist_ok=True)
        injected = work / "injected-src"
        shutil.rmtree(injected, ignore_errors=True)
        shutil.copytree(project, injected)
        (injected / "tests" / "test_com_injected.py").write_text(INJECTED)
        runs = {}
        plain = pytest_run(venv, project, work, "plain", [f"--randomly-seed={SEED}"], {})
        # pytest-randomly orders this run with a seed we know, and com must record it with the run.
        runs["com"] = check_run(venv, work, "com", pytest_run(venv, project, work, "com", ["--com", f"--randomly-seed={SEED}"], {}),
                                plain, seed=SEED)
        runs["xdist-reruns"] = check_run(
            venv, work, "xdist-reruns",
            pytest_run(venv, project, work, "xdist-reruns", ["--com", "-n", "2", "--reruns", "2"], {}), None)
        runs["injected"] = check_run(
            venv, work, "injected",
            pytest_run(venv, injected, work, "injected", ["--com", "-n", "2", "--reruns", "2"], {"COM_INJECT_CRASH": "1"}),
            None)
        entry = {"sdist": PROJECTS[name]["sdist"], "plain": last_line(plain["result"].stdout).strip("= "), "runs": runs}
        if args.pairs:
            entry["overhead"] = overhead(venv, project, work, args.pairs)
        report["projects"][name] = entry
        ok = ok and all(r["agrees"] for r in runs.values())
        print(json.dumps({name: entry}, indent=2), file=sys.stderr)
    report["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    report["agrees"] = ok
    print(json.dumps(report, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
