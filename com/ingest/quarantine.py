"""`pytest --com-quarantine`: quarantined tests still run and are recorded, but their failures do not fail the
session, only when every failure of the run is of a quarantined test and the run's results were recorded
completely. Anything else leaves pytest's exit status as it was.

Two halves, so the test process stays light: the writer process (which has the memory open and has just
recorded the session) answers which of the session's tests are quarantined at the journal's new head
(`_WriterSession.write` in pytest_plugin.py, through `com.ops.flaky`, without importing pytest); the test
process only collects which tests failed, as plain node ids, and compares the two at the end (`Gate`). It
imports nothing of com's storage.
"""

from __future__ import annotations

import pytest

TESTS_FAILED = 1  # pytest.ExitCode.TESTS_FAILED


class Gate:
    """A pytest plugin beside the recorder: which tests finally failed, and at the session's end the verdict."""

    def __init__(self, recorder):
        self.recorder = recorder
        self.failed: set[str] = set()

    def pytest_runtest_logreport(self, report):
        # pytest-rerunfailures reports a failed attempt it runs again as "rerun": only "failed" is final.
        if report.outcome == "failed":
            self.failed.add(report.nodeid)

    @pytest.hookimpl(trylast=True)  # after the recorder's own sessionfinish, which gets the writer's answer
    def pytest_sessionfinish(self, session, exitstatus):
        if session.exitstatus != TESTS_FAILED or not self.failed:
            return
        verdict, line = judge(self.failed, getattr(self.recorder, "answer", None), complete=_complete(self.recorder))
        if verdict:
            session.exitstatus = 0
        self.recorder._say(line)


def _complete(recorder) -> bool:
    """Did the recorder hand every result of the session to the journal?"""
    answer = getattr(recorder, "answer", None)
    return (recorder.problem is None and isinstance(answer, dict) and bool(answer.get("ok"))
            and bool(answer.get("results")) and not answer.get("skipped") and not getattr(recorder, "unfinished", 0)
            and "quarantined" in answer)


def judge(failed: set[str], answer: dict | None, complete: bool) -> tuple[bool, str]:
    """(may the session pass, the line that says why)."""
    if not complete:
        return False, ("com: quarantine not applied: the session's results were not recorded completely, "
                       f"so its {len(failed)} failure(s) fail it")
    quarantined = set(answer["quarantined"])
    outside = sorted(failed - quarantined)
    if outside:
        inside = len(failed) - len(outside)
        return False, (f"com: quarantine: {inside} of {len(failed)} failure(s) are of quarantined tests; "
                       f"{len(outside)} not (e.g. {outside[0]}): the session fails")
    names = ", ".join(sorted(failed)[:3]) + (" …" if len(failed) > 3 else "")
    return True, (f"com: quarantine: all {len(failed)} failure(s) are of quarantined tests ({names}); recorded, "
                  "and the session passes")
