"""all-MiniLM-L6-v2, and sentence encoders built like it, run in NumPy.

Why this is hand-written: ``tuneseek search`` encodes one short query per run, and importing
sentence-transformers (which brings transformers and torch) took 10-20 s of each search.
This reads the same model folder (``config.json``, ``modules.json``, ``tokenizer.json``,
``model.safetensors``, memory-mapped) with NumPy and the fast ``tokenizers`` package, and is
ready in a fraction of a second. It computes what sentence-transformers computes for such
a model (a test holds the two to the same vectors): BERT's embeddings and post-LayerNorm
encoder layers (exact GELU), the mean of the token vectors over the attention mask, and L2
normalisation when the model's modules say so.

:func:`load` returns ``None`` for a model it does not describe (another architecture, another
pooling, no ``tokenizer.json`` or safetensors weights); the caller runs those with
sentence-transformers.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.special import erf

__all__ = ["NumpyBert", "load"]

# safetensors dtype codes this reads, and what they are in NumPy
_DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "I64": np.int64, "I32": np.int32}

_TRANSFORMER = "sentence_transformers.models.Transformer"
_POOLING = "sentence_transformers.models.Pooling"
_NORMALIZE = "sentence_transformers.models.Normalize"
_BATCH = 64  # sentences per forward pass at most


# (weight, bias) of a layer; a linear layer's weight is stored (in, out), for x @ weight + bias
WeightBias = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class _Layer:
    """One encoder layer's weights."""

    query: WeightBias
    key: WeightBias
    value: WeightBias
    out: WeightBias
    norm1: WeightBias  # LayerNorm
    up: WeightBias
    down: WeightBias
    norm2: WeightBias


