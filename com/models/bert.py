"""A BERT sentence encoder in numpy: the packaged MiniLM (and any sentence-transformers folder of the same
shape: a BERT encoder, mean pooling, normalisation) without importing torch, transformers or
sentence_transformers, which cost a search process seconds and hundreds of MiB before it embeds one query.

It reads the model's own files: the weights from `model.safetensors` (mapped, not copied: a query touches only
its tokens' rows of the vocabulary), the tokenizer from `tokenizer.json` (HF `tokenizers`, the same Rust
tokenizer sentence-transformers runs), the sequence length from `sentence_bert_config.json`. The vectors agree
with sentence-transformers' to cosine >= 0.9999 (tests/test_embed.py checks it against the real thing).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

_DTYPES = {"F32": "<f4", "F16": "<f2", "I64": "<i8"}
BATCH = 32  # texts per forward pass when embedding many (sorted by length, so little padding)
BATCH_TOKENS = 2048  # ... and at most this many tokens: a batch of 256-token texts is 8 (peak memory bounded)


def supports(folder: Path) -> bool:
    """Is `folder` a sentence-transformers model this encoder computes exactly: BERT weights in safetensors,
    a fast tokenizer, mean pooling, and nothing else between them?"""
    try:
        config = json.loads((folder / "config.json").read_text())
        modules = json.loads((folder / "modules.json").read_text())
        pooling_dirs = [m.get("path") for m in modules if m.get("type", "").endswith(".Pooling")]
        pooling = json.loads((folder / pooling_dirs[0] / "config.json").read_text()) if pooling_dirs else {}
    except (OSError, ValueError, IndexError, AttributeError, TypeError):
        return False
    kinds = [m.get("type", "").rsplit(".", 1)[-1] for m in modules]
    mean_only = pooling.get("pooling_mode_mean_tokens") is True and not any(
        pooling.get(k) for k in ("pooling_mode_cls_token", "pooling_mode_max_tokens", "pooling_mode_mean_sqrt_len_tokens",
                                 "pooling_mode_weightedmean_tokens", "pooling_mode_lasttoken"))
    return (config.get("model_type") == "bert" and config.get("hidden_act") == "gelu"
            and config.get("position_embedding_type", "absolute") == "absolute"
            and kinds in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]) and mean_only
            and (folder / "model.safetensors").is_file() and (folder / "tokenizer.json").is_file())


def read_safetensors(path: Path) -> dict:
    """name -> numpy array, mapped read-only from the file (the format: an 8-byte header size, a JSON header
    of dtype/shape/offsets, then the raw little-endian tensors)."""
    import numpy as np

    with open(path, "rb") as f:
        size = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(size))
    data = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + size)
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, stop = info["data_offsets"]
        out[name] = data[start:stop].view(_DTYPES[info["dtype"]]).reshape(info["shape"])
    return out


def _linear(x, weight, bias):
    """x @ weight.T + bias for x of shape (..., in) and weight (out, in) as stored. Written weight @ x.T: BLAS
    reads the mapped weight in its own layout (1.6x faster than handing it the transposed view, measured)."""
    import numpy as np

    flat = x.reshape(-1, x.shape[-1])
    return (np.dot(weight, flat.T).T + bias).reshape(*x.shape[:-1], weight.shape[0])


def _erf(x):
    """erf in float32 to a few ulp (the rational approximation Eigen and XLA use): BERT's GELU is the exact,
    erf-based one, and numpy has no erf."""
    import numpy as np

    x = np.clip(x, -4.0, 4.0)
    x2 = x * x
    p = x2 * np.float32(-2.72614225801306e-10) + np.float32(2.77068142495902e-08)
    for c in (-2.10102402082508e-06, -5.69250639462346e-05, -7.34990630326855e-04, -2.95459980854025e-03,
              -1.60960333262415e-02):
        p = p * x2 + np.float32(c)
    p *= x
    q = x2 * np.float32(-1.45660718464996e-05) + np.float32(-2.13374055278905e-04)
    for c in (-1.68282697438203e-03, -7.37332916720468e-03, -1.42647390514189e-02):
        q = q * x2 + np.float32(c)
    return p / q


class BertEncoder:
    """Texts -> L2-normalised mean-pooled vectors of a BERT sentence-transformers model, in numpy."""

    def __init__(self, folder: Path):
        import numpy as np
        from tokenizers import Tokenizer

        folder = Path(folder)
        config = json.loads((folder / "config.json").read_text())
        try:
            st_config = json.loads((folder / "sentence_bert_config.json").read_text())
        except (OSError, ValueError):
            st_config = {}
        self.max_len = int(st_config.get("max_seq_length") or config.get("max_position_embeddings", 512))
        self.heads = int(config["num_attention_heads"])
        self.layers = int(config["num_hidden_layers"])
        self.eps = np.float32(config.get("layer_norm_eps", 1e-12))
        self.dim = int(config["hidden_size"])
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        # sentence-transformers truncates at its own max_seq_length, whatever tokenizer.json says, and pads
        # a batch to its longest text.
        self.tokenizer.enable_truncation(self.max_len)
        self.tokenizer.no_padding()
        w = read_safetensors(folder / "model.safetensors")
        prefix = "bert." if "bert.embeddings.word_embeddings.weight" in w else ""

        def f32(name):  # the mapped array itself when it is float32 already (the packaged model): no copy
            return np.asarray(w[prefix + name], dtype=np.float32)

        self.word = w[prefix + "embeddings.word_embeddings.weight"]  # mapped: rows read on use
        self.position = f32("embeddings.position_embeddings.weight")
        self.token_type = f32("embeddings.token_type_embeddings.weight")[0]
        self.ln0 = (f32("embeddings.LayerNorm.weight"), f32("embeddings.LayerNorm.bias"))
        self.blocks = []
        for i in range(self.layers):
            p = f"encoder.layer.{i}."
            # Weights stay (out, in) as stored and mapped: nothing is copied at load (40 MB of copies and
            # 30 ms otherwise); `_linear` multiplies them in that layout.
            self.blocks.append((
                tuple((f32(p + f"attention.self.{n}.weight"), f32(p + f"attention.self.{n}.bias"))
                      for n in ("query", "key", "value")),
                f32(p + "attention.output.dense.weight"), f32(p + "attention.output.dense.bias"),
                (f32(p + "attention.output.LayerNorm.weight"), f32(p + "attention.output.LayerNorm.bias")),
                f32(p + "intermediate.dense.weight"), f32(p + "intermediate.dense.bias"),
                f32(p + "output.dense.weight"), f32(p + "output.dense.bias"),
                (f32(p + "output.LayerNorm.weight"), f32(p + "output.LayerNorm.bias")),
            ))

    def _norm(self, x, ln):
        import numpy as np

        mean = x.mean(-1, keepdims=True)
        centred = x - mean
        var = (centred * centred).mean(-1, keepdims=True)
        return centred / np.sqrt(var + self.eps) * ln[0] + ln[1]

    def forward(self, ids, mask):
        """Mean-pooled, normalised vectors of a padded batch: ids and mask are (batch, length) int arrays."""
        import numpy as np

        b, n = ids.shape
        heads, size = self.heads, self.dim // self.heads
        x = self._norm(np.asarray(self.word[ids.reshape(-1)], dtype=np.float32).reshape(b, n, -1)
                       + self.position[:n] + self.token_type, self.ln0)
        # Padding keys get a large negative score (what transformers adds), so they weigh nothing.
        bias = np.where(mask[:, None, None, :] > 0, np.float32(0), np.float32(np.finfo(np.float32).min))
        scale = np.float32(1.0 / np.sqrt(size))
        for qkv, out_w, out_b, ln1, in_w, in_b, ff_w, ff_b, ln2 in self.blocks:
            q, k, v = (_linear(x, w_, b_).reshape(b, n, heads, size).transpose(0, 2, 1, 3) for w_, b_ in qkv)
            scores = (q @ k.transpose(0, 1, 3, 2)) * scale + bias
            scores -= scores.max(-1, keepdims=True)
            np.exp(scores, out=scores)
            scores /= scores.sum(-1, keepdims=True)
            context = (scores @ v).transpose(0, 2, 1, 3).reshape(b, n, -1)
            x = self._norm(_linear(context, out_w, out_b) + x, ln1)
            h = _linear(x, in_w, in_b)
            h = h * np.float32(0.5) * (np.float32(1.0) + _erf(h * np.float32(0.7071067811865476)))
            x = self._norm(_linear(h, ff_w, ff_b) + x, ln2)
        weights = mask[:, :, None].astype(np.float32)
        pooled = (x * weights).sum(1) / np.maximum(weights.sum(1), np.float32(1e-9))
        return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), np.float32(1e-12))

    def encode(self, texts: list[str]):
        """A (len(texts), dim) float32 matrix of unit vectors, in order. Texts are batched by length (as
        sentence-transformers does), so a batch pads little."""
        import numpy as np

        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        encodings = self.tokenizer.encode_batch(list(texts))
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        batches, start = [], 0
        while start < len(order):
            # As many texts as fit BATCH_TOKENS at the longest one's length (attention is length squared).
            size = 1
            while (size < BATCH and start + size < len(order)
                   and (size + 1) * len(encodings[order[start + size]].ids) <= BATCH_TOKENS):
                size += 1
            batches.append(order[start:start + size])
            start += size
        for chosen in batches:
            longest = max(len(encodings[i].ids) for i in chosen)
            ids = np.zeros((len(chosen), longest), dtype=np.int64)
            mask = np.zeros((len(chosen), longest), dtype=np.int64)
            for row, i in enumerate(chosen):
                tokens = encodings[i].ids
                ids[row, :len(tokens)] = tokens
                mask[row, :len(tokens)] = 1
            out[chosen] = self.forward(ids, mask)
        return out


def available() -> bool:
    """Can this encoder run here (numpy and the HF tokenizer installed)?"""
    import importlib.util

    return all(importlib.util.find_spec(name) is not None for name in ("numpy", "tokenizers"))
