"""`com serve`: a resident process answering searches as JSON lines, on stdin/stdout or a unix socket."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from com.model.event import validate
from conftest import run_com


def result(test_id, message, ts, status="failed"):
    return validate({"type": "test_result", "project": "shop", "ts": ts,
                     "data": {"test_id": test_id, "status": status, "error_message": message}})


@pytest.fixture
def recorded(memory):
    first = memory.record([result("tests/test_db.py::test_orders", "connection refused by db.internal", "2026-11-01T10:00:00Z"),
                           result("tests/test_mail.py::test_receipt", "SMTP server hung up", "2026-11-01T10:00:01Z")])
    memory.record([result("tests/test_db.py::test_orders", "connection refused by db.internal", "2026-11-02T10:00:00Z"),
                   result("tests/test_ui.py::test_view", "", "2026-11-02T10:00:01Z", status="passed")])
    return first.commit


def test_stdin_stdout_answers_each_line_as_com_search_would(memory, recorded, com, isolated):
    requests = [
        {"id": 1, "op": "ping"},
        {"id": 2, "text": "database unreachable", "k": 2},
        {"id": "at", "text": "database unreachable", "k": 5, "at": recorded, "status": "failed", "each": True,
         "min_similarity": 0},
        {"id": 4, "op": "search", "text": "x", "k": 0},
        {"id": 5, "text": "x", "status": ["failed", "bogus"]},
        {"id": 6, "op": "drop-everything"},
        {"id": 7, "op": "index"},
    ]
    lines = "\n".join(json.dumps(r) for r in requests) + "\nnot json\n"
    r = run_com("serve", input=lines, cwd=isolated)
    assert r.returncode == 0, r.stderr
    out = [json.loads(line) for line in r.stdout.splitlines()]
    assert [o["id"] for o in out] == [1, 2, "at", 4, 5, 6, 7, None]
    assert out[0] == {"id": 1, "ok": True, "ms": out[0]["ms"]}
    assert out[1]["ok"] and out[1]["results"] == json.loads(
        com("search", "database unreachable", "-k", "2", "--json").stdout)["results"]
    # At the first commit: its two failures, not the later one.
    assert sorted(e["event"]["ts"] for e in out[2]["results"]) == ["2026-11-01T10:00:00Z", "2026-11-01T10:00:01Z"]
    assert out[3] == {"id": 4, "ok": False, "error": "k: must be at least 1, got 0", "param": "k", "ms": out[3]["ms"]}
    assert out[4]["param"] == "status" and "bogus" in out[4]["error"]
    assert out[5]["param"] == "op" and not out[5]["ok"]
    assert out[6]["ok"] and out[6]["total_rows"] == 4
    assert out[7]["ok"] is False and out[7]["param"] == "request"


def test_an_overlong_request_gets_one_answer_and_the_next_request_its_own(memory, recorded, monkeypatch):
    import io

    from com.cli.commands import serve

    monkeypatch.setattr(serve, "MAX_LINE", 40)
    requests = json.dumps({"id": 1, "op": "ping", "pad": "x" * 100}) + "\n" + json.dumps({"id": 2, "op": "ping"}) + "\n"
    out = io.StringIO()
    serve.serve_stream(memory, io.StringIO(requests), out)
    answers = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(a["id"], a["ok"]) for a in answers] == [(None, False), (2, True)]
    assert "longer than 40 characters" in answers[0]["error"]


def test_a_resident_process_sees_what_is_ingested_while_it_runs(memory, recorded, isolated):
    from com.cli.commands.serve import answer
    from com.memory import Memory

    resident = Memory(memory.root)  # its own handles, as a separate `com serve` process would have
    ask = json.dumps({"text": "payment gateway declined", "k": 1})
    before = answer(resident, ask)["results"][0]["event"]
    added = result("tests/test_pay.py::test_card", "PaymentError: gateway declined the card", "2026-11-03T10:00:00Z")
    memory.record([added])  # another process's ingest
    assert before["data"]["test_id"] != "tests/test_pay.py::test_card"
    assert answer(resident, ask)["results"][0]["event"]["id"] == added["id"]


def test_a_unix_socket_serves_only_this_user_and_is_removed_at_exit(memory, recorded, isolated, tmp_path):
    path = tmp_path / "com.sock"
    exe = Path(sys.executable).parent / "com"
    proc = subprocess.Popen([str(exe), "serve", "--socket", str(path)], cwd=isolated, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(600):
            if path.exists():
                break
            time.sleep(0.05)
        assert path.is_socket() and (path.stat().st_mode & 0o777) == 0o600
        for attempt in range(2):  # two connections, one after the other
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
                conn.connect(str(path))
                conn.sendall(b'{"id": 1, "text": "mail relay hung up", "k": 1}\n{"id": 2, "op": "ping"}\n')
                conn.shutdown(socket.SHUT_WR)
                data = b""
                while chunk := conn.recv(65536):
                    data += chunk
            replies = [json.loads(line) for line in data.decode().splitlines()]
            assert replies[0]["results"][0]["event"]["data"]["test_id"] == "tests/test_mail.py::test_receipt"
            assert replies[1]["ok"] is True
        second = run_com("serve", "--socket", str(path), cwd=isolated)
        assert second.returncode == 2 and "another server is listening" in second.stderr
    finally:
        proc.send_signal(2)  # Ctrl-C
        proc.wait(timeout=60)
    assert not path.exists()
    taken = tmp_path / "taken"
    taken.write_text("mine")
    r = run_com("serve", "--socket", str(taken), cwd=isolated)
    assert r.returncode == 2 and "exists and is not a socket" in r.stderr and taken.read_text() == "mine"