def _json(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """The tensors of a safetensors file as read-only arrays mapped from the file.

    Mapped rather than read: loading MiniLM's 90 MB with ``safetensors.numpy.load_file`` took
    0.45 s, mapping it 2 ms, and a query touches only the rows of its own word pieces. Raises
    ``ValueError`` for a file that is not safetensors or holds a dtype NumPy has no match for.
    """
    raw = np.memmap(path, dtype=np.uint8, mode="r")
    size = int.from_bytes(raw[:8].tobytes(), "little")
    header = json.loads(raw[8 : 8 + size].tobytes())
    data = raw[8 + size :]
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if entry["dtype"] not in _DTYPES:
            raise ValueError(f"tensor {name!r} is {entry['dtype']}, which this reader does not know")
        begin, end = entry["data_offsets"]
        tensors[name] = data[begin:end].view(_DTYPES[entry["dtype"]]).reshape(entry["shape"])
    return tensors


def load(folder: str | Path) -> NumpyBert | None:
    """The model in ``folder`` as a :class:`NumpyBert`, or ``None`` when it is not one this runs.

    Raises ``ImportError`` without the ``tokenizers`` package, and ``OSError``, ``ValueError``
    or ``KeyError`` for a folder whose files are damaged.
    """
    folder = Path(folder)
    files = {name: folder / name for name in ("modules.json", "config.json", "tokenizer.json", "model.safetensors")}
    if not all(path.is_file() for path in files.values()):
        return None
    modules = _json(files["modules.json"])
    types = [m.get("type") for m in modules]
    if types not in ([_TRANSFORMER, _POOLING], [_TRANSFORMER, _POOLING, _NORMALIZE]):
        return None
    pooling = _json(folder / modules[1].get("path", "") / "config.json")
    modes = {key for key, on in pooling.items() if key.startswith("pooling_mode") and on}
    config = _json(files["config.json"])
    if (
        modes != {"pooling_mode_mean_tokens"}
        or config.get("model_type") != "bert"
        or config.get("hidden_act") != "gelu"
        or config.get("position_embedding_type", "absolute") != "absolute"
    ):
        return None
    st_config = _json(folder / "sentence_bert_config.json") if (folder / "sentence_bert_config.json").is_file() else {}
    # sentence-transformers lowercases before the tokenizer when its config says so: not done here
    if st_config.get("do_lower_case") or not _tokenizer_as_transformers_builds_it(folder, files["tokenizer.json"]):
        return None
    max_tokens = min(int(st_config.get("max_seq_length") or 1 << 30), int(config["max_position_embeddings"]))
    return NumpyBert(
        files["tokenizer.json"], files["model.safetensors"], config, max_tokens, normalize=types[-1] == _NORMALIZE
    )


def _tokenizer_as_transformers_builds_it(folder: Path, tokenizer_file: Path) -> bool:
    """Whether ``tokenizer.json`` normalises text as transformers' BERT tokenizer will: that
    rebuilds the normaliser when ``tokenizer_config.json`` asks otherwise (lowercase, accents,
    Chinese characters), and such a model is left to it."""
    path = folder / "tokenizer_config.json"
    wanted = _json(path) if path.is_file() else {}
    normalizer = _json(tokenizer_file).get("normalizer") or {}
    fields = {
        "do_lower_case": "lowercase",
        "strip_accents": "strip_accents",
        "tokenize_chinese_chars": "handle_chinese_chars",
    }
    return all(normalizer.get(field) == wanted[key] for key, field in fields.items() if key in wanted)


class NumpyBert:
    """A BERT sentence encoder with mean pooling: tokenizer, weights and forward pass.

    ``max_tokens``: word pieces read per sentence, special tokens included (longer sentences
    are cut, as sentence-transformers cuts them); ``dim``: the size of a vector.
    """

    def __init__(self, tokenizer_file: Path, weights_file: Path, config: dict, max_tokens: int, normalize: bool):
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(tokenizer_file))
        self.tokenizer.no_truncation()  # tokenizer.json may carry settings of its own (MiniLM's: 128, padded)
        self.tokenizer.no_padding()
        self.max_tokens = max_tokens
        self.normalize = normalize
        self.heads = int(config["num_attention_heads"])
        self.eps = float(config.get("layer_norm_eps", 1e-12))
        w = read_safetensors(weights_file)
        prefix = "bert." if "bert.embeddings.word_embeddings.weight" in w else ""

        def get(name: str) -> np.ndarray:
            return w[prefix + name].astype(np.float32, copy=False)

        def linear(name: str) -> WeightBias:  # transposed once: x @ w is 3x faster on a contiguous w than on w.T
            return np.ascontiguousarray(get(f"{name}.weight").T), get(f"{name}.bias")

        def norm(name: str) -> WeightBias:
            return get(f"{name}.weight"), get(f"{name}.bias")

        self.words = get("embeddings.word_embeddings.weight")
        self.positions = get("embeddings.position_embeddings.weight")
        self.token_type = get("embeddings.token_type_embeddings.weight")[0]
        self.embedding_norm = norm("embeddings.LayerNorm")
        self.dim = self.words.shape[1]
        self.layers = []
        for i in range(int(config["num_hidden_layers"])):
            at = f"encoder.layer.{i}"
            self.layers.append(
                _Layer(
                    *(linear(f"{at}.attention.self.{name}") for name in ("query", "key", "value")),
                    out=linear(f"{at}.attention.output.dense"),
                    norm1=norm(f"{at}.attention.output.LayerNorm"),
                    up=linear(f"{at}.intermediate.dense"),
                    down=linear(f"{at}.output.dense"),
                    norm2=norm(f"{at}.output.LayerNorm"),
                )
            )
        added = self.tokenizer.get_added_tokens_decoder()
        unk = getattr(self.tokenizer.model, "unk_token", None)
        self.unk_id = self.tokenizer.token_to_id(unk) if unk else None
        self.special_ids = frozenset(i for i, token in added.items() if token.special) - {self.unk_id}
        self._specials = len(self.tokenizer.encode("", add_special_tokens=True).ids)

    # -- word pieces -------------------------------------------------------------------
    def pieces(self, text: str) -> list[int]:
        """The word pieces of ``text``, special tokens included, none cut."""
        return self.tokenizer.encode(text, add_special_tokens=True).ids

    def kept_text(self, text: str, max_tokens: int) -> str:
        """The start of ``text`` that fits in ``max_tokens`` word pieces, special tokens included."""
        offsets = self.tokenizer.encode(text, add_special_tokens=False).offsets
        return text[: offsets[max_tokens - self._specials - 1][1]]

    # -- vectors -----------------------------------------------------------------------
    def encode(self, texts: list[str], *, threads: int | None = None) -> np.ndarray:
        """``(len(texts), dim)`` float32 sentence vectors (unit length when the model normalises).

        ``threads``: BLAS threads for the call (through threadpoolctl, when it is installed),
        then restored; ``None`` leaves them as they are.
        """
        ids = [self._cut(e) for e in self.tokenizer.encode_batch([t.strip() for t in texts], add_special_tokens=False)]
        out = np.zeros((len(texts), self.dim), np.float32)
        with _blas_threads(threads):
            for rows in _batches([len(i) for i in ids]):
                longest = max(len(ids[r]) for r in rows)
                batch = np.zeros((len(rows), longest), np.int64)
                mask = np.zeros((len(rows), longest), np.float32)
                for j, r in enumerate(rows):
                    batch[j, : len(ids[r])] = ids[r]
                    mask[j, : len(ids[r])] = 1.0
                out[rows] = self._forward(batch, mask)
        if self.normalize:
            out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out

    def _cut(self, encoding) -> list[int]:
        """The word pieces the model reads of an encoding without special tokens: at most
        ``max_tokens`` once the special tokens are added, as sentence-transformers cuts them."""
        encoding.truncate(self.max_tokens - self._specials)
        return self.tokenizer.post_process(encoding).ids

    def _forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Mean-pooled token vectors ``(batch, dim)`` of padded word pieces ``ids`` ``(batch, length)``."""
        batch, length = ids.shape
        heads, size = self.heads, self.dim // self.heads
        x = self._norm(self.words[ids] + self.positions[:length] + self.token_type, self.embedding_norm)
        blocked = ((1.0 - mask) * np.finfo(np.float32).min)[:, None, None, :]  # padding gets no attention
        for layer in self.layers:
            q, k, v = (
                _apply(x, lin).reshape(batch, length, heads, size).transpose(0, 2, 1, 3)
                for lin in (layer.query, layer.key, layer.value)
            )
            scores = q @ k.transpose(0, 1, 3, 2) * np.float32(1 / math.sqrt(size)) + blocked
            scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
            scores /= scores.sum(axis=-1, keepdims=True)
            context = (scores @ v).transpose(0, 2, 1, 3).reshape(batch, length, self.dim)
            x = self._norm(_apply(context, layer.out) + x, layer.norm1)
            h = _apply(x, layer.up)
            h = h * np.float32(0.5) * (np.float32(1.0) + erf(h * np.float32(1 / math.sqrt(2))))  # exact GELU
            x = self._norm(_apply(h, layer.down) + x, layer.norm2)
        summed = (x * mask[:, :, None]).sum(axis=1)
        return summed / np.maximum(mask.sum(axis=1, keepdims=True), 1e-9)

    def _norm(self, x: np.ndarray, weight_bias: WeightBias) -> np.ndarray:
        mean = x.mean(axis=-1, keepdims=True)
        var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
        return (x - mean) / np.sqrt(var + np.float32(self.eps)) * weight_bias[0] + weight_bias[1]


@functools.cache
def _blas_controller():
    """threadpoolctl's view of the BLAS libraries loaded, or None without threadpoolctl."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None
    return ThreadpoolController()


@contextlib.contextmanager
def _blas_threads(threads: int | None) -> Iterator[None]:
    """Run the block with ``threads`` BLAS threads (when threadpoolctl can set them), then restore."""
    controller = _blas_controller() if threads is not None else None
    if controller is None:
        yield
        return
    with controller.limit(limits=threads, user_api="blas"):
        yield


def _batches(lengths: list[int]) -> list[list[int]]:
    """Row numbers in batches of sentences of similar length, shortest first: at most
    :data:`_BATCH` a batch, the longest at most twice the shortest (padding costs as much as words)."""
    batches: list[list[int]] = []
    for row in np.argsort(lengths, kind="stable").tolist():
        if batches and len(batches[-1]) < _BATCH and lengths[row] <= 2 * lengths[batches[-1][0]]:
            batches[-1].append(row)
        else:
            batches.append([row])
    return batches


def _apply(x: np.ndarray, linear: WeightBias) -> np.ndarray:
    """A linear layer."""
    return x @ linear[0] + linear[1]
